"""The stack's CSMS: one websocket server for OCPP 1.6J and 2.0.1 charge points.

The version is negotiated per connection through the websocket subprotocol (``ocpp2.0.1`` is
preferred when a charge point offers both). The CSMS tracks charge points, connectors,
transactions and their meter values (:class:`~qubit_sim.protocols.ocpp_csms_state.CsmsState`)
and offers per-charger operations to the stack; :class:`OcppLink` wraps them for one connector.

Security: with ``credentials`` only the listed identities may connect, each with its HTTP basic
auth password (security profile 1; with ``ssl_context`` profile 2). An ``ssl_context`` that
requires client certificates gives profile 3; the certificate's common name must then equal the
charge point identity.

Example::

    async with Csms(port=0, clock=lambda: engine.now_s) as csms:
        ...
        await csms.set_power_limit("CP1", 1, 7.4)
        csms.read("CP1", 1).p_kw
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import math
import ssl
from collections.abc import Callable, Collection, Mapping
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote

import websockets
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed, InvalidHeader
from websockets.headers import parse_authorization_basic

from qubit_sim.errors import ProtocolError
from qubit_sim.protocols.ocpp_common import (
    DEFAULT_EPOCH,
    SUBPROTOCOLS,
    VERSIONS,
    OcppTraffic,
    check_version,
    quantize_limit,
    sim_to_iso,
    version_of_subprotocol,
)
from qubit_sim.protocols.ocpp_csms16 import Csms16Session
from qubit_sim.protocols.ocpp_csms201 import Csms201Session
from qubit_sim.protocols.ocpp_csms_state import (
    ChargerReading,
    CommandResult,
    CompositeSchedule,
    CsmsState,
    TransactionRecord,
)

__all__ = ["Csms", "OcppLink"]

LOGGER = logging.getLogger("qubit_sim.csms")


def _identity_of(path: str) -> str:
    return unquote(path.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1])


class Csms:
    """OCPP central system serving 1.6J and 2.0.1 on one port.

    Args:
        host: Interface to listen on.
        port: TCP port; 0 picks a free one (see :attr:`port`).
        clock: Simulated time [s] for timestamps; ``None`` uses the wall clock (for real chargers).
        start_utc: UTC instant of simulated second 0.
        heartbeat_interval_s: Heartbeat interval given to charge points at boot [s].
        credentials: Allow-list ``{identity: password}``; ``None`` lets any identity in.
        id_tags: Tokens to accept; ``None`` accepts every token.
        ssl_context: Server TLS context (``wss://``); require client certificates for profile 3.
        require_certificate_identity: Check that the client certificate's common name is the
            identity; by default on when the context requires client certificates.
        response_timeout_s: Wall-clock wait for a charge point's answer [s].
        limit_stack_level: Stack level of the TxDefaultProfile behind :meth:`set_power_limit`.
        versions: OCPP versions offered, in order of preference.

    Attributes:
        state: Charge points, connectors and transactions seen (:class:`CsmsState`).
        traffic: Frames received from all charge points (:class:`OcppTraffic`).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        clock: Callable[[], float] | None = None,
        start_utc: datetime = DEFAULT_EPOCH,
        heartbeat_interval_s: int = 300,
        credentials: Mapping[str, str] | None = None,
        id_tags: Collection[str] | None = None,
        ssl_context: ssl.SSLContext | None = None,
        require_certificate_identity: bool | None = None,
        response_timeout_s: float = 10.0,
        limit_stack_level: int = 1,
        versions: Collection[str] = VERSIONS,
    ) -> None:
        self.host = host
        self._port = port
        self._clock = clock
        self.start_utc = start_utc
        self.heartbeat_interval_s = int(heartbeat_interval_s)
        self._credentials = None if credentials is None else dict(credentials)
        self._id_tags = None if id_tags is None else set(id_tags)
        self._ssl = ssl_context
        if require_certificate_identity is None:
            require_certificate_identity = (
                ssl_context is not None and ssl_context.verify_mode == ssl.CERT_REQUIRED
            )
        self._check_cert = require_certificate_identity
        self.response_timeout_s = response_timeout_s
        self.limit_stack_level = limit_stack_level
        self._subprotocols = [SUBPROTOCOLS[check_version(v)] for v in versions]
        self.state = CsmsState()
        self.traffic = OcppTraffic()
        self._sessions: dict[str, Any] = {}
        self._server: Any = None
        self._remote_start_ids = 0
        self._request_ids = 0

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Start listening."""
        self._server = await websockets.serve(
            self._handle,
            self.host,
            self._port,
            subprotocols=self._subprotocols,  # type: ignore[arg-type]
            process_request=self._process_request,
            ssl=self._ssl,
            max_size=2**20,
            close_timeout=2.0,
        )

    async def stop(self) -> None:
        """Close every connection and stop listening."""
        if self._server is not None:
            # A restart listens on the same port, so charge points can find the CSMS again.
            self._port = self.port
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> Csms:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def port(self) -> int:
        """The TCP port listened on."""
        if self._server is None:
            raise ProtocolError("the CSMS is not started; call 'await csms.start()' first")
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        """Base URL charge points connect to (append ``/<identity>``)."""
        scheme = "wss" if self._ssl is not None else "ws"
        return f"{scheme}://{self.host}:{self.port}"

    # -- context for the sessions ----------------------------------------------------------

    def now_iso(self) -> str:
        """Current time (simulated when a clock was given) as ISO 8601 UTC."""
        if self._clock is None:
            return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        return sim_to_iso(self.start_utc, self._clock())

    def authorize(self, id_tag: str) -> str:
        """Authorization status of a token."""
        return "Accepted" if self._id_tags is None or id_tag in self._id_tags else "Invalid"

    def next_remote_start_id(self) -> int:
        """A fresh 2.0.1 remoteStartId."""
        self._remote_start_ids += 1
        return self._remote_start_ids

    def next_request_id(self) -> int:
        """A fresh 2.0.1 requestId (GetBaseReport)."""
        self._request_ids += 1
        return self._request_ids

    # -- connections -----------------------------------------------------------------------

    def _refuse(self, connection: Any, status: HTTPStatus, text: str) -> Any:
        LOGGER.info("refused %s: %s", connection.request.path if connection.request else "?", text)
        response = connection.respond(status, text + "\n")
        if status is HTTPStatus.UNAUTHORIZED:
            response.headers["WWW-Authenticate"] = 'Basic realm="ocpp"'
        return response

    def _process_request(self, connection: Any, request: Any) -> Any:
        identity = _identity_of(request.path)
        if not identity:
            return self._refuse(connection, HTTPStatus.NOT_FOUND, "no charge point identity")
        if self._credentials is not None:
            expected = self._credentials.get(identity)
            if expected is None:
                return self._refuse(connection, HTTPStatus.NOT_FOUND, "unknown charge point")
            headers: Headers = request.headers
            try:
                user, password = parse_authorization_basic(headers["Authorization"])
            except (KeyError, InvalidHeader):
                return self._refuse(connection, HTTPStatus.UNAUTHORIZED, "basic auth required")
            if user != identity or not hmac.compare_digest(password.encode(), expected.encode()):
                return self._refuse(connection, HTTPStatus.UNAUTHORIZED, "invalid credentials")
        if self._check_cert:
            cert = connection.transport.get_extra_info("peercert") or {}
            names = [v for rdn in cert.get("subject", ()) for k, v in rdn if k == "commonName"]
            if identity not in names:
                return self._refuse(
                    connection, HTTPStatus.UNAUTHORIZED, "certificate does not name this identity"
                )
        return None

    async def _handle(self, ws: Any) -> None:
        identity = _identity_of(ws.request.path)
        version = version_of_subprotocol(ws.subprotocol)
        if version is None:
            await ws.close(1002, "no OCPP subprotocol negotiated")
            return
        old = self._sessions.get(identity)
        session_cls = Csms16Session if version == "1.6" else Csms201Session
        session = session_cls(identity, ws, self)
        session.traffic = self.traffic
        self._sessions[identity] = session
        record = self.state.charge_point(identity, version)
        record.online = True
        record.connects += 1
        if old is not None:
            # The newest connection of an identity wins (a charge point that reconnected).
            await old.ws.close(1000, "replaced by a new connection")
        try:
            await session.start()
        except ConnectionClosed:
            pass
        except Exception:  # a broken session must not take the server down
            LOGGER.exception("session of %s failed", identity)
        finally:
            session.closed.set()
            if self._sessions.get(identity) is session:
                del self._sessions[identity]
                record.online = False

    def is_connected(self, cp_id: str) -> bool:
        """Whether ``cp_id`` is connected."""
        return cp_id in self._sessions

    def _session(self, cp_id: str) -> Any:
        session = self._sessions.get(cp_id)
        if session is None:
            known = sorted(self._sessions) or "none"
            raise ProtocolError(
                f"charge point {cp_id!r} is not connected to this CSMS (connected: {known})"
            )
        return session

    async def disconnect(self, cp_id: str) -> None:
        """Close the connection of ``cp_id`` (fault injection, tests)."""
        session = self._session(cp_id)
        await session.ws.close(1001, "closed by the CSMS")
        await session.closed.wait()

    async def wait_until(
        self, predicate: Callable[[], bool], timeout_s: float = 5.0, what: str = "condition"
    ) -> None:
        """Wait (wall clock) until ``predicate()`` holds.

        Raises:
            ProtocolError: after ``timeout_s`` [s], naming ``what``.
        """
        deadline = asyncio.get_running_loop().time() + timeout_s
        while not predicate():
            if asyncio.get_running_loop().time() > deadline:
                raise ProtocolError(f"timed out after {timeout_s} s waiting for {what}")
            await asyncio.sleep(0.002)

    # -- queries ---------------------------------------------------------------------------

    def read(self, cp_id: str, connector: int) -> ChargerReading:
        """Latest known state of a connector."""
        return self.state.read(cp_id, connector)

    def transactions(self, cp_id: str) -> list[TransactionRecord]:
        """Transactions of ``cp_id``, oldest first."""
        return self.state.transactions_of(cp_id)

    def link(self, cp_id: str, connector: int = 1) -> OcppLink:
        """An :class:`OcppLink` to one connector."""
        return OcppLink(self, cp_id, connector)

    # -- operations for the stack ----------------------------------------------------------

    async def set_power_limit(
        self, cp_id: str, connector: int, p_kw: float | None
    ) -> CommandResult:
        """Cap a connector's power [kW] (TxDefaultProfile in W, 0.1 W steps); ``None`` lifts it.

        Raises:
            ValueError: for a negative or non-finite limit.
            ProtocolError: when the charge point is unreachable or answers with an error.
        """
        if p_kw is not None and (not math.isfinite(p_kw) or p_kw < 0):
            raise ValueError(f"power limit {p_kw!r} kW must be a finite number >= 0 or None")
        p_w = None if p_kw is None else quantize_limit(p_kw * 1000.0)
        result = await self._session(cp_id).op_set_limit(connector, p_w)
        if result.accepted:
            self.state.connector(cp_id, connector).limit_kw = None if p_w is None else p_w / 1000
        return result

    async def remote_start(
        self, cp_id: str, connector: int, id_tag: str = "QUBIT-STACK"
    ) -> CommandResult:
        """Ask the charge point to start a transaction on ``connector``."""
        return await self._session(cp_id).op_remote_start(connector, id_tag)

    async def remote_stop(self, cp_id: str, connector: int) -> CommandResult:
        """Ask the charge point to stop the transaction running on ``connector``."""
        session = self._session(cp_id)
        tx = self.state.active_transaction(cp_id, connector)
        if tx is None:
            return CommandResult(False, "NoTransaction", f"no transaction on connector {connector}")
        return await session.op_remote_stop(tx.transaction_id)

    async def change_availability(
        self, cp_id: str, connector: int, available: bool
    ) -> CommandResult:
        """Make a connector (0: the whole charge point) operative or inoperative."""
        return await self._session(cp_id).op_availability(connector, available)

    async def set_charging_profile(
        self, cp_id: str, connector: int, profile: Mapping[str, Any]
    ) -> CommandResult:
        """Send a charging profile in the charge point's version format (camelCase keys)."""
        return await self._session(cp_id).op_set_profile(connector, dict(profile))

    async def clear_charging_profile(
        self,
        cp_id: str,
        *,
        profile_id: int | None = None,
        connector: int | None = None,
        purpose: str | None = None,
        stack_level: int | None = None,
    ) -> CommandResult:
        """ClearChargingProfile by id or criteria (purpose in the version's wire name)."""
        return await self._session(cp_id).op_clear_profiles(
            profile_id, connector, purpose, stack_level
        )

    async def get_composite_schedule(
        self, cp_id: str, connector: int, duration_s: int, unit: str | None = "W"
    ) -> CompositeSchedule | None:
        """The composite schedule the charge point computes; ``None`` when it rejects."""
        return await self._session(cp_id).op_composite(connector, duration_s, unit)

    async def reset(self, cp_id: str, hard: bool = False) -> CommandResult:
        """Reset the charge point."""
        return await self._session(cp_id).op_reset(hard)

    async def trigger_message(
        self, cp_id: str, message: str, connector: int | None = None
    ) -> CommandResult:
        """TriggerMessage (``Heartbeat``, ``StatusNotification``, ``MeterValues``, ...)."""
        return await self._session(cp_id).op_trigger(message, connector)

    async def get_base_report(
        self, cp_id: str, report_base: str = "FullInventory"
    ) -> CommandResult:
        """Ask a 2.0.1 station for a device model report (``FullInventory``,
        ``ConfigurationInventory`` or ``SummaryInventory``).

        The result's ``detail`` is the requestId; the report arrives afterwards in NotifyReport
        messages and collects in ``state.charge_points[cp_id].reports[request_id]``.

        Raises:
            ProtocolError: for a 1.6 charge point, or when the station cannot be reached.
        """
        return await self._session(cp_id).op_base_report(report_base)

    async def get_configuration(
        self, cp_id: str, keys: list[str] | None = None
    ) -> dict[str, str | None]:
        """Read configuration: 1.6 keys, or ``"Component.Variable"`` names for 2.0.1."""
        return await self._session(cp_id).op_get_config(keys)

    async def set_configuration(self, cp_id: str, key: str, value: str) -> CommandResult:
        """Change one configuration key (1.6) or variable (2.0.1)."""
        return await self._session(cp_id).op_set_config(key, value)


class OcppLink:
    """The stack's link to one charger connector through the CSMS.

    Args:
        csms: The CSMS the charger is connected to.
        cp_id: Charge point identity.
        connector: Connector (EVSE) number.
    """

    def __init__(self, csms: Csms, cp_id: str, connector: int = 1) -> None:
        self.csms = csms
        self.cp_id = cp_id
        self.connector = connector

    async def set_power_limit(self, p_kw: float | None) -> CommandResult:
        """Cap the connector's power [kW]; ``None`` lifts the cap."""
        return await self.csms.set_power_limit(self.cp_id, self.connector, p_kw)

    async def start(self) -> CommandResult:
        """Start charging (remote start)."""
        return await self.csms.remote_start(self.cp_id, self.connector)

    async def stop(self) -> CommandResult:
        """Stop charging (remote stop of the running transaction)."""
        return await self.csms.remote_stop(self.cp_id, self.connector)

    async def set_availability(self, available: bool) -> CommandResult:
        """Make the connector operative or inoperative."""
        return await self.csms.change_availability(self.cp_id, self.connector, available)

    async def read(self) -> ChargerReading:
        """Latest state the CSMS holds for the connector."""
        return self.csms.read(self.cp_id, self.connector)
