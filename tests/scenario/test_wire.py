"""``mode: wire``: the shipped scenarios over real OCPP websockets and Modbus TCP, lock-step.

The central claim: the same scenario and seed give identical results in ``fast`` and ``wire``.
The rounding the wire imposes is applied by the in-process links too; these tests check it at
every level — value by value through live servers, array against scalar, and whole runs.
"""

from __future__ import annotations

import asyncio
import json
import math
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import qubit_sim
from qubit_sim.assets import BatteryBank, ChargerFleet
from qubit_sim.control import Observation, Setpoints
from qubit_sim.control.base import SiteInfo
from qubit_sim.control.builtin import RuleBased
from qubit_sim.core.results import RunResult
from qubit_sim.errors import SimulationError
from qubit_sim.protocols.csms import Csms
from qubit_sim.protocols.modbus_link import ModbusLink
from qubit_sim.protocols.ocpp_common import quantize_kw, sim_to_iso
from qubit_sim.scenario import runner
from qubit_sim.scenario.build import build_site
from qubit_sim.scenario.loader import load_scenario_text
from qubit_sim.scenario.simulation import Simulation
from qubit_sim.scenario.wire import WireSimulation
from qubit_sim.twins.charger_device import ChargerDevice, ConnectorStatus
from qubit_sim.twins.der_device import BatteryDevice, PvDevice
from qubit_sim.twins.fleet_devices import SiteDevices
from qubit_sim.twins.links import SetpointRouter
from qubit_sim.twins.ocpp_cp import OcppChargePointTwin
from qubit_sim.twins.quantize import BatteryWire, PvWire, charger_limit_kw, charger_limits_kw
from qubit_sim.twins.sunspec_server import SunSpecServer

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = sorted((ROOT / "scenarios").glob("*.yaml"))
# One full day; the others long enough for EVs to come and go.
HOURS = {"depot_overnight": 12, "residential_feeder": 6, "workplace_pv_battery": 24}
THRESHOLD_KW = {"workplace_pv_battery": 120.0}


class JitterRules(RuleBased):
    """Batteries by the rule-based threshold; chargers and PV get awkward caps that keep moving.

    The caps are random fractions of the ratings (never on the 0.1 W grid), some are lifted
    (NaN), some negative; each call only some devices change, as with a real scheduler.
    """

    name = "jitter_rules"

    def reset(self, site: SiteInfo, rng: np.random.Generator) -> None:
        super().reset(site, rng)
        self.rated = site.charger_max_kw
        self.charger_kw = np.full(len(site.charger_ids), np.nan)
        self.pv_kw = np.full(len(site.pv_ids), np.nan)

    def act(self, obs: Observation) -> Setpoints:
        battery = super().act(obs).battery_kw.copy()
        rng = self.rng
        n, npv = len(self.charger_kw), len(self.pv_kw)
        moved = rng.random(n) < 0.15
        self.charger_kw = np.where(moved, self.rated * rng.uniform(-0.05, 1.05, n), self.charger_kw)
        self.charger_kw[rng.random(n) < 0.02] = np.nan
        moved = rng.random(npv) < 0.2
        self.pv_kw = np.where(moved, rng.uniform(-1.0, 80.0, npv) / 3.0, self.pv_kw)
        self.pv_kw[rng.random(npv) < 0.05] = np.nan
        return Setpoints(self.charger_kw.copy(), battery, self.pv_kw.copy())


def _run(
    scenario: Path,
    mode: str,
    out: Path,
    hours: float,
    controller: Any,
    built: list[Simulation] | None = None,
    settle: bool = False,
) -> tuple[RunResult, Simulation]:
    """Run through the public API, keeping hold of the simulation object it builds."""
    sink: list[Simulation] = [] if built is None else built
    original = runner._simulation_class

    def capturing(run_mode: str, faults: bool) -> type[Simulation]:
        cls = original(run_mode, faults)

        class Captured(cls):  # type: ignore[valid-type, misc]
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, **kwargs)
                sink.append(self)

        return Captured

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(runner, "_simulation_class", capturing)
        result = qubit_sim.run(
            scenario,
            out=out,
            until_s=int(hours * 3600),
            controller=controller,
            plots=False,
            settle=settle,
            mode=mode,
        )
    return result, sink[0]


