"""SunSpec twins on real loopback sockets, driven by a plain pymodbus client."""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pymodbus.client import AsyncModbusTcpClient
from support.clock import SimTime, run

from qubit_sim.errors import ProtocolError
from qubit_sim.protocols.sunspec import encode_raw, get_model
from qubit_sim.twins.der_device import SimpleBattery, SimplePv
from qubit_sim.twins.sunspec_server import SunSpecServer


@contextlib.asynccontextmanager
async def serve(
    device: Any, kind: str = "battery", **kwargs: Any
) -> AsyncIterator[tuple[SunSpecServer, AsyncModbusTcpClient]]:
    server = SunSpecServer(device, kind, port=0, **kwargs)
    await server.start()
    client = AsyncModbusTcpClient("127.0.0.1", port=server.port, timeout=2, retries=0)
    await client.connect()
    try:
        yield server, client
    finally:
        client.close()
        await server.stop()


def words(model_id: int, name: str, raw: int) -> list[int]:
    return encode_raw(get_model(model_id).point(name), raw)


async def write(client: AsyncModbusTcpClient, address: int, values: list[int]) -> int | None:
    """Write registers; the Modbus exception code, or None on success."""
    response = await client.write_registers(address, values, device_id=1)
    return response.exception_code if response.isError() else None


def test_write_wset_reaches_the_battery_with_sunspec_sign() -> None:
    async def scenario() -> None:
        battery = SimpleBattery(p_charge_max_kw=40.0, p_discharge_max_kw=50.0)
        async with serve(battery) as (server, client):
            m704 = server.map.block(704)
            # WSet is positive for injection: +20 kW discharge is p_kw = -20 in load convention.
            assert await write(client, m704.address_of("WSet"), words(704, "WSet", 20_000)) is None
            assert battery.setpoint_kw is None  # not enabled yet
            assert await write(client, m704.address_of("WSetEna"), [1]) is None
            assert battery.setpoint_kw == pytest.approx(-20.0)
            assert battery.p_kw == pytest.approx(-20.0)
            # Charging: WSet negative; the 701 W reading follows with the same sign.
            assert await write(client, m704.address_of("WSet"), words(704, "WSet", -15_000)) is None
            assert battery.setpoint_kw == pytest.approx(15.0)
            m701 = server.map.block(701)
            response = await client.read_holding_registers(m701.address, count=20, device_id=1)
            assert not response.isError()
            w_raw = struct.unpack(">h", struct.pack(">H", response.registers[10]))[0]
            assert w_raw * 10 ** int(m701.get_raw("W_SF") or 0) == pytest.approx(-15_000.0)
            # Percent mode: WSetPct of WMax (50 kW), -50 % -> charge 25 kW.
            assert (
                await write(
                    client,
                    m704.address_of("WSetMod"),
                    [0, *words(704, "WSet", -15_000), *words(704, "WSetRvrt", 0), 0xEC78],
                )
                is None
            )  # 0xEC78 = -5000 -> -50.00 %
            assert battery.setpoint_kw == pytest.approx(25.0)
            assert await write(client, m704.address_of("WSetEna"), [0]) is None
            assert battery.setpoint_kw is None

    run(scenario)


def test_out_of_range_write_is_code_3_and_leaves_the_device_unchanged() -> None:
    async def scenario() -> None:
        battery = SimpleBattery(p_charge_max_kw=40.0, p_discharge_max_kw=50.0)
        async with serve(battery) as (server, client):
            m704 = server.map.block(704)
            ena = m704.address_of("WSetEna")
            good = [1, 1, *words(704, "WSet", 10_000)]
            assert await write(client, ena, good) is None
            before = (battery.setpoint_kw, list(server.map.registers))
            for bad in (
                [1, 1, *words(704, "WSet", 50_001)],  # above the discharge rating
                [1, 1, *words(704, "WSet", -40_001)],  # above the charge rating
                [2, 1, *words(704, "WSet", 1_000)],  # WSetEna has no symbol 2
                [1, 7, *words(704, "WSet", 1_000)],  # WSetMod has no symbol 7
                [1, 1, 0x8000, 0x0000],  # the not-implemented marker is not a setpoint
            ):
                assert await write(client, ena, bad) == 3, bad
                assert (battery.setpoint_kw, server.map.registers) == before
            m123_like = server.map.block(802)
            assert await write(client, m123_like.address_of("SetOp"), [3]) == 3
            assert battery.enabled

    run(scenario)


