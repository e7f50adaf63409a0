"""Typed, synchronous event bus of the coordination layer.

Eight event types (Qubit L4 contract). Each :class:`Event` carries a frozen payload whose class is
fixed by the type:

======================================================  ========================
type                                                    payload
======================================================  ========================
COMMAND_CREATED, _DISPATCHED, _ACKNOWLEDGED, _COMPLETED  :class:`CommandEventData`
COMMAND_FAILED, COMMAND_TIMED_OUT                       :class:`CommandEventData`
STATE_CHANGED                                           :class:`StateChangedData`
SCHEDULE_RECEIVED                                       :class:`ScheduleReceivedData`
======================================================  ========================

``COMMAND_FAILED`` and ``COMMAND_TIMED_OUT`` are published for *every* failed or unanswered
attempt; ``data.final`` tells whether the command is finished or a retry is scheduled
(``data.next_attempt_at``). A cancelled command has no event type of its own in the contract: it is
published as ``COMMAND_FAILED`` with ``data.state == CANCELLED`` and the reason in ``data.error``.

Handler errors: :meth:`EventBus.publish` runs *every* matching handler even if one raises, then
raises :class:`EventHandlerError` listing all failures. A simulator must not lose errors silently,
and a log line would be easy to miss in a long run. Publishers change their own state *before*
publishing, so an exception from a handler never leaves a command or state machine half-updated.
"""

from __future__ import annotations

import enum
import itertools
import json
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from qubit_sim.stack.coordinate.commands import Command, CommandState, CommandType
from qubit_sim.stack.coordinate.errors import CoordinationError, EventHandlerError
from qubit_sim.stack.coordinate.timebase import iso_z, to_utc

__all__ = [
    "COMMAND_EVENT_TYPES",
    "CommandEventData",
    "Event",
    "EventBus",
    "EventHandler",
    "EventLog",
    "EventPayload",
    "EventType",
    "ScheduleReceivedData",
    "StateChangedData",
    "Subscription",
    "to_record",
]


class EventType(StrEnum):
    """The eight coordination event types."""

    COMMAND_CREATED = "COMMAND_CREATED"
    COMMAND_DISPATCHED = "COMMAND_DISPATCHED"
    COMMAND_ACKNOWLEDGED = "COMMAND_ACKNOWLEDGED"
    COMMAND_COMPLETED = "COMMAND_COMPLETED"
    COMMAND_FAILED = "COMMAND_FAILED"
    COMMAND_TIMED_OUT = "COMMAND_TIMED_OUT"
    STATE_CHANGED = "STATE_CHANGED"
    SCHEDULE_RECEIVED = "SCHEDULE_RECEIVED"


COMMAND_EVENT_TYPES: frozenset[EventType] = frozenset(
    t for t in EventType if t.value.startswith("COMMAND_")
)


@dataclass(frozen=True)
class CommandEventData:
    """Snapshot of a command at the moment of a ``COMMAND_*`` event.

    Attributes:
        command_id: The command.
        command_type: What it asks.
        state: State after the event.
        previous_state: State before it; ``None`` on creation.
        value_kw: Power magnitude [kW] for setpoint commands.
        available: Target availability for ``CHANGE_AVAILABILITY``.
        scheduled_at: Planned dispatch time (UTC).
        attempts: Deliveries made so far.
        max_retries: Retries allowed after the first attempt.
        priority: 1 = normal, higher = more urgent.
        next_attempt_at: Scheduled retry time, if a retry is pending.
        error: Error text or cancellation reason.
        final: True when the command is in a final state.
        schedule_key: Schedule key it came from (``"ev_001"``, ``"battery"``), if any.
    """

    command_id: str
    command_type: CommandType
    state: CommandState
    previous_state: CommandState | None
    value_kw: float | None
    available: bool | None
    scheduled_at: datetime
    attempts: int
    max_retries: int
    priority: int
    next_attempt_at: datetime | None
    error: str | None
    final: bool
    schedule_key: str | None = None

    @classmethod
    def from_command(
        cls, command: Command, previous_state: CommandState | None = None
    ) -> CommandEventData:
        """Freeze the current fields of ``command``."""
        return cls(
            command_id=command.command_id,
            command_type=command.type,
            state=command.state,
            previous_state=previous_state,
            value_kw=command.value_kw,
            available=command.available,
            scheduled_at=command.scheduled_at,
            attempts=command.attempts,
            max_retries=command.max_retries,
            priority=command.priority,
            next_attempt_at=command.next_attempt_at,
            error=command.error,
            final=command.is_terminal,
            schedule_key=command.schedule_key,
        )


@dataclass(frozen=True)
class StateChangedData:
    """An asset state machine moved (mirrors one history entry)."""

    from_state: str
    to_state: str
    trigger: str


@dataclass(frozen=True)
class ScheduleReceivedData:
    """An L3 schedule was turned into commands.

    Attributes:
        site_id: Site the coordinator serves.
        start: First slot start (UTC).
        end: Last slot start (UTC).
        n_slots: Rows in the schedule.
        asset_ids: Assets the schedule addresses, sorted.
        columns_used: Columns that produced commands.
        columns_ignored: Other columns (totals, prices, forecasts).
        n_commands: Commands created.
        n_cancelled: Pending commands of a previous schedule cancelled by this one.
    """

    site_id: str
    start: datetime
    end: datetime
    n_slots: int
    asset_ids: tuple[str, ...]
    columns_used: tuple[str, ...]
    columns_ignored: tuple[str, ...]
    n_commands: int
    n_cancelled: int


EventPayload = CommandEventData | StateChangedData | ScheduleReceivedData

