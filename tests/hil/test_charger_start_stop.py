"""Start and stop reach a physical charger as OCPP remote start/stop, within the envelope.

A minimal OCPP 1.6 charge point (the ``ocpp`` library over a real websocket on loopback) stands
in for the charger. Claims checked here: ``start`` goes out as RemoteStartTransaction on the
bench's connector and ``stop`` as RemoteStopTransaction of the transaction the charge point
started; a bench that does not allow them sends nothing and answers ``Refused``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import websockets
from ocpp.routing import after, on
from ocpp.v16 import ChargePoint, call, call_result
from ocpp.v16.enums import Action
from websockets.typing import Subprotocol

from qubit_sim.hil.bench import DeviceSpec
from qubit_sim.hil.bridge import DeviceBridge
from qubit_sim.hil.devices import OcppCharger
from qubit_sim.hil.envelope import Envelope
from qubit_sim.protocols.csms import Csms

IDENTITY = "LAB-CP-9"


class _ChargePoint(ChargePoint):
    """Accepts remote start/stop, and starts a transaction after a remote start."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.received: list[tuple[str, dict[str, Any]]] = []

    @on(Action.remote_start_transaction)
    def on_remote_start(self, **kwargs: Any) -> call_result.RemoteStartTransaction:
        self.received.append(("start", kwargs))
        return call_result.RemoteStartTransaction(status="Accepted")

    @after(Action.remote_start_transaction)
    async def started(self, **kwargs: Any) -> None:
        await self.call(
            call.StartTransaction(
                connector_id=kwargs["connector_id"],
                id_tag=kwargs["id_tag"],
                meter_start=0,
                timestamp="2025-06-02T08:00:00Z",
            )
        )

    @on(Action.remote_stop_transaction)
    def on_remote_stop(self, **kwargs: Any) -> call_result.RemoteStopTransaction:
        self.received.append(("stop", kwargs))
        return call_result.RemoteStopTransaction(status="Accepted")


def _url(csms: Csms) -> str:
    return f"{csms.url}/{IDENTITY}"


def _bridge(csms: Csms, allowed: list[str]) -> DeviceBridge:
    spec = DeviceSpec.model_validate(
        {
            "id": "cp",
            "replaces": "lab1",
            "protocol": "ocpp",
            "ocpp": {"identity": IDENTITY, "password": "x" * 16, "connector": 2},
            "limits": {"max_charge_kw": 7, "allowed_commands": allowed},
        }
    )
    return DeviceBridge(
        OcppCharger(spec, csms), Envelope(spec.id, spec.limits, spec.kind), refresh_s=1.0
    )


def test_start_and_stop_go_out_as_ocpp_remote_start_and_stop() -> None:
    async def scenario() -> tuple[list[str], list[tuple[str, dict[str, Any]]], list[str]]:
        csms = Csms(port=0)
        async with (
            csms,
            websockets.connect(_url(csms), subprotocols=[Subprotocol("ocpp1.6")]) as ws,
        ):
            charge_point = _ChargePoint(IDENTITY, ws)
            listener = asyncio.create_task(charge_point.start())
            await charge_point.call(
                call.BootNotification(charge_point_model="M", charge_point_vendor="V")
            )
            refusing = _bridge(csms, ["set_power_limit"])
            refused = [(await refusing.start()).status, (await refusing.stop()).status]
            bridge = _bridge(csms, ["set_power_limit", "start", "stop"])
            started = await bridge.start()
            await csms.wait_until(
                lambda: csms.state.active_transaction(IDENTITY, 2) is not None, 5, "a tx"
            )
            stopped = await bridge.stop()
            listener.cancel()
        return refused, list(charge_point.received), [started.status, stopped.status]

    refused, received, statuses = asyncio.run(scenario())
    assert refused == ["Refused", "Refused"]
    assert statuses == ["Accepted", "Accepted"]
    assert [kind for kind, _ in received] == ["start", "stop"]
    assert received[0][1]["connector_id"] == 2
    assert isinstance(received[1][1]["transaction_id"], int)
