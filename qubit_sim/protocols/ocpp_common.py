"""OCPP wire helpers shared by the charge point twins and the CSMS.

* Versions, websocket subprotocols and the UTC <-> simulation-time mapping (timestamps on the wire
  are derived from simulated seconds, never from the wall clock).
* The quantisation the wire imposes on limits (0.1 W / 0.1 A), exposed so in-process links can apply
  the same rounding.
* :class:`RobustRouting`, a mixin for ``ocpp`` ``ChargePoint`` classes that answers malformed
  frames with the CALLERROR the specification asks for instead of dropping them, answers a CALL
  it has no handler for with the code OCPP-J prescribes (:func:`unhandled_call_error`), and keeps
  the receive loop alive whatever a peer sends; given an :class:`OcppTraffic` it counts the
  frames it receives. The charge point twins and the CSMS both route through it.
* :func:`inline_validation`, which has the library validate messages in the event loop's thread.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import math
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from ocpp import messages as ocpp_messages
from ocpp.exceptions import InternalError, OCPPError
from ocpp.messages import Call, CallError, CallResult
from ocpp.v16.enums import Action as Action16
from ocpp.v201.enums import Action as Action201

__all__ = [
    "DEFAULT_EPOCH",
    "SUBPROTOCOLS",
    "VERSIONS",
    "FrameError",
    "OcppTraffic",
    "RobustRouting",
    "basic_auth_header",
    "check_version",
    "error_code",
    "inline_validation",
    "iso_to_sim",
    "parse_frame",
    "parse_iso",
    "quantize_kw",
    "quantize_limit",
    "sim_to_iso",
    "unhandled_call_error",
    "version_of_subprotocol",
]

LOGGER = logging.getLogger("qubit_sim.ocpp")

#: Supported OCPP versions, newest first (the order a server prefers them in).
VERSIONS: tuple[str, ...] = ("2.0.1", "1.6")

#: Websocket subprotocol of each version.
SUBPROTOCOLS: dict[str, str] = {"1.6": "ocpp1.6", "2.0.1": "ocpp2.0.1"}

#: Scenario start used when none is given: the UTC instant of simulation second 0.
DEFAULT_EPOCH = datetime(2025, 1, 1, tzinfo=UTC)


def check_version(version: str) -> str:
    """Return ``version`` if supported, else raise :class:`ValueError` naming the choices."""
    if version not in SUBPROTOCOLS:
        raise ValueError(f"OCPP version {version!r} is not supported; use one of {list(VERSIONS)}")
    return version


def version_of_subprotocol(subprotocol: str | None) -> str | None:
    """OCPP version of a negotiated websocket subprotocol (``"ocpp1.6"`` -> ``"1.6"``)."""
    for version, name in SUBPROTOCOLS.items():
        if name == subprotocol:
            return version
    return None


def sim_to_iso(start_utc: datetime, t_s: float) -> str:
    """ISO 8601 UTC timestamp (``...Z``) of simulation time ``t_s`` [s]."""
    instant = start_utc + timedelta(seconds=float(t_s))
    text = instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")
    return text[:-3] + "Z"


def parse_iso(text: str) -> datetime:
    """Parse an ISO 8601 timestamp; a naive one is taken as UTC.

    Raises:
        ValueError: naming the text when it is not a timestamp.
    """
    if not isinstance(text, str):
        raise ValueError(f"timestamp {text!r} is not a string")
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    try:
        instant = datetime.fromisoformat(value)
    except ValueError as exc:
        raise ValueError(
            f"cannot read timestamp {text!r}; expected ISO 8601 like '2025-01-01T00:00:00Z'"
        ) from exc
    if instant.tzinfo is None:
        instant = instant.replace(tzinfo=UTC)
    return instant


def iso_to_sim(start_utc: datetime, text: str) -> float:
    """Simulation time [s] of an ISO 8601 timestamp."""
    return (parse_iso(text) - start_utc).total_seconds()


def quantize_limit(value: float) -> float:
    """Round a limit [W or A] to the 0.1 step OCPP 1.6 allows (``multipleOf 0.1``)."""
    if not math.isfinite(value):
        raise ValueError(f"limit {value!r} is not a finite number")
    return round(round(value * 10.0) / 10.0, 1)


def quantize_kw(p_kw: float) -> float:
    """A power limit [kW] as it arrives after the wire: rounded to 0.1 W."""
    return quantize_limit(p_kw * 1000.0) / 1000.0


@contextlib.contextmanager
def inline_validation() -> Iterator[None]:
    """While inside, the ``ocpp`` library validates each message in the event loop's thread.

    By default it hands every schema validation to the loop's executor and awaits it: a
    thread-safe callback and a wake-up of the loop per message, which cost a fifth of the CPU of
    a site with a thousand charge points when the validation itself runs inline anyway (as in
    the simulations' loops). Messages are validated exactly as before. The switch is the
    library's own and global to the process, so it is restored on the way out.
    """
    before = ocpp_messages.ASYNC_VALIDATION
    ocpp_messages.ASYNC_VALIDATION = False
    try:
        yield
    finally:
        ocpp_messages.ASYNC_VALIDATION = before


def basic_auth_header(identity: str, password: str) -> str:
    """HTTP ``Authorization`` header value for OCPP security profile 1/2 (basic auth)."""
    token = base64.b64encode(f"{identity}:{password}".encode()).decode("ascii")
    return f"Basic {token}"


# Error codes differ in spelling between versions (1.6 has the 'FormationViolation' typo).
_CODES: dict[str, dict[str, str]] = {
    "1.6": {
        "format": "FormationViolation",
        "rpc": "ProtocolError",
        "message_type": "PropertyConstraintViolation",
    },
    "2.0.1": {
        "format": "FormatViolation",
        "rpc": "RpcFrameworkError",
        "message_type": "MessageTypeNotSupported",
    },
}


#: The actions each version defines (a CALL naming another action is not known to us).
_ACTIONS: dict[str, frozenset[str]] = {
    "1.6": frozenset(action.value for action in Action16),
    "2.0.1": frozenset(action.value for action in Action201),
}

# OCPP-J 1.6 §4.2.3 table 7 and 2.0.1 part 4 §4.3 word these two alike.
_NOT_KNOWN = "Requested Action is not known by receiver"
_NOT_SUPPORTED = "Requested Action is recognized but not supported by the receiver"


def unhandled_call_error(call: Call, version: str) -> CallError:
    """The CALLERROR answering a CALL that has no handler.

    An action the version does not define is *not known* (``NotImplemented``); one it defines
    but this side does not handle is *recognized but not supported* (``NotSupported``). The
    ``ocpp`` library (2.1.0, ``ChargePoint._handle_call``) answers the other way round.
    """
    if call.action in _ACTIONS[version]:
        code, description = "NotSupported", _NOT_SUPPORTED
        cause = f"{call.action} is not supported by this OCPP {version} endpoint"
    else:
        code, description = "NotImplemented", _NOT_KNOWN
        cause = f"{call.action!r} is not an OCPP {version} action"
    return CallError(call.unique_id, code, description, {"cause": cause})


def error_code(kind: str, version: str) -> str:
    """CALLERROR code of a frame-level problem (``format``, ``rpc``, ``message_type``)."""
    return _CODES[version][kind]


class FrameError(Exception):
    """A frame that is not a valid OCPP-J RPC message.

    Attributes:
        unique_id: Message id to answer with (``"-1"`` when it cannot be read).
        code: CALLERROR code, or ``None`` when the frame must not be answered (a broken reply).
        description: Human-readable reason.
    """

    def __init__(self, unique_id: str, code: str | None, description: str) -> None:
        super().__init__(description)
        self.unique_id = unique_id
        self.code = code
        self.description = description

    def to_call_error(self) -> CallError:
        """The CALLERROR answering this frame."""
        return CallError(self.unique_id, self.code, self.description, {})


def parse_frame(raw: str | bytes, version: str) -> Call | CallResult | CallError:
    """Parse one websocket message into an OCPP-J RPC frame.

    A frame whose message id cannot be read (not UTF-8, not JSON, not an array) is answered
    with id ``"-1"``: in 2.0.1 with ``RpcFrameworkError`` (part 4: "MessageId could not be
    read"); 1.6 has no such code and says ``FormationViolation`` for a frame that is not JSON.

    Raises:
        FrameError: when the frame is malformed; ``code`` says how to answer.
    """
    unreadable = error_code("format" if version == "1.6" else "rpc", version)
    if isinstance(raw, bytes | bytearray):
        try:
            raw = bytes(raw).decode("utf-8")
        except UnicodeDecodeError:
            raise FrameError("-1", unreadable, "frame is not UTF-8") from None
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        raise FrameError("-1", unreadable, "frame is not valid JSON") from None
    if not isinstance(data, list) or not data:
        raise FrameError("-1", error_code("rpc", version), "frame is not a non-empty JSON array")
    type_id = data[0]
    unique_id = data[1] if len(data) > 1 and isinstance(data[1], str) else "-1"
    if isinstance(type_id, bool) or type_id not in (2, 3, 4):
        raise FrameError(
            unique_id, error_code("message_type", version), f"unknown MessageTypeId {type_id!r}"
        )
    if type_id == 2:
        if len(data) != 4 or not isinstance(data[1], str) or not isinstance(data[2], str):
            raise FrameError(
                unique_id,
                error_code("rpc", version),
                "a CALL is [2, <uniqueId: string>, <action: string>, <payload: object>]",
            )
        if not isinstance(data[3], dict):
            raise FrameError(unique_id, error_code("format", version), "payload is not an object")
        return Call(data[1], data[2], data[3])
    # A malformed reply cannot be answered (that would be a reply to a reply): drop it.
    if type_id == 3:
        if len(data) != 3 or not isinstance(data[1], str) or not isinstance(data[2], dict):
            raise FrameError(unique_id, None, "malformed CALLRESULT")
        return CallResult(data[1], data[2])
    if len(data) < 4 or not isinstance(data[1], str) or not isinstance(data[2], str):
        raise FrameError(unique_id, None, "malformed CALLERROR")
    details = data[4] if len(data) > 4 and isinstance(data[4], dict) else {}
    description = data[3] if isinstance(data[3], str) else ""
    return CallError(data[1], data[2], description, details)


@dataclass
class OcppTraffic:
    """Frames received by one side of OCPP connections, shared by all of its sessions.

    Every received frame is answered by exactly one frame or answers one the side sent, so the
    frames on the wire are twice the frames received.

    Attributes:
        calls: CALLs received, by action.
        results: CALLRESULTs and CALLERRORs received (answers to the side's own CALLs).
        malformed: Frames that were not valid OCPP-J.
    """

    calls: Counter[str] = field(default_factory=Counter)
    results: int = 0
    malformed: int = 0

    @property
    def received(self) -> int:
        """All frames received."""
        return self.calls.total() + self.results + self.malformed

    def snapshot(self) -> dict[str, int]:
        """``{action: count}`` of the CALLs plus ``"results"`` and ``"malformed"``."""
        return {**self.calls, "results": self.results, "malformed": self.malformed}


class RobustRouting:
    """Mixin for ``ocpp`` ``ChargePoint`` subclasses: answer every malformed frame.

    The library logs and drops frames it cannot parse, and an unexpected exception while routing
    ends its receive loop. This routing replies with the CALLERROR of the negotiated version
    (``"-1"`` as id when the frame's id cannot be read), never raises out of the loop for a bad
    frame, and only lets connection errors through. A CALL without an ``@on`` handler is
    answered by :func:`unhandled_call_error` before the library sees it.

    Attributes:
        traffic: Where received frames are counted (``None``: not counted).
    """

    _ocpp_version: str
    traffic: OcppTraffic | None = None

    async def route_message(self, raw_msg: Any) -> None:  # noqa: D401 - overrides the library
        """Route one received frame (overrides ``ocpp.charge_point.ChargePoint``)."""
        from websockets.exceptions import ConnectionClosed

        try:
            msg = parse_frame(raw_msg, self._ocpp_version)
        except FrameError as error:
            if self.traffic is not None:
                self.traffic.malformed += 1
            LOGGER.warning("%s: bad frame (%s)", getattr(self, "id", "?"), error.description)
            if error.code is not None:
                await self._send(error.to_call_error().to_json())  # type: ignore[attr-defined]
            return
        if isinstance(msg, Call):
            if self.traffic is not None:
                self.traffic.calls[msg.action] += 1
            handlers = self.route_map.get(msg.action)  # type: ignore[attr-defined]
            if handlers is None or "_on_action" not in handlers:
                reply = unhandled_call_error(msg, self._ocpp_version)
                await self._send(reply.to_json())  # type: ignore[attr-defined]
                return
            try:
                await self._handle_call(msg)  # type: ignore[attr-defined]
            except ConnectionClosed:
                raise
            except OCPPError as error:
                reply = msg.create_call_error(error)
                if self._ocpp_version == "1.6" and reply.error_code == "FormatViolation":
                    reply.error_code = "FormationViolation"
                await self._send(reply.to_json())  # type: ignore[attr-defined]
            except Exception:
                LOGGER.exception("%s: handler for %s failed", getattr(self, "id", "?"), msg.action)
                reply = msg.create_call_error(InternalError())
                await self._send(reply.to_json())  # type: ignore[attr-defined]
            return
        if self.traffic is not None:
            self.traffic.results += 1
        self._response_queue.put_nowait(msg)  # type: ignore[attr-defined]
