"""ModbusLink against SunSpec twins on real loopback sockets."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.clock import SimTime, run
from support.loop import LoopThread, running

from qubit_sim.errors import ProtocolError
from qubit_sim.protocols.modbus_link import DiscoveredModel, ModbusLink
from qubit_sim.protocols.sunspec import quantize
from qubit_sim.twins.der_device import SimpleBattery, SimplePv
from qubit_sim.twins.sunspec_server import SunSpecServer


def chain(server: SunSpecServer) -> list[tuple[int, int, int]]:
    return [(b.model.id, b.address, b.model.length) for b in server.map.blocks]


def test_discovery_walks_the_chain_in_order() -> None:
    async def scenario() -> None:
        server = SunSpecServer(SimpleBattery(), port=0)
        await server.start()
        link = ModbusLink("127.0.0.1", server.port, 1, "battery")
        try:
            found = await link.connect()
        finally:
            await link.close()
            await server.stop()
        assert [(m.id, m.address, m.length) for m in found] == [
            (1, 40002, 66),
            (701, 40070, 153),
            (702, 40225, 50),
            (704, 40277, 65),
            (713, 40344, 7),
            (802, 40353, 62),
        ]

    run(scenario)


@pytest.mark.parametrize("base", [0, 40000, 50000])
def test_discovery_with_other_bases_and_vendor_models(base: int) -> None:
    async def scenario() -> None:
        battery = SimpleBattery()
        server = SunSpecServer(
            battery, port=0, base=base, extra_models=[(64001, 12), (64110, 3)], unit_id=7
        )
        await server.start()
        link = ModbusLink("127.0.0.1", server.port, 7, "battery")
        try:
            found = await link.connect()
            await link.set_power_limit(4.0)
            state = await link.read()
        finally:
            await link.close()
            await server.stop()
        assert [(m.id, m.address, m.length) for m in found] == chain(server)
        assert [m.id for m in found] == [1, 64001, 64110, 701, 702, 704, 713, 802]
        assert found[0] == DiscoveredModel(1, base + 2, 66)
        assert battery.setpoint_kw == pytest.approx(4.0)
        assert state["p_kw"] == pytest.approx(4.0)

    run(scenario)


def test_link_refuses_a_device_without_the_models_it_needs() -> None:
    async def scenario() -> None:
        server = SunSpecServer(SimplePv(), "pv", port=0)
        await server.start()
        link = ModbusLink("127.0.0.1", server.port, 1, "battery", name="bess-1")
        try:
            with pytest.raises(ProtocolError, match=r"bess-1: SunSpec models \[701, 702, 704\]"):
                await link.connect()
        finally:
            await link.close()
            await server.stop()

    run(scenario)


@pytest.fixture(scope="module")
def battery_link() -> Iterator[tuple[LoopThread, SimpleBattery, SunSpecServer, ModbusLink]]:
    battery = SimpleBattery(capacity_kwh=200.0, p_charge_max_kw=60.0, p_discharge_max_kw=80.0)
    with LoopThread() as loop, running(loop, SunSpecServer(battery, port=0)) as server:
        link = ModbusLink("127.0.0.1", server.port, 1, "battery")
        loop.call(link.connect())
        yield loop, battery, server, link
        loop.call(link.close())


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    p_kw=st.floats(-80.0, 60.0),
    soc=st.floats(0.06, 0.94),
    e_charged_kwh=st.floats(0.0, 1e6),
    e_discharged_kwh=st.floats(0.0, 1e6),
    voltage_v=st.floats(200.0, 260.0),
    frequency_hz=st.floats(49.0, 51.0),
)
def test_battery_values_round_trip_with_scale_factors_and_signs(
    battery_link: tuple[LoopThread, SimpleBattery, SunSpecServer, ModbusLink],
    p_kw: float,
    soc: float,
    e_charged_kwh: float,
    e_discharged_kwh: float,
    voltage_v: float,
    frequency_hz: float,
) -> None:
    loop, battery, server, link = battery_link
    battery.soc = soc
    battery.e_charged_kwh = e_charged_kwh
    battery.e_discharged_kwh = e_discharged_kwh
    battery.voltage_v = voltage_v
    battery.frequency_hz = frequency_hz
    battery.set_power_setpoint_kw(p_kw)
    state = loop.call(link.read())
    w_sf = int(server.map.block(701).get_raw("W_SF") or 0)
    assert w_sf == 1  # 80 kW does not fit int16 watts
    # Load convention on our side; the register holds -p_kw in W, quantized to 10 W.
    assert state["p_kw"] == pytest.approx(-quantize(-1000.0 * p_kw, w_sf) / 1000.0, abs=1e-9)
    assert abs(state["p_kw"] - p_kw) <= 0.005 + 1e-9
    assert (state["p_kw"] > 0) == (p_kw > 0.005) or abs(p_kw) <= 0.005
    assert state["soc"] == pytest.approx(quantize(100.0 * soc, -2) / 100.0, abs=1e-12)
    assert state["e_charged_kwh"] == pytest.approx(round(1000.0 * e_charged_kwh) / 1000.0)
    assert state["e_discharged_kwh"] == pytest.approx(round(1000.0 * e_discharged_kwh) / 1000.0)
    assert state["voltage_v"] == pytest.approx(voltage_v, abs=0.05 + 1e-9)
    assert state["frequency_hz"] == pytest.approx(frequency_hz, abs=0.0005 + 1e-9)
    assert state["capacity_kwh"] == pytest.approx(200.0)
    assert state["p_charge_max_kw"] == pytest.approx(60.0)
    assert state["p_discharge_max_kw"] == pytest.approx(80.0)
    assert (state["soc_min"], state["soc_max"]) == pytest.approx((0.05, 0.95))
    assert state["faulted"] is False and state["enabled"] is True
    battery.set_power_setpoint_kw(None)


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(kw=st.floats(-80.0, 60.0))
def test_set_power_limit_reaches_the_battery(
    battery_link: tuple[LoopThread, SimpleBattery, SunSpecServer, ModbusLink], kw: float
) -> None:
    loop, battery, server, link = battery_link
    loop.call(link.set_power_limit(kw))
    # WSet_SF is 0: the setpoint arrives rounded to whole watts, sign preserved.
    assert battery.setpoint_kw == pytest.approx(-round(-1000.0 * kw) / 1000.0, abs=1e-12)
    state = loop.call(link.read())
    assert state["setpoint_kw"] == pytest.approx(battery.setpoint_kw, abs=1e-12)
    loop.call(link.set_power_limit(None))
    assert battery.setpoint_kw is None
    assert loop.call(link.read())["setpoint_kw"] is None


def test_out_of_range_setpoint_is_a_protocol_error_and_changes_nothing(
    battery_link: tuple[LoopThread, SimpleBattery, SunSpecServer, ModbusLink],
) -> None:
    loop, battery, server, link = battery_link
    loop.call(link.set_power_limit(-30.0))
    with pytest.raises(ProtocolError, match=r"WSet=-61000 W .* exception 3 \(ILLEGAL DATA VALUE\)"):
        loop.call(link.set_power_limit(61.0))  # charge limit is 60 kW
    assert battery.setpoint_kw == pytest.approx(-30.0)
    loop.call(link.set_power_limit(None))


def test_enable_disable_start_stop(
    battery_link: tuple[LoopThread, SimpleBattery, SunSpecServer, ModbusLink],
) -> None:
    loop, battery, server, link = battery_link
    loop.call(link.stop())
    assert not battery.enabled and loop.call(link.read())["enabled"] is False
    loop.call(link.start())
    assert battery.enabled
    loop.call(link.set_availability(False))
    assert not battery.enabled
    loop.call(link.set_enabled(True))
    assert battery.enabled and loop.call(link.read())["enabled"] is True
    battery.set_fault(True)
    try:
        assert loop.call(link.read())["faulted"] is True
    finally:
        battery.set_fault(False)


def test_link_revert_timer_makes_the_device_fall_back_on_simulated_time() -> None:
    async def scenario() -> None:
        clock = SimTime()
        battery = SimpleBattery()
        server = SunSpecServer(battery, port=0, clock=clock)
        await server.start()
        link = ModbusLink("127.0.0.1", server.port, 1, "battery", revert_s=900)
        try:
            await link.connect()
            await link.set_power_limit(-8.0)
            clock.now_s = 899.0
            assert (await link.read())["setpoint_kw"] == pytest.approx(-8.0)
            clock.now_s = 900.0
            assert (await link.read())["setpoint_kw"] is None
            assert battery.setpoint_kw is None
        finally:
            await link.close()
            await server.stop()

    run(scenario)


def test_pv_link_reads_and_curtails() -> None:
    async def scenario() -> None:
        pv = SimplePv(kwp=60.0, inverter_kw=50.0, available_kw=42.0, voltage_v=231.0)
        pv.e_produced_kwh = 1234.5678
        server = SunSpecServer(pv, "pv", port=0)
        await server.start()
        link = ModbusLink("127.0.0.1", server.port, 1, "pv")
        try:
            found = await link.connect()
            assert [m.id for m in found] == [1, 103, 120, 123]
            state = await link.read()
            assert state["p_kw"] == pytest.approx(-42.0)
            assert state["inverter_kw"] == pytest.approx(50.0)
            assert state["voltage_v"] == pytest.approx(231.0)
            assert state["e_produced_kwh"] == pytest.approx(1234.568)
            assert state["curtailment_pct"] is None
            await link.set_power_limit(-20.0)  # sign carries no meaning for PV
            assert pv.curtailment_pct == pytest.approx(40.0)
            assert pv.p_kw == pytest.approx(-20.0)
            assert (await link.read())["curtailment_pct"] == pytest.approx(40.0)
            await link.set_power_limit(80.0)  # above the rating: no cap left
            assert pv.curtailment_pct == pytest.approx(100.0)
            await link.set_power_limit(None)
            assert pv.curtailment_pct is None
            await link.stop()
            assert not pv.enabled and (await link.read())["p_kw"] == 0.0
        finally:
            await link.close()
            await server.stop()

    run(scenario)


def test_silent_device_times_out_with_a_clear_error() -> None:
    async def scenario() -> None:
        async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.read()  # accept requests, answer nothing
            writer.close()

        silent = await asyncio.start_server(swallow, "127.0.0.1", 0)
        port = silent.sockets[0].getsockname()[1]
        link = ModbusLink(
            "127.0.0.1", port, 1, "battery", timeout_s=0.2, retries=1, bases=(40000,), name="mute"
        )
        started = time.monotonic()
        try:
            with pytest.raises(ProtocolError, match="mute: read SunS marker .* failed after 2"):
                await link.connect()
        finally:
            await link.close()
            silent.close()
            await silent.wait_closed()
        # Two attempts of 0.2 s each plus back-off: it waited for the timeouts, and no longer.
        assert 0.4 <= time.monotonic() - started < 5.0

    run(scenario)


def test_nothing_listening_and_reconnect_after_restart() -> None:
    async def scenario() -> None:
        battery = SimpleBattery()
        server = SunSpecServer(battery, port=0)
        await server.start()
        port = server.port
        link = ModbusLink("127.0.0.1", port, 1, "battery", timeout_s=0.3, retries=2)
        await link.connect()
        await server.stop()
        with pytest.raises(ProtocolError, match="failed after 3 attempts"):
            await link.read()
        restarted = SunSpecServer(battery, port=port)
        await restarted.start()
        try:
            await link.set_power_limit(2.5)  # the link reconnects by itself
            assert battery.setpoint_kw == pytest.approx(2.5)
        finally:
            await link.close()
            await restarted.stop()

    run(scenario)


def test_link_argument_errors() -> None:
    with pytest.raises(ProtocolError, match="kind 'ev'"):
        ModbusLink("127.0.0.1", 502, 1, "ev")
    with pytest.raises(ProtocolError, match="timeout_s"):
        ModbusLink("127.0.0.1", 502, 1, "pv", timeout_s=0)

    async def not_connected() -> None:
        link = ModbusLink("127.0.0.1", 502, 1, "battery")
        with pytest.raises(ProtocolError, match=r"call connect\(\) first"):
            await link.read()
        with pytest.raises(ProtocolError, match="model 704 not found"):
            await link.read_model(704)

    run(not_connected)
