"""Dispatch engine: L3 schedules -> timed commands -> device links, on simulated time.

Decisions where the Qubit contract is silent:

* **Completion.** A success answer moves a command DISPATCHED -> ACKNOWLEDGED -> COMPLETED at the
  same instant (two events). A charge rate is a *limit*, so telemetry cannot confirm it (the EV may
  draw less); the device's acceptance is the completion.
* **Synchronous and wire links.** ``dispatch_command`` publishes COMMAND_DISPATCHED, then calls the
  link. A final :class:`~qubit_sim.stack.coordinate.links.LinkResult` is handled at once; a pending
  one (accepted for delivery) leaves the command DISPATCHED until its ``Reply`` resolves (collected
  by :meth:`DispatchEngine.poll_replies`, called by ``step``) or someone calls ``handle_response``.
  A :class:`LinkError` from the link counts as a failed attempt.
* **Retries.** A failed attempt is retried while ``attempts <= max_retries`` after
  ``dispatch_interval_seconds * retry_backoff_factor**(k - 1)`` for the k-th retry (5, 10, 20 s).
* **Timeouts consume a retry.** An attempt unanswered ``timeout_seconds`` after dispatch (``>=``)
  counts as failed; the retry delay runs from the deadline, so results do not depend on how often
  ``check_timeouts`` runs. When the last attempt times out the command ends TIMED_OUT; when it is
  refused, FAILED. Answers arriving after a timeout are ignored (``handle_response`` returns False).
* **Supersession.** An asset holds one power setpoint, so when a setpoint command is sent, every
  unfinished setpoint of that asset with an earlier :attr:`Command.order` is CANCELLED, and a
  setpoint older than one already sent is cancelled instead of sent. ``step`` sends only the newest
  due setpoint per asset. This keeps a late retry from overwriting a newer value.
* **Schedule replacement.** A new schedule cancels the PENDING setpoints of the assets it covers
  scheduled at or after its first slot; setpoints before that still apply until the new plan's
  first command supersedes them.
* **Cancellation** (superseded, schedule replaced, unplug) is published as COMMAND_FAILED with
  ``data.state == CANCELLED`` and the reason in ``data.error``: the contract's eight event types
  have no COMMAND_CANCELLED.
* **Asset states.** The engine listens to STATE_CHANGED on its bus: an ``unplug`` cancels the
  charger's remaining commands (early departure), and commands for an asset in FAULTED or
  UNAVAILABLE are held (not dispatched, no retry used) until it leaves that state;
  CHANGE_AVAILABILITY is never held.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from qubit_sim.stack.coordinate.commands import Command, CommandState, CommandType
from qubit_sim.stack.coordinate.config import CoordinatorConfig
from qubit_sim.stack.coordinate.errors import CommandError, CoordinationError, LinkError
from qubit_sim.stack.coordinate.events import (
    Event,
    EventBus,
    EventType,
    ScheduleReceivedData,
    StateChangedData,
)
from qubit_sim.stack.coordinate.ledger import CommandLedger, StepLog
from qubit_sim.stack.coordinate.links import DeviceLink, LinkRegistry, LinkResult, Reply, Telemetry
from qubit_sim.stack.coordinate.schedule import plan_schedule
from qubit_sim.stack.coordinate.timebase import SimTime, iso_z, to_utc

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = ["DispatchEngine", "StepSummary"]


@dataclass(frozen=True)
class StepSummary:
    """What one :meth:`DispatchEngine.step` did (command ids in event order).

    Attributes:
        time: Step time (UTC).
        replies: Wire replies collected.
        dispatched: Commands sent to links.
        completed: Commands completed.
        retrying: Attempts that failed or timed out with a retry scheduled.
        failed: Commands that ended FAILED.
        timed_out: Commands that ended TIMED_OUT.
        cancelled: Commands cancelled (superseded, unplug).
        held: Due commands held because their asset is FAULTED/UNAVAILABLE.
        pending: PENDING commands after the step.
        in_flight: DISPATCHED commands awaiting an answer after the step.
        stale_assets: Assets whose telemetry is older than ``stale_state_seconds``.
    """

    time: datetime
    replies: int
    dispatched: tuple[str, ...]
    completed: tuple[str, ...]
    retrying: tuple[str, ...]
    failed: tuple[str, ...]
    timed_out: tuple[str, ...]
    cancelled: tuple[str, ...]
    held: tuple[str, ...]
    pending: int
    in_flight: int
    stale_assets: tuple[str, ...]

    @classmethod
    def from_log(
        cls,
        time: datetime,
        replies: int,
        log: StepLog,
        *,
        held: tuple[str, ...],
        pending: int,
        in_flight: int,
        stale_assets: tuple[str, ...],
    ) -> StepSummary:
        """Build a summary from the ``(event type, command id, state)`` log of a step."""

        def ids(kinds: set[EventType], states: set[CommandState] | None = None) -> tuple[str, ...]:
            return tuple(
                cid for kind, cid, state in log if kind in kinds and (not states or state in states)
            )

        failing = {EventType.COMMAND_FAILED, EventType.COMMAND_TIMED_OUT}
        return cls(
            time=time,
            replies=replies,
            dispatched=ids({EventType.COMMAND_DISPATCHED}),
            completed=ids({EventType.COMMAND_COMPLETED}),
            retrying=ids(failing, {CommandState.PENDING}),
            failed=ids({EventType.COMMAND_FAILED}, {CommandState.FAILED}),
            timed_out=ids({EventType.COMMAND_TIMED_OUT}, {CommandState.TIMED_OUT}),
            cancelled=ids({EventType.COMMAND_FAILED}, {CommandState.CANCELLED}),
            held=held,
            pending=pending,
            in_flight=in_flight,
            stale_assets=stale_assets,
        )


class DispatchEngine:
    """Turns schedules into commands and drives their lifecycle (decisions in the module doc).

    Args:
        event_bus: Bus for every command/schedule event; the engine also listens to its
            STATE_CHANGED events.
        registry: Links used by :meth:`step`. ``adapter_registry`` is accepted as an alias.
        config: Settings; default ``CoordinatorConfig(site_id="sit_default")``.
        epoch: Instant of second 0, needed when times are passed as integer seconds.
        id_factory: Returns unique command ids; default ``cmd_000001``, ``cmd_000002``...
        cancel_on_unplug: Cancel a charger's remaining commands on its ``unplug`` transition.

    Not thread-safe: call it from the simulation loop only.
    """

    def __init__(
        self,
        event_bus: EventBus,
        registry: LinkRegistry | None = None,
        config: CoordinatorConfig | None = None,
        *,
        adapter_registry: LinkRegistry | None = None,
        epoch: datetime | None = None,
        id_factory: Callable[[], str] | None = None,
        cancel_on_unplug: bool = True,
    ) -> None:
        if not isinstance(event_bus, EventBus):
            raise CoordinationError(
                f"event_bus must be an EventBus, got {type(event_bus).__name__}"
            )
        if registry is not None and adapter_registry is not None:
            raise CoordinationError("pass registry= or adapter_registry=, not both")
        self.bus = event_bus
        self.registry = registry if registry is not None else adapter_registry
        self.config = config if config is not None else CoordinatorConfig(site_id="sit_default")
        self.epoch = to_utc(epoch, what="epoch") if epoch is not None else None
        self.cancel_on_unplug = cancel_on_unplug
        self.ledger = CommandLedger(event_bus, self.config, id_factory)
        self._replies: dict[str, Reply] = {}
        self._asset_states: dict[str, str] = {}
        self._telemetry: dict[str, tuple[datetime, Telemetry]] = {}
        self.bus.subscribe(EventType.STATE_CHANGED, self._on_state_changed)

    # ----------------------------------------------------------------- queries
    @property
    def commands(self) -> list[Command]:
        """Every command created, in creation order."""
        return self.ledger.all()

    def get_command(self, command_id: str) -> Command:
        """The command with ``command_id``."""
        return self.ledger.get(command_id)

    def commands_for(self, asset_id: str) -> list[Command]:
        """Commands of one asset, in creation order."""
        return [c for c in self.ledger.all() if c.asset_id == asset_id]

    def state_counts(self) -> dict[str, int]:
        """Number of commands per lifecycle state (every state listed)."""
        counts = {state.value: 0 for state in CommandState}
        for command in self.ledger.all():
            counts[command.state.value] += 1
        return counts

    def asset_state(self, asset_id: str) -> str | None:
        """Latest state machine state seen on the bus for ``asset_id``."""
        return self._asset_states.get(asset_id)

    def observe(self, telemetry: Telemetry) -> None:
        """Record a telemetry reading (for staleness tracking)."""
        when = self._t(telemetry.time, "telemetry time")
        self._telemetry[telemetry.asset_id] = (when, telemetry)

    def latest_telemetry(self, asset_id: str) -> Telemetry | None:
        """Last reading passed to :meth:`observe` for ``asset_id``."""
        entry = self._telemetry.get(asset_id)
        return entry[1] if entry else None

    def stale_assets(self, now: SimTime) -> list[str]:
        """Observed assets whose last reading is older than ``stale_state_seconds``."""
        limit = self._t(now) - timedelta(seconds=self.config.stale_state_seconds)
        return sorted(a for a, (when, _) in self._telemetry.items() if when < limit)

    def get_pending_commands(self, now: SimTime) -> list[Command]:
        """PENDING commands due at ``now`` (scheduled or retry time <= now), not held.

        Ordered by due time, then priority (higher first), then plan order.
        """
        return self.ledger.due(self._t(now), self._asset_states)[0]

    # ---------------------------------------------------------------- creation
    def schedule_to_commands(
        self,
        schedule: pd.DataFrame,
        asset_map: Mapping[str, str],
        now: SimTime | None = None,
        *,
        priority: int = 1,
    ) -> list[Command]:
        """Create setpoint commands from an L3 schedule (contract in :mod:`.schedule`).

        Publishes SCHEDULE_RECEIVED, the cancellations of superseded PENDING setpoints, then one
        COMMAND_CREATED per command. Event time is ``now``, or the first slot when omitted.
        """
        plan = plan_schedule(schedule, asset_map, self.config.change_tolerance_kw)
        at = self._t(now) if now is not None else plan.start
        replaced = [
            c
            for asset_id in plan.asset_ids
            for c in self.ledger.active(asset_id)
            if c.is_setpoint and c.state is CommandState.PENDING and c.scheduled_at >= plan.start
        ]
        self.ledger.generation += 1
        data = ScheduleReceivedData(
            site_id=self.config.site_id,
            start=plan.start,
            end=plan.end,
            n_slots=plan.n_slots,
            asset_ids=plan.asset_ids,
            columns_used=plan.columns_used,
            columns_ignored=plan.columns_ignored,
            n_commands=len(plan.commands),
            n_cancelled=len(replaced),
        )
        self.ledger.queue_event(Event(EventType.SCHEDULE_RECEIVED, at, None, data))
        for command in replaced:
            self.ledger.cancel(command, at, "replaced by a newer schedule")
        created = [
            self.ledger.new_command(
                p.asset_id,
                p.type,
                p.scheduled_at,
                at,
                value_kw=p.value_kw,
                priority=priority,
                schedule_key=p.schedule_key,
            )
            for p in plan.commands
        ]
        self.ledger.flush()
        return created

    def create_command(
        self,
        asset_id: str,
        command_type: CommandType | str,
        scheduled_at: SimTime,
        *,
        value_kw: float | None = None,
        available: bool | None = None,
        priority: int = 1,
        now: SimTime | None = None,
    ) -> Command:
        """Create one command outside a schedule (start/stop, availability, manual setpoint)."""
        when = self._t(scheduled_at, "scheduled_at")
        at = self._t(now) if now is not None else when
        try:
            kind = CommandType(command_type)
        except ValueError:
            valid = ", ".join(t.value for t in CommandType)
            raise CommandError(f"unknown command type {command_type!r} ({valid})") from None
        command = self.ledger.new_command(
            asset_id, kind, when, at, value_kw=value_kw, available=available, priority=priority
        )
        self.ledger.flush()
        return command

    # ----------------------------------------------------------------- dispatch
    def dispatch_command(self, command: Command, link: DeviceLink, now: SimTime) -> CommandState:
        """Send a PENDING command through ``link``; returns its state afterwards.

        SET_CHARGE_RATE -> ``set_power_limit(kw)``, SET_DISCHARGE_RATE -> ``set_power_limit(-kw)``,
        START_CHARGING -> ``start()``, STOP_CHARGING -> ``stop()``, CHANGE_AVAILABILITY ->
        ``set_availability(available)``. A setpoint older than one already sent to the asset is
        cancelled instead of sent.

        Raises:
            CommandError: if the command is not PENDING or not from this engine.
            CoordinationError: if the link returns something other than a LinkResult.
        """
        at = self._t(now)
        self.ledger.own(command)
        if command.state is not CommandState.PENDING:
            raise CommandError(
                f"{command.command_id} is {command.state}; only PENDING commands are dispatched"
            )
        if command.is_setpoint and self.ledger.supersede(command, at):
            self.ledger.flush()
            return command.state
        self.ledger.mark_dispatched(command, at)
        self.ledger.flush()
        if command.state is not CommandState.DISPATCHED:
            return command.state  # a COMMAND_DISPATCHED handler cancelled it
        try:
            result = _call_link(command, link)
        except LinkError as exc:
            self.ledger.attempt_failed(command, at, at, f"link error: {exc}", timed_out=False)
            self.ledger.flush()
            return command.state
        if not isinstance(result, LinkResult):
            raise CoordinationError(
                f"{type(link).__name__} returned {type(result).__name__} for "
                f"{command.command_id}; link calls must return a LinkResult"
            )
        if result.reply is not None and not result.reply.done:
            self._replies[command.command_id] = result.reply
        elif result.reply is not None:
            self.ledger.respond(command, bool(result.reply.success), at, result.reply.error)
        else:
            self.ledger.respond(command, result.accepted, at, result.error)
        self.ledger.flush()
        return command.state

    def handle_response(
        self, command: Command | str, success: bool, now: SimTime, error: str | None = None
    ) -> bool:
        """Apply a device answer to a DISPATCHED command.

        Returns False (and changes nothing) for a late answer to a command that is no longer
        DISPATCHED (timed out, cancelled, finished).

        Raises:
            CommandError: for a command that was never dispatched.
        """
        command = self.ledger.own(command)
        at = self._t(now)
        if command.state is not CommandState.DISPATCHED:
            if command.attempts > 0:
                return False
            raise CommandError(f"{command.command_id} was never dispatched; nothing to answer")
        self._replies.pop(command.command_id, None)
        self.ledger.respond(command, success, at, error)
        self.ledger.flush()
        return True

    def poll_replies(self, now: SimTime) -> int:
        """Apply every resolved wire reply; returns how many were applied."""
        at = self._t(now)
        applied = 0
        for command_id, reply in list(self._replies.items()):
            command = self.ledger.get(command_id)
            if command.state is not CommandState.DISPATCHED:
                del self._replies[command_id]  # answer to a cancelled or timed-out attempt
            elif reply.done:
                del self._replies[command_id]
                self.ledger.respond(command, bool(reply.success), at, reply.error)
                applied += 1
        self.ledger.flush()
        return applied

    def check_timeouts(self, now: SimTime) -> list[Command]:
        """Time out DISPATCHED attempts older than their ``timeout_seconds``; returns them."""
        at = self._t(now)
        expired = []
        for command in self.ledger.in_flight.values():
            assert command.dispatched_at is not None
            deadline = command.dispatched_at + timedelta(seconds=command.timeout_seconds)
            if at >= deadline:
                expired.append((deadline, command.sequence, command))
        expired.sort(key=lambda item: item[:2])
        for deadline, _, command in expired:
            self._replies.pop(command.command_id, None)
            error = f"no answer within {command.timeout_seconds:g} s"
            self.ledger.attempt_failed(command, deadline, at, error, timed_out=True)
        self.ledger.flush()
        return [item[2] for item in expired]

    def cancel_command(self, command: Command | str, now: SimTime, reason: str) -> bool:
        """Cancel one unfinished command; returns False if it had already finished."""
        command = self.ledger.own(command)
        if command.is_terminal:
            return False
        self.ledger.cancel(command, self._t(now), reason)
        self.ledger.flush()
        return True

    def cancel_asset_commands(
        self, asset_id: str, now: SimTime, reason: str = "cancelled"
    ) -> list[Command]:
        """Cancel every unfinished command of ``asset_id`` (e.g. early departure)."""
        at = self._t(now)
        victims = self.ledger.active(asset_id)
        for command in victims:
            self.ledger.cancel(command, at, reason)
        self.ledger.flush()
        return victims

    def step(self, now: SimTime) -> StepSummary:
        """One dispatch cycle: collect replies, time out, send due commands through the registry.

        Only the newest due setpoint of each asset is sent (it supersedes the older ones).

        Raises:
            CoordinationError: if commands are due but the engine has no registry.
            LinkNotFoundError: if a due command's asset has no link.
        """
        at = self._t(now)
        outer_log = self.ledger.step_log
        log: StepLog = []
        self.ledger.step_log = log
        try:
            replies = self.poll_replies(at)
            self.check_timeouts(at)
            due, held = self.ledger.due(at, self._asset_states)
            if due and self.registry is None:
                raise CoordinationError(
                    f"{len(due)} command(s) due at {iso_z(at)} but the engine has no link "
                    "registry; pass registry= or call dispatch_command yourself"
                )
            newest: dict[str, Command] = {}
            for command in due:
                best = newest.get(command.asset_id)
                if command.is_setpoint and (best is None or command.order > best.order):
                    newest[command.asset_id] = command
            for command in due:
                if command.state is not CommandState.PENDING:
                    continue  # cancelled earlier in this cycle
                if command.is_setpoint and newest[command.asset_id] is not command:
                    continue  # superseded when the newest due setpoint is sent
                assert self.registry is not None
                self.dispatch_command(command, self.registry.get(command.asset_id), at)
        finally:
            self.ledger.step_log = outer_log
        return StepSummary.from_log(
            at,
            replies,
            log,
            held=tuple(c.command_id for c in held),
            pending=self.ledger.pending_count(),
            in_flight=len(self.ledger.in_flight),
            stale_assets=tuple(self.stale_assets(at)),
        )

    # ---------------------------------------------------------------- internals
    def _t(self, time: SimTime, what: str = "now") -> datetime:
        return to_utc(time, self.epoch, what=what)

    def _on_state_changed(self, event: Event) -> None:
        data = event.data
        if event.asset_id is None or not isinstance(data, StateChangedData):
            return
        self._asset_states[event.asset_id] = data.to_state
        if self.cancel_on_unplug and data.trigger == "unplug":
            reason = f"EV unplugged while {data.from_state}"
            self.cancel_asset_commands(event.asset_id, event.time, reason)


def _call_link(command: Command, link: DeviceLink) -> LinkResult:
    kind = command.type
    if kind is CommandType.SET_CHARGE_RATE or kind is CommandType.SET_DISCHARGE_RATE:
        setpoint = command.signed_setpoint_kw
        assert setpoint is not None
        return link.set_power_limit(setpoint)
    if kind is CommandType.START_CHARGING:
        return link.start()
    if kind is CommandType.STOP_CHARGING:
        return link.stop()
    assert command.available is not None
    return link.set_availability(command.available)
