"""The watchdog: expiry puts the device in its safe state while the simulation still hangs.

Claims checked here: a fed watchdog stays quiet, a starved one fires once with its reason; a
hung controller in a bench run makes the watchdog write the safe state to the stand-in battery
(over a fresh connection, while the simulation is still stuck), after which nothing but the safe
state reaches the device and the run stops with the watchdog's reason; a step that starts more
than the bench's lag threshold late stops the run and leaves the device in its safe state.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from qubit_sim.errors import SimulationError
from qubit_sim.hil import Watchdog, run_bench
from qubit_sim.hil.testing.processes import FakeBatteryProcess, battery_device, write_bench

ROOT = Path(__file__).resolve().parents[2]
LAB_SITE = ROOT / "hil" / "scenarios" / "lab_site.yaml"
STALL_S = 4.0


def test_a_fed_watchdog_stays_quiet_and_a_starved_one_fires_once() -> None:
    fired: list[str] = []
    dog = Watchdog(0.3, fired.append)
    dog.start()
    try:
        for _ in range(8):
            time.sleep(0.05)
            dog.feed(0.0)
        assert not dog.expired and fired == []
        dog.feed(0.2)  # the next step is due in 0.2 s: the deadline is 0.5 s away
        time.sleep(0.35)
        assert not dog.expired
        time.sleep(0.6)
        assert dog.expired and len(fired) == 1
        assert "overdue" in fired[0] and "timeout 0.3 s" in fired[0]
    finally:
        dog.stop()
    assert dog.to_dict()["expired"] is True


def test_a_watchdog_rejects_a_non_positive_timeout() -> None:
    with pytest.raises(ValueError, match="must be positive"):
        Watchdog(0.0, print)


def _stalling_site(folder: Path, stall_s: float) -> Path:
    scenario = yaml.safe_load(LAB_SITE.read_text())
    scenario["controller"]["params"] = {
        "battery_kw": 3.0,
        "stall_at_s": 120,
        "stall_for_s": stall_s,
    }
    site = folder / "stalling_site.yaml"
    site.write_text(yaml.safe_dump(scenario))
    return site


def test_a_hung_simulation_leaves_the_device_in_its_safe_state(
    fake_batteries: Callable[..., FakeBatteryProcess], tmp_path: Path
) -> None:
    site = _stalling_site(tmp_path, STALL_S)
    battery = fake_batteries()
    device = battery_device(battery.port, revert_s=30)  # only the watchdog can bring it to 0
    bench = write_bench(tmp_path, site, [device], watchdog_s=1, lag_threshold_s=60, until="6min")
    with pytest.raises(SimulationError, match="watchdog expired"):
        run_bench(bench, out=tmp_path / "out", twin_tick_s=0.2)
    ended = time.time()
    writes = battery.setpoint_writes()
    commanded = [w for w in writes if w["setpoint_kw"] != 0.0]
    assert commanded and commanded[-1]["setpoint_kw"] == pytest.approx(3.0)
    first_safe = next(w for w in writes if w["wall_s"] > commanded[-1]["wall_s"])
    assert first_safe["setpoint_kw"] == 0.0
    # It came while the controller still hung, well before the run gave up.
    assert first_safe["wall_s"] - commanded[-1]["wall_s"] < STALL_S
    assert ended - first_safe["wall_s"] > 1.0
    assert all(w["setpoint_kw"] == 0.0 for w in writes if w["wall_s"] >= first_safe["wall_s"])
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["status"] == "incomplete"
    assert manifest["hil"]["watchdog"]["expired"] is True
    assert "watchdog expired" in manifest["error"]


def test_too_much_lag_stops_the_bench_safely(
    fake_batteries: Callable[..., FakeBatteryProcess], tmp_path: Path
) -> None:
    site = _stalling_site(tmp_path, 2.0)
    battery = fake_batteries()
    device = battery_device(battery.port, revert_s=30)
    bench = write_bench(tmp_path, site, [device], watchdog_s=30, lag_threshold_s=0.5, until="6min")
    with pytest.raises(SimulationError, match=r"behind at step 3, more than the 0.5 s allowed"):
        run_bench(bench, out=tmp_path / "out", twin_tick_s=0.2)
    writes = battery.setpoint_writes()
    assert any(w["setpoint_kw"] == pytest.approx(3.0) for w in writes)
    assert writes[-1]["setpoint_kw"] == 0.0
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["realtime"]["lag_max_s"] > 0.5
    assert manifest["hil"]["watchdog"]["expired"] is False
