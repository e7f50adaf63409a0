"""A fleet charger (the simulator's struct-of-arrays charger behind ``mode: wire`` and ``serve``)
behind its OCPP twin, driven by the stack's CSMS over real websockets on loopback.

Claims: a transaction that ends while the EV stays plugged (remote stop, reset, made inoperative)
leaves the charger at 0 kW by itself, and a new transaction on the same EV (remote start) charges
again. Every scenario runs lock-step on a simulated clock for OCPP 1.6 and 2.0.1; the power
asserted is the simulated time series (the fleet's grid power per physics step).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import numpy as np
import pytest

from qubit_sim.assets import BatteryBank, ChargerFleet
from qubit_sim.protocols.csms import Csms
from qubit_sim.twins.charger_device import ConnectorStatus
from qubit_sim.twins.fleet_devices import SiteDevices
from qubit_sim.twins.ocpp_cp import OcppChargePointTwin

VERSIONS = ["1.6", "2.0.1"]
TIMEOUT_S = 20.0
STEP_S = 60
EV_MAX_KW = 11.0  # the EV's on-board limit
EFFICIENCY = 0.95
GRID_KW = EV_MAX_KW / EFFICIENCY  # what the charger draws for it


def site_devices(clock: Callable[[], int]) -> SiteDevices:
    """One 22 kW charger (and the battery and PV plant a site always has)."""
    fleet = ChargerFleet(["CP1"], np.array([22.0]), np.array([EFFICIENCY]), np.zeros(1, dtype=bool))
    bank = BatteryBank(
        ["b1"],
        capacity_kwh=np.array([100.0]),
        p_charge_max_kw=np.array([50.0]),
        p_discharge_max_kw=np.array([50.0]),
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
        np.zeros((1000, 1)),
        STEP_S,
        clock,
        charger_phases=[3],
        charger_voltage_v=[230.0],
        pv_kwp=[10.0],
        pv_inverter_kw=[10.0],
    )


class FleetRig:
    """The CSMS, the twin of fleet charger 0, and the simulated power series."""

    def __init__(self, version: str) -> None:
        self.t = 0
        self.version = version
        self.devices = site_devices(self.clock)
        self.fleet = self.devices.fleet
        self.charger = self.devices.chargers[0]
        self.csms = Csms(clock=self.clock, heartbeat_interval_s=3600)
        self.twin: OcppChargePointTwin
        #: Grid power of the charger per physics step [kW].
        self.p_kw: list[float] = []

    def clock(self) -> int:
        return self.t

    async def start(self) -> FleetRig:
        await self.csms.start()
        self.twin = OcppChargePointTwin(
            self.charger, "CP1", self.csms.url, version=self.version, clock=self.clock
        )
        await self.twin.connect()
        return self

    async def stop(self) -> None:
        await self.twin.close()
        await self.csms.stop()

    def plug(self, session: int = 0) -> None:
        self.fleet.plug(
            0,
            session,
            soc=0.2,
            e_needed_kwh=40.0,
            capacity_kwh=60.0,
            max_ac_kw=EV_MAX_KW,
            max_dc_kw=50.0,
            knee_soc=0.8,
            departure_s=10**7,
        )
        self.devices.refresh()

    async def step(self, n: int = 1) -> list[float]:
        """Run ``n`` physics steps, each followed by a twin tick; their powers [kW]."""
        powers = []
        for _ in range(n):
            self.fleet.step(self.devices.charger_limit_kw, float(STEP_S))
            powers.append(float(self.fleet.p_grid_kw[0]))
            self.t += STEP_S
            self.devices.refresh()
            await self.twin.tick()
        self.p_kw += powers
        return powers


def run(version: str, scenario: Callable[[FleetRig], Awaitable[None]]) -> None:
    async def main() -> None:
        rig = await FleetRig(version).start()
        try:
            await scenario(rig)
        finally:
            await rig.stop()

    asyncio.run(asyncio.wait_for(main(), TIMEOUT_S))


async def charging(rig: FleetRig) -> None:
    """Plug the EV in; the twin starts a transaction on its own and the EV charges."""
    rig.plug()
    await rig.twin.tick()
    assert await rig.step(2) == pytest.approx([GRID_KW] * 2)
    (record,) = rig.csms.transactions("CP1")
    assert record.active


async def restarts_and_charges(rig: FleetRig) -> None:
    """A remote start on the plugged, halted EV opens a transaction that draws power."""
    assert (await rig.csms.remote_start("CP1", 1)).accepted
    await rig.twin.tick()
    assert rig.charger.status(1) is ConnectorStatus.CHARGING
    assert await rig.step(3) == pytest.approx([GRID_KW] * 3)
    last = rig.csms.transactions("CP1")[-1]
    assert last.active
    assert rig.csms.read("CP1", 1).p_kw == pytest.approx(GRID_KW, abs=1e-3)
    if rig.version == "1.6":
        assert rig.csms.read("CP1", 1).status == "Charging"
    # The energy of the new transaction reaches the CSMS when the EV leaves.
    rig.fleet.unplug(0)
    rig.devices.refresh()
    await rig.twin.tick()
    assert not last.active and last.stop_reason == "EVDisconnected"
    assert last.energy_wh == pytest.approx(3 * GRID_KW * STEP_S / 3.6, abs=1.0)
    assert not rig.twin.errors


@pytest.mark.parametrize("version", VERSIONS)
def test_a_remote_start_after_a_remote_stop_charges_the_plugged_ev_again(version: str) -> None:
    async def scenario(rig: FleetRig) -> None:
        await charging(rig)
        assert (await rig.csms.remote_stop("CP1", 1)).accepted
        await rig.twin.tick()
        # Stopped with the EV still plugged: no energy, and it does not resume by itself.
        assert await rig.step(3) == [0.0, 0.0, 0.0]
        assert rig.charger.status(1) is ConnectorStatus.FINISHING
        assert len(rig.csms.transactions("CP1")) == 1
        await restarts_and_charges(rig)
        assert len(rig.csms.transactions("CP1")) == 2

    run(version, scenario)


@pytest.mark.parametrize("version", VERSIONS)
def test_after_a_reset_a_remote_start_charges_the_plugged_ev(version: str) -> None:
    async def scenario(rig: FleetRig) -> None:
        await charging(rig)
        assert (await rig.csms.reset("CP1")).accepted
        await rig.twin.tick()
        assert rig.csms.state.charge_points["CP1"].boots == 2 and rig.twin.booted
        assert await rig.step(2) == [0.0, 0.0]  # the reset ended the transaction
        (first,) = rig.csms.transactions("CP1")
        assert not first.active
        await restarts_and_charges(rig)

    run(version, scenario)


@pytest.mark.parametrize("version", VERSIONS)
def test_inoperative_then_operative_leaves_the_charger_able_to_charge(version: str) -> None:
    async def scenario(rig: FleetRig) -> None:
        await charging(rig)
        result = await rig.csms.change_availability("CP1", 1, False)
        assert result.status == "Scheduled"  # a transaction runs: it goes on ...
        assert await rig.step() == pytest.approx([GRID_KW])
        assert (await rig.csms.remote_stop("CP1", 1)).accepted  # ... until it ends
        await rig.twin.tick()
        assert rig.charger.status(1) is ConnectorStatus.UNAVAILABLE
        assert await rig.step(2) == [0.0, 0.0]
        assert (await rig.csms.change_availability("CP1", 1, True)).status == "Accepted"
        await rig.twin.tick()
        # Operative again, but the stopped transaction does not come back by itself.
        assert rig.charger.status(1) is ConnectorStatus.FINISHING
        assert await rig.step(2) == [0.0, 0.0]
        await restarts_and_charges(rig)

    run(version, scenario)


@pytest.mark.parametrize("version", VERSIONS)
def test_inoperative_without_a_transaction_then_a_remote_start(version: str) -> None:
    async def scenario(rig: FleetRig) -> None:
        await charging(rig)
        assert (await rig.csms.remote_stop("CP1", 1)).accepted
        await rig.twin.tick()
        for operative in (False, True):
            result = await rig.csms.change_availability("CP1", 0, operative)
            assert result.status == "Accepted"
            await rig.twin.tick()
            assert await rig.step() == [0.0]
        # An inoperative charger refuses a remote start; an operative one takes it.
        assert (await rig.csms.change_availability("CP1", 1, False)).accepted
        assert not (await rig.csms.remote_start("CP1", 1)).accepted
        assert (await rig.csms.change_availability("CP1", 1, True)).accepted
        await restarts_and_charges(rig)

    run(version, scenario)


# -- the device view alone ------------------------------------------------------------------


def test_the_halt_is_held_until_a_new_transaction_or_the_next_ev() -> None:
    devices = site_devices(lambda: 0)
    charger, fleet = devices.chargers[0], devices.fleet
    charger.set_limit_kw(1, 7.0)
    fleet.plug(0, 3, 0.2, 40.0, 60.0, 11.0, 50.0, 0.8, 10**7)
    devices.refresh()
    assert charger.start_transaction(1) and charger.limit_kw(1) == 7.0
    assert charger.stop_transaction(1) and charger.limit_kw(1) == 0.0
    devices.refresh()
    devices.update_chargers(np.ones(1, dtype=bool))
    assert charger.limit_kw(1) == 0.0  # re-deriving the limits keeps the halt
    assert charger.start_transaction(1) and charger.limit_kw(1) == 7.0
    assert charger.status(1) is ConnectorStatus.CHARGING
    # Made unavailable mid-transaction: the transaction ends and the EV stays halted.
    charger.set_available(1, False)
    assert charger.status(1) is ConnectorStatus.UNAVAILABLE and charger.limit_kw(1) == 0.0
    charger.set_available(1, True)
    assert charger.status(1) is ConnectorStatus.FINISHING and charger.limit_kw(1) == 0.0
    # A faulted charger starts nothing; cleared, it does.
    devices.set_faulted("charger", 0, True)
    assert not charger.start_transaction(1)
    devices.set_faulted("charger", 0, False)
    assert charger.start_transaction(1) and charger.limit_kw(1) == 7.0