@pytest.fixture(scope="module", params=SCENARIOS, ids=lambda p: p.stem)
def pair(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """Each shipped scenario run in both modes with the jittering controller."""
    scenario: Path = request.param
    hours = HOURS[scenario.stem]
    runs: dict[str, Any] = {"name": scenario.stem, "hours": hours}
    for mode in ("fast", "wire"):
        out = tmp_path_factory.mktemp(f"{scenario.stem}-{mode}")
        controller = JitterRules(threshold_kw=THRESHOLD_KW.get(scenario.stem))
        runs[mode], runs[f"{mode}_sim"] = _run(
            scenario, mode, out, hours, controller, settle=mode == "wire"
        )
        runs[f"{mode}_controller"] = controller
    return runs


# ---------------------------------------------------------------------------- whole runs


def test_wire_run_settles_from_the_csms_and_reconciles(pair: dict[str, Any]) -> None:
    """Settlement of a wire run invoices what the CSMS received over OCPP, and every
    reconciliation check of it against the twins passes."""
    wire = pair["wire"]
    assert (wire.out_dir / "csms_transactions.parquet").is_file()
    assert wire.manifest["settlement"]["reconciliation"] == "pass"
    report = json.loads((wire.out_dir / "settlement" / "reconciliation.json").read_text())
    checks = {check["name"]: check for check in report["checks"]}
    assert report["passed"] and all(check["passed"] for check in checks.values()), checks
    assert checks["charging_sessions"]["source"] == "csms_transactions"


def test_fast_and_wire_write_identical_results(pair: dict[str, Any]) -> None:
    fast, wire = pair["fast"], pair["wire"]
    assert fast.manifest["mode"] == "fast" and wire.manifest["mode"] == "wire"
    assert wire.manifest["status"] == "complete"
    assert wire.manifest["n_steps"] == pair["hours"] * 60
    a, b = fast.timeseries(), wire.timeseries()
    assert list(a.columns) == list(b.columns) and len(a) == pair["hours"] * 60
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    pd.testing.assert_frame_equal(fast.sessions(), wire.sessions(), check_exact=True)
    assert fast.kpis == wire.kpis
    assert (fast.out_dir / "events.jsonl").read_bytes() == (
        wire.out_dir / "events.jsonl"
    ).read_bytes()
    # The runs did something worth comparing.
    assert a["ev_p_kw"].max() > 0
    assert (pair["fast_sim"].router.sent == pair["wire_sim"].router.sent) and pair[
        "fast_sim"
    ].router.sent > 0


def test_devices_hold_the_same_rounded_limits_in_both_modes(pair: dict[str, Any]) -> None:
    fast, wire = pair["fast_sim"].devices, pair["wire_sim"].devices
    for name in ("charger_limit_kw", "battery_setpoint_kw", "pv_limit_kw"):
        np.testing.assert_array_equal(getattr(fast, name), getattr(wire, name), err_msg=name)
    # The controller's values are off the wire's grid: rounding really happened, by < 0.05 W.
    raw = pair["fast_controller"].charger_kw
    held = fast.charger_requested_kw
    finite = np.isfinite(raw) & (raw > 0)
    assert finite.any()
    assert (held[finite] != raw[finite]).any()
    np.testing.assert_allclose(held[finite], raw[finite], rtol=0, atol=0.05e-3 + 1e-12)


def test_the_wire_run_really_used_the_sockets(pair: dict[str, Any]) -> None:
    sim: WireSimulation = pair["wire_sim"]
    assert sim.csms is not None
    cps = sim.csms.state.charge_points
    assert sorted(cps) == sorted(sim.fleet.ids)
    assert all(cp.boots == 1 and cp.connects == 1 for cp in cps.values())
    assert len(sim.csms.state.journal) > 0
    assert sim.traffic["ocpp_limits"] > 0
    # What the CSMS believes each charger is limited to is what the charger holds.
    for i, cp_id in enumerate(sim.fleet.ids):
        believed = sim.csms.read(cp_id, 1).limit_kw
        held = sim.devices.charger_requested_kw[i]
        assert (believed is None and math.isnan(held)) or believed == held
    n_der = sim.bank.n + len(sim.site.pv_ids)
    assert len(sim.servers) == n_der and len(sim.endpoints) == 1 + n_der
    if n_der:
        assert sim.traffic["modbus_setpoints"] > 0
    for j, server in enumerate(sim.servers[: sim.bank.n]):
        # The battery's register holds the setpoint in SunSpec's sign (+ discharge).
        m704 = server.map.block(704)
        assert m704.symbol("WSetEna") == "ENABLED"
        assert m704.get("WSet") == -1000.0 * sim.devices.battery_setpoint_kw[j]


def test_the_csms_counts_every_transaction_to_the_watt_hour(pair: dict[str, Any]) -> None:
    sim: WireSimulation = pair["wire_sim"]
    assert sim.csms is not None
    sessions = pair["wire"].sessions()
    plugged = sessions[sessions["plugged_s"] >= 0]
    records = {(tx.cp_id, tx.start_time): tx for tx in sim.csms.state.transactions.values()}
    assert len(records) == len(plugged) > 0
    start = sim.site.clock.start
    finished = 0
    for row in plugged.itertuples():
        tx = records[(row.charger_id, sim_to_iso(start, row.plugged_s))]
        sim_wh = row.meter_stop_wh - row.meter_start_wh
        assert tx.meter_start_wh == row.meter_start_wh
        if row.unplugged_s >= 0:
            finished += 1
            assert not tx.active and tx.stop_reason == "EVDisconnected"
            assert tx.energy_wh == sim_wh
        else:
            assert tx.active and abs(tx.energy_wh - sim_wh) < 1.0
    # The twins agree with the CSMS on every finished transaction.
    twin_wh = []
    for twin in sim.twins:
        for done in twin.finished:
            assert done.meter_stop_wh is not None
            # OCPP 1.6 carries whole Wh, rounded down.
            twin_wh.append(
                (twin.identity, math.floor(done.meter_stop_wh) - math.floor(done.meter_start_wh))
            )
    twin_wh.sort()
    csms_wh = sorted((tx.cp_id, tx.energy_wh) for tx in records.values() if not tx.active)
    assert twin_wh == csms_wh and len(csms_wh) == finished
    assert finished > 0


# ------------------------------------------------------------------- rounding, value by value


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.floats(-50.0, 400.0),
            st.just(math.nan),
            st.just(math.inf),
            st.integers(0, 400).map(float),
        ),
        min_size=1,
        max_size=30,
    )
)
def test_vectorised_charger_rounding_equals_the_scalar_wire_rounding(values: list[float]) -> None:
    array = charger_limits_kw(np.array(values))
    for value, rounded in zip(values, array, strict=True):
        expected = charger_limit_kw(value)
        assert (expected is None and math.isnan(rounded)) or rounded == expected
        if expected is not None:
            assert (
                expected == quantize_kw(max(value, 0.0)) and charger_limit_kw(expected) == expected
            )


