"""The fault kinds beyond link drops: latency, message loss, device faults, Modbus timeouts and
meter freezes, each over real sockets and in ``fast`` mode.

One workplace day carries one fault of each kind, each on its own device, under an open-loop
controller (so one device's fault cannot change another's setpoints). The claims: ``fast`` and
``wire`` give the same time series and the same fault and command events; each kind has its
effect on the device it targets and on nothing else; and no transaction energy is lost — every
transaction's energy at the CSMS equals the twin's meter to the Wh, also on the chargers whose
messages were lost or whose meter froze.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from pydantic import TypeAdapter

from qubit_sim.control.base import Observation, SiteInfo
from qubit_sim.control.builtin import RuleBased
from qubit_sim.errors import ProtocolError, ScenarioError
from qubit_sim.protocols.ocpp_common import sim_to_iso
from qubit_sim.scenario.build import build_site
from qubit_sim.scenario.faults import FaultedSimulation, plan_faults
from qubit_sim.scenario.loader import load_scenario_text
from qubit_sim.scenario.schema import FaultSpec
from qubit_sim.scenario.simulation import Simulation
from qubit_sim.scenario.wire import WireSimulation

ROOT = Path(__file__).resolve().parents[2]
# Without the feeder's power flow: faults do not touch the grid, and a site without one can be
# deep-copied exactly, so it is built once for all runs.
WORKPLACE = (
    (ROOT / "scenarios" / "workplace_pv_battery.yaml")
    .read_text()
    .replace("power_flow: true", "power_flow: false")
)
HOURS = 18  # 02:00 local to 20:00 local: the office EVs come and go
H = 3600
FAULTS = """
faults:
  - {kind: latency, devices: [office1], delay: 5min, at: 5h, duration: 1h}
  - {kind: message_loss, devices: [office2, office3], probability: 0.4, at: 5h30min,
     duration: 10h}
  - {kind: meter_freeze, device: office6, at: 7h, duration: 1h}
  - {kind: device_fault, device: office7, at: 7h, duration: 20min}
  - {kind: device_fault, device: carport_pv, at: 10h, duration: 30min}
  - {kind: modbus_timeout, device: office_battery, at: 12h, duration: 1h}
  - {kind: meter_freeze, device: office_battery, at: 14h, duration: 30min}
"""
# Instants the wire run is probed at, after the physics of the step [s].
PROBES = (
    7 * H + 600,
    7 * H + 1500,
    10 * H + 600,
    11 * H + 1800,
    12 * H + 600,
    14 * H + 300,
    14 * H + 1500,
)


class SteppedSetpoints(RuleBased):
    """Every quarter hour all setpoints flip: chargers 100 % / 40 % of their rating, the battery
    +20 / -20 kW, the PV plant uncapped / capped at 40 kW. Open loop: time only."""

    name = "stepped_setpoints"

    def reset(self, site: SiteInfo, rng: np.random.Generator) -> None:
        super().reset(site, rng)
        self.rated = np.asarray(site.charger_max_kw, dtype=float)
        self.n_battery = len(site.battery_ids)
        self.n_pv = len(site.pv_ids)

    def act(self, obs: Observation) -> Any:
        setpoints = super().act(obs)
        high = (obs.t_s // 900) % 2 == 0
        setpoints.charger_kw = self.rated * (1.0 if high else 0.4)
        setpoints.battery_kw = np.full(self.n_battery, 20.0 if high else -20.0)
        setpoints.pv_limit_kw = np.full(self.n_pv, np.nan if high else 40.0)
        return setpoints


class ProbedWire(WireSimulation):
    """A wire run that looks at the CSMS and reads the SunSpec servers at :data:`PROBES`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.probes: dict[int, dict[str, Any]] = {}

    def _step(self, k: int) -> None:
        super()._step(k)
        t_s = k * self.dt
        if t_s not in PROBES:
            return
        assert self.csms is not None
        seen: dict[str, Any] = {
            "office7_status": self.csms.state.charge_points["office7"].connectors[1].status,
        }
        for name, link in (("battery", self.battery_links[0]), ("pv", self.pv_links[0])):
            try:
                seen[name] = self._call(link.read())
            except ProtocolError as exc:
                seen[name] = exc
        seen["battery_true"] = (
            float(self.bank.e_charged_kwh[0]),
            float(self.bank.e_discharged_kwh[0]),
        )
        self.probes[t_s] = seen


