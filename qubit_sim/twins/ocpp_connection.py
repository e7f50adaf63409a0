"""The charge point's side of the websocket: connect, boot, queue, send, reconnect.

:class:`ChargePointConnection` knows nothing about chargers. It opens the websocket with the
version's subprotocol (and basic auth / TLS when configured), boots, sends queued messages in
order and waits for each answer. When the connection drops it reconnects with exponential
back-off measured in *simulated* seconds; transaction messages stay queued meanwhile, other
messages are not queued (the state they carry is re-sent after the reconnect).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import websockets
from ocpp.exceptions import OCPPError
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

from qubit_sim.errors import ProtocolError
from qubit_sim.protocols.ocpp_common import SUBPROTOCOLS, basic_auth_header, check_version
from qubit_sim.twins.ocpp_config import TwinConfig
from qubit_sim.twins.ocpp_tx import Codec

__all__ = ["ChargePointConnection", "Offline"]

LOGGER = logging.getLogger("qubit_sim.twins.ocpp")


class Offline(Exception):
    """The connection is gone; a queued message stays queued."""


@dataclass
class _Outgoing:
    build: Callable[[], Any]
    on_result: Callable[[Any], None] | None
    tx_related: bool
    offline: bool
    # Built once, on the first attempt, so a re-send after a lost answer is the same message.
    payload: Any = None
    #: Simulated time [s] from which the message may go out (added latency).
    due_s: float = -math.inf


class ChargePointConnection:
    """Websocket session management of a charge point.

    Args:
        identity: Charge point identity (last path segment of the URL).
        csms_url: CSMS URL without the identity.
        version: ``"1.6"`` or ``"2.0.1"``.
        clock: Current simulated time [s].
        codec: Message builders of the version.
        config: Configuration (the heartbeat interval is updated at boot).
        password: Basic-auth password, or ``None``.
        ssl_context: TLS context for ``wss://``.
        response_timeout_s: Wall-clock wait for an answer [s].
        backoff_initial_s: First reconnect delay [s, simulated].
        backoff_max_s: Cap of the reconnect delay [s, simulated].
        rng: Optional jitter source for the back-off.
    """

    def __init__(
        self,
        identity: str,
        csms_url: str,
        *,
        version: str,
        clock: Callable[[], float],
        codec: Codec,
        config: TwinConfig,
        password: str | None = None,
        ssl_context: Any = None,
        response_timeout_s: float = 10.0,
        backoff_initial_s: float = 1.0,
        backoff_max_s: float = 60.0,
        rng: np.random.Generator | None = None,
    ) -> None:
        self.version = check_version(version)
        if not identity or "/" in identity:
            raise ValueError(f"charge point identity {identity!r} must be non-empty without '/'")
        self.identity = identity
        self.url = csms_url.rstrip("/") + "/" + identity
        self.codec = codec
        self.config = config
        self._clock = clock
        self._password = password
        self._ssl = ssl_context
        self._response_timeout_s = response_timeout_s
        self._backoff = (float(backoff_initial_s), float(backoff_max_s))
        self._rng = rng
        #: Problems met on the wire (CALLERRORs received, messages dropped), newest last.
        self.errors: deque[str] = deque(maxlen=1000)
        #: Number of websocket connections opened so far.
        self.connects = 0
        #: Simulated times [s] of the automatic reconnection attempts.
        self.attempts: list[float] = []
        self._ws: Any = None
        self._session: Any = None
        self._recv_task: asyncio.Task[None] | None = None
        self._closed = asyncio.Event()
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._outbox: deque[_Outgoing] = deque()
        self._booted = False
        self._boot_reason = "PowerUp"
        self._next_boot_s = -math.inf
        self._next_heartbeat_s = math.inf
        self._next_attempt_s = -math.inf
        self._failures = 0
        #: Injected faults: queued messages go out this many simulated seconds late, and each
        #: is lost with ``loss_probability`` (drawn from ``loss_rng``).
        self.send_delay_s = 0.0
        self.loss_probability = 0.0
        self.loss_rng: np.random.Generator | None = None
        #: Messages lost by fault injection: dropped (not transactional) / sent again.
        self.lost = {"dropped": 0, "resent": 0}

    # -- hooks for the charge point logic --------------------------------------------------

    def _make_session(self, ws: Any) -> Any:
        """The ``ocpp`` ChargePoint subclass answering the CSMS on ``ws``."""
        raise NotImplementedError

    def _on_booted(self, now: float) -> None:
        """Called once the CSMS accepted the BootNotification (queue the statuses here)."""

    def _on_lost(self) -> None:
        """Called when the connection is gone."""

    # -- state -----------------------------------------------------------------------------

    def now(self) -> float:
        """Current simulated time [s]."""
        return float(self._clock())

    @property
    def online(self) -> bool:
        """Whether the websocket is open."""
        return self._session is not None

    @property
    def booted(self) -> bool:
        """Whether the CSMS accepted the BootNotification."""
        return self._booted

    @property
    def queued(self) -> int:
        """Messages waiting to be sent."""
        return len(self._outbox)

    # -- connection ------------------------------------------------------------------------

    async def connect(self) -> None:
        """Open the websocket and boot.

        Raises:
            ProtocolError: when the CSMS cannot be reached or refuses the connection.
        """
        async with self._lock:
            await self._open()
            await self._after_open(self.now())

    async def close(self) -> None:
        """Close the connection (queued messages are kept)."""
        async with self._lock:
            await self._drop_connection()

    async def _open(self) -> None:
        headers = {}
        if self._password is not None:
            headers["Authorization"] = basic_auth_header(self.identity, self._password)
        wanted = SUBPROTOCOLS[self.version]
        try:
            ws = await websockets.connect(
                self.url,
                subprotocols=[wanted],  # type: ignore[list-item]
                additional_headers=headers,
                ssl=self._ssl,
                open_timeout=self._response_timeout_s,
                # A lock-step tick must not hang on a peer that ignores the closing handshake.
                close_timeout=min(2.0, self._response_timeout_s),
                max_size=2**20,
            )
        except InvalidStatus as exc:
            code = exc.response.status_code
            hint = "; check the basic-auth password" if code == 401 else ""
            raise ProtocolError(
                f"CSMS at {self.url} refused charge point {self.identity!r} with HTTP {code}{hint}"
            ) from None
        except (OSError, TimeoutError, WebSocketException) as exc:
            raise ProtocolError(f"cannot connect to the CSMS at {self.url}: {exc}") from None
        if ws.subprotocol != wanted:
            await ws.close()
            raise ProtocolError(
                f"CSMS at {self.url} did not accept subprotocol {wanted!r} (got {ws.subprotocol!r})"
            )
        self._ws = ws
        self._session = self._make_session(ws)
        self._closed = asyncio.Event()
        self._recv_task = asyncio.create_task(self._receive(self._session, self._closed))
        self.connects += 1

    async def _receive(self, session: Any, closed: asyncio.Event) -> None:
        try:
            await session.start()
        except ConnectionClosed:
            pass
        except Exception:  # the session must end cleanly whatever broke the loop
            LOGGER.exception("%s: receive loop failed", self.identity)
        finally:
            closed.set()
            if self._session is session:
                self._lost()

    def _lost(self) -> None:
        self._session = None
        self._ws = None
        self._failures = 0
        self._next_attempt_s = self.now() + self._delay()
        self._on_lost()

    def _delay(self) -> float:
        initial, cap = self._backoff
        delay = min(cap, initial * 2.0**self._failures)
        if self._rng is not None:
            delay *= float(self._rng.uniform(0.5, 1.0))
        return delay

    async def _drop_connection(self) -> None:
        session, ws, task = self._session, self._ws, self._recv_task
        self._session = None
        self._ws = None
        if ws is not None:
            with contextlib.suppress(Exception):
                await ws.close()
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if session is not None:
            self._lost()

    async def _try_connect(self, now: float) -> None:
        self.attempts.append(now)
        try:
            await self._open()
        except ProtocolError as exc:
            LOGGER.info("%s: %s", self.identity, exc)
            self._failures += 1
            self._next_attempt_s = now + self._delay()
            return
        await self._after_open(now)

    async def _after_open(self, now: float) -> None:
        self._failures = 0
        if not self._booted:
            await self._boot(now)
        else:
            await self._flush()

    async def _boot(self, now: float) -> None:
        try:
            result = await self._call(self.codec.boot(self._boot_reason))
        except Offline:
            return
        except OCPPError as exc:
            self.errors.append(f"BootNotification: {exc}")
            self._next_boot_s = now + 60.0
            return
        status, interval = self.codec.boot_result(result)
        if status != "Accepted":
            self._next_boot_s = now + (interval if interval > 0 else 60.0)
            return
        self._booted = True
        self._boot_reason = "PowerUp"
        if interval > 0:
            self.config.put("heartbeat_interval_s", int(interval))
        self._next_heartbeat_s = now + self.config["heartbeat_interval_s"]
        self._on_booted(now)
        await self._flush()

    async def _call(self, payload: Any) -> Any:
        session, closed = self._session, self._closed
        if session is None:
            raise Offline
        task = asyncio.ensure_future(session.call(payload, suppress=False))
        waiter = asyncio.ensure_future(closed.wait())
        done, _ = await asyncio.wait(
            {task, waiter}, timeout=self._response_timeout_s, return_when=asyncio.FIRST_COMPLETED
        )
        waiter.cancel()
        if task in done:
            try:
                return task.result()
            except (ConnectionClosed, TimeoutError):
                await self._drop_connection()
                raise Offline from None
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        # No answer in time: the link is unusable, start over (the message stays queued).
        await self._drop_connection()
        raise Offline

    def release_delayed(self) -> None:
        """Let every queued message go out at the next flush, however late it was to be."""
        self.send_delay_s = 0.0
        for item in self._outbox:
            item.due_s = -math.inf

    def _lost_now(self) -> bool:
        if self.loss_probability <= 0.0 or self.loss_rng is None:
            return False
        return bool(self.loss_rng.random() < self.loss_probability)

    async def _keep_alive(self, now: float) -> None:
        """Reconnect or re-boot when due, and queue the heartbeat when due."""
        if self._session is None and now >= self._next_attempt_s:
            await self._try_connect(now)
        elif self._session is not None and not self._booted and now >= self._next_boot_s:
            await self._boot(now)
        if self._booted and self.online and now >= self._next_heartbeat_s:
            self._enqueue(self.codec.heartbeat, tx_related=False)
            self._next_heartbeat_s = now + self.config["heartbeat_interval_s"]

    # -- message queue ---------------------------------------------------------------------

    def _enqueue(
        self,
        build: Callable[[], Any],
        *,
        tx_related: bool,
        on_result: Callable[[Any], None] | None = None,
    ) -> None:
        sendable = self.online and self._booted
        if not tx_related and not sendable:
            return  # state messages are re-sent after reconnect; only transactions queue
        due_s = self.now() + self.send_delay_s if self.send_delay_s > 0 else -math.inf
        self._outbox.append(
            _Outgoing(build, on_result, tx_related, offline=not sendable, due_s=due_s)
        )
        self._wake.set()

    async def _flush(self) -> None:
        while self._outbox and self._session is not None and self._booted:
            item = self._outbox[0]
            if item.due_s > self.now():
                return  # delayed: later messages wait behind it, order is kept
            if item.payload is None:
                item.payload = item.build()
                if item.payload is None:
                    self._outbox.popleft()
                    continue
                if item.offline and hasattr(item.payload, "offline"):
                    item.payload.offline = True
            lost = self._lost_now()
            if lost and not item.tx_related:
                self._outbox.popleft()
                self.lost["dropped"] += 1
                continue
            try:
                result = await self._call(item.payload)
                if lost:
                    # The answer was lost: the queue sends the same message again, and the
                    # CSMS treats the repeat idempotently.
                    self.lost["resent"] += 1
                    result = await self._call(item.payload)
            except Offline:
                return
            except OCPPError as exc:
                self._outbox.popleft()
                self.errors.append(f"{type(item.payload).__name__}: {exc}")
                continue
            self._outbox.popleft()
            if item.on_result is not None:
                item.on_result(result)
