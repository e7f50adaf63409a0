"""Command ledger: storage, due-time queue and lifecycle steps of every command of one engine.

The ledger changes command state and queues the matching events; :meth:`CommandLedger.flush`
publishes them. Callers flush once their state change is complete, so a failing event handler
never leaves a command half-moved (see :mod:`.events` for the error policy).
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from datetime import datetime, timedelta

from qubit_sim.stack.coordinate.commands import Command, CommandState, CommandType, retry_delay_s
from qubit_sim.stack.coordinate.config import HOLD_STATES, CoordinatorConfig
from qubit_sim.stack.coordinate.errors import CommandError
from qubit_sim.stack.coordinate.events import (
    CommandEventData,
    Event,
    EventBus,
    EventHandlerError,
    EventType,
)
from qubit_sim.stack.coordinate.timebase import iso_z

__all__ = ["CommandLedger"]

_QueueEntry = tuple[datetime, int, datetime, int, int, str]
StepLog = list[tuple[EventType, str, CommandState]]


class CommandLedger:
    """Every command of one dispatch engine and the rules that move them.

    Args:
        bus: Where queued events are published.
        config: Retry base/back-off, default timeout and retries.
        id_factory: Returns unique ids; default ``cmd_000001``, ``cmd_000002``...
    """

    def __init__(
        self,
        bus: EventBus,
        config: CoordinatorConfig,
        id_factory: Callable[[], str] | None = None,
    ) -> None:
        self.bus = bus
        self.config = config
        self.generation = 0
        self.step_log: StepLog | None = None
        self._id_factory = id_factory
        self._sequence = itertools.count(1)
        self._commands: dict[str, Command] = {}
        self._active: dict[str, dict[str, Command]] = {}
        self._queue: list[_QueueEntry] = []
        self._queue_version: dict[str, int] = {}
        self.in_flight: dict[str, Command] = {}
        self._latest_sent: dict[str, tuple[tuple[int, datetime, int], str]] = {}
        self._outbox: list[Event] = []
        self._n_pending = 0

    # ----------------------------------------------------------------- queries
    def all(self) -> list[Command]:
        """Every command, in creation order."""
        return list(self._commands.values())

    def get(self, command_id: str) -> Command:
        """The command with ``command_id``."""
        try:
            return self._commands[command_id]
        except KeyError:
            raise CommandError(f"no command {command_id!r} in this engine") from None

    def own(self, command: Command | str) -> Command:
        """The ledger's command for an id or object; rejects foreign commands."""
        if isinstance(command, str):
            return self.get(command)
        if self._commands.get(command.command_id) is not command:
            raise CommandError(f"{command.command_id} was not created by this engine")
        return command

    def active(self, asset_id: str) -> list[Command]:
        """Unfinished commands of ``asset_id``, in plan order."""
        return sorted(self._active.get(asset_id, {}).values(), key=lambda c: c.order)

    def pending_count(self) -> int:
        """Number of PENDING commands."""
        return self._n_pending

    def due(
        self, at: datetime, asset_states: dict[str, str]
    ) -> tuple[list[Command], list[Command]]:
        """``(due, held)``: PENDING commands due at ``at``; held ones have their asset in a
        HOLD_STATES state. Ordered by due time, priority (higher first), plan order."""
        popped: list[_QueueEntry] = []
        due: list[Command] = []
        held: list[Command] = []
        while self._queue and self._queue[0][0] <= at:
            entry = heapq.heappop(self._queue)
            command = self._commands[entry[-1]]
            if command.state is not CommandState.PENDING:
                continue  # dispatched or finished since it was queued
            if self._queue_version[command.command_id] != entry[4]:
                continue  # re-queued with a new due time
            popped.append(entry)
            state = asset_states.get(command.asset_id)
            if state in HOLD_STATES and command.type is not CommandType.CHANGE_AVAILABILITY:
                held.append(command)
            else:
                due.append(command)
        for entry in popped:
            heapq.heappush(self._queue, entry)
        return due, held

    # --------------------------------------------------------------- lifecycle
    def new_command(
        self,
        asset_id: str,
        command_type: CommandType,
        scheduled_at: datetime,
        created_at: datetime,
        *,
        value_kw: float | None = None,
        available: bool | None = None,
        priority: int = 1,
        schedule_key: str | None = None,
    ) -> Command:
        """Create, store and queue a PENDING command (queues COMMAND_CREATED)."""
        sequence = next(self._sequence)
        command = Command(
            command_id=self._next_id(sequence),
            asset_id=asset_id,
            type=command_type,
            scheduled_at=scheduled_at,
            value_kw=value_kw,
            available=available,
            max_retries=self.config.max_retries,
            timeout_seconds=self.config.command_timeout_seconds,
            priority=priority,
            schedule_key=schedule_key,
            generation=self.generation,
            sequence=sequence,
            created_at=created_at,
        )
        self._commands[command.command_id] = command
        self._n_pending += 1
        self._active.setdefault(asset_id, {})[command.command_id] = command
        self._enqueue(command)
        self._emit(EventType.COMMAND_CREATED, command, None, created_at)
        return command

    def supersede(self, command: Command, at: datetime) -> bool:
        """Record ``command`` as the asset's newest sent setpoint and cancel older unfinished
        setpoints; if a newer one was already sent, cancel ``command`` instead (returns True)."""
        latest = self._latest_sent.get(command.asset_id)
        if latest is not None and command.order < latest[0]:
            limit, by = latest
        else:
            limit, by = command.order, command.command_id
            self._latest_sent[command.asset_id] = (limit, by)
        for other in self.active(command.asset_id):
            if other.is_setpoint and other.order < limit:
                self.cancel(other, at, f"superseded by newer setpoint {by}")
        return command.state is CommandState.CANCELLED

    def mark_dispatched(self, command: Command, at: datetime) -> None:
        """Count an attempt and move PENDING -> DISPATCHED."""
        command.attempts += 1
        command.dispatched_at = at
        command.next_attempt_at = None
        self._move(command, CommandState.DISPATCHED, at, f"attempt {command.attempts}")
        self.in_flight[command.command_id] = command

    def respond(self, command: Command, success: bool, at: datetime, error: str | None) -> None:
        """Apply an answer: ACKNOWLEDGED + COMPLETED, or a failed attempt."""
        self.in_flight.pop(command.command_id, None)
        if success:
            command.error = None
            self._move(command, CommandState.ACKNOWLEDGED, at)
            self._move(command, CommandState.COMPLETED, at)
        else:
            self.attempt_failed(command, at, at, error or "refused by device", timed_out=False)

    def attempt_failed(
        self, command: Command, failed_at: datetime, at: datetime, error: str, *, timed_out: bool
    ) -> None:
        """Schedule a retry ``failed_at + delay`` while retries remain, else finish the command
        FAILED (or TIMED_OUT when ``timed_out``)."""
        self.in_flight.pop(command.command_id, None)
        command.error = error
        if command.attempts <= command.max_retries:
            delay = retry_delay_s(
                command.attempts,
                self.config.dispatch_interval_seconds,
                self.config.retry_backoff_factor,
            )
            command.next_attempt_at = failed_at + timedelta(seconds=delay)
            note = f"{error}; retry {command.attempts} at {iso_z(command.next_attempt_at)}"
            self._move(command, CommandState.PENDING, at, note, timed_out=timed_out)
            self._enqueue(command)
        else:
            final = CommandState.TIMED_OUT if timed_out else CommandState.FAILED
            self._move(command, final, at, error, timed_out=timed_out)

    def cancel(self, command: Command, at: datetime, reason: str) -> None:
        """Move an unfinished command to CANCELLED."""
        self.in_flight.pop(command.command_id, None)
        command.error = reason
        command.next_attempt_at = None
        self._move(command, CommandState.CANCELLED, at, reason)

    def queue_event(self, event: Event) -> None:
        """Queue a non-command event (e.g. SCHEDULE_RECEIVED) in order with command events."""
        self._outbox.append(event)

    def flush(self) -> None:
        """Publish queued events in order; handler errors are raised after all were published."""
        events, self._outbox = self._outbox, []
        errors: list[EventHandlerError] = []
        for event in events:
            try:
                self.bus.publish(event)
            except EventHandlerError as exc:
                errors.append(exc)
        if errors:
            failures = [f for exc in errors for f in exc.failures]
            raise EventHandlerError(errors[0].event_type, failures) from errors[0]

    # ---------------------------------------------------------------- internals
    def _next_id(self, sequence: int) -> str:
        if self._id_factory is None:
            return f"cmd_{sequence:06d}"
        command_id = self._id_factory()
        if not isinstance(command_id, str) or command_id in self._commands:
            raise CommandError(f"id_factory returned {command_id!r}: ids must be new strings")
        return command_id

    def _enqueue(self, command: Command) -> None:
        version = self._queue_version.get(command.command_id, 0) + 1
        self._queue_version[command.command_id] = version
        entry = (
            command.due_at,
            -command.priority,
            command.scheduled_at,
            command.sequence,
            version,
            command.command_id,
        )
        heapq.heappush(self._queue, entry)

    def _move(
        self,
        command: Command,
        state: CommandState,
        at: datetime,
        note: str | None = None,
        *,
        timed_out: bool = False,
    ) -> None:
        previous = command.state
        command.transition(state, at, note)
        self._n_pending += (state is CommandState.PENDING) - (previous is CommandState.PENDING)
        if command.is_terminal:
            self._active.get(command.asset_id, {}).pop(command.command_id, None)
        if state is CommandState.DISPATCHED:
            event_type = EventType.COMMAND_DISPATCHED
        elif state is CommandState.ACKNOWLEDGED:
            event_type = EventType.COMMAND_ACKNOWLEDGED
        elif state is CommandState.COMPLETED:
            event_type = EventType.COMMAND_COMPLETED
        elif timed_out:
            event_type = EventType.COMMAND_TIMED_OUT
        else:
            event_type = EventType.COMMAND_FAILED  # FAILED, CANCELLED, or a failed attempt
        self._emit(event_type, command, previous, at)

    def _emit(
        self,
        event_type: EventType,
        command: Command,
        previous: CommandState | None,
        at: datetime,
    ) -> None:
        data = CommandEventData.from_command(command, previous)
        self._outbox.append(Event(event_type, at, command.asset_id, data))
        if self.step_log is not None:
            self.step_log.append((event_type, command.command_id, command.state))
