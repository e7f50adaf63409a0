"""Modbus unit ids on real loopback sockets: the configured id, 0 and 255 are the server's own.

A server addressed directly on TCP is reached with unit id 0xFF, and many EMS/SCADA clients
send 0 (Modbus Messaging on TCP/IP Implementation Guide V1.0b, 4.4.2); every other unit id is
answered with exception 0x0B (gateway target failed to respond).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import AsyncIterator, Iterator

import pytest
from pymodbus.client import AsyncModbusTcpClient
from support.clock import run
from support.loop import LoopThread, running

from qubit_sim.protocols.sunspec import encode_raw, get_model
from qubit_sim.protocols.sunspec.transport import DIRECT_UNIT_IDS, ModbusRegisterServer
from qubit_sim.twins.der_device import SimpleBattery
from qubit_sim.twins.sunspec_server import SunSpecServer

SUNS = [0x5375, 0x6E53]
GATEWAY_NO_RESPONSE = 0x0B


@contextlib.asynccontextmanager
async def serve(
    battery: SimpleBattery, unit_id: int = 1
) -> AsyncIterator[tuple[SunSpecServer, AsyncModbusTcpClient]]:
    server = SunSpecServer(battery, port=0, unit_id=unit_id)
    await server.start()
    client = AsyncModbusTcpClient("127.0.0.1", port=server.port, timeout=2, retries=0)
    await client.connect()
    try:
        yield server, client
    finally:
        client.close()
        await server.stop()


async def read_marker(client: AsyncModbusTcpClient, unit: int) -> list[int] | int:
    """The two registers at 40000, or the exception code."""
    response = await client.read_holding_registers(40_000, count=2, device_id=unit)
    return response.exception_code if response.isError() else list(response.registers)


def test_direct_unit_ids_read_like_the_configured_one() -> None:
    async def scenario() -> None:
        async with serve(SimpleBattery()) as (_, client):
            assert DIRECT_UNIT_IDS == (0, 255)
            for unit in (0, 255, 1):
                assert await read_marker(client, unit) == SUNS, unit
            assert await read_marker(client, 7) == GATEWAY_NO_RESPONSE
            assert await read_marker(client, 2) == GATEWAY_NO_RESPONSE
            assert await read_marker(client, 254) == GATEWAY_NO_RESPONSE

    run(scenario)


def test_a_server_on_another_unit_id_still_answers_0_and_255() -> None:
    async def scenario() -> None:
        async with serve(SimpleBattery(), unit_id=3) as (server, client):
            assert server.unit_id == 3
            for unit in (3, 0, 255):
                assert await read_marker(client, unit) == SUNS, unit
            assert await read_marker(client, 1) == GATEWAY_NO_RESPONSE

    run(scenario)


def test_writes_through_0_and_255_reach_the_battery_and_others_do_not() -> None:
    async def scenario() -> None:
        battery = SimpleBattery(p_charge_max_kw=40.0, p_discharge_max_kw=50.0)
        async with serve(battery) as (server, client):
            m704 = server.map.block(704)
            wset = m704.address_of("WSet")

            async def set_wset(unit: int, watts: int) -> int | None:
                words = encode_raw(get_model(704).point("WSet"), watts)
                response = await client.write_registers(wset, words, device_id=unit)
                return response.exception_code if response.isError() else None

            enable = await client.write_registers(m704.address_of("WSetEna"), [1], device_id=255)
            assert not enable.isError()
            assert await set_wset(255, 20_000) is None
            assert battery.setpoint_kw == pytest.approx(-20.0)  # discharge: load convention
            assert await set_wset(0, -15_000) is None
            assert battery.setpoint_kw == pytest.approx(15.0)
            assert await set_wset(7, 30_000) == GATEWAY_NO_RESPONSE
            assert battery.setpoint_kw == pytest.approx(15.0)
            # A refused write through a direct id is refused as it is through unit 1.
            refused = await client.write_registers(40_000, [1], device_id=0)
            assert refused.isError() and refused.exception_code == 2

    run(scenario)


class _Registers:
    """Ten registers at 100 that remember every accepted write."""

    def __init__(self) -> None:
        self.values = list(range(10))
        self.writes: list[tuple[int, list[int]]] = []

    def read(self, address: int, count: int) -> list[int]:
        return self.values[address - 100 : address - 100 + count]

    def write(self, address: int, values: list[int]) -> None:
        self.writes.append((address, values))


@pytest.fixture(scope="module")
def register_server() -> Iterator[tuple[ModbusRegisterServer, _Registers]]:
    registers = _Registers()
    server = ModbusRegisterServer(
        base=100,
        writable=[True] * 10,
        on_read=registers.read,
        on_write=registers.write,
        port=0,
        unit_id=42,
    )
    with LoopThread() as loop, running(loop, server):
        yield server, registers


def _exchange(sock: socket.socket, frame: bytes) -> bytes:
    sock.sendall(frame)
    header = b""
    while len(header) < 7:
        header += sock.recv(7 - len(header))
    (length,) = struct.unpack(">H", header[4:6])
    body = b""
    while len(body) < length - 1:
        body += sock.recv(length - 1 - len(body))
    return header + body


def test_every_unit_id_on_the_wire(
    register_server: tuple[ModbusRegisterServer, _Registers],
) -> None:
    server, registers = register_server
    own = {42, 0, 255}
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        for unit in range(256):
            tid = 1000 + unit
            read = struct.pack(">HHHBBHH", tid, 0, 6, unit, 3, 102, 2)
            answer = _exchange(sock, read)
            # The answer echoes the transaction and the unit id of the request.
            assert struct.unpack(">HHHB", answer[:7])[::3] == (tid, unit)
            if unit in own:
                assert answer[7:] == bytes([3, 4, 0, 2, 0, 3]), unit
            else:
                assert answer[7:] == bytes([0x83, GATEWAY_NO_RESPONSE]), unit
            write = struct.pack(">HHHBBHHBH", tid, 0, 9, unit, 16, 105, 1, 2, unit)
            answer = _exchange(sock, write)
            assert answer[6] == unit
            if unit in own:
                assert answer[7:] == bytes([16, 0, 105, 0, 1]), unit
            else:
                assert answer[7:] == bytes([0x90, GATEWAY_NO_RESPONSE]), unit
    assert registers.writes == [(105, [unit]) for unit in sorted(own)]


def test_concurrent_clients_on_direct_and_foreign_ids_do_not_mix(
    register_server: tuple[ModbusRegisterServer, _Registers],
) -> None:
    server, _ = register_server

    async def client_reads(unit: int) -> set[int | tuple[int, ...]]:
        client = AsyncModbusTcpClient("127.0.0.1", port=server.port, timeout=2, retries=0)
        await client.connect()
        seen: set[int | tuple[int, ...]] = set()
        try:
            for _ in range(40):
                response = await client.read_holding_registers(100, count=3, device_id=unit)
                seen.add(
                    response.exception_code if response.isError() else tuple(response.registers)
                )
        finally:
            client.close()
        return seen

    async def scenario() -> None:
        results = await asyncio.gather(*(client_reads(unit) for unit in (0, 7, 255, 42, 9)))
        assert results == [{(0, 1, 2)}, {GATEWAY_NO_RESPONSE}, {(0, 1, 2)}, {(0, 1, 2)}, {11}]

    run(scenario)
