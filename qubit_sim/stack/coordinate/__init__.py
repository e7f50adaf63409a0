"""Qubit L4 coordination: schedules -> commands -> device links, on simulated time.

* :mod:`.events` — the eight event types, typed payloads, the synchronous :class:`EventBus`.
* :mod:`.state_machines` — table-driven asset machines (EV charger, battery).
* :mod:`.commands` — :class:`Command` and its lifecycle.
* :mod:`.links` — the device-link protocols and :class:`LinkRegistry`.
* :mod:`.schedule` — the L3 schedule column contract and change detection.
* :mod:`.config` — :class:`CoordinatorConfig` (Qubit defaults).
* :mod:`.ledger` — :class:`CommandLedger`: command storage, due queue, lifecycle steps.
* :mod:`.dispatch` — :class:`DispatchEngine`: dispatch, retries, timeouts, cancellation.

Times are integer seconds since the scenario start (with an ``epoch``) or timezone-aware UTC
datetimes; nothing reads the wall clock.
"""

from __future__ import annotations

from qubit_sim.stack.coordinate.commands import (
    TERMINAL_STATES,
    Command,
    CommandState,
    CommandTransition,
    CommandType,
    retry_delay_s,
)
from qubit_sim.stack.coordinate.config import HOLD_STATES, CoordinatorConfig
from qubit_sim.stack.coordinate.dispatch import DispatchEngine, StepSummary
from qubit_sim.stack.coordinate.errors import (
    CommandError,
    CoordinationError,
    EventHandlerError,
    InvalidTransition,
    LinkError,
    LinkNotFoundError,
    ScheduleError,
    StateMachineError,
    TimeBaseError,
)
from qubit_sim.stack.coordinate.events import (
    CommandEventData,
    Event,
    EventBus,
    EventLog,
    EventType,
    ScheduleReceivedData,
    StateChangedData,
    Subscription,
    to_record,
)
from qubit_sim.stack.coordinate.ledger import CommandLedger
from qubit_sim.stack.coordinate.links import (
    AdapterRegistry,
    BatteryLink,
    ChargerLink,
    DeviceLink,
    LinkRegistry,
    LinkResult,
    PvLink,
    Reply,
    Telemetry,
)
from qubit_sim.stack.coordinate.schedule import PlannedCommand, SchedulePlan, plan_schedule
from qubit_sim.stack.coordinate.state_machines import (
    BATTERY_TRANSITIONS,
    EV_CHARGER_TRANSITIONS,
    BatteryState,
    ChargerState,
    StateMachine,
    charger_state_from_ocpp,
    create_battery_state_machine,
    create_ev_charger_state_machine,
    ocpp_status,
)
from qubit_sim.stack.coordinate.timebase import SimTime, iso_z, to_utc

__all__ = [
    "BATTERY_TRANSITIONS",
    "EV_CHARGER_TRANSITIONS",
    "HOLD_STATES",
    "TERMINAL_STATES",
    "AdapterRegistry",
    "BatteryLink",
    "BatteryState",
    "ChargerLink",
    "ChargerState",
    "Command",
    "CommandError",
    "CommandEventData",
    "CommandLedger",
    "CommandState",
    "CommandTransition",
    "CommandType",
    "CoordinationError",
    "CoordinatorConfig",
    "DeviceLink",
    "DispatchEngine",
    "Event",
    "EventBus",
    "EventHandlerError",
    "EventLog",
    "EventType",
    "InvalidTransition",
    "LinkError",
    "LinkNotFoundError",
    "LinkRegistry",
    "LinkResult",
    "PlannedCommand",
    "PvLink",
    "Reply",
    "ScheduleError",
    "SchedulePlan",
    "ScheduleReceivedData",
    "SimTime",
    "StateChangedData",
    "StateMachine",
    "StateMachineError",
    "StepSummary",
    "Subscription",
    "Telemetry",
    "TimeBaseError",
    "charger_state_from_ocpp",
    "create_battery_state_machine",
    "create_ev_charger_state_machine",
    "iso_z",
    "ocpp_status",
    "plan_schedule",
    "retry_delay_s",
    "to_record",
    "to_utc",
]
