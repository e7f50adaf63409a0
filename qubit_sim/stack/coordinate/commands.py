"""Commands: what L4 asks a device to do, and the lifecycle each request goes through.

Lifecycle (every step is recorded in :attr:`Command.history` with its time)::

    PENDING -> DISPATCHED -> ACKNOWLEDGED -> COMPLETED
       |            |-> PENDING            (attempt failed or timed out, retry scheduled)
       |            |-> FAILED | TIMED_OUT (last attempt failed / timed out)
       |            '-> CANCELLED          (superseded, early departure, schedule replaced)
       '-> CANCELLED

``attempts`` counts deliveries to the link. A command is tried at most ``max_retries + 1`` times;
the k-th retry (k = 1..max_retries) waits ``base * factor**(k - 1)`` after the failure
(:func:`retry_delay_s`), i.e. 5, 10, 20 s with the default 5 s base and factor 2.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from qubit_sim.stack.coordinate.errors import CommandError
from qubit_sim.stack.coordinate.timebase import to_utc

__all__ = [
    "SETPOINT_TYPES",
    "TERMINAL_STATES",
    "Command",
    "CommandState",
    "CommandTransition",
    "CommandType",
    "retry_delay_s",
]


class CommandType(StrEnum):
    """What a command asks of a device."""

    SET_CHARGE_RATE = "SET_CHARGE_RATE"
    SET_DISCHARGE_RATE = "SET_DISCHARGE_RATE"
    START_CHARGING = "START_CHARGING"
    STOP_CHARGING = "STOP_CHARGING"
    CHANGE_AVAILABILITY = "CHANGE_AVAILABILITY"


class CommandState(StrEnum):
    """Where a command is in its lifecycle."""

    PENDING = "PENDING"
    DISPATCHED = "DISPATCHED"
    ACKNOWLEDGED = "ACKNOWLEDGED"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    TIMED_OUT = "TIMED_OUT"
    CANCELLED = "CANCELLED"


TERMINAL_STATES: frozenset[CommandState] = frozenset(
    {CommandState.COMPLETED, CommandState.FAILED, CommandState.TIMED_OUT, CommandState.CANCELLED}
)
"""States a command never leaves."""

SETPOINT_TYPES: frozenset[CommandType] = frozenset(
    {CommandType.SET_CHARGE_RATE, CommandType.SET_DISCHARGE_RATE}
)
"""Command types that set the asset's one power setpoint; a newer one supersedes an older one."""

_ALLOWED: dict[CommandState, frozenset[CommandState]] = {
    CommandState.PENDING: frozenset({CommandState.DISPATCHED, CommandState.CANCELLED}),
    CommandState.DISPATCHED: frozenset(
        {
            CommandState.ACKNOWLEDGED,
            CommandState.PENDING,
            CommandState.FAILED,
            CommandState.TIMED_OUT,
            CommandState.CANCELLED,
        }
    ),
    CommandState.ACKNOWLEDGED: frozenset({CommandState.COMPLETED}),
}


def retry_delay_s(retry_number: int, base_s: float, factor: float) -> float:
    """Wait [s] before the ``retry_number``-th retry (1-based): ``base_s * factor**(n - 1)``."""
    if retry_number < 1:
        raise CommandError(f"retry_number {retry_number} must be >= 1 (the first retry is 1)")
    return base_s * factor ** (retry_number - 1)


@dataclass(frozen=True)
class CommandTransition:
    """One lifecycle step of a command.

    Attributes:
        time: When it happened (UTC).
        from_state: Previous state; ``None`` for the creation entry.
        to_state: New state.
        attempt: Value of ``attempts`` after the step.
        note: Why (error text, cancellation reason, retry time), if anything.
    """

    time: datetime
    from_state: CommandState | None
    to_state: CommandState
    attempt: int
    note: str | None = None


