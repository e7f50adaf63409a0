"""Finite state machines mirroring each controllable asset.

A :class:`StateMachine` is a plain table ``state -> {trigger: next_state}``: deterministic, no
guards. Every transition is appended to :attr:`StateMachine.history` and, with an event bus,
published as ``STATE_CHANGED``. Time comes from the ``now`` argument of
:meth:`StateMachine.trigger` or the injected ``clock``; never from the wall clock.

EV charger (7 states, OCPP 1.6 aligned); any trigger not listed for a state is invalid::

    AVAILABLE    plug_in -> PREPARING       fault -> FAULTED   disable -> UNAVAILABLE
    PREPARING    start_charge -> CHARGING   unplug -> AVAILABLE
                 fault -> FAULTED           disable -> UNAVAILABLE
    CHARGING     suspend -> SUSPENDED       complete -> FINISHING
                 unplug -> AVAILABLE        fault -> FAULTED
    SUSPENDED    resume -> CHARGING         complete -> FINISHING
                 unplug -> AVAILABLE        fault -> FAULTED
    FINISHING    unplug -> AVAILABLE        fault -> FAULTED   disable -> UNAVAILABLE
    FAULTED      reset -> AVAILABLE         disable -> UNAVAILABLE
    UNAVAILABLE  enable -> AVAILABLE        fault -> FAULTED

Choices for the cells the Qubit documentation leaves open, following OCPP 1.6 (status transitions
of StatusNotification, and ChangeAvailability):

* PREPARING --unplug--> AVAILABLE: the driver pulls the cable before the session starts.
* SUSPENDED --complete--> FINISHING and --unplug--> AVAILABLE: a suspended session can end, or the
  EV leave, exactly like a charging one.
* disable from AVAILABLE, PREPARING, FINISHING -> UNAVAILABLE: no transaction is running, so
  ChangeAvailability(Inoperative) applies at once.
* disable is *invalid* in CHARGING and SUSPENDED: during a transaction OCPP answers ``Scheduled``
  and applies the change only after the session ends, so the caller stops the session first.
* FAULTED --disable--> UNAVAILABLE: an operator may take a faulted connector out of service; it
  leaves UNAVAILABLE by ``enable``. FAULTED has no ``fault`` self-loop.

Battery (5 states) with direct charge <-> discharge switching (no stop in between)::

    from \\ trigger  charge     discharge    stop  fault    reset  disable      enable
    IDLE            CHARGING   DISCHARGING  .     FAULTED  .      UNAVAILABLE  .
    CHARGING        .          DISCHARGING  IDLE  FAULTED  .      UNAVAILABLE  .
    DISCHARGING     CHARGING   .            IDLE  FAULTED  .      UNAVAILABLE  .
    FAULTED         .          .            .     .        IDLE   UNAVAILABLE  .
    UNAVAILABLE     .          .            .     FAULTED  .      .            IDLE
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from datetime import datetime
from enum import StrEnum
from typing import Any

from qubit_sim.stack.coordinate.errors import InvalidTransition, StateMachineError
from qubit_sim.stack.coordinate.events import Event, EventBus, EventType, StateChangedData
from qubit_sim.stack.coordinate.timebase import SimTime, to_utc

__all__ = [
    "BATTERY_TRANSITIONS",
    "EV_CHARGER_TRANSITIONS",
    "BatteryState",
    "ChargerState",
    "InvalidTransition",
    "StateMachine",
    "StateMachineError",
    "charger_state_from_ocpp",
    "create_battery_state_machine",
    "create_ev_charger_state_machine",
    "ocpp_status",
]


class ChargerState(StrEnum):
    """States of the EV charger machine (values equal their names)."""

    AVAILABLE = "AVAILABLE"
    PREPARING = "PREPARING"
    CHARGING = "CHARGING"
    SUSPENDED = "SUSPENDED"
    FINISHING = "FINISHING"
    FAULTED = "FAULTED"
    UNAVAILABLE = "UNAVAILABLE"


class BatteryState(StrEnum):
    """States of the battery machine (values equal their names)."""

    IDLE = "IDLE"
    CHARGING = "CHARGING"
    DISCHARGING = "DISCHARGING"
    FAULTED = "FAULTED"
    UNAVAILABLE = "UNAVAILABLE"


_C = ChargerState
EV_CHARGER_TRANSITIONS: Mapping[str, Mapping[str, str]] = {
    _C.AVAILABLE: {"plug_in": _C.PREPARING, "fault": _C.FAULTED, "disable": _C.UNAVAILABLE},
    _C.PREPARING: {
        "start_charge": _C.CHARGING,
        "unplug": _C.AVAILABLE,
        "fault": _C.FAULTED,
        "disable": _C.UNAVAILABLE,
    },
    _C.CHARGING: {
        "suspend": _C.SUSPENDED,
        "complete": _C.FINISHING,
        "unplug": _C.AVAILABLE,
        "fault": _C.FAULTED,
    },
    _C.SUSPENDED: {
        "resume": _C.CHARGING,
        "complete": _C.FINISHING,
        "unplug": _C.AVAILABLE,
        "fault": _C.FAULTED,
    },
    _C.FINISHING: {"unplug": _C.AVAILABLE, "fault": _C.FAULTED, "disable": _C.UNAVAILABLE},
    _C.FAULTED: {"reset": _C.AVAILABLE, "disable": _C.UNAVAILABLE},
    _C.UNAVAILABLE: {"fault": _C.FAULTED, "enable": _C.AVAILABLE},
}
"""The EV charger table (see the module docstring)."""

_B = BatteryState
BATTERY_TRANSITIONS: Mapping[str, Mapping[str, str]] = {
    _B.IDLE: {
        "charge": _B.CHARGING,
        "discharge": _B.DISCHARGING,
        "fault": _B.FAULTED,
        "disable": _B.UNAVAILABLE,
    },
    _B.CHARGING: {
        "discharge": _B.DISCHARGING,
        "stop": _B.IDLE,
        "fault": _B.FAULTED,
        "disable": _B.UNAVAILABLE,
    },
    _B.DISCHARGING: {
        "charge": _B.CHARGING,
        "stop": _B.IDLE,
        "fault": _B.FAULTED,
        "disable": _B.UNAVAILABLE,
    },
    _B.FAULTED: {"reset": _B.IDLE, "disable": _B.UNAVAILABLE},
    _B.UNAVAILABLE: {"fault": _B.FAULTED, "enable": _B.IDLE},
}
"""The battery table (see the module docstring)."""

_OCPP_STATUS = {
    _C.AVAILABLE: "Available",
    _C.PREPARING: "Preparing",
    _C.CHARGING: "Charging",
    _C.SUSPENDED: "SuspendedEVSE",
    _C.FINISHING: "Finishing",
    _C.FAULTED: "Faulted",
    _C.UNAVAILABLE: "Unavailable",
}
_FROM_OCPP = {status: state for state, status in _OCPP_STATUS.items()}
_FROM_OCPP["SuspendedEV"] = _C.SUSPENDED


class StateMachine:
    """Deterministic table-driven state machine of one asset.

    Args:
        asset_id: The asset it mirrors.
        states: Every state name.
        initial_state: Starting state (one of ``states``).
        transitions: ``{state: {trigger: next_state}}``; states without outgoing triggers may be
            omitted. Trigger order is kept for :meth:`available_triggers`.
        event_bus: If given, every transition publishes ``STATE_CHANGED``.
        clock: Returns the current simulated time (seconds or datetime) when ``trigger`` gets no
            ``now``.
        epoch: Instant of second 0; needed to publish events when times are numbers.

    Raises:
        StateMachineError: on an empty state set, an undeclared initial/source/target state, or
            a non-string trigger.
    """

    def __init__(
        self,
        asset_id: str,
        states: Collection[str],
        initial_state: str,
        transitions: Mapping[str, Mapping[str, str]],
        event_bus: EventBus | None = None,
        clock: Callable[[], SimTime] | None = None,
        *,
        epoch: datetime | None = None,
    ) -> None:
        if not isinstance(asset_id, str) or not asset_id:
            raise StateMachineError(f"asset_id {asset_id!r} must be a non-empty string")
        self.asset_id = asset_id
        self.states: frozenset[str] = frozenset(str(s) for s in states)
        if not self.states:
            raise StateMachineError(f"{asset_id}: states must not be empty")
        if str(initial_state) not in self.states:
            raise StateMachineError(
                f"{asset_id}: initial_state {initial_state!r} is not declared in states "
                f"{sorted(self.states)}"
            )
        table: dict[str, dict[str, str]] = {}
        for source, edges in transitions.items():
            source = str(source)
            if source not in self.states:
                raise StateMachineError(
                    f"{asset_id}: transitions has undeclared source state {source!r}; "
                    f"add it to states {sorted(self.states)}"
                )
            table[source] = {}
            for trigger, target in edges.items():
                if not isinstance(trigger, str) or not trigger:
                    raise StateMachineError(
                        f"{asset_id}: trigger {trigger!r} in transitions[{source!r}] must be a "
                        "non-empty string"
                    )
                if str(target) not in self.states:
                    raise StateMachineError(
                        f"{asset_id}: transitions[{source!r}][{trigger!r}] -> {target!r} is not a "
                        f"declared state; add it to states {sorted(self.states)}"
                    )
                table[source][trigger] = str(target)
        self._table = table
        self._state = str(initial_state)
        self._bus = event_bus
        self._clock = clock
        self._epoch = epoch
        self._history: list[dict[str, Any]] = []

    @property
    def state(self) -> str:
        """Current state."""
        return self._state

    @property
    def transitions(self) -> dict[str, dict[str, str]]:
        """A copy of the transition table."""
        return {source: dict(edges) for source, edges in self._table.items()}

    @property
    def history(self) -> list[dict[str, Any]]:
        """Transitions so far: ``{"from_state", "to_state", "trigger", "timestamp"}`` dicts."""
        return [dict(entry) for entry in self._history]

    def available_triggers(self) -> list[str]:
        """Triggers valid in the current state, in declaration order."""
        return list(self._table.get(self._state, {}))

    def can_trigger(self, trigger: str) -> bool:
        """Whether ``trigger`` is valid in the current state."""
        return trigger in self._table.get(self._state, {})

    def trigger(self, trigger: str, now: SimTime | None = None) -> str:
        """Fire ``trigger``; returns the new state.

        Args:
            trigger: Trigger name.
            now: Simulated time of the transition; defaults to the injected clock.

        Raises:
            InvalidTransition: if ``trigger`` is not valid now (the state does not change).
            StateMachineError: if an event bus is attached but no time is known.
        """
        edges = self._table.get(self._state, {})
        if trigger not in edges:
            raise InvalidTransition(self.asset_id, self._state, trigger, list(edges))
        if now is None and self._clock is not None:
            now = self._clock()
        event_time = None
        if self._bus is not None:
            if now is None:
                raise StateMachineError(
                    f"{self.asset_id}: cannot publish STATE_CHANGED without a time; pass "
                    f"trigger({trigger!r}, now=...) or build the machine with clock=..."
                )
            event_time = to_utc(now, self._epoch, what=f"{self.asset_id} transition time")
        previous = self._state
        self._state = edges[trigger]
        self._history.append(
            {"from_state": previous, "to_state": self._state, "trigger": trigger, "timestamp": now}
        )
        if self._bus is not None and event_time is not None:
            data = StateChangedData(from_state=previous, to_state=self._state, trigger=trigger)
            self._bus.publish(Event(EventType.STATE_CHANGED, event_time, self.asset_id, data))
        return self._state

    def __repr__(self) -> str:
        return f"StateMachine(asset_id={self.asset_id!r}, state={self._state!r})"


def create_ev_charger_state_machine(
    asset_id: str,
    event_bus: EventBus | None = None,
    clock: Callable[[], SimTime] | None = None,
    *,
    epoch: datetime | None = None,
    initial_state: str = ChargerState.AVAILABLE,
) -> StateMachine:
    """The 7-state OCPP-aligned EV charger machine (table in the module docstring)."""
    return StateMachine(
        asset_id,
        [s.value for s in ChargerState],
        initial_state,
        EV_CHARGER_TRANSITIONS,
        event_bus,
        clock,
        epoch=epoch,
    )


def create_battery_state_machine(
    asset_id: str,
    event_bus: EventBus | None = None,
    clock: Callable[[], SimTime] | None = None,
    *,
    epoch: datetime | None = None,
    initial_state: str = BatteryState.IDLE,
) -> StateMachine:
    """The 5-state battery machine with direct charge/discharge switching."""
    return StateMachine(
        asset_id,
        [s.value for s in BatteryState],
        initial_state,
        BATTERY_TRANSITIONS,
        event_bus,
        clock,
        epoch=epoch,
    )


def ocpp_status(state: str, *, suspended_by_ev: bool = False) -> str:
    """OCPP 1.6 ``ChargePointStatus`` of a charger state.

    SUSPENDED maps to ``SuspendedEVSE`` (the stack or grid paused the session) unless
    ``suspended_by_ev`` says the vehicle paused it (``SuspendedEV``). ``Reserved`` is not modelled.

    Raises:
        StateMachineError: for a name that is not a charger state.
    """
    try:
        charger_state = ChargerState(str(state))
    except ValueError as exc:
        valid = ", ".join(s.value for s in ChargerState)
        raise StateMachineError(f"{state!r} is not an EV charger state ({valid})") from exc
    if charger_state is ChargerState.SUSPENDED and suspended_by_ev:
        return "SuspendedEV"
    return _OCPP_STATUS[charger_state]


def charger_state_from_ocpp(status: str) -> ChargerState:
    """Charger state of an OCPP 1.6 ``ChargePointStatus`` (both Suspended* map to SUSPENDED).

    Raises:
        StateMachineError: for ``Reserved`` (not modelled) or an unknown status.
    """
    try:
        return _FROM_OCPP[status]
    except KeyError:
        valid = ", ".join(sorted(_FROM_OCPP))
        raise StateMachineError(
            f"OCPP status {status!r} has no charger state (modelled: {valid})"
        ) from None