def _loaded(faults: str) -> Any:
    return load_scenario_text(WORKPLACE + faults, base_dir=ROOT / "scenarios")


def _site(faults: str) -> Any:
    return build_site(_loaded(faults), until_s=HOURS * H, controller=SteppedSetpoints())


@pytest.fixture(scope="module")
def site() -> Any:
    """The site as built, never run (a run changes its fleet and bank: runs take copies)."""
    return _site(FAULTS)


@pytest.fixture(scope="module")
def runs(site: Any) -> dict[str, Any]:
    plain = Simulation(copy.deepcopy(site))  # plain runs ignore the faults section
    plain.run()
    fast = FaultedSimulation(copy.deepcopy(site))
    fast.run()
    wire = ProbedWire(copy.deepcopy(site))
    wire.run()
    return {"plain": plain, "fast": fast, "wire": wire}


def _rows(sim: Simulation, start_s: int, end_s: int) -> slice:
    return slice(start_s // sim.dt, end_s // sim.dt)


def _column(sim: Simulation, name: str) -> np.ndarray:
    return sim.recorder.frame()[name].to_numpy()


def _fault_events(sim: Simulation) -> list[dict[str, Any]]:
    return [e for e in sim.events if e["type"].startswith(("fault", "command"))]


# ---------------------------------------------------------------------------- fast == wire


def test_fast_and_wire_agree_under_every_kind(runs: dict[str, Any]) -> None:
    fast, wire = runs["fast"], runs["wire"]
    assert fast.recorder.frame().equals(wire.recorder.frame())
    assert _fault_events(fast) == _fault_events(wire)
    kinds = {e["fault"] for e in fast.events if e["type"] == "fault_start"}
    assert kinds == {
        "latency",
        "message_loss",
        "meter_freeze",
        "device_fault",
        "modbus_timeout",
    }
    assert fast.faults.counts == wire.faults.counts


def test_only_the_faulted_devices_change(runs: dict[str, Any]) -> None:
    plain, fast = runs["plain"], runs["fast"]
    # office6's meter froze (physics goes on); the others had no fault at all.
    for cp_id in ("office4", "office5", "office6", "office8", "office9", "office10"):
        column = f"charger_{cp_id}_p_kw"
        assert np.array_equal(_column(fast, column), _column(plain, column)), cp_id
    changed = {
        cp_id
        for cp_id in ("office1", "office2", "office3", "office7")
        if not np.array_equal(
            _column(fast, f"charger_{cp_id}_p_kw"), _column(plain, f"charger_{cp_id}_p_kw")
        )
    }
    assert {"office1", "office7"} <= changed and changed & {"office2", "office3"}


# ----------------------------------------------------------------------------- latency


def test_latency_delays_each_command_by_the_delay(runs: dict[str, Any]) -> None:
    fast, plain = runs["fast"], runs["plain"]
    delayed = [e for e in fast.events if e["type"] == "command_delayed"]
    assert delayed and {e["device_id"] for e in delayed} == {"office1"}
    assert all(e["due_s"] - e["t_s"] == 300 for e in delayed)
    assert all(5 * H <= e["t_s"] < 6 * H for e in delayed)
    column = "charger_office1_p_kw"
    with_faults, without = _column(fast, column), _column(plain, column)
    before = _rows(fast, 0, 5 * H)
    assert np.array_equal(with_faults[before], without[before])
    # Charging at full power, the new cap shows five minutes late: shifted by five steps.
    shifted = 0
    for event in delayed:
        k = event["t_s"] // fast.dt
        if without[k] > 0 and without[k] != without[k - 1]:
            assert with_faults[k] == pytest.approx(without[k - 1])
            shifted += 1
    assert shifted > 0


def test_latency_delays_the_twins_own_messages_on_the_wire(runs: dict[str, Any]) -> None:
    wire = runs["wire"]
    assert wire.csms is not None
    start = wire.site.clock.start
    # Meter values stamped inside the window still arrive, in order, with their own stamps.
    for tx in wire.csms.state.transactions_of("office1"):
        stamps = list(tx.samples)
        assert stamps == sorted(stamps)
    assert wire.twins[0].send_delay_s == 0.0 and wire.twins[0].queued == 0
    samples = [
        stamp
        for tx in wire.csms.state.transactions_of("office1")
        for stamp in tx.samples
        if sim_to_iso(start, 5 * H) <= stamp < sim_to_iso(start, 6 * H)
    ]
    assert samples


# ------------------------------------------------------------------------ message loss


def test_message_loss_drops_commands_and_twin_messages_but_no_energy(
    runs: dict[str, Any],
) -> None:
    fast, wire = runs["fast"], runs["wire"]
    lost = [e for e in fast.events if e["type"] == "command_lost"]
    assert lost and {e["device_id"] for e in lost} <= {"office2", "office3"}
    assert fast.faults.counts["lost"] == len(lost)
    dropped = sum(wire.twins[i].lost["dropped"] for i in (1, 2))
    resent = sum(wire.twins[i].lost["resent"] for i in (1, 2))
    assert dropped > 0 and resent > 0
    assert all(twin.lost == {"dropped": 0, "resent": 0} for twin in wire.twins[3:])


def _energy_closes(wire: WireSimulation, cp_ids: set[str]) -> int:
    assert wire.csms is not None
    start = wire.site.clock.start
    records = {(tx.cp_id, tx.start_time): tx for tx in wire.csms.state.transactions.values()}
    finished = 0
    for s in np.flatnonzero(wire.session_plugged_s >= 0):
        cp_id = wire.fleet.ids[wire.session_charger[s]]
        if cp_id not in cp_ids:
            continue
        tx = records[(cp_id, sim_to_iso(start, int(wire.session_plugged_s[s])))]
        sim_wh = int(wire.session_meter_stop_wh[s] - wire.session_meter_start_wh[s])
        assert tx.meter_start_wh == wire.session_meter_start_wh[s]
        if wire.session_unplugged_s[s] >= 0:
            assert not tx.active and tx.energy_wh == sim_wh, (cp_id, s)
            finished += 1
    return finished


def test_no_transaction_energy_is_lost_under_loss_and_freeze(runs: dict[str, Any]) -> None:
    wire = runs["wire"]
    assert _energy_closes(wire, {"office2", "office3", "office6"}) >= 3
    assert _energy_closes(wire, set(wire.fleet.ids)) >= 8


# ------------------------------------------------------------------------ device fault


def test_a_faulted_charger_reports_faulted_and_delivers_nothing(runs: dict[str, Any]) -> None:
    fast, wire = runs["fast"], runs["wire"]
    p_kw = _column(fast, "charger_office7_p_kw")
    connected = _column(fast, "charger_office7_connected")
    window = _rows(fast, 7 * H, 7 * H + 1200)
    assert np.all(p_kw[window] == 0.0) and connected[window].all()
    assert p_kw[7 * H // fast.dt - 1] > 0 and p_kw[(7 * H + 1200) // fast.dt] > 0
    assert wire.probes[7 * H + 600]["office7_status"] == "Faulted"
    assert wire.probes[7 * H + 1500]["office7_status"] == "Charging"
    # The transaction stayed open through the fault: one per EV, energy closing.
    assert wire.csms is not None and len(wire.csms.state.transactions_of("office7")) == 1
    assert _energy_closes(wire, {"office7"}) == 1


def test_a_faulted_pv_plant_raises_its_alarm_and_produces_nothing(runs: dict[str, Any]) -> None:
    fast, wire = runs["fast"], runs["wire"]
    pv = _column(fast, "pv_carport_pv_p_kw")
    window = _rows(fast, 10 * H, 10 * H + 1800)
    assert np.all(pv[window] == 0.0)
    assert pv[10 * H // fast.dt - 1] < 0 and pv[(10 * H + 1800) // fast.dt] < 0
    during, after = wire.probes[10 * H + 600]["pv"], wire.probes[11 * H + 1800]["pv"]
    assert during["faulted"] is True and during["p_kw"] == 0.0
    assert after["faulted"] is False and after["p_kw"] < 0


# ---------------------------------------------------------------------- modbus timeout


def test_a_silent_modbus_server_holds_the_last_setpoint(runs: dict[str, Any]) -> None:
    fast, plain, wire = runs["fast"], runs["plain"], runs["wire"]
    battery = _column(fast, "battery_office_battery_p_kw")
    window = _rows(fast, 12 * H, 13 * H)
    held = battery[12 * H // fast.dt - 1]
    assert np.all(battery[window] == held)
    assert len(set(_column(plain, "battery_office_battery_p_kw")[window])) > 1
    assert isinstance(wire.probes[12 * H + 600]["battery"], ProtocolError)
    assert isinstance(wire.probes[11 * H + 1800]["battery"], dict)
    assert fast.faults.counts["withheld"] > 0


# ------------------------------------------------------------------------ meter freeze


def test_a_frozen_meter_holds_its_readings_then_catches_up(runs: dict[str, Any]) -> None:
    wire = runs["wire"]
    assert wire.csms is not None
    start = wire.site.clock.start
    inside = (sim_to_iso(start, 7 * H + 60), sim_to_iso(start, 8 * H))
    frozen = [
        sample
        for tx in wire.csms.state.transactions_of("office6")
        for stamp, sample in tx.samples.items()
        if inside[0] <= stamp < inside[1]
    ]
    assert len(frozen) > 30
    assert len({s.energy_wh for s in frozen}) == 1 and len({s.power_w for s in frozen}) == 1
    # Battery registers over Modbus: frozen, while the true counters move on.
    early, late = wire.probes[14 * H + 300], wire.probes[14 * H + 1500]
    assert early["battery"]["e_charged_kwh"] == late["battery"]["e_charged_kwh"]
    assert early["battery"]["e_discharged_kwh"] == late["battery"]["e_discharged_kwh"]
    assert early["battery_true"] != late["battery_true"]


# -------------------------------------------------------------------------- validation


def _with_faults(site: Any, faults: str) -> Any:
    """``site`` with these fault entries, past the loader (which refuses bad device ids itself):
    the planner's own check is what these tests exercise."""
    entries = yaml.safe_load(faults)["faults"]
    adapter: TypeAdapter[Any] = TypeAdapter(FaultSpec)
    spec = site.scenario.spec.model_copy(
        update={"faults": [adapter.validate_python(entry) for entry in entries]}
    )
    scenario = copy.copy(site.scenario)
    object.__setattr__(scenario, "spec", spec)
    return dataclasses.replace(copy.deepcopy(site), scenario=scenario)


@pytest.mark.parametrize(
    ("entry", "path", "message"),
    [
        (
            "{kind: modbus_timeout, device: office1, duration: 1h}",
            "faults[0].device",
            "modbus_timeout takes battery or PV ids",
        ),
        (
            "{kind: link_drop, devices: [office_battery], duration: 1h}",
            "faults[0].devices[0]",
            "link_drop takes charger ids",
        ),
        (
            "{kind: device_fault, device: carport_pvv, duration: 1h}",
            "faults[0].device",
            "did you mean 'carport_pv'",
        ),
        (
            "{kind: meter_freeze, device: office11, duration: 1h}",
            "faults[0].device",
            "unknown device id 'office11'",
        ),
    ],
)
def test_devices_a_kind_cannot_act_on_are_named(
    site: Any, entry: str, path: str, message: str
) -> None:
    faulty = _with_faults(site, f"faults:\n  - {entry}\n")
    for make in (plan_faults, FaultedSimulation):
        with pytest.raises(ScenarioError) as info:
            make(faulty)
        (issue,) = info.value.issues
        assert issue.path == path and message in issue.message


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ("{kind: message_loss, devices: [office1], probability: 0}", "probability"),
        ("{kind: message_loss, devices: [office1], probability: 1.5}", "probability"),
        ("{kind: latency, devices: [office1]}", "delay"),
        ("{kind: latency, devices: [office1], delay: later}", "delay"),
        ("{kind: device_fault, devices: [office1]}", "device"),
    ],
)
def test_invalid_parameters_are_rejected(
    assert_fault_entry_rejected: Callable[..., None], entry: str, expected: str
) -> None:
    assert_fault_entry_rejected(_loaded, entry, expected)
