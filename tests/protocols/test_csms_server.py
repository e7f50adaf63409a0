"""The CSMS server: version negotiation, security profiles 1-3, idempotency on the wire, links."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable
from pathlib import Path
from typing import Any, TypeVar

import pytest
import websockets
from ocpp.v16 import ChargePoint as Cp16
from ocpp.v16 import call as call16
from ocpp.v201 import ChargePoint as Cp201
from ocpp.v201 import call as call201
from websockets.exceptions import InvalidStatus

from qubit_sim.errors import ProtocolError
from qubit_sim.protocols.csms import Csms, OcppLink
from qubit_sim.protocols.ocpp_security import (
    Pki,
    client_ssl_context,
    make_pki,
    server_ssl_context,
)
from qubit_sim.twins.charger_device import EvState, SimpleCharger
from qubit_sim.twins.ocpp_cp import OcppChargePointTwin

T = TypeVar("T")
TIMEOUT_S = 20.0


def run(coro: Awaitable[T]) -> T:
    return asyncio.run(asyncio.wait_for(coro, TIMEOUT_S))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("offer", "expected"),
    [
        (["ocpp1.6", "ocpp2.0.1"], "ocpp2.0.1"),
        (["ocpp1.6"], "ocpp1.6"),
        (["ocpp2.0.1"], "ocpp2.0.1"),
    ],
)
def test_one_port_serves_both_versions_preferring_2_0_1(offer: list[str], expected: str) -> None:
    async def main() -> None:
        async with (
            Csms() as csms,
            websockets.connect(
                f"{csms.url}/CPX",
                subprotocols=offer,  # type: ignore[arg-type]
            ) as ws,
        ):
            assert ws.subprotocol == expected
            await csms.wait_until(lambda: csms.is_connected("CPX"), what="the session")
            assert csms.state.charge_points["CPX"].version == expected.removeprefix("ocpp")

    run(main())


@pytest.mark.parametrize("offer", [[], ["ocpp2.1"]])
def test_a_client_without_a_known_subprotocol_is_refused(offer: list[str]) -> None:
    async def main() -> None:
        async with Csms() as csms:
            with pytest.raises(InvalidStatus, match="400"):
                await websockets.connect(f"{csms.url}/CPX", subprotocols=offer)  # type: ignore[arg-type]

    run(main())


def _twin(csms: Csms, identity: str, **kwargs: Any) -> OcppChargePointTwin:
    return OcppChargePointTwin(
        SimpleCharger(), identity, csms.url, clock=lambda: 0.0, response_timeout_s=3.0, **kwargs
    )


def test_basic_auth_allow_list_refuses_wrong_and_accepts_right() -> None:
    async def main() -> None:
        async with Csms(credentials={"CP1": "s3cret", "CP2": "other"}) as csms:
            for password in ("wrong", None, "other"):
                with pytest.raises(ProtocolError, match="HTTP 401"):
                    await _twin(csms, "CP1", password=password).connect()
            with pytest.raises(ProtocolError, match="HTTP 404"):
                await _twin(csms, "CP3", password="s3cret").connect()
            assert csms.state.charge_points == {}
            twin = _twin(csms, "CP1", password="s3cret")
            await twin.connect()
            assert twin.booted and csms.state.charge_points["CP1"].boots == 1
            await twin.close()

    run(main())


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(Path(tmp_path_factory.mktemp("pki")), ["CP1", "CP2"])


def test_security_profile_2_tls_with_basic_auth(pki: Pki) -> None:
    server = server_ssl_context(pki.server_cert, pki.server_key)

    async def main() -> None:
        async with Csms(credentials={"CP1": "s3cret"}, ssl_context=server) as csms:
            assert csms.url.startswith("wss://")
            trusted = client_ssl_context(pki.ca_cert)
            twin = _twin(csms, "CP1", password="s3cret", ssl_context=trusted, version="2.0.1")
            await twin.connect()
            assert twin.booted
            await twin.close()
            with pytest.raises(ProtocolError, match="HTTP 401"):
                await _twin(csms, "CP1", password="bad", ssl_context=trusted).connect()
            untrusting = ssl.create_default_context()  # does not know the test CA
            with pytest.raises(ProtocolError, match="cannot connect"):
                await _twin(csms, "CP1", password="s3cret", ssl_context=untrusting).connect()

    run(main())


def test_security_profile_3_client_certificate_must_name_the_identity(pki: Pki) -> None:
    server = server_ssl_context(pki.server_cert, pki.server_key, client_ca=pki.ca_cert)

    async def main() -> None:
        async with Csms(ssl_context=server) as csms:
            cert, key = pki.clients["CP1"]
            twin = _twin(csms, "CP1", ssl_context=client_ssl_context(pki.ca_cert, cert, key))
            await twin.connect()
            assert twin.booted
            await twin.close()
            other_cert, other_key = pki.clients["CP2"]
            borrowed = client_ssl_context(pki.ca_cert, other_cert, other_key)
            with pytest.raises(ProtocolError, match="HTTP 401"):
                await _twin(csms, "CP1", ssl_context=borrowed).connect()
            with pytest.raises(ProtocolError, match="cannot connect"):
                await _twin(csms, "CP1", ssl_context=client_ssl_context(pki.ca_cert)).connect()
            assert csms.state.charge_points["CP1"].boots == 1

    run(main())


class _Client16(Cp16):
    """A bare 1.6 charge point used to send hand-made (repeated) messages."""


class _Client201(Cp201):
    """A bare 2.0.1 charging station."""


async def _open(csms: Csms, identity: str, version: str) -> tuple[Any, Any, asyncio.Task[Any]]:
    ws = await websockets.connect(f"{csms.url}/{identity}", subprotocols=[f"ocpp{version}"])  # type: ignore[list-item]
    client = (_Client16 if version == "1.6" else _Client201)(identity, ws, response_timeout=5)
    return ws, client, asyncio.create_task(client.start())


def test_repeated_v16_transaction_messages_are_idempotent_on_the_wire() -> None:
    async def main() -> None:
        async with Csms() as csms:
            ws, cp, task = await _open(csms, "DUP", "1.6")
            start = call16.StartTransaction(
                connector_id=1, id_tag="T", meter_start=1000, timestamp="2025-01-01T00:00:00Z"
            )
            first = await cp.call(start)
            again = await cp.call(start)
            assert first.transaction_id == again.transaction_id
            meter = call16.MeterValues(
                connector_id=1,
                transaction_id=first.transaction_id,
                meter_value=[
                    {
                        "timestamp": "2025-01-01T00:01:00Z",
                        "sampledValue": [{"value": "1500", "unit": "Wh"}],
                    }
                ],
            )
            await cp.call(meter)
            await cp.call(meter)
            stop = call16.StopTransaction(
                meter_stop=1800,
                timestamp="2025-01-01T00:02:00Z",
                transaction_id=first.transaction_id,
            )
            await cp.call(stop)
            await cp.call(stop)
            (record,) = csms.transactions("DUP")
            assert record.energy_wh == 800.0 and len(record.samples) == 1
            task.cancel()
            await ws.close()

    run(main())


def test_repeated_v201_transaction_events_are_idempotent_on_the_wire() -> None:
    async def main() -> None:
        async with Csms() as csms:
            ws, cs, task = await _open(csms, "DUP2", "2.0.1")

            def event(kind: str, seq: int, wh: float, minute: int) -> Any:
                return call201.TransactionEvent(
                    event_type=kind,
                    timestamp=f"2025-01-01T00:0{minute}:00Z",
                    trigger_reason="MeterValuePeriodic",
                    seq_no=seq,
                    transaction_info={"transactionId": "X1"},
                    evse={"id": 1},
                    meter_value=[
                        {
                            "timestamp": f"2025-01-01T00:0{minute}:00Z",
                            "sampledValue": [{"value": wh}],
                        }
                    ],
                )

            for message in [
                event("Started", 0, 10.0, 0),
                event("Started", 0, 10.0, 0),
                event("Updated", 1, 60.0, 1),
                event("Updated", 1, 60.0, 1),
                event("Ended", 2, 95.5, 2),
                event("Ended", 2, 95.5, 2),
            ]:
                await cs.call(message)
            (record,) = csms.transactions("DUP2")
            assert record.energy_wh == 85.5 and record.seq_nos == {0, 1, 2}
            task.cancel()
            await ws.close()

    run(main())


def test_requests_to_missing_or_silent_charge_points_fail_clearly() -> None:
    async def main() -> None:
        async with Csms(response_timeout_s=0.5) as csms:
            with pytest.raises(ProtocolError, match="'NOPE' is not connected"):
                await csms.remote_start("NOPE", 1)
            with pytest.raises(ValueError, match="finite number >= 0"):
                await csms.set_power_limit("NOPE", 1, -3.0)
            # A station that never answers ...
            silent = await websockets.connect(f"{csms.url}/MUTE", subprotocols=["ocpp1.6"])  # type: ignore[list-item]
            await csms.wait_until(lambda: csms.is_connected("MUTE"))
            with pytest.raises(ProtocolError, match="did not answer RemoteStartTransaction"):
                await csms.remote_start("MUTE", 1)
            # ... and one that has no handler for the request.
            ws, cp, task = await _open(csms, "BARE", "1.6")
            await csms.wait_until(lambda: csms.is_connected("BARE"))
            with pytest.raises(ProtocolError, match="CALLERROR NotImplementedError"):
                await csms.set_power_limit("BARE", 1, 5.0)
            # A request in flight fails at once when the connection drops.
            pending = asyncio.create_task(csms.reset("MUTE"))
            while '"Reset"' not in await silent.recv():  # the request is in flight ...
                pass
            await silent.close()  # ... when the station goes away
            with pytest.raises(ProtocolError, match="lost during Reset"):
                await pending
            task.cancel()
            await ws.close()

    run(main())


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
def test_ocpp_link_drives_a_charger_end_to_end(version: str) -> None:
    async def main() -> None:
        t = [0.0]
        async with Csms(clock=lambda: t[0]) as csms:
            device = SimpleCharger(n_connectors=2)
            twin = OcppChargePointTwin(
                device, "LINKED", csms.url, version=version, clock=lambda: t[0], auto_start=False
            )
            await twin.connect()
            link = csms.link("LINKED", 2)
            assert isinstance(link, OcppLink)
            device.plug_in(2, EvState(capacity_kwh=40.0, soc=0.3, max_power_kw=22.0))
            assert (await link.set_power_limit(7.4)).accepted
            assert (await link.start()).accepted
            for _ in range(3):
                device.advance(60.0)
                t[0] += 60.0
                await twin.tick()
            reading = await link.read()
            assert reading.status == "Charging" and reading.p_kw == pytest.approx(7.4)
            assert reading.limit_kw == pytest.approx(7.4) and reading.online
            assert (await link.stop()).accepted
            assert (await link.set_availability(False)).accepted
            await twin.tick()
            assert (await link.read()).status == "Unavailable"
            assert not (await link.start()).accepted
            await twin.close()
            await csms.wait_until(lambda: not csms.is_connected("LINKED"))
            assert not (await link.read()).online

    run(main())


def test_a_reconnecting_identity_replaces_its_old_session() -> None:
    async def main() -> None:
        async with Csms() as csms:
            first = await websockets.connect(f"{csms.url}/SAME", subprotocols=["ocpp1.6"])  # type: ignore[list-item]
            await csms.wait_until(lambda: csms.is_connected("SAME"))
            second = await websockets.connect(f"{csms.url}/SAME", subprotocols=["ocpp1.6"])  # type: ignore[list-item]
            await first.wait_closed()
            assert first.close_code == 1000
            record = csms.state.charge_points["SAME"]
            await csms.wait_until(lambda: record.connects == 2, what="the second session")
            assert csms.is_connected("SAME") and record.online
            await second.close()

    run(main())