@settings(max_examples=200, deadline=None)
@given(
    charge=st.floats(0.5, 3000.0),
    discharge=st.floats(0.5, 3000.0),
    setpoints=st.lists(st.floats(-5000.0, 5000.0), min_size=1, max_size=10),
)
def test_vectorised_battery_rounding_equals_the_scalar_one(
    charge: float, discharge: float, setpoints: list[float]
) -> None:
    n = len(setpoints)
    wire = BatteryWire(np.full(n, charge), np.full(n, discharge))
    array = wire.setpoints_kw(np.array(setpoints))
    for j, value in enumerate(setpoints):
        assert array[j] == wire.setpoint_kw(j, value)
        assert wire.setpoint_kw(j, array[j]) == array[j]  # what arrived survives a resend
        assert -wire.discharge_max_kw[j] - 1e-9 <= array[j] <= wire.charge_max_kw[j] + 1e-9


@settings(max_examples=200, deadline=None)
@given(
    inverter=st.floats(0.5, 3000.0),
    caps=st.lists(st.one_of(st.floats(-10.0, 4000.0), st.just(math.nan)), min_size=1, max_size=10),
)
def test_vectorised_pv_rounding_equals_the_scalar_one(inverter: float, caps: list[float]) -> None:
    wire = PvWire(np.full(len(caps), inverter))
    array = wire.limits_kw(np.array(caps))
    for j, cap in enumerate(caps):
        expected = wire.limit_kw(j, cap)
        assert (expected is None and math.isnan(array[j])) or array[j] == expected


def _devices(n_chargers: int = 1) -> SiteDevices:
    fleet = ChargerFleet(
        [f"cp{i}" for i in range(n_chargers)],
        np.full(n_chargers, 22.0),
        np.full(n_chargers, 0.95),
        np.zeros(n_chargers, dtype=bool),
    )
    bank = BatteryBank(
        ["b1"],
        capacity_kwh=np.array([200.0]),
        p_charge_max_kw=np.array([77.77]),
        p_discharge_max_kw=np.array([123.456]),
        eta_charge=np.array([0.95]),
        eta_discharge=np.array([0.95]),
        soc_min=np.array([0.1]),
        soc_max=np.array([0.9]),
        soc_initial=np.array([0.5]),
        self_discharge_per_h=np.array([0.0]),
    )
    return SiteDevices(
        fleet,
        bank,
        np.full((4, 1), 20.0),
        60,
        lambda: 0,
        charger_phases=[3] * n_chargers,
        charger_voltage_v=[230.0] * n_chargers,
        pv_kwp=[33.3],
        pv_inverter_kw=[31.4159],
    )


