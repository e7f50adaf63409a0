"""Core messages a charge point may send the stack's CSMS, as raw frames over a real websocket:
DataTransfer, 2.0.1 NotifyReport, and the CALLERRORs for actions without a handler."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from support.loop import LoopThread, running
from websockets.sync.client import ClientConnection, connect

from qubit_sim.protocols.csms import Csms

RECV_TIMEOUT_S = 3.0
NOT_KNOWN = "Requested Action is not known by receiver"
NOT_SUPPORTED = "Requested Action is recognized but not supported by the receiver"


@pytest.fixture(scope="module")
def server() -> Iterator[Csms]:
    with LoopThread() as loop, running(loop, Csms(response_timeout_s=2.0)) as csms:
        yield csms


def station(server: Csms, version: str, identity: str) -> ClientConnection:
    return connect(
        f"{server.url}/{identity}",
        subprotocols=[f"ocpp{version}"],  # type: ignore[list-item]
        open_timeout=5,
    )


def call(ws: ClientConnection, unique_id: str, action: str, payload: dict[str, Any]) -> list[Any]:
    ws.send(json.dumps([2, unique_id, action, payload]))
    reply = json.loads(ws.recv(timeout=RECV_TIMEOUT_S))
    assert reply[1] == unique_id
    return reply


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
def test_data_transfer_gets_unknown_vendor_id(server: Csms, version: str) -> None:
    with station(server, version, f"DT-{version}") as ws:
        reply = call(ws, "d1", "DataTransfer", {"vendorId": "com.example", "data": "x"})
        assert reply == [3, "d1", {"status": "UnknownVendorId"}]


@pytest.mark.parametrize(
    ("version", "known_unhandled"),
    [("1.6", "RemoteStartTransaction"), ("2.0.1", "GetBaseReport")],
)
def test_unknown_and_unhandled_actions_get_the_codes_ocpp_j_defines(
    server: Csms, version: str, known_unhandled: str
) -> None:
    with station(server, version, f"ERR-{version}") as ws:
        unknown = call(ws, "e1", "FrobnicateWidget", {})
        assert unknown[:4] == [4, "e1", "NotImplemented", NOT_KNOWN]
        unhandled = call(ws, "e2", known_unhandled, {})
        assert unhandled[:4] == [4, "e2", "NotSupported", NOT_SUPPORTED]
        assert "FrobnicateWidget" in unknown[4]["cause"]


def test_notify_report_pieces_collect_into_one_report(server: Csms) -> None:
    def entry(variable: str, value: str, evse: int | None = None) -> dict[str, Any]:
        component: dict[str, Any] = {"name": "EVSE" if evse else "OCPPCommCtrlr"}
        if evse:
            component["evse"] = {"id": evse}
        return {
            "component": component,
            "variable": {"name": variable},
            "variableAttribute": [{"value": value, "mutability": "ReadOnly"}],
        }

    pieces = [
        (0, True, [entry("HeartbeatInterval", "300")]),
        (0, True, [entry("HeartbeatInterval", "300")]),  # a repeat (its answer was lost)
        (1, False, [entry("AvailabilityState", "Occupied", evse=2)]),
    ]
    with station(server, "2.0.1", "REPORTER") as ws:
        for i, (seq_no, tbc, data) in enumerate(pieces):
            payload = {
                "requestId": 42,
                "generatedAt": "2025-01-01T00:00:00Z",
                "seqNo": seq_no,
                "tbc": tbc,
                "reportData": data,
            }
            assert call(ws, f"n{i}", "NotifyReport", payload) == [3, f"n{i}", {}]
    report = server.state.charge_points["REPORTER"].reports[42]
    assert report.complete and report.seq_nos == [0, 1]
    assert len(report.entries) == 2  # the repeat was not counted twice
    assert report.value("OCPPCommCtrlr", "HeartbeatInterval") == "300"
    assert report.value("EVSE", "AvailabilityState", evse=2) == "Occupied"
    assert report.value("EVSE", "AvailabilityState", evse=1) is None
