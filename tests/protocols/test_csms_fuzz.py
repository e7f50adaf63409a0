"""Malformed and random frames sent to the CSMS: the right CALLERROR or a clean close, never a
crash or a hang (each probe after the garbage must still be answered)."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import strategies as st
from support.loop import LoopThread, running
from support.ocpp_fuzz import near_valid_test, random_json_test, random_text_test, spelled
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from qubit_sim.protocols.csms import Csms

RECV_TIMEOUT_S = 3.0


@pytest.fixture(scope="module")
def server() -> Iterator[Csms]:
    with LoopThread() as loop, running(loop, Csms(response_timeout_s=2.0)) as csms:
        yield csms


class Client:
    """A raw websocket peer that sends anything, then proves the session still works."""

    def __init__(self, url: str, version: str) -> None:
        self.url, self.version = url, version
        self.ids = itertools.count()
        self.closes = 0
        self.ws: ClientConnection = self._open()

    def _open(self) -> ClientConnection:
        return connect(self.url, subprotocols=[f"ocpp{self.version}"], open_timeout=5, legacy=True)  # type: ignore[list-item]

    def exchange(self, frame: str | bytes) -> list[list[Any]]:
        """Send ``frame`` then a Heartbeat; return the frames answered before the Heartbeat."""
        try:
            self.ws.send(frame)
            return self._probe()
        except ConnectionClosed as closed:
            # A clean close (e.g. a frame over the size limit) is acceptable; a new session works.
            assert closed.rcvd is not None and closed.rcvd.code in (1000, 1002, 1007, 1009)
            self.closes += 1
            self.ws = self._open()
            return self._probe()

    def _probe(self) -> list[list[Any]]:
        probe = f"probe-{next(self.ids)}"
        self.ws.send(json.dumps([2, probe, "Heartbeat", {}]))
        replies = []
        while True:
            reply = json.loads(self.ws.recv(timeout=RECV_TIMEOUT_S))
            if reply[1] == probe:
                assert reply[0] == 3 and "currentTime" in reply[2]
                return replies
            replies.append(reply)


@pytest.fixture(scope="module", params=["1.6", "2.0.1"])
def client(server: Csms, request: pytest.FixtureRequest) -> Iterator[Client]:
    peer = Client(f"{server.url}/FUZZ-{request.param}", request.param)
    yield peer
    peer.ws.close()


@pytest.fixture(scope="module")
def peer(client: Client) -> Client:
    """The session under the name the shared fuzz tests of ``support.ocpp_fuzz`` ask for."""
    return client


BOOT_BAD_TYPE = {
    "1.6": {"chargePointVendor": 12, "chargePointModel": "m"},
    "2.0.1": {"chargingStation": {"model": 1, "vendorName": "v"}, "reason": "PowerUp"},
}
NO_HANDLER = {
    "1.6": ["RemoteStartTransaction", {"idTag": "x"}],
    "2.0.1": ["RequestStopTransaction", {"transactionId": "x"}],
}


@pytest.mark.parametrize(
    ("frame", "expected_id", "expected_code"),
    [
        ("this is not json", "-1", "unreadable"),
        (b"\xff\xfe\x00", "-1", "unreadable"),
        ('{"an": "object"}', "-1", "rpc"),
        ("[]", "-1", "rpc"),
        ('[9, "a1", "Heartbeat", {}]', "a1", "type"),
        ('[true, "a1b", "Heartbeat", {}]', "a1b", "type"),
        ('[2, "a2", "Heartbeat"]', "a2", "rpc"),
        ('[2, 17, "Heartbeat", {}]', "-1", "rpc"),
        ('[2, "a3", "Heartbeat", []]', "a3", "format"),
        ('[2, "a4", "NoSuchAction", {}]', "a4", "NotImplemented"),
        ('[2, "a5", "Heartbeat", {"extra": 1}]', "a5", "format"),
        ('[2, "a6", "BootNotification", {}]', "a6", "ProtocolError"),
        ("BOOT_BAD_TYPE", "a7", "TypeConstraintViolation"),
        ("NO_HANDLER", "a8", "NotSupported"),
    ],
)
def test_malformed_calls_get_the_specified_callerror(
    client: Client, frame: str | bytes, expected_id: str, expected_code: str
) -> None:
    if frame == "BOOT_BAD_TYPE":
        frame = json.dumps([2, "a7", "BootNotification", BOOT_BAD_TYPE[client.version]])
    elif frame == "NO_HANDLER":
        frame = json.dumps([2, "a8", *NO_HANDLER[client.version]])
    if expected_code == "unreadable":
        # The message id cannot be read: 2.0.1 says RpcFrameworkError, 1.6 (which has no such
        # code) FormationViolation.
        expected_code = "format" if client.version == "1.6" else "rpc"
    (reply,) = client.exchange(frame)
    assert reply[0] == 4 and reply[1] == expected_id
    assert reply[2] == spelled(client.version, expected_code)
    assert isinstance(reply[3], str) and isinstance(reply[4], dict)


@pytest.mark.parametrize(
    "frame",
    [
        '[3, "nobody-asked", {}]',
        '[4, "nobody-asked", "GenericError", "x", {}]',
        '[3, "x"]',
        "[4, 5]",
    ],
)
def test_unsolicited_or_broken_replies_are_dropped_silently(client: Client, frame: str) -> None:
    assert client.exchange(frame) == []


def test_a_bad_timestamp_in_a_transaction_message_is_a_format_violation(client: Client) -> None:
    if client.version == "1.6":
        payload = [
            "StartTransaction",
            {"connectorId": 1, "idTag": "T", "meterStart": 0, "timestamp": "last tuesday"},
        ]
    else:
        payload = [
            "TransactionEvent",
            {
                "eventType": "Started",
                "timestamp": "last tuesday",
                "triggerReason": "Authorized",
                "seqNo": 0,
                "transactionInfo": {"transactionId": "Z"},
            },
        ]
    (reply,) = client.exchange(json.dumps([2, "ts", *payload]))
    assert reply[:3] == [4, "ts", spelled(client.version, "format")]


def test_an_oversized_frame_closes_the_connection_cleanly(client: Client) -> None:
    before = client.closes
    assert client.exchange("[" + " " * (2**20 + 10) + "]") == []
    assert client.closes == before + 1


stamps = st.one_of(
    st.just("2025-01-01T00:00:00Z"),
    st.text(max_size=30),
    st.datetimes().map(lambda d: d.isoformat()),
)
sampled = st.fixed_dictionaries(
    {"value": st.one_of(st.text(max_size=12), st.floats(allow_nan=False).map(str))},
    optional={
        "measurand": st.sampled_from(
            [
                "Energy.Active.Import.Register",
                "Power.Active.Import",
                "Current.Import",
                "Voltage",
                "SoC",
            ]
        ),
        "unit": st.sampled_from(["Wh", "kWh", "W", "A", "V", "Percent"]),
        "phase": st.sampled_from(["L1", "L2", "L3-N"]),
    },
)
near_valid_16 = st.one_of(
    st.tuples(
        st.just("StartTransaction"),
        st.fixed_dictionaries(
            {
                "connectorId": st.integers(-(2**40), 2**40),
                "idTag": st.text(max_size=20),
                "meterStart": st.integers(-(2**40), 2**40),
                "timestamp": stamps,
            }
        ),
    ),
    st.tuples(
        st.just("StopTransaction"),
        st.fixed_dictionaries(
            {
                "meterStop": st.integers(-(2**40), 2**40),
                "timestamp": stamps,
                "transactionId": st.integers(-5, 5),
            }
        ),
    ),
    st.tuples(
        st.just("MeterValues"),
        st.fixed_dictionaries(
            {
                "connectorId": st.integers(-3, 3),
                "meterValue": st.lists(
                    st.fixed_dictionaries(
                        {"timestamp": stamps, "sampledValue": st.lists(sampled, max_size=3)}
                    ),
                    max_size=2,
                ),
            },
            optional={"transactionId": st.integers(-3, 3)},
        ),
    ),
    st.tuples(
        st.just("StatusNotification"),
        st.fixed_dictionaries(
            {
                "connectorId": st.integers(-(2**31), 2**31),
                "errorCode": st.just("NoError"),
                "status": st.sampled_from(["Available", "Charging", "Faulted"]),
            }
        ),
    ),
    st.tuples(
        st.sampled_from(["BootNotification", "Authorize", "Heartbeat", "DataTransfer"]),
        st.dictionaries(
            st.sampled_from(["chargePointVendor", "chargePointModel", "idTag", "vendorId"]),
            st.text(max_size=30),
            max_size=3,
        ),
    ),
)


def _meter_values_201(max_sampled: int) -> st.SearchStrategy[list[dict[str, Any]]]:
    sampled_201 = st.fixed_dictionaries({"value": st.floats(allow_nan=False, allow_infinity=False)})
    return st.lists(
        st.fixed_dictionaries(
            {
                "timestamp": stamps,
                "sampledValue": st.lists(sampled_201, min_size=1, max_size=max_sampled),
            }
        ),
        min_size=1,
        max_size=2,
    )


near_valid_201 = st.one_of(
    st.tuples(
        st.just("TransactionEvent"),
        st.fixed_dictionaries(
            {
                "eventType": st.sampled_from(["Started", "Updated", "Ended"]),
                "timestamp": stamps,
                "triggerReason": st.just("Authorized"),
                "seqNo": st.integers(-3, 3),
                "transactionInfo": st.fixed_dictionaries({"transactionId": st.text(max_size=36)}),
            },
            optional={
                "evse": st.fixed_dictionaries({"id": st.integers(-(2**31), 2**31)}),
                "meterValue": _meter_values_201(max_sampled=3),
                "idToken": st.fixed_dictionaries(
                    {"idToken": st.text(max_size=36), "type": st.just("Central")}
                ),
            },
        ),
    ),
    st.tuples(
        st.just("MeterValues"),
        st.fixed_dictionaries(
            {
                "evseId": st.integers(-3, 3),
                "meterValue": _meter_values_201(max_sampled=2),
            }
        ),
    ),
    st.tuples(
        st.just("StatusNotification"),
        st.fixed_dictionaries(
            {
                "timestamp": stamps,
                "connectorStatus": st.sampled_from(["Available", "Occupied"]),
                "evseId": st.integers(-(2**31), 2**31),
                "connectorId": st.integers(0, 3),
            }
        ),
    ),
)

test_random_text_never_breaks_the_csms = random_text_test()
test_random_json_never_breaks_the_csms = random_json_test()


def near_valid(version: str) -> st.SearchStrategy[tuple[str, dict[str, Any]]]:
    """Charge-point messages close to valid ones of OCPP ``version``."""
    return near_valid_16 if version == "1.6" else near_valid_201


test_near_valid_charge_point_messages_never_break_the_csms = near_valid_test(near_valid, "fz")