@pytest.fixture(scope="module")
def live() -> Iterator[dict[str, Any]]:
    """A CSMS with one charge point twin, and SunSpec servers for a battery and a PV plant."""
    loop = asyncio.new_event_loop()
    devices = _devices()
    csms = Csms(port=0, clock=lambda: 0)
    battery = SunSpecServer(devices.batteries[0], "battery", port=0, clock=lambda: 0)
    pv = SunSpecServer(devices.pv[0], "pv", port=0, clock=lambda: 0)

    async def start() -> dict[str, Any]:
        await csms.start()
        twin = OcppChargePointTwin(devices.chargers[0], "cp0", csms.url, clock=lambda: 0)
        await twin.connect()
        await battery.start()
        await pv.start()
        links = {
            "battery": ModbusLink("127.0.0.1", battery.port, kind="battery"),
            "pv": ModbusLink("127.0.0.1", pv.port, kind="pv"),
        }
        for link in links.values():
            await link.connect()
        return {"twin": twin, **links}

    parts = loop.run_until_complete(start())
    yield {"loop": loop, "devices": devices, "csms": csms, "servers": (battery, pv), **parts}

    async def stop() -> None:
        await parts["battery"].close()
        await parts["pv"].close()
        await parts["twin"].close()
        await battery.stop()
        await pv.stop()
        await csms.stop()

    loop.run_until_complete(stop())
    loop.close()


def test_wire_parameters_are_those_the_sunspec_server_publishes(live: dict[str, Any]) -> None:
    devices: SiteDevices = live["devices"]
    battery, pv = live["servers"]
    wire = BatteryWire(devices.bank.p_charge_max_kw, devices.bank.p_discharge_max_kw)
    assert battery.map.block(704).get_raw("WSet_SF") == wire.wset_sf[0]
    assert battery.map.block(702).get("WChaRteMax") / 1000.0 == wire.charge_max_kw[0]
    assert battery.map.block(702).get("WDisChaRteMax") / 1000.0 == wire.discharge_max_kw[0]
    assert pv.map.block(120).get("WRtg") / 1000.0 == PvWire(devices.pv_inverter_kw).rating_kw[0]
    assert isinstance(devices.chargers[0], ChargerDevice)
    assert isinstance(devices.batteries[0], BatteryDevice)
    assert isinstance(devices.pv[0], PvDevice)


@settings(max_examples=40, deadline=None)
@given(st.one_of(st.floats(-5.0, 60.0), st.just(math.nan)))
def test_an_ocpp_limit_arrives_exactly_as_the_direct_link_applies_it(
    live: dict[str, Any], limit_kw: float
) -> None:
    csms: Csms = live["csms"]
    sent = charger_limits_kw(np.array([limit_kw]))[0]  # what the router sends
    result = live["loop"].run_until_complete(
        csms.set_power_limit("cp0", 1, None if math.isnan(sent) else float(sent))
    )
    assert result.accepted
    held = live["devices"].chargers[0].limit_kw(1)
    assert held == charger_limit_kw(limit_kw)


@settings(max_examples=40, deadline=None)
@given(st.floats(-300.0, 300.0))
def test_a_modbus_battery_setpoint_arrives_exactly_as_the_direct_link_applies_it(
    live: dict[str, Any], p_kw: float
) -> None:
    devices: SiteDevices = live["devices"]
    wire = BatteryWire(devices.bank.p_charge_max_kw, devices.bank.p_discharge_max_kw)
    sent = float(wire.clip_kw(np.array([p_kw]))[0])
    live["loop"].run_until_complete(live["battery"].set_power_limit(sent))
    assert devices.batteries[0].setpoint_kw == wire.setpoint_kw(0, p_kw)
    assert devices.battery_setpoint_kw[0] == wire.setpoints_kw(np.array([p_kw]))[0]