def test_unknown_read_only_and_split_addresses_are_code_2() -> None:
    async def scenario() -> None:
        battery = SimpleBattery()
        async with serve(battery) as (server, client):
            m704 = server.map.block(704)
            end = server.map.end
            read = await client.read_holding_registers(end, count=2, device_id=1)
            assert read.isError() and read.exception_code == 2
            read = await client.read_holding_registers(39_990, count=4, device_id=1)
            assert read.isError() and read.exception_code == 2
            assert await write(client, end + 10, [1]) == 2  # outside the map
            assert await write(client, server.map.block(701).address_of("W"), [5]) == 2  # R only
            assert await write(client, m704.address_of("WSetRvrtRem"), [0, 5]) == 2  # R only
            assert await write(client, m704.address_of("VarSetEna"), [1]) == 2  # not implemented
            assert await write(client, m704.address_of("WSet") + 1, [5]) == 2  # half of WSet
            assert await write(client, m704.address_of("WSet"), [0]) == 2  # other half missing
            assert battery.setpoint_kw is None

    run(scenario)


def test_other_unit_ids_get_gateway_exception() -> None:
    async def scenario() -> None:
        async with serve(SimpleBattery(), unit_id=3) as (server, client):
            response = await client.read_holding_registers(40_000, count=2, device_id=3)
            assert response.registers == [0x5375, 0x6E53]
            response = await client.read_holding_registers(40_000, count=2, device_id=1)
            assert response.isError() and response.exception_code == 0x0B
            assert server.map.block(1).get_raw("DA") == 3

    run(scenario)


async def _set_wset(client: AsyncModbusTcpClient, server: SunSpecServer, watts: int) -> None:
    m704 = server.map.block(704)
    assert (
        await write(client, m704.address_of("WSetEna"), [1, 1, *words(704, "WSet", watts)]) is None
    )


def test_revert_timer_runs_on_simulated_time_only() -> None:
    async def scenario() -> None:
        clock = SimTime()
        battery = SimpleBattery()
        async with serve(battery, clock=clock) as (server, client):
            m704 = server.map.block(704)
            assert await write(client, m704.address_of("WSetRvrtTms"), [0, 300]) is None
            await _set_wset(client, server, -10_000)
            assert battery.setpoint_kw == pytest.approx(10.0)
            clock.now_s = 120.0
            rem = await client.read_holding_registers(
                m704.address_of("WSetRvrtRem"), count=2, device_id=1
            )
            assert rem.registers == [0, 180]
            clock.now_s = 299.0
            assert server.tick() == []
            assert battery.setpoint_kw == pytest.approx(10.0)
            clock.now_s = 300.0
            assert server.tick() == ["WSet"]
            assert battery.setpoint_kw is None
            assert m704.symbol("WSetEna") == "DISABLED"

            # A refresh restarts the timer; wall time passing does not count.
            await _set_wset(client, server, -10_000)  # at t = 300 -> expires at 600
            clock.now_s = 500.0
            await _set_wset(client, server, -12_000)  # refreshed -> expires at 800
            clock.now_s = 799.0
            await asyncio.sleep(0.05)
            assert server.tick() == []
            assert battery.setpoint_kw == pytest.approx(12.0)
            clock.now_s = 800.0
            # Any request applies due timers too, not only tick().
            await client.read_holding_registers(m704.address, count=2, device_id=1)
            assert battery.setpoint_kw is None

    run(scenario)


def test_revert_falls_back_to_reversion_setpoint_when_enabled() -> None:
    async def scenario() -> None:
        clock = SimTime()
        battery = SimpleBattery()
        async with serve(battery, clock=clock) as (server, client):
            m704 = server.map.block(704)
            # WSetRvrt = +5 kW (discharge), WSetEnaRvrt ENABLED, WSetRvrtTms = 60 s.
            block = [*words(704, "WSetRvrt", 5_000), 0, 0, 1, 0, 60]
            assert await write(client, m704.address_of("WSetRvrt"), block) is None
            await _set_wset(client, server, -20_000)
            assert battery.setpoint_kw == pytest.approx(20.0)
            clock.now_s = 60.0
            assert server.tick() == ["WSet"]
            assert battery.setpoint_kw == pytest.approx(-5.0)
            assert m704.symbol("WSetEna") == "ENABLED"

    run(scenario)


def test_wall_clock_ticker_does_not_advance_simulated_time() -> None:
    async def scenario() -> None:
        clock = SimTime()
        battery = SimpleBattery()
        server = SunSpecServer(battery, port=0, clock=clock)
        await server.start(tick_interval_s=0.01)
        client = AsyncModbusTcpClient("127.0.0.1", port=server.port, timeout=2, retries=0)
        await client.connect()
        try:
            m704 = server.map.block(704)
            assert await write(client, m704.address_of("WSetRvrtTms"), [0, 1]) is None
            await _set_wset(client, server, 3_000)
            await asyncio.sleep(1.2)  # more than WSetRvrtTms of wall time
            assert battery.setpoint_kw == pytest.approx(-3.0)
            clock.now_s = 1.0
            await asyncio.sleep(0.1)  # the background ticker notices simulated time moved
            assert battery.setpoint_kw is None
        finally:
            client.close()
            await server.stop()

    run(scenario)