@dataclass
class Command:
    """A timed request to one asset.

    Attributes:
        command_id: Deterministic id (``cmd_000001``...), unique within one engine.
        asset_id: Qubit asset id (``ast_...``) of the target device.
        type: What to do.
        scheduled_at: Earliest dispatch time (UTC); for schedule commands the slot start.
        value_kw: Power [kW] for ``SET_CHARGE_RATE`` / ``SET_DISCHARGE_RATE`` (a magnitude >= 0;
            discharge direction comes from the type); ``None`` otherwise.
        available: Target availability for ``CHANGE_AVAILABILITY``; ``None`` otherwise.
        state: Lifecycle state.
        attempts: Deliveries made so far.
        max_retries: Retries after the first attempt before the command is final.
        timeout_seconds: Time [s] an attempt may stay unanswered before it times out.
        priority: 1 = normal, higher = more urgent (dispatched first among equally due ones).
        next_attempt_at: Time of the scheduled retry, while waiting for one.
        dispatched_at: Time of the latest delivery.
        error: Latest error text; cleared on completion (the history keeps all of them).
        schedule_key: Schedule key the command came from (``"ev_001"``, ``"battery"``), if any.
        generation: Plan generation: schedules received before this command was created. A
            setpoint of a newer plan supersedes every setpoint of older plans.
        sequence: Creation order within the engine; breaks ties between equal times.
        created_at: Creation time; defaults to ``scheduled_at``.
        history: Every lifecycle step, oldest first.
    """

    command_id: str
    asset_id: str
    type: CommandType
    scheduled_at: datetime
    value_kw: float | None = None
    available: bool | None = None
    state: CommandState = CommandState.PENDING
    attempts: int = 0
    max_retries: int = 3
    timeout_seconds: float = 30.0
    priority: int = 1
    next_attempt_at: datetime | None = None
    dispatched_at: datetime | None = None
    error: str | None = None
    schedule_key: str | None = None
    generation: int = 0
    sequence: int = 0
    created_at: datetime | None = None
    history: list[CommandTransition] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not isinstance(self.command_id, str) or not self.command_id:
            raise CommandError(f"command_id {self.command_id!r} must be a non-empty string")
        if not isinstance(self.asset_id, str) or not self.asset_id:
            raise CommandError(f"{self.command_id}: asset_id {self.asset_id!r} must be non-empty")
        try:
            self.type = CommandType(self.type)
            self.state = CommandState(self.state)
        except ValueError as exc:
            raise CommandError(f"{self.command_id}: {exc}") from exc
        self.scheduled_at = to_utc(self.scheduled_at, what=f"{self.command_id}.scheduled_at")
        if self.created_at is not None:
            self.created_at = to_utc(self.created_at, what=f"{self.command_id}.created_at")
        self._check_payload()
        if isinstance(self.max_retries, bool) or not isinstance(self.max_retries, int):
            raise CommandError(f"{self.command_id}: max_retries {self.max_retries!r} not an int")
        if self.max_retries < 0:
            raise CommandError(f"{self.command_id}: max_retries {self.max_retries} must be >= 0")
        if not self.timeout_seconds > 0:
            raise CommandError(
                f"{self.command_id}: timeout_seconds {self.timeout_seconds!r} must be > 0"
            )
        if isinstance(self.priority, bool) or not isinstance(self.priority, int):
            raise CommandError(f"{self.command_id}: priority {self.priority!r} must be an int")
        if self.priority < 1:
            raise CommandError(f"{self.command_id}: priority {self.priority} must be >= 1")
        if not self.history:
            start = self.created_at or self.scheduled_at
            self.history.append(CommandTransition(start, None, self.state, self.attempts))

    def _check_payload(self) -> None:
        if self.type in SETPOINT_TYPES:
            value = self.value_kw
            if value is None or not math.isfinite(value) or value < 0:
                raise CommandError(
                    f"{self.command_id}: {self.type} needs value_kw >= 0 [kW], got {value!r}; "
                    "discharge is expressed by SET_DISCHARGE_RATE with a positive value"
                )
            self.value_kw = float(value)
            if self.available is not None:
                raise CommandError(f"{self.command_id}: {self.type} takes no 'available'")
        elif self.type is CommandType.CHANGE_AVAILABILITY:
            if not isinstance(self.available, bool):
                raise CommandError(
                    f"{self.command_id}: CHANGE_AVAILABILITY needs available=True/False, "
                    f"got {self.available!r}"
                )
            if self.value_kw is not None:
                raise CommandError(f"{self.command_id}: CHANGE_AVAILABILITY takes no value_kw")
        elif self.value_kw is not None or self.available is not None:
            raise CommandError(
                f"{self.command_id}: {self.type} takes neither value_kw nor available"
            )

    @property
    def is_terminal(self) -> bool:
        """True once the command is COMPLETED, FAILED, TIMED_OUT or CANCELLED."""
        return self.state in TERMINAL_STATES

    @property
    def is_setpoint(self) -> bool:
        """True for SET_CHARGE_RATE / SET_DISCHARGE_RATE."""
        return self.type in SETPOINT_TYPES

    @property
    def due_at(self) -> datetime:
        """When the command may next be dispatched: the retry time if one is set."""
        return self.next_attempt_at or self.scheduled_at

    @property
    def order(self) -> tuple[int, datetime, int]:
        """``(generation, scheduled_at, sequence)``: a setpoint of later order supersedes one of
        earlier order on the same asset (newer plan first, then later slot, then creation)."""
        return (self.generation, self.scheduled_at, self.sequence)

    @property
    def signed_setpoint_kw(self) -> float | None:
        """Setpoint in the load convention [kW]: charge positive, discharge negative."""
        if self.value_kw is None:
            return None
        if self.type is CommandType.SET_DISCHARGE_RATE:
            return 0.0 - self.value_kw  # not -value: a zero discharge must not become -0.0
        return self.value_kw

    def transition(self, to_state: CommandState, time: datetime, note: str | None = None) -> None:
        """Move to ``to_state`` at ``time`` and record it.

        Raises:
            CommandError: if the lifecycle does not allow the step (e.g. leaving a final state).
        """
        to_state = CommandState(to_state)
        allowed = _ALLOWED.get(self.state, frozenset())
        if to_state not in allowed:
            options = ", ".join(sorted(allowed)) or "none (final state)"
            raise CommandError(
                f"{self.command_id}: cannot go from {self.state} to {to_state}; allowed: {options}"
            )
        previous = self.state
        self.state = to_state
        self.history.append(CommandTransition(time, previous, to_state, self.attempts, note))