@settings(max_examples=40, deadline=None)
@given(st.one_of(st.floats(-5.0, 60.0), st.just(math.nan)))
def test_a_modbus_pv_cap_arrives_exactly_as_the_direct_link_applies_it(
    live: dict[str, Any], cap_kw: float
) -> None:
    devices: SiteDevices = live["devices"]
    sent = None if math.isnan(cap_kw) else max(cap_kw, 0.0)
    live["loop"].run_until_complete(live["pv"].set_power_limit(sent))
    expected = PvWire(devices.pv_inverter_kw).limit_kw(0, cap_kw)
    held = devices.pv_limit_kw[0]
    assert (expected is None and math.isnan(held)) or held == expected


# --------------------------------------------------------------------------- device views


def test_a_fleet_charger_walks_through_the_ocpp_states() -> None:
    devices = _devices()
    fleet, charger = devices.fleet, devices.chargers[0]
    assert charger.status(1) is ConnectorStatus.AVAILABLE and not charger.start_transaction(1)
    fleet.plug(
        0,
        7,
        soc=0.2,
        e_needed_kwh=10.0,
        capacity_kwh=50.0,
        max_ac_kw=11.0,
        max_dc_kw=50.0,
        knee_soc=0.8,
        departure_s=3600,
    )
    assert charger.status(1) is ConnectorStatus.PREPARING
    assert charger.start_transaction(1) and charger.status(1) is ConnectorStatus.CHARGING
    charger.set_limit_kw(1, 0.0)
    assert charger.status(1) is ConnectorStatus.SUSPENDED_EVSE
    charger.set_limit_kw(1, 7.5)
    fleet.step(devices.charger_limit_kw, 60.0)
    assert charger.p_kw(1) == pytest.approx(7.5)
    assert sum(v * a for v, a in zip(charger.voltage_v(1), charger.current_a(1), strict=True)) == (
        pytest.approx(7500.0)
    )
    assert charger.e_register_wh(1) == pytest.approx(125.0)
    # Stopping the transaction with the EV still plugged halts the charger ...
    assert charger.stop_transaction(1) and charger.status(1) is ConnectorStatus.FINISHING
    assert devices.charger_limit_kw[0] == 0.0 and charger.limit_kw(1) == 0.0
    # ... until the next EV.
    fleet.unplug(0)
    assert charger.status(1) is ConnectorStatus.AVAILABLE
    fleet.plug(
        0,
        8,
        soc=0.2,
        e_needed_kwh=10.0,
        capacity_kwh=50.0,
        max_ac_kw=11.0,
        max_dc_kw=50.0,
        knee_soc=0.8,
        departure_s=3600,
    )
    devices.refresh()
    assert devices.charger_limit_kw[0] == 7.5 and charger.status(1) is ConnectorStatus.PREPARING
    charger.set_available(1, False)
    assert charger.status(1) is ConnectorStatus.UNAVAILABLE and devices.charger_limit_kw[0] == 0.0


def test_the_router_sends_only_what_changed() -> None:
    devices = _devices(n_chargers=4)
    router = SetpointRouter(devices)
    lifted = np.full(4, np.nan)
    assert router.changes(lifted, np.zeros(1), np.full(1, np.nan)) is None
    limits = np.array([3.14159265, np.nan, 11.0, -2.0])
    changes = router.changes(limits, np.zeros(1), np.full(1, np.nan))
    assert changes is not None and [i for i, _ in changes.chargers] == [0, 2, 3]
    assert changes.chargers[2] == (3, 0.0) and not changes.batteries and not changes.pv
    # A change below the wire's resolution is no change.
    assert router.changes(limits + 1e-9, np.zeros(1), np.full(1, np.nan)) is None
    router.apply_direct(limits, np.array([50.123456]), np.array([7.77]))
    assert devices.charger_limit_kw[1] != devices.charger_limit_kw[1]  # still no cap (NaN)
    assert devices.battery_setpoint_kw[0] == 50.123 and devices.pv_limit_kw[0] > 0
    assert router.sent == 5


# ------------------------------------------------------------------- failures and the CLI


class FailingController(RuleBased):
    name = "failing"

    def act(self, obs: Observation) -> Setpoints:
        if obs.t_s >= 7200:
            raise RuntimeError("controller exploded")
        return super().act(obs)


