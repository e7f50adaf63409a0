"""The public API of qubit_sim.stack.coordinate is pinned."""

from __future__ import annotations

import qubit_sim.stack.coordinate as coordinate

EXPECTED = {
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
}


def test_all_is_pinned_and_resolvable() -> None:
    assert set(coordinate.__all__) == EXPECTED
    assert len(coordinate.__all__) == len(EXPECTED)
    for name in coordinate.__all__:
        assert getattr(coordinate, name) is not None


def test_every_module_declares_all() -> None:
    import importlib
    import pkgutil

    for info in pkgutil.iter_modules(coordinate.__path__):
        module = importlib.import_module(f"{coordinate.__name__}.{info.name}")
        assert isinstance(module.__all__, list), info.name
        for name in module.__all__:
            assert hasattr(module, name), f"{info.name}.{name}"
