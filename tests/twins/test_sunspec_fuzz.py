"""Random and malformed Modbus traffic against a SunSpec twin: it answers properly and survives."""

from __future__ import annotations

import contextlib
import socket
import struct
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from support.loop import LoopThread, running

from qubit_sim.protocols.modbus_link import ModbusLink
from qubit_sim.protocols.sunspec.transport import DIRECT_UNIT_IDS
from qubit_sim.twins.der_device import SimpleBattery
from qubit_sim.twins.sunspec_server import SunSpecServer

UNIT = 1
TIMEOUT_S = 3.0
# Modbus exception codes a well-behaved server may answer with.
PROPER_CODES = {1, 2, 3, 4, 11}


@pytest.fixture(scope="module")
def twin() -> Iterator[tuple[LoopThread, SunSpecServer, SimpleBattery]]:
    battery = SimpleBattery()
    with (
        LoopThread() as loop,
        running(loop, SunSpecServer(battery, port=0, unit_id=UNIT)) as server,
    ):
        yield loop, server, battery


def exchange(port: int, frame: bytes) -> bytes:
    """Send one frame on a fresh connection; return the complete response frame."""
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_S) as sock:
        sock.settimeout(TIMEOUT_S)
        sock.sendall(frame)
        data = b""
        while len(data) < 7 or len(data) < 6 + int.from_bytes(data[4:6], "big"):
            chunk = sock.recv(512)  # socket.timeout fails the test: no hanging requests
            if not chunk:
                raise AssertionError(f"connection closed without an answer to {frame.hex()}")
            data += chunk
        return data


def mbap(tid: int, unit: int, pdu: bytes) -> bytes:
    return struct.pack(">HHHB", tid, 0, len(pdu) + 1, unit) + pdu


_layout = SunSpecServer(SimpleBattery(), port=0).map  # the same map the served twin has
_WRITABLE = [
    _layout.block(704).address_of(name)
    for name in ("WSetEna", "WSetMod", "WSet", "WSetRvrt", "WSetPct", "WSetEnaRvrt", "WSetRvrtTms")
] + [_layout.block(802).address_of("SetOp")]
_TID = st.integers(0, 0xFFFF)
_VALUES = st.lists(st.one_of(st.integers(0, 3), st.integers(0, 0xFFFF)), min_size=1, max_size=8)

# Three families, so normal answers and value checks are exercised as well as every refusal.
_in_map_reads = st.integers(_layout.base, _layout.end - 1).flatmap(
    lambda address: st.fixed_dictionaries(
        {
            "fc": st.just(3),
            "address": st.just(address),
            "count": st.integers(1, min(125, _layout.end - address)),
            "values": st.just([0]),
            "payload": st.just(b""),
            "unit": st.just(UNIT),
            "tid": _TID,
        }
    )
)
_control_writes = st.fixed_dictionaries(
    {
        "fc": st.sampled_from([6, 16]),
        "address": st.sampled_from(_WRITABLE),
        "count": st.integers(1, 8),
        "values": _VALUES,
        "payload": st.just(b""),
        "unit": st.just(UNIT),
        "tid": _TID,
    }
)
_anything = st.fixed_dictionaries(
    {
        "fc": st.one_of(st.sampled_from([3, 6, 16]), st.integers(0, 255)),
        "address": st.one_of(st.integers(39_990, 40_430), st.integers(0, 0xFFFF)),
        "count": st.one_of(st.integers(1, 125), st.integers(0, 0xFFFF)),
        "values": st.lists(st.integers(0, 0xFFFF), min_size=1, max_size=124),
        "payload": st.binary(max_size=24),
        "unit": st.one_of(st.just(UNIT), st.integers(0, 255)),
        "tid": _TID,
    }
)
requests = st.one_of(_in_map_reads, _control_writes, _anything)


def build_pdu(request: dict[str, Any]) -> bytes:
    fc, address, count, values = (request[k] for k in ("fc", "address", "count", "values"))
    if fc == 3:
        return struct.pack(">BHH", fc, address, count)
    if fc == 6:
        return struct.pack(">BHH", fc, address, values[0])
    if fc == 16:
        count = len(values) if request["tid"] % 4 else count  # sometimes inconsistent
        return struct.pack(">BHHB", fc, address, count, 2 * len(values)) + b"".join(
            v.to_bytes(2, "big") for v in values
        )
    return bytes([fc]) + request["payload"]


