"""Common ground of the CSMS's per-version sessions: what they need from the server, and
a request helper that never outlives the connection."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, Protocol

from ocpp.exceptions import OCPPError
from websockets.exceptions import ConnectionClosed

from qubit_sim.errors import ProtocolError
from qubit_sim.protocols.ocpp_common import RobustRouting
from qubit_sim.protocols.ocpp_csms_state import CsmsState

__all__ = ["CsmsContext", "CsmsSessionBase", "limit_profile_id"]

#: Profile ids the CSMS uses for its per-connector power limits: base + connector.
_LIMIT_PROFILE_BASE = 9000


def limit_profile_id(connector: int) -> int:
    """Id of the TxDefaultProfile that carries the power limit of ``connector``."""
    return _LIMIT_PROFILE_BASE + connector


class CsmsContext(Protocol):
    """What a session needs from the CSMS server."""

    state: CsmsState
    heartbeat_interval_s: int
    limit_stack_level: int
    response_timeout_s: float

    def now_iso(self) -> str:
        """Current time as an ISO 8601 UTC timestamp."""
        ...

    def authorize(self, id_tag: str) -> str:
        """Authorization status of a token (``Accepted``, ``Invalid``, ...)."""
        ...

    def next_remote_start_id(self) -> int:
        """A fresh 2.0.1 remoteStartId."""
        ...

    def next_request_id(self) -> int:
        """A fresh 2.0.1 requestId (GetBaseReport)."""
        ...


class CsmsSessionBase(RobustRouting):
    """Mixin of the CSMS sessions: :meth:`request` sends one CALL and waits for its answer.

    Attributes:
        server: The CSMS.
        ws: The websocket connection.
        closed: Set when the connection ends; pending requests fail at once.
    """

    server: CsmsContext
    ws: Any
    closed: asyncio.Event
    id: str

    async def request(self, payload: Any) -> Any:
        """Send ``payload`` and return the answer.

        Raises:
            ProtocolError: on a CALLERROR, a timeout or a lost connection, naming the action.
        """
        action = type(payload).__name__
        if self.closed.is_set():
            raise ProtocolError(f"charge point {self.id!r} is not connected; cannot send {action}")
        task = asyncio.ensure_future(self.call(payload, suppress=False))  # type: ignore[attr-defined]
        waiter = asyncio.ensure_future(self.closed.wait())
        timeout = self.server.response_timeout_s
        done, _ = await asyncio.wait(
            {task, waiter}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
        )
        waiter.cancel()
        if task in done:
            try:
                return task.result()
            except OCPPError as exc:
                raise ProtocolError(
                    f"charge point {self.id!r} answered {action} with CALLERROR "
                    f"{type(exc).__name__}: {exc.description}"
                ) from None
            except (ConnectionClosed, TimeoutError):
                raise ProtocolError(
                    f"connection to charge point {self.id!r} lost during {action}"
                ) from None
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        if self.closed.is_set():
            raise ProtocolError(f"connection to charge point {self.id!r} lost during {action}")
        raise ProtocolError(f"charge point {self.id!r} did not answer {action} within {timeout} s")