def test_enable_and_fault_show_in_status_points() -> None:
    async def scenario() -> None:
        battery = SimpleBattery()
        async with serve(battery) as (server, client):
            m802 = server.map.block(802)
            assert await write(client, m802.address_of("SetOp"), [2]) is None  # DISCONNECT
            assert not battery.enabled
            await client.read_holding_registers(40_000, count=2, device_id=1)
            assert m802.symbol("State") == "DISCONNECTED"
            assert server.map.block(701).symbol("ConnSt") == "DISCONNECTED"
            assert await write(client, m802.address_of("SetOp"), [1]) is None
            assert battery.enabled
            battery.set_fault(True)
            await client.read_holding_registers(40_000, count=2, device_id=1)
            m701 = server.map.block(701)
            assert m701.symbol("InvSt") == "FAULT"
            assert m701.get_raw("Alrm") == 1 << 16  # MANUFACTURER_ALRM
            assert m701.get("MnAlrmInfo") == "device fault"
            assert server.map.block(713).symbol("Sta") == "ERROR"
            assert m802.symbol("State") == "FAULT"
            assert m802.get_raw("Evt1") == 1 << 25  # OTHER_ALARM

    run(scenario)


def test_pv_curtailment_connection_and_their_revert_timers() -> None:
    async def scenario() -> None:
        clock = SimTime()
        pv = SimplePv(kwp=30.0, inverter_kw=25.0, available_kw=20.0, phases=1)
        async with serve(pv, "pv", clock=clock, phases=1) as (server, client):
            assert [b.model.id for b in server.map.blocks] == [1, 101, 120, 123]
            m123 = server.map.block(123)
            limit = m123.address_of("WMaxLimPct")
            assert await write(client, limit, [4_000]) is None  # 40.00 % (SF -2)
            assert pv.curtailment_pct is None  # not enabled yet
            assert await write(client, m123.address_of("WMaxLimPct_RvrtTms"), [90]) is None
            assert await write(client, m123.address_of("WMaxLim_Ena"), [1]) is None
            assert pv.curtailment_pct == pytest.approx(40.0)
            assert pv.p_kw == pytest.approx(-10.0)
            await client.read_holding_registers(40_000, count=2, device_id=1)
            assert server.map.block(101).symbol("St") == "THROTTLED"
            assert await write(client, limit, [10_001]) == 3  # above 100 %
            assert pv.curtailment_pct == pytest.approx(40.0)
            clock.now_s = 90.0
            assert server.tick() == ["WMaxLimPct"]
            assert pv.curtailment_pct is None
            assert pv.p_kw == pytest.approx(-20.0)

            assert await write(client, m123.address_of("Conn_RvrtTms"), [30]) is None
            assert await write(client, m123.address_of("Conn"), [0]) is None
            assert not pv.enabled and pv.p_kw == 0.0
            clock.now_s = 119.0
            assert server.tick() == []
            clock.now_s = 120.0
            assert server.tick() == ["Conn"]
            assert pv.enabled

            pv.set_fault(True)
            await client.read_holding_registers(40_000, count=2, device_id=1)
            inverter = server.map.block(101)
            assert inverter.symbol("St") == "FAULT"
            assert inverter.get_raw("EvtVnd1") == 1

    run(scenario)


def test_bad_configuration_is_refused_clearly() -> None:
    with pytest.raises(ProtocolError, match="kind 'wind' is unknown"):
        SunSpecServer(SimpleBattery(), "wind")
    with pytest.raises(ProtocolError, match="unit id 0 must be in 1..247"):
        SunSpecServer(SimpleBattery(), unit_id=0)
    with pytest.raises(ProtocolError, match="phases = 2"):
        SunSpecServer(SimplePv(), "pv", phases=2)
    with pytest.raises(ProtocolError, match="a battery twin needs a BatteryDevice; SimplePv"):
        SunSpecServer(SimplePv(), "battery")
    with pytest.raises(ProtocolError, match=r"extra models \[704\] clash"):
        SunSpecServer(SimpleBattery(), extra_models=[(704, 4)])
    with pytest.raises(ProtocolError, match="at most 32 characters"):
        SunSpecServer(SimpleBattery(), identity=("x" * 40, "m", "s", "v"))

    async def busy_port() -> None:
        first = SunSpecServer(SimpleBattery(), port=0)
        await first.start()
        try:
            second = SunSpecServer(SimpleBattery(), port=first.port)
            with pytest.raises(ProtocolError, match="cannot listen"):
                await second.start()
        finally:
            await first.stop()

    run(busy_port)
