"""A bench run against a stand-in battery in its own OS process, with a vendor register map.

Claims checked here: the device identifies itself as the bench expects; its measured power and
SOC replace the twin's in the site meter and the power flow; out-of-envelope commands are
clamped and never reach it; every setpoint carries its revert timeout; it is left in its safe
state at the end; the real-time lag is reported; a dry run never writes; a device that is not
what the bench says stops the run before anything is written.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import qubit_sim
from qubit_sim.errors import SimulationError
from qubit_sim.hil import format_report, run_bench
from qubit_sim.hil.testing.processes import FakeBatteryProcess, battery_device, write_bench

ROOT = Path(__file__).resolve().parents[2]
LAB_SITE = ROOT / "hil" / "scenarios" / "lab_site.yaml"
HORIZON_S = 240
REQUESTED_KW = 8.0  # what the lab site's scripted controller asks of the battery


@pytest.fixture(scope="module")
def battery_run(
    fake_batteries: Callable[..., FakeBatteryProcess], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("battery_run")
    battery = fake_batteries("--soc", "0.6")
    bench = write_bench(folder, LAB_SITE, [battery_device(battery.port)], name="replace")
    reports: list[str] = []
    result = run_bench(
        bench,
        out=folder / "hil",
        twin_tick_s=0.2,
        on_ready=lambda s: reports.append(format_report(s)),
    )
    fast = qubit_sim.run(
        LAB_SITE, out=folder / "fast", until_s=HORIZON_S, mode="fast", plots=False, settle=False
    )
    return {"hil": result, "fast": fast, "battery": battery, "report": reports[0]}


def _device(result: Any) -> dict[str, Any]:
    return result.manifest["hil"]["devices"][0]


def test_the_device_identifies_itself_and_the_report_says_so(battery_run: dict[str, Any]) -> None:
    identity = _device(battery_run["hil"])["identity"]
    assert identity["ok"] is True
    assert identity["found"] == {
        "manufacturer": "Acme Storage",
        "model": "AB-10",
        "serial": "SN-0001",
    }
    report = battery_run["report"]
    assert "identity OK" in report and f":{battery_run['battery'].port} unit 3" in report
    assert battery_run["hil"].manifest["mode"] == "hil"
    assert battery_run["hil"].manifest["status"] == "complete"


def test_measured_power_replaces_the_twin_in_meter_and_power_flow(
    battery_run: dict[str, Any],
) -> None:
    hil, fast = battery_run["hil"].timeseries(), battery_run["fast"].timeseries()
    assert len(hil) == len(fast) == HORIZON_S // 60
    # The twin does what it is told; the device is held to its 5 kW envelope.
    assert np.allclose(fast["battery_p_kw"].iloc[1:], REQUESTED_KW)
    assert hil["battery_p_kw"].max() <= 5.0 + 1e-6
    assert hil["battery_p_kw"].iloc[-1] > 4.0
    # Its SOC is the device's (the stand-in starts at 0.6, the twin at 0.5).
    assert np.all(np.abs(hil["battery_soc"] - 0.6) < 0.005)
    assert np.all(fast["battery_soc"] < 0.53)
    # Everything else on the site is the same; the meter differs by exactly the battery.
    for column in ("load_kw", "ev_p_kw", "pv_kw"):
        pd.testing.assert_series_equal(hil[column], fast[column])
    battery_diff = hil["battery_p_kw"] - fast["battery_p_kw"]
    np.testing.assert_allclose(hil["site_p_kw"] - fast["site_p_kw"], battery_diff, atol=1e-9)
    # The power flow saw the measured power: the feeder's import moves with it.
    grid_diff = hil["grid_ext_p_kw"] - fast["grid_ext_p_kw"]
    assert np.abs(battery_diff.iloc[1:]).min() > 2.0
    np.testing.assert_allclose(grid_diff, battery_diff, rtol=0.05, atol=0.05)
    assert np.all(hil["grid_vm_site_pu"].iloc[1:] > fast["grid_vm_site_pu"].iloc[1:])
    balance = battery_run["hil"].kpis
    assert abs(balance["energy_balance_error_kwh"]) < 1e-6


def test_out_of_envelope_commands_never_reach_the_device(battery_run: dict[str, Any]) -> None:
    device = _device(battery_run["hil"])
    assert device["envelope"]["clamped"] > 0 and device["envelope"]["passed"] == 0
    assert {entry["requested_kw"] for entry in device["envelope_log"]} == {REQUESTED_KW}
    writes = battery_run["battery"].setpoint_writes()
    assert len(writes) >= 3
    sent = np.array([w["setpoint_kw"] for w in writes])
    assert np.all(np.abs(sent) <= 5.0 + 1e-3)
    assert sent.max() == pytest.approx(5.0)
    # The ramp limit held between writes (4 kW/s on the wall clock).
    wall = np.array([w["wall_s"] for w in writes])
    steps = np.abs(np.diff(sent[:-1]))  # the last write is the safe state
    assert np.all(steps <= 4.0 * np.diff(wall[:-1]) + 0.05)


def test_every_setpoint_carries_its_revert_timeout(battery_run: dict[str, Any]) -> None:
    events = battery_run["battery"].events()
    writes = [e for e in events if e["event"] == "write"]
    for before, setpoint in zip(writes, writes[1:], strict=False):
        if setpoint["address"] == 200:
            assert before["address"] == 202 and before["values"] == [2]
    assert all(w["revert_s"] == 2 for w in writes)


def test_the_device_is_left_in_its_safe_state(battery_run: dict[str, Any]) -> None:
    writes = battery_run["battery"].setpoint_writes()
    assert writes[-1]["setpoint_kw"] == 0.0
    assert _device(battery_run["hil"])["errors"] == []


def test_lag_is_measured_and_reported(battery_run: dict[str, Any]) -> None:
    realtime = battery_run["hil"].manifest["realtime"]
    assert realtime["steps"] == HORIZON_S // 60
    assert 0.0 <= realtime["lag_mean_s"] <= realtime["lag_max_s"] < 5.0
    assert battery_run["hil"].manifest["hil"]["watchdog"]["expired"] is False


def test_a_dry_run_reads_but_never_writes(
    fake_batteries: Callable[..., FakeBatteryProcess], tmp_path: Path
) -> None:
    battery = fake_batteries()
    bench = write_bench(tmp_path, LAB_SITE, [battery_device(battery.port)], until="2min")
    result = run_bench(bench, dry_run=True, out=tmp_path / "out", twin_tick_s=0.2)
    assert result.manifest["hil"]["dry_run"] is True
    assert result.manifest["hil"]["devices"][0]["identity"]["ok"] is True
    assert result.manifest["hil"]["devices"][0]["envelope"]["clamped"] > 0  # judged all the same
    assert battery.events() == []


def test_a_device_that_is_not_the_expected_one_stops_the_run_unwritten(
    fake_batteries: Callable[..., FakeBatteryProcess], tmp_path: Path
) -> None:
    battery = fake_batteries("--serial", "SN-9999")
    bench = write_bench(tmp_path, LAB_SITE, [battery_device(battery.port)], until="2min")
    with pytest.raises(SimulationError, match="serial: expected 'SN-0001', found 'SN-9999'"):
        run_bench(bench, out=tmp_path / "out", twin_tick_s=0.2)
    assert battery.setpoint_writes() == []
