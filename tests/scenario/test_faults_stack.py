"""Faults under the Qubit stack controllers: ``fast`` and ``wire`` give the same run.

A stack controller coordinates through Qubit L4 and reads the battery only as L1 telemetry. Under
a ``faults:`` section both modes filter its setpoints the same way (withheld, lost, delayed), send
what passes as L4 commands, and read the devices through the same fault windows: a battery in a
Modbus timeout answers no read in either mode, so the stack plans it from its last SOC and then
holds it idle. The time series, the KPIs that do not time the controller, and every event but the
chargers' telemetry flags must be equal.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import qubit_sim
from qubit_sim.scenario.loader import load_scenario_text

ROOT = Path(__file__).resolve().parents[2]
WORKPLACE = (
    (ROOT / "scenarios" / "workplace_pv_battery.yaml")
    .read_text()
    .replace("power_flow: true", "power_flow: false")
)
HOURS = 10
FAULTS = """
faults:
  - {kind: modbus_timeout, device: office_battery, at: 2h, duration: 1h}
  - {kind: link_drop, devices: [office1, office2], at: 6h, duration: 40min}
  - {kind: latency, devices: [office3], delay: 5min, at: 6h, duration: 1h}
  - {kind: message_loss, devices: [office4], probability: 0.5, at: 6h, duration: 2h}
  - {kind: device_fault, device: office5, at: 7h, duration: 20min}
  - {kind: meter_freeze, device: office_battery, at: 8h, duration: 30min}
"""


def _run(mode: str, controller: str, tmp: Path) -> Any:
    loaded = load_scenario_text(WORKPLACE + FAULTS, base_dir=ROOT / "scenarios")
    return qubit_sim.run(
        loaded,
        out=tmp / f"{controller}-{mode}",
        until_s=HOURS * 3600,
        controller=controller,
        mode=mode,
        plots=False,
        settle=False,
    )


def _events(result: Any) -> list[dict[str, Any]]:
    """Every event but the chargers' telemetry flags: a charger's telemetry is what the CSMS
    received on the wire (meter values late, lost or missing under link faults) and the twin's
    own meter in fast mode."""
    return [
        e
        for e in result.events()
        if not (e["type"] == "telemetry_flagged" and e["asset_id"].startswith("ast_charger"))
    ]


@pytest.fixture(scope="module", params=["qubit_greedy", "mpc"])
def runs(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    tmp = tmp_path_factory.mktemp("faults-stack")
    return request.param, _run("fast", request.param, tmp), _run("wire", request.param, tmp)


def test_fast_and_wire_agree_under_faults_with_a_stack_controller(runs: Any) -> None:
    _, fast, wire = runs
    assert fast.timeseries().equals(wire.timeseries())
    timed = {k for k in fast.kpis if "solve" in k or "time" in k}
    assert {k: v for k, v in fast.kpis.items() if k not in timed} == {
        k: v for k, v in wire.kpis.items() if k not in timed
    }
    assert _events(fast) == _events(wire)


def test_the_stack_loses_the_battery_in_a_modbus_timeout_in_both_modes(runs: Any) -> None:
    _, fast, wire = runs
    for result in (fast, wire):
        flagged = [
            e
            for e in result.events()
            if e["type"] == "telemetry_flagged" and e["asset_id"] == "ast_battery_office_battery"
        ]
        assert flagged, "the silent battery's SOC must be flagged"
        assert {e["data"]["quality"] for e in flagged} == {"missing"}
        assert all(2 * 3600 <= e["t_s"] < 3 * 3600 for e in flagged)
        # Commands go through L4 in both modes.
        assert any(e["type"] == "COMMAND_COMPLETED" for e in result.events())
