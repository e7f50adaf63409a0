"""OCPP charge point twin against the stack's CSMS over real websockets on loopback.

Every scenario runs for both OCPP versions, lock-step on a simulated clock: advance the device,
then ``await twin.tick()``; each test is bounded by a wall-clock timeout.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from qubit_sim.errors import ProtocolError
from qubit_sim.protocols.csms import Csms
from qubit_sim.protocols.ocpp_common import DEFAULT_EPOCH, sim_to_iso
from qubit_sim.twins.charger_device import ConnectorStatus, EvState, SimpleCharger
from qubit_sim.twins.ocpp_cp import OcppChargePointTwin

VERSIONS = ["1.6", "2.0.1"]
TIMEOUT_S = 20.0


class Rig:
    """A CSMS, one charger twin and the simulated clock they share."""

    def __init__(
        self,
        version: str,
        n_connectors: int = 1,
        id_tags: set[str] | None = None,
        **twin_kwargs: Any,
    ) -> None:
        self.t = 0.0
        self.version = version
        self.csms = Csms(clock=self.clock, heartbeat_interval_s=600, id_tags=id_tags)
        self.device = SimpleCharger(n_connectors=n_connectors, max_power_kw=22.0)
        self.twin_kwargs = twin_kwargs
        self.twin: OcppChargePointTwin

    def clock(self) -> float:
        return self.t

    async def start(self) -> Rig:
        await self.csms.start()
        self.twin = OcppChargePointTwin(
            self.device,
            "CP1",
            self.csms.url,
            version=self.version,
            clock=self.clock,
            **self.twin_kwargs,
        )
        await self.twin.connect()
        return self

    async def stop(self) -> None:
        await self.twin.close()
        await self.csms.stop()

    async def step(self, dt_s: float = 60.0, n: int = 1) -> None:
        for _ in range(n):
            self.device.advance(dt_s)
            self.t += dt_s
            await self.twin.tick()

    def plug(self, connector: int = 1, **ev: Any) -> None:
        spec = {"capacity_kwh": 60.0, "soc": 0.2, "max_power_kw": 11.0, **ev}
        self.device.plug_in(connector, EvState(**spec))

    def tx_records(self) -> list[Any]:
        return self.csms.transactions("CP1")


def run(version: str, scenario: Callable[[Rig], Awaitable[None]], **kwargs: Any) -> None:
    async def main() -> None:
        rig = await Rig(version, **kwargs).start()
        try:
            await scenario(rig)
        finally:
            await rig.stop()

    asyncio.run(asyncio.wait_for(main(), TIMEOUT_S))


@pytest.mark.parametrize("version", VERSIONS)
def test_boot_status_and_auto_started_transaction(version: str) -> None:
    async def scenario(rig: Rig) -> None:
        record = rig.csms.state.charge_points["CP1"]
        assert record.version == version and record.boots == 1 and record.online
        assert (record.vendor, record.model) == ("QubitSim", "SimCharger")
        assert rig.twin.config["heartbeat_interval_s"] == 600  # from the boot answer
        assert rig.csms.read("CP1", 1).status == "Available"
        rig.plug()
        await rig.twin.tick()
        reading = rig.csms.read("CP1", 1)
        assert reading.status == "Charging"
        assert reading.transaction_id is not None
        assert rig.device.in_transaction(1)
        (record_tx,) = rig.tx_records()
        assert record_tx.active and record_tx.meter_start_wh == 0.0
        assert not rig.twin.errors

    run(version, scenario)


@pytest.mark.parametrize("version", VERSIONS)
def test_meter_values_flow_and_stay_coherent_with_the_device(version: str) -> None:
    async def scenario(rig: Rig) -> None:
        rig.plug()
        await rig.twin.tick()
        volts = [(231.0, 228.5, 233.2), (226.0, 229.9, 224.1), (236.4, 235.0, 230.0)]
        for i in range(9):
            rig.device.set_voltage(1, volts[i % 3])
            await rig.step()
            reading = rig.csms.read("CP1", 1)
            assert reading.p_kw == pytest.approx(rig.device.p_kw(1), abs=1e-3)
            assert reading.e_register_kwh == pytest.approx(
                rig.device.e_register_wh(1) / 1000.0, abs=1e-4
            )
            assert reading.ev_soc == pytest.approx(rig.device.ev_soc(1), abs=1e-3)
        (record,) = rig.tx_records()
        samples = [s for s in record.samples.values() if s.current_a]
        assert len(samples) == 9  # one per 60 s interval
        registers = [s.energy_wh for s in samples]
        assert registers == sorted(registers) and registers[-1] > registers[0]
        for sample in samples:
            vi = sum(v * i for v, i in zip(sample.voltage_v, sample.current_a, strict=True))
            assert vi == pytest.approx(sample.power_w, abs=1.0)
            assert len(sample.current_a) == 3

    run(version, scenario)


@pytest.mark.parametrize("version", VERSIONS)
def test_power_limit_drives_the_device_and_energy_matches_to_the_wh(version: str) -> None:
    async def scenario(rig: Rig) -> None:
        rig.plug()
        await rig.step(n=3)
        result = await rig.csms.set_power_limit("CP1", 1, 3.7)
        assert result.accepted
        assert rig.device.p_kw(1) == pytest.approx(3.7)  # applied when the request arrives
        await rig.step(n=4)
        assert rig.csms.read("CP1", 1).p_kw == pytest.approx(3.7)
        assert rig.csms.read("CP1", 1).limit_kw == pytest.approx(3.7)
        assert (await rig.csms.set_power_limit("CP1", 1, None)).accepted
        assert rig.device.p_kw(1) == pytest.approx(11.0)
        await rig.step(n=2, dt_s=37.0)
        session_wh = rig.device.session_energy_wh(1)
        rig.device.unplug(1)
        await rig.twin.tick()
        (record,) = rig.tx_records()
        assert not record.active and record.stop_reason == "EVDisconnected"
        assert abs(record.energy_wh - session_wh) < 1.0
        assert abs(rig.twin.finished[0].energy_wh - session_wh) < 0.2  # 0.1 Wh registers
        assert rig.csms.read("CP1", 1).status == "Available"
        assert rig.csms.read("CP1", 1).p_kw == 0.0

    run(version, scenario)


@pytest.mark.parametrize("version", VERSIONS)
def test_amp_profile_uses_measured_voltage_and_composite_is_reported(version: str) -> None:
    async def scenario(rig: Rig) -> None:
        rig.plug()
        rig.device.set_voltage(1, (240.0, 240.0, 240.0))
        await rig.twin.tick()
        start = rig.csms.now_iso()
        schedule = {
            "chargingRateUnit": "A",
            "startSchedule": start,
            "chargingSchedulePeriod": [
                {"startPeriod": 0, "limit": 16.0, "numberPhases": 1},
                {"startPeriod": 600, "limit": 10.0, "numberPhases": 3},
            ],
        }
        if version == "1.6":
            profile = {
                "chargingProfileId": 1,
                "stackLevel": 0,
                "chargingProfilePurpose": "TxDefaultProfile",
                "chargingProfileKind": "Absolute",
                "chargingSchedule": schedule,
            }
        else:
            profile = {
                "id": 1,
                "stackLevel": 0,
                "chargingProfilePurpose": "TxDefaultProfile",
                "chargingProfileKind": "Absolute",
                "chargingSchedule": [{"id": 1, **schedule}],
            }
        assert (await rig.csms.set_charging_profile("CP1", 1, profile)).accepted
        assert rig.device.p_kw(1) == pytest.approx(16 * 240 / 1000)
        composite = await rig.csms.get_composite_schedule("CP1", 1, 1800, "W")
        assert composite is not None and composite.unit == "W"
        assert composite.periods == ((0, 3840.0), (600, 7200.0))
        # A higher stack level in W overrides the A profile.
        assert (await rig.csms.set_power_limit("CP1", 1, 2.0)).accepted
        composite = await rig.csms.get_composite_schedule("CP1", 1, 1800, "A")
        assert composite is not None and composite.periods == ((0, 2.8),)  # 2 kW / (3 x 240 V)
        await rig.step(dt_s=600.0)
        assert rig.device.p_kw(1) == pytest.approx(2.0)
        assert (await rig.csms.clear_charging_profile("CP1", profile_id=9001)).accepted
        await rig.twin.tick()
        assert rig.device.p_kw(1) == pytest.approx(7.2)  # 10 A x 3 x 240 V, now past 600 s

    run(version, scenario)


@pytest.mark.parametrize("version", VERSIONS)
def test_station_maximum_is_shared_between_charging_connectors(version: str) -> None:
    async def scenario(rig: Rig) -> None:
        rig.plug(1)
        rig.plug(2, max_power_kw=4.0)
        await rig.twin.tick()
        purpose = "ChargePointMaxProfile" if version == "1.6" else "ChargingStationMaxProfile"
        schedule = {
            "chargingRateUnit": "W",
            "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 12000.0}],
        }
        if version == "1.6":
            profile = {
                "chargingProfileId": 3,
                "stackLevel": 0,
                "chargingProfilePurpose": purpose,
                "chargingProfileKind": "Relative",
                "chargingSchedule": schedule,
            }
        else:
            profile = {
                "id": 3,
                "stackLevel": 0,
                "chargingProfilePurpose": purpose,
                "chargingProfileKind": "Relative",
                "chargingSchedule": [{"id": 3, **schedule}],
            }
        assert (await rig.csms.set_charging_profile("CP1", 0, profile)).accepted
        # Both connectors rate 22 kW, so the 12 kW splits evenly between them.
        assert rig.twin.limit_kw(1) == pytest.approx(6.0)
        assert rig.twin.limit_kw(2) == pytest.approx(6.0)
        assert rig.device.p_kw(1) + rig.device.p_kw(2) <= 12.0 + 1e-9
        rig.device.unplug(2)
        await rig.twin.tick()
        assert rig.twin.limit_kw(1) == pytest.approx(12.0)
        tx_purpose_profile = dict(profile, chargingProfilePurpose="TxProfile")
        result = await rig.csms.set_charging_profile("CP1", 2, tx_purpose_profile)
        assert not result.accepted  # no transaction on connector 2

    run(version, scenario, n_connectors=2)


@pytest.mark.parametrize("version", VERSIONS)
def test_remote_start_and_stop(version: str) -> None:
    async def scenario(rig: Rig) -> None:
        # Remote start before the EV arrives: it starts once the EV is plugged in.
        assert (await rig.csms.remote_start("CP1", 1, id_tag="FLEET-7")).accepted
        await rig.step()
        assert rig.tx_records() == []
        rig.plug()
        await rig.step()
        (record,) = rig.tx_records()
        assert record.active and record.id_tag == "FLEET-7"
        assert rig.csms.read("CP1", 1).status == "Charging"
        assert not (await rig.csms.remote_start("CP1", 1)).accepted  # already charging
        await rig.step(n=3)
        session_wh = rig.device.session_energy_wh(1)
        result = await rig.csms.remote_stop("CP1", 1)
        assert result.accepted
        assert not rig.device.in_transaction(1)
        await rig.twin.tick()
        assert not record.active and record.stop_reason == "Remote"
        assert abs(record.energy_wh - session_wh) < 1.0
        assert rig.csms.read("CP1", 1).status == "Finishing"
        assert (await rig.csms.remote_stop("CP1", 1)).status == "NoTransaction"
        # The EV is still plugged in: a new remote start opens a second transaction.
        assert (await rig.csms.remote_start("CP1", 1)).accepted
        await rig.twin.tick()
        assert len(rig.tx_records()) == 2 and rig.tx_records()[1].active

    run(version, scenario, auto_start=False)


@pytest.mark.parametrize("version", VERSIONS)
def test_availability_changes_now_or_after_the_transaction(version: str) -> None:
    async def scenario(rig: Rig) -> None:
        result = await rig.csms.change_availability("CP1", 2, False)
        assert result.accepted and result.status == "Accepted"
        await rig.twin.tick()
        assert rig.device.status(2) is ConnectorStatus.UNAVAILABLE
        assert rig.csms.read("CP1", 2).status == "Unavailable"
        rig.plug(2)
        await rig.twin.tick()
        assert not rig.device.in_transaction(2)  # an unavailable connector does not start
        rig.plug(1)
        await rig.twin.tick()
        result = await rig.csms.change_availability("CP1", 1, False)
        assert result.accepted and result.status == "Scheduled"
        await rig.step()
        assert rig.device.in_transaction(1)  # scheduled: the transaction goes on
        assert (await rig.csms.remote_stop("CP1", 1)).accepted
        await rig.twin.tick()
        assert rig.csms.read("CP1", 1).status == "Unavailable"
        assert (await rig.csms.change_availability("CP1", 0, True)).accepted
        await rig.twin.tick()
        assert rig.csms.read("CP1", 1).status in ("Preparing", "Finishing")
        assert rig.device.in_transaction(2)  # available again with an EV waiting: it starts

    run(version, scenario, n_connectors=2)


@pytest.mark.parametrize("version", VERSIONS)
def test_reset_ends_transactions_and_reboots(version: str) -> None:
    async def scenario(rig: Rig) -> None:
        rig.plug()
        await rig.step(n=2)
        assert (await rig.csms.reset("CP1")).accepted
        await rig.twin.tick()
        (first, *later) = rig.tx_records()
        assert not first.active
        assert first.stop_reason == ("SoftReset" if version == "1.6" else "ImmediateReset")
        record = rig.csms.state.charge_points["CP1"]
        assert record.boots == 2 and record.connects == 2 and rig.twin.booted
        assert later == []  # the EV stays plugged in, but one plug-in starts one session
        assert not rig.twin.errors

    run(version, scenario)


@pytest.mark.parametrize("version", VERSIONS)
def test_trigger_message_and_configuration(version: str) -> None:
    async def scenario(rig: Rig) -> None:
        record = rig.csms.state.charge_points["CP1"]
        assert record.last_heartbeat is None
        assert (await rig.csms.trigger_message("CP1", "Heartbeat")).accepted
        await rig.twin.tick()
        assert record.last_heartbeat == rig.csms.now_iso()
        unsupported = (
            "DiagnosticsStatusNotification" if version == "1.6" else "LogStatusNotification"
        )
        assert (await rig.csms.trigger_message("CP1", unsupported)).status == "NotImplemented"
        key = "HeartbeatInterval" if version == "1.6" else "OCPPCommCtrlr.HeartbeatInterval"
        assert (await rig.csms.set_configuration("CP1", key, "30")).accepted
        assert (await rig.csms.get_configuration("CP1", [key])) == {key: "30"}
        beats = []
        for _ in range(6):
            await rig.step(dt_s=15.0)
            beats.append(record.last_heartbeat)
        # Every 30 simulated seconds after the change.
        assert sorted(set(beats))[1:] == [sim_to_iso(DEFAULT_EPOCH, t) for t in (30, 60, 90)]
        bad = (
            "MeterValueSampleInterval" if version == "1.6" else "SampledDataCtrlr.TxUpdatedInterval"
        )
        assert not (await rig.csms.set_configuration("CP1", bad, "-5")).accepted
        rig.plug()
        await rig.twin.tick()
        assert (await rig.csms.trigger_message("CP1", "MeterValues", 1)).accepted
        await rig.twin.tick()
        assert rig.csms.read("CP1", 1).timestamp == rig.csms.now_iso()

    run(version, scenario)


@pytest.mark.parametrize("version", VERSIONS)
def test_outage_queues_transaction_messages_and_delivers_them_in_order(version: str) -> None:
    async def scenario(rig: Rig) -> None:
        rig.plug()
        await rig.step(n=2)
        port = rig.csms.port
        await rig.csms.stop()
        await rig.csms.wait_until(lambda: not rig.twin.online, what="the twin to notice")
        await rig.step(n=5)  # meter values pile up
        assert rig.twin.queued >= 5
        session_wh = rig.device.session_energy_wh(1)
        rig.device.unplug(1)  # the transaction ends while the CSMS is unreachable
        await rig.step(n=2)
        queued = rig.twin.queued
        assert queued >= 6 and not rig.twin.online
        await rig.csms.start()
        assert rig.csms.port == port
        await rig.step(dt_s=60.0, n=3)
        assert rig.twin.online and rig.twin.queued == 0
        (record,) = rig.tx_records()
        assert not record.active and record.stop_reason == "EVDisconnected"
        assert abs(record.energy_wh - session_wh) < 1.0
        journal = [entry for entry in rig.csms.state.journal if entry[0] == "CP1"]
        stamps = [entry[3] for entry in journal]
        assert stamps == sorted(stamps)  # delivered in the order they happened
        assert journal[-1][1] in ("StopTransaction", "TransactionEvent.Ended")
        if version == "2.0.1":
            assert record.seq_nos == set(range(len(record.seq_nos)))
            assert record.offline_messages >= 6
        assert not rig.twin.errors

    run(version, scenario, backoff_initial_s=1.0)


def test_reconnect_back_off_doubles_in_simulated_time() -> None:
    async def scenario(rig: Rig) -> None:
        await rig.csms.stop()
        await rig.csms.wait_until(lambda: not rig.twin.online, what="the twin to notice")
        rig.twin.attempts.clear()
        await rig.step(dt_s=1.0, n=64)
        gaps = [b - a for a, b in zip(rig.twin.attempts, rig.twin.attempts[1:], strict=False)]
        assert gaps == [2.0, 4.0, 8.0, 16.0, 32.0]
        await rig.csms.start()
        await rig.step(dt_s=64.0)
        assert rig.twin.online

    run("1.6", scenario, backoff_initial_s=1.0, backoff_max_s=32.0)


def test_connect_to_nowhere_raises_a_protocol_error() -> None:
    async def main() -> None:
        twin = OcppChargePointTwin(
            SimpleCharger(),
            "CP9",
            "ws://127.0.0.1:9",
            clock=lambda: 0.0,
            response_timeout_s=2.0,
        )
        with pytest.raises(ProtocolError, match="cannot connect"):
            await twin.connect()

    asyncio.run(asyncio.wait_for(main(), TIMEOUT_S))


@pytest.mark.parametrize("version", VERSIONS)
def test_unknown_tokens_do_not_charge(version: str) -> None:
    async def scenario(rig: Rig) -> None:
        rig.plug()
        await rig.step()  # Authorize answered Invalid: no transaction
        assert rig.tx_records() == [] and not rig.device.in_transaction(1)
        assert rig.csms.read("CP1", 1).status == "Preparing"
        # A remote start is not authorised locally; the CSMS rejects the token on the start.
        assert (await rig.csms.remote_start("CP1", 1, id_tag="BAD")).accepted
        await rig.twin.tick()
        (record,) = rig.tx_records()
        assert not record.active and record.stop_reason == "DeAuthorized"
        assert not rig.device.in_transaction(1)

    run(version, scenario, id_tags={"GOOD"})


def test_realtime_driver_answers_without_explicit_ticks() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        origin = loop.time()

        def clock() -> float:
            return loop.time() - origin

        async with Csms(clock=clock) as csms:
            device = SimpleCharger()
            twin = OcppChargePointTwin(
                device, "RT", csms.url, version="2.0.1", clock=clock, auto_start=False
            )
            await twin.connect()
            # A long period: only the wake-up on a request explains a prompt start message.
            driver = asyncio.create_task(twin.run_realtime(period_s=30.0))
            device.plug_in(1, EvState(capacity_kwh=50.0, soc=0.5))
            assert (await csms.remote_start("RT", 1)).accepted
            await csms.wait_until(
                lambda: csms.state.active_transaction("RT", 1) is not None,
                timeout_s=3.0,
                what="the transaction start",
            )
            driver.cancel()
            with pytest.raises(asyncio.CancelledError):
                await driver
            await twin.close()

    asyncio.run(asyncio.wait_for(main(), TIMEOUT_S))


@pytest.mark.parametrize("version", VERSIONS)
def test_a_start_whose_answer_is_lost_is_resent_and_counted_once(version: str) -> None:
    async def scenario(rig: Rig) -> None:
        state = rig.csms.state
        name = "start_16" if version == "1.6" else "transaction_event"
        original = getattr(state, name)
        dropped: list[bool] = []

        def record_then_drop(*args: Any, **kwargs: Any) -> Any:
            result = original(*args, **kwargs)
            if not dropped:
                # The CSMS has recorded the start; the connection dies before it answers.
                dropped.append(True)
                asyncio.ensure_future(rig.csms.disconnect("CP1"))
            return result

        setattr(state, name, record_then_drop)
        rig.plug()
        await rig.twin.tick()
        assert dropped and rig.twin.queued >= 1  # the start is still waiting for an answer
        await rig.step(n=3)
        assert rig.twin.online and rig.twin.queued == 0
        starts = [
            e for e in state.journal if e[1] in ("StartTransaction", "TransactionEvent.Started")
        ]
        assert len(starts) == 2  # sent twice ...
        (record,) = rig.tx_records()  # ... recorded once
        assert record.active and len(record.samples) >= 3
        assert rig.csms.state.charge_points["CP1"].connects == 2

    run(version, scenario)