@settings(
    max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(request=requests)
def test_random_requests_get_a_normal_answer_or_a_proper_exception(
    twin: tuple[LoopThread, SunSpecServer, SimpleBattery], request: dict[str, Any]
) -> None:
    loop, server, battery = twin
    pdu = build_pdu(request)
    fc, unit = request["fc"], request["unit"]
    answer = exchange(server.port, mbap(request["tid"], unit, pdu))
    tid, pid, length, answer_unit = struct.unpack(">HHHB", answer[:7])
    body = answer[7:]
    assert (tid, pid, answer_unit) == (request["tid"], 0, unit)
    assert length == len(body) + 1
    answer_fc = body[0]
    kind = fc if fc in (3, 6, 16) else "other"
    event(f"fc {kind}: " + (f"exception {body[1]}" if answer_fc & 0x80 else "normal answer"))
    if answer_fc == fc and fc < 0x80:
        # A normal answer: only for supported, well-formed requests to our unit in the map.
        assert fc in (3, 6, 16) and unit in (UNIT, *DIRECT_UNIT_IDS)
        if fc == 3:
            count = request["count"]
            assert 1 <= count <= 125
            assert server.map.base <= request["address"]
            assert request["address"] + count <= server.map.end
            assert body[1] == 2 * count and len(body) == 2 + 2 * count
        else:
            assert body[1:5] == pdu[1:5]  # echo of address and value/count
        return
    assert answer_fc == (fc | 0x80), f"answer {body.hex()} to request {pdu.hex()}"
    code = body[1]
    assert len(body) == 2 and code in PROPER_CODES, f"answer {body.hex()} to {pdu.hex()}"
    if fc not in (3, 6, 16) and fc < 0x80:
        assert code == 1  # ILLEGAL FUNCTION
    elif fc == 3 and not 1 <= request["count"] <= 125:
        assert code == 3  # quantity out of range
    elif fc == 3 and unit not in (UNIT, *DIRECT_UNIT_IDS):
        assert code == 11  # not our unit
    elif fc == 3:
        assert code == 2  # outside the map


def test_server_keeps_serving_after_the_fuzzing(
    twin: tuple[LoopThread, SunSpecServer, SimpleBattery],
) -> None:
    loop, server, battery = twin

    async def use() -> dict[str, Any]:
        link = ModbusLink("127.0.0.1", server.port, UNIT, "battery", timeout_s=2.0)
        try:
            await link.connect()
            await link.set_enabled(True)
            await link.set_power_limit(-7.0)
            return await link.read()
        finally:
            await link.close()

    state = loop.call(use())
    assert battery.enabled and battery.setpoint_kw == pytest.approx(-7.0)
    assert state["p_kw"] == pytest.approx(-7.0)


GARBAGE = [
    b"\x00" * 600,
    bytes(range(256)) * 3,
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    struct.pack(">HHHB", 1, 0x1234, 6, 1) + b"\x03\x9c\x40\x00\x02",  # protocol id not 0
    struct.pack(">HHHB", 2, 0, 0xFFFF, 1) + b"\x03\x9c\x40",  # length far beyond the data
    struct.pack(">HHHB", 3, 0, 1, 1),  # no function code at all
    struct.pack(">HHHB", 4, 0, 2, 1) + b"\x10",  # truncated write
]


@pytest.mark.parametrize("garbage", GARBAGE, ids=range(len(GARBAGE)))
def test_garbage_bytes_do_not_take_the_server_down(
    twin: tuple[LoopThread, SunSpecServer, SimpleBattery], garbage: bytes
) -> None:
    loop, server, battery = twin
    with socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT_S) as sock:
        sock.settimeout(0.3)
        sock.sendall(garbage)
        with contextlib.suppress(TimeoutError):
            sock.recv(512)  # whatever comes back (or nothing) is fine; the process must live
    # A fresh connection still gets correct answers.
    answer = exchange(server.port, mbap(77, UNIT, struct.pack(">BHH", 3, 40_000, 2)))
    assert answer[7:] == bytes([3, 4, 0x53, 0x75, 0x6E, 0x53])


def test_many_abrupt_connections(twin: tuple[LoopThread, SunSpecServer, SimpleBattery]) -> None:
    loop, server, battery = twin
    for _ in range(50):
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT_S)
        sock.sendall(mbap(1, UNIT, struct.pack(">BHH", 3, 40_000, 125))[:9])  # half a request
        sock.close()
    answer = exchange(server.port, mbap(9, UNIT, struct.pack(">BHH", 3, 40_002, 2)))
    assert answer[7:] == bytes([3, 4, 0, 1, 0, 66])  # model 1, L = 66