def test_a_failed_wire_run_keeps_its_results_and_closes_its_sockets(tmp_path: Path) -> None:
    scenario = ROOT / "scenarios" / "workplace_pv_battery.yaml"
    built: list[Simulation] = []
    with pytest.raises(SimulationError, match=r"t=7200 s") as info:
        _run(scenario, "wire", tmp_path, 6, FailingController(threshold_kw=120.0), built)
    assert "marked incomplete" in str(info.value) and "controller exploded" in str(info.value)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["status"] == "incomplete" and manifest["mode"] == "wire"
    assert len(pd.read_parquet(tmp_path / "timeseries.parquet")) == 120
    sim = built[0]
    assert isinstance(sim, WireSimulation) and len(sim.endpoints) == 3  # CSMS, battery, PV
    for host, port in sim.endpoints:
        with pytest.raises(OSError), socket.create_connection((host, port), timeout=1.0):
            pass


def test_mode_comes_from_the_yaml_and_the_command_line_overrides_it(tmp_path: Path) -> None:
    text = (ROOT / "scenarios" / "workplace_pv_battery.yaml").read_text()
    scenario = tmp_path / "workplace_wire.yaml"
    scenario.write_text(text + "\nmode: wire\n")
    from_yaml = qubit_sim.run(scenario, out=tmp_path / "a", until_s=3600, plots=False, settle=False)
    assert from_yaml.manifest["mode"] == "wire"

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "qubit_sim",
                "run",
                str(scenario),
                "--until",
                "1h",
                "--quiet",
                "--no-plots",
                *args,
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
        )

    result = cli("--mode", "fast", "--out", str(tmp_path / "b"))
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "b" / "manifest.json").read_text())["mode"] == "fast"
    pd.testing.assert_frame_equal(
        from_yaml.timeseries(),
        pd.read_parquet(tmp_path / "b" / "timeseries.parquet"),
        check_exact=True,
    )
    bad = cli("--mode", "realtime", "--out", str(tmp_path / "c"))
    assert bad.returncode == 2 and "unknown mode 'realtime'" in bad.stderr


HANDOVER = """
site:
  name: handover
  start: 2025-05-05T00:00:00Z
  duration: 6h
  step: 60s
assets:
  chargers:
    - {id: newer, power_kw: 11, protocol: ocpp2.0.1}
    - {id: older, power_kw: 22}
evs:
  sessions_csv: sessions.csv
"""
SESSIONS = """arrival,departure,kwh,charger
2025-05-05T01:00:00Z,2025-05-05T03:00:00Z,15,0
2025-05-05T03:00:00Z,2025-05-05T05:00:00Z,30,0
2025-05-05T01:30:00Z,2025-05-05T04:00:00Z,12,1
"""


def test_an_ev_can_leave_and_another_arrive_at_the_same_instant(tmp_path: Path) -> None:
    """One EV leaves charger 0 at 03:00 as the next plugs in: two transactions, both counted."""
    (tmp_path / "sessions.csv").write_text(SESSIONS)
    loaded = load_scenario_text(HANDOVER, base_dir=tmp_path)
    sims: dict[str, Simulation] = {}
    for cls in (Simulation, WireSimulation):
        site = build_site(loaded, controller=JitterRules())
        sims[cls.__name__] = sim = cls(site)
        sim.run()
    fast, wire = sims["Simulation"], sims["WireSimulation"]
    assert isinstance(wire, WireSimulation) and wire.csms is not None
    pd.testing.assert_frame_equal(fast.recorder.frame(), wire.recorder.frame(), check_exact=True)
    assert wire.csms.state.charge_points["newer"].version == "2.0.1"
    assert wire.csms.state.charge_points["older"].version == "1.6"
    txs = sorted(wire.csms.state.transactions.values(), key=lambda tx: (tx.cp_id, tx.start_time))
    assert [
        (tx.cp_id, tx.start_time[11:16], tx.stop_time and tx.stop_time[11:16]) for tx in txs
    ] == [
        ("newer", "01:00", "03:00"),
        ("newer", "03:00", "05:00"),
        ("older", "01:30", "04:00"),
    ]
    records = {(tx.cp_id, tx.start_time): tx for tx in txs}
    start = wire.site.clock.start
    for s in range(3):
        cp_id = wire.fleet.ids[wire.session_charger[s]]
        tx = records[(cp_id, sim_to_iso(start, wire.session_plugged_s[s]))]
        sim_wh = wire.session_meter_stop_wh[s] - wire.session_meter_start_wh[s]
        assert tx.energy_wh is not None and sim_wh > 1000
        # 2.0.1 reports the register to 0.1 Wh, 1.6 in whole Wh; the simulation counts whole Wh.
        assert abs(tx.energy_wh - sim_wh) < 1.0
