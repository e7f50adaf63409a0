"""Errors of the coordination layer (L4).

All of them derive from :class:`CoordinationError`, itself a
:class:`~qubit_sim.errors.QubitSimError`.
:class:`LinkError` is also a :class:`~qubit_sim.errors.ProtocolError`, because a failed link call is
a device that did not answer or refused.
"""

from __future__ import annotations

from collections.abc import Sequence

from qubit_sim.errors import ProtocolError, QubitSimError

__all__ = [
    "CommandError",
    "CoordinationError",
    "EventHandlerError",
    "InvalidTransition",
    "LinkError",
    "LinkNotFoundError",
    "ScheduleError",
    "StateMachineError",
    "TimeBaseError",
]


class CoordinationError(QubitSimError):
    """Root of every error raised by ``qubit_sim.stack.coordinate``."""


class TimeBaseError(CoordinationError):
    """A time value could not be placed on the UTC time line (naive datetime, missing epoch)."""


class EventHandlerError(CoordinationError):
    """One or more event handlers raised while an event was published.

    Every other handler still ran; the failures are in :attr:`failures` as ``(handler name,
    exception)`` pairs and the first exception is chained as ``__cause__``.
    """

    def __init__(self, event_type: str, failures: Sequence[tuple[str, BaseException]]) -> None:
        self.event_type = event_type
        self.failures: list[tuple[str, BaseException]] = list(failures)
        detail = "; ".join(f"{name}: {type(exc).__name__}: {exc}" for name, exc in self.failures)
        count = len(self.failures)
        super().__init__(
            f"{count} handler{'s' if count != 1 else ''} failed on {event_type} "
            f"(the other handlers ran): {detail}"
        )


class StateMachineError(CoordinationError):
    """A state machine was declared inconsistently or used without a time source."""


class InvalidTransition(StateMachineError):
    """A trigger is not allowed in the machine's current state.

    Attributes:
        asset_id: The machine's asset.
        current_state: State the machine is in (unchanged).
        trigger: The rejected trigger.
        valid_triggers: Triggers allowed in ``current_state``, in declaration order.
    """

    def __init__(
        self, asset_id: str, current_state: str, trigger: str, valid_triggers: Sequence[str]
    ) -> None:
        self.asset_id = asset_id
        self.current_state = current_state
        self.trigger = trigger
        self.valid_triggers: list[str] = list(valid_triggers)
        allowed = ", ".join(self.valid_triggers) if self.valid_triggers else "none"
        super().__init__(
            f"{asset_id}: trigger {trigger!r} is not allowed in state {current_state}; "
            f"valid triggers: {allowed}"
        )


class CommandError(CoordinationError):
    """A command was built with invalid fields or moved through an illegal lifecycle step."""


class ScheduleError(CoordinationError):
    """An L3 schedule table does not follow the column/index contract."""


class LinkError(CoordinationError, ProtocolError):
    """A device link could not deliver a call (transport down, peer gone, malformed answer)."""


class LinkNotFoundError(CoordinationError):
    """No link is registered for an asset id.

    Attributes:
        asset_id: The id that was looked up.
        suggestion: The closest registered id, if one is close.
    """

    def __init__(self, asset_id: str, suggestion: str | None, known: Sequence[str]) -> None:
        self.asset_id = asset_id
        self.suggestion = suggestion
        hint = f"; did you mean {suggestion!r}?" if suggestion else ""
        listing = ", ".join(sorted(known)[:10]) or "none registered"
        super().__init__(
            f"no link registered for asset {asset_id!r}{hint} (known: {listing}); "
            f"register one with LinkRegistry.register({asset_id!r}, link)"
        )
