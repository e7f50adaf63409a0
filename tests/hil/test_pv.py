"""A physical PV inverter (the project's SunSpec PV twin served as its own OS process).

Claims checked here: the inverter is identified from SunSpec model 1; its measured power (8 kW
produced, curtailed to what the envelope lets through) is the PV plant's power in the time
series, the site meter and the power flow; the stack's 3 kW cap is clamped to the deepest
curtailment the bench allows (50 % of 10 kW); a PV bench that asks for a deeper safe limit is
refused; after ``kill -9`` of the simulator the inverter lifts its limit by itself within its
revert time.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from qubit_sim.hil import run_bench
from qubit_sim.hil.bench import BenchError, DeviceSpec
from qubit_sim.hil.devices import SunSpecPv
from qubit_sim.hil.envelope import Envelope
from qubit_sim.hil.testing.processes import (
    FakePvProcess,
    gridless_scenario,
    pv_device,
    wait_for,
    write_bench,
)

ROOT = Path(__file__).resolve().parents[2]
PV_SITE = ROOT / "hil" / "scenarios" / "lab_site_pv.yaml"
REVERT_S = 2


@pytest.fixture(scope="module")
def inverter() -> Iterator[FakePvProcess]:
    process = FakePvProcess.start("--available-kw", "8", "--inverter-kw", "10", cwd=ROOT)
    yield process
    process.stop()


def _read(port: int) -> dict[str, object]:
    async def read() -> dict[str, object]:
        device = SunSpecPv(DeviceSpec.model_validate(pv_device(port)))
        await device.connect()
        try:
            return (await device.read()).detail
        finally:
            await device.close()

    return asyncio.run(read())


def test_the_envelope_holds_a_cap_to_the_deepest_curtailment_allowed() -> None:
    spec = DeviceSpec.model_validate(pv_device(1502))
    envelope = Envelope(spec.id, spec.limits, spec.kind, initial_kw=spec.safe_kw)
    assert spec.safe_kw == 10.0  # no curtailment
    clamped = envelope.check_power(3.0)
    assert (clamped.command, clamped.action, clamped.sent_kw) == ("curtail", "clamped", 5.0)
    assert "max_curtailment_pct 50" in clamped.reason
    assert envelope.check_power(None).sent_kw == 10.0  # no cap: the rating
    assert envelope.check_power(7.5).action == "passed"
    read_only = DeviceSpec.model_validate(
        pv_device(1502, limits={"max_discharge_kw": 10, "allowed_commands": []})
    )
    refused = Envelope("x", read_only.limits, "pv").check_power(7.0)
    assert refused.action == "refused" and refused.sent_kw is None


def test_a_pv_bench_is_checked(tmp_path: Path) -> None:
    too_deep = pv_device(1502, safe_state={"limit_pct": 20})
    with pytest.raises(BenchError, match="curtails deeper than max_curtailment_pct"):
        run_bench(write_bench(tmp_path, PV_SITE, [too_deep]))
    wrong_command = pv_device(
        1502, limits={"max_discharge_kw": 10, "allowed_commands": ["set_power_limit"]}
    )
    with pytest.raises(BenchError, match="use 'curtail'"):
        run_bench(write_bench(tmp_path, PV_SITE, [wrong_command]))


def test_measured_pv_power_enters_the_site_and_caps_are_clamped(
    inverter: FakePvProcess, tmp_path: Path
) -> None:
    bench = write_bench(tmp_path, PV_SITE, [pv_device(inverter.port)], name="pv", until="3min")
    result = run_bench(bench, out=tmp_path / "hil", twin_tick_s=0.2)
    device = result.manifest["hil"]["devices"][0]
    assert device["identity"]["ok"] and device["identity"]["found"]["model"] == "SL-10"
    assert device["kind"] == "pv" and device["envelope"]["clamped"] >= 1
    assert device["max_abs_sent_kw"] == pytest.approx(10.0)  # the safe state: no curtailment
    frame = result.timeseries()
    # Steps after the first command measure the inverter at its clamped 5 kW cap, not the twin.
    assert frame["pv_lab_pv_p_kw"].iloc[-1] == pytest.approx(-5.0, abs=0.05)
    assert frame["pv_kw"].iloc[-1] == pytest.approx(frame["pv_lab_pv_p_kw"].iloc[-1])
    last = frame.iloc[-1]
    parts = last["load_kw"] + last["ev_p_kw"] + last["battery_p_kw"] + last["pv_kw"]
    assert last["site_p_kw"] == pytest.approx(parts)
    assert frame["grid_vm_site_pu"].notna().all()  # the power flow ran with it
    assert abs(result.kpis["energy_balance_error_kwh"]) < 1e-6
    # load convention: the inverter injected more than the twin held to the 3 kW cap would
    assert result.kpis["hil_pv_substituted_kwh"] < 0


def test_after_kill_9_the_inverter_lifts_its_limit_by_itself(
    inverter: FakePvProcess,
    hil_process: Callable[[Path], subprocess.Popen[str]],
    tmp_path: Path,
) -> None:
    site = gridless_scenario(PV_SITE, tmp_path)
    bench = write_bench(
        tmp_path, site, [pv_device(inverter.port, revert_s=REVERT_S)], name="pvkill", until="1h"
    )
    proc = hil_process(bench)
    wait_for(
        lambda: _read(inverter.port)["curtailment_pct"] == 50 or proc.poll() is not None,
        90,
        "the bench to curtail",
    )
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGKILL)
    killed = time.monotonic()
    proc.wait(timeout=10)
    wait_for(lambda: _read(inverter.port)["curtailment_pct"] is None, REVERT_S + 2, "revert")
    assert time.monotonic() - killed <= REVERT_S + 1.0
    assert _read(inverter.port)["p_kw"] == pytest.approx(-8.0, abs=0.05)


def test_in_shadow_mode_the_twin_keeps_the_plant_and_the_gap_is_reported(
    inverter: FakePvProcess, tmp_path: Path
) -> None:
    device = pv_device(inverter.port, mode="shadow")
    site = gridless_scenario(PV_SITE, tmp_path)
    bench = write_bench(tmp_path, site, [device], name="pvshadow", until="2min")
    result = run_bench(bench, out=tmp_path / "hil", twin_tick_s=0.2)
    frame = result.timeseries()
    # The twin obeys the stack's 3 kW cap; the inverter was held to 5 kW by the envelope.
    twin = -frame["pv_available_kw"].clip(upper=3.0)
    assert frame["pv_lab_pv_p_kw"].to_numpy() == pytest.approx(twin.to_numpy())
    (shadow,) = result.manifest["hil"]["shadow"]
    assert shadow["device"] == "inverter" and shadow["kind"] == "pv"
    # Later steps measure the inverter at its 5 kW cap; step 0 may still see it uncurtailed
    # (8 kW, from takeover) when its sample is taken before the first cap is read back.
    twin_kw = frame["pv_lab_pv_p_kw"].to_numpy()[: shadow["steps"]]
    candidates = []
    for first_kw in (-8.0, -5.0):
        gap = abs([first_kw] + [-5.0] * (shadow["steps"] - 1) - twin_kw)
        candidates.append((gap.mean(), gap.max()))
    assert shadow["steps"] >= 2
    mae, largest = shadow["power_mae_kw"], shadow["power_max_abs_kw"]
    assert any(abs(mae - m) < 0.05 and abs(largest - x) < 0.05 for m, x in candidates), candidates
    assert result.kpis["hil_pv_substituted_kwh"] == 0.0