_PAYLOAD_OF: dict[EventType, type] = {t: CommandEventData for t in COMMAND_EVENT_TYPES}
_PAYLOAD_OF[EventType.STATE_CHANGED] = StateChangedData
_PAYLOAD_OF[EventType.SCHEDULE_RECEIVED] = ScheduleReceivedData


@dataclass(frozen=True)
class Event:
    """One coordination event.

    Attributes:
        type: Event type.
        time: Simulated instant (timezone-aware, normalised to UTC).
        asset_id: Asset concerned; ``None`` for site-level events (``SCHEDULE_RECEIVED``).
        data: Payload; its class must match ``type`` (see the module table).
    """

    type: EventType
    time: datetime
    asset_id: str | None
    data: EventPayload

    def __post_init__(self) -> None:
        try:
            event_type = EventType(self.type)
        except ValueError as exc:
            raise CoordinationError(f"unknown event type {self.type!r}") from exc
        object.__setattr__(self, "type", event_type)
        object.__setattr__(self, "time", to_utc(self.time, what=f"{event_type} event time"))
        expected = _PAYLOAD_OF[event_type]
        if not isinstance(self.data, expected):
            raise CoordinationError(
                f"{event_type} events carry {expected.__name__}, got {type(self.data).__name__}"
            )


EventHandler = Callable[[Event], None]


@dataclass(frozen=True)
class Subscription:
    """Handle returned by :meth:`EventBus.subscribe`; pass it to :meth:`EventBus.unsubscribe`."""

    token: int
    event_type: EventType | None
    handler: EventHandler


class EventBus:
    """Synchronous typed publish/subscribe.

    Handlers run in registration order, wildcard (``event_type=None``) and typed subscriptions
    interleaved as they were registered, on the publisher's call stack. A handler may publish
    further events (they are delivered depth-first) and may (un)subscribe; changes take effect
    from the next publish. See the module docstring for the error policy.
    """

    def __init__(self) -> None:
        self._subscriptions: list[Subscription] = []
        self._tokens = itertools.count(1)

    def subscribe(self, event_type: EventType | None, handler: EventHandler) -> Subscription:
        """Call ``handler(event)`` for every event of ``event_type`` (``None``: every event)."""
        if event_type is not None:
            try:
                event_type = EventType(event_type)
            except ValueError as exc:
                valid = ", ".join(t.value for t in EventType)
                raise CoordinationError(
                    f"cannot subscribe to {event_type!r}: not an event type ({valid}, or None "
                    "for all)"
                ) from exc
        if not callable(handler):
            raise CoordinationError(f"handler {handler!r} is not callable")
        subscription = Subscription(next(self._tokens), event_type, handler)
        self._subscriptions.append(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> bool:
        """Remove a subscription; returns False if it was not (or no longer) registered."""
        for index, existing in enumerate(self._subscriptions):
            if existing.token == subscription.token:
                del self._subscriptions[index]
                return True
        return False

    def handler_count(self, event_type: EventType | None = None) -> int:
        """Handlers that would receive an event of ``event_type`` (``None``: all subscriptions)."""
        if event_type is None:
            return len(self._subscriptions)
        return sum(s.event_type in (None, event_type) for s in self._subscriptions)

    def publish(self, event: Event) -> None:
        """Deliver ``event`` to every matching handler, in registration order.

        Raises:
            EventHandlerError: after all handlers ran, if any raised.
        """
        if not isinstance(event, Event):
            raise CoordinationError(f"publish() takes an Event, got {type(event).__name__}")
        failures: list[tuple[str, BaseException]] = []
        for subscription in tuple(self._subscriptions):
            if subscription.event_type is not None and subscription.event_type is not event.type:
                continue
            try:
                subscription.handler(event)
            except Exception as exc:  # collected and re-raised once every handler ran
                failures.append((_handler_name(subscription.handler), exc))
        if failures:
            raise EventHandlerError(event.type.value, failures) from failures[0][1]


def _handler_name(handler: EventHandler) -> str:
    return getattr(handler, "__qualname__", None) or type(handler).__name__


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso_z(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, tuple | list):
        return [_jsonable(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def to_record(event: Event) -> dict[str, Any]:
    """JSON-able dict of ``event``: ``{"type", "time" (ISO Z), "asset_id", "data"}``.

    Enums become their names, datetimes ISO 8601 UTC text with ``Z``, tuples lists.
    """
    data = {f.name: _jsonable(getattr(event.data, f.name)) for f in fields(event.data)}
    return {
        "type": event.type.value,
        "time": iso_z(event.time),
        "asset_id": event.asset_id,
        "data": data,
    }


class EventLog:
    """Bus subscriber that keeps every event's record, in publish order.

    ``EventLog.attach(bus)`` subscribes it to all events; :meth:`write_jsonl` writes the run's
    events file (one JSON object per line).
    """

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    @classmethod
    def attach(cls, bus: EventBus) -> EventLog:
        """A new log subscribed to every event of ``bus``."""
        log = cls()
        bus.subscribe(None, log)
        return log

    def __call__(self, event: Event) -> None:
        self.records.append(to_record(event))

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.records)

    def of_type(self, event_type: EventType) -> list[dict[str, Any]]:
        """Records of one type, in order."""
        return [r for r in self.records if r["type"] == event_type.value]

    def write_jsonl(self, path: str | Path) -> Path:
        """Write every record as one JSON line; returns the path."""
        target = Path(path)
        with target.open("w", encoding="utf-8") as handle:
            for record in self.records:
                handle.write(json.dumps(record, allow_nan=False, separators=(",", ":")) + "\n")
        return target
