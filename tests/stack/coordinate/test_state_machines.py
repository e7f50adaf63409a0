"""State machines: the documented generic example, full charger/battery tables, properties."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qubit_sim.errors import QubitSimError
from qubit_sim.stack.coordinate import (
    BatteryState,
    ChargerState,
    EventBus,
    EventLog,
    EventType,
    InvalidTransition,
    StateMachine,
    StateMachineError,
    TimeBaseError,
    charger_state_from_ocpp,
    create_battery_state_machine,
    create_ev_charger_state_machine,
    ocpp_status,
)

EPOCH = datetime(2025, 1, 15, 0, 0, tzinfo=UTC)

# Expected tables written out independently of the module (None = invalid trigger).
EV_TRIGGERS = [
    "plug_in",
    "start_charge",
    "suspend",
    "resume",
    "complete",
    "unplug",
    "fault",
    "reset",
    "disable",
    "enable",
]
EV_TABLE = {
    "AVAILABLE": {"plug_in": "PREPARING", "fault": "FAULTED", "disable": "UNAVAILABLE"},
    "PREPARING": {
        "start_charge": "CHARGING",
        "unplug": "AVAILABLE",
        "fault": "FAULTED",
        "disable": "UNAVAILABLE",
    },
    "CHARGING": {
        "suspend": "SUSPENDED",
        "complete": "FINISHING",
        "unplug": "AVAILABLE",
        "fault": "FAULTED",
    },
    "SUSPENDED": {
        "resume": "CHARGING",
        "complete": "FINISHING",
        "unplug": "AVAILABLE",
        "fault": "FAULTED",
    },
    "FINISHING": {"unplug": "AVAILABLE", "fault": "FAULTED", "disable": "UNAVAILABLE"},
    "FAULTED": {"reset": "AVAILABLE", "disable": "UNAVAILABLE"},
    "UNAVAILABLE": {"fault": "FAULTED", "enable": "AVAILABLE"},
}
BATTERY_TRIGGERS = ["charge", "discharge", "stop", "fault", "reset", "disable", "enable"]
BATTERY_TABLE = {
    "IDLE": {
        "charge": "CHARGING",
        "discharge": "DISCHARGING",
        "fault": "FAULTED",
        "disable": "UNAVAILABLE",
    },
    "CHARGING": {
        "discharge": "DISCHARGING",
        "stop": "IDLE",
        "fault": "FAULTED",
        "disable": "UNAVAILABLE",
    },
    "DISCHARGING": {
        "charge": "CHARGING",
        "stop": "IDLE",
        "fault": "FAULTED",
        "disable": "UNAVAILABLE",
    },
    "FAULTED": {"reset": "IDLE", "disable": "UNAVAILABLE"},
    "UNAVAILABLE": {"fault": "FAULTED", "enable": "IDLE"},
}


def docs_machine(**kwargs) -> StateMachine:
    return StateMachine(
        asset_id="ast_custom_001",
        states={"OFF", "STARTING", "RUNNING", "STOPPING"},
        initial_state="OFF",
        transitions={
            "OFF": {"start": "STARTING"},
            "STARTING": {"ready": "RUNNING", "fail": "OFF"},
            "RUNNING": {"stop": "STOPPING"},
            "STOPPING": {"stopped": "OFF"},
        },
        **kwargs,
    )


def test_documented_generic_example() -> None:
    sm = docs_machine()
    assert sm.trigger("start") == "STARTING"
    assert sm.can_trigger("ready") is True
    assert sm.can_trigger("stop") is False
    assert sm.available_triggers() == ["ready", "fail"]
    assert sm.trigger("fail") == "OFF"
    assert sm.history == [
        {"from_state": "OFF", "to_state": "STARTING", "trigger": "start", "timestamp": None},
        {"from_state": "STARTING", "to_state": "OFF", "trigger": "fail", "timestamp": None},
    ]


def test_invalid_trigger_raises_with_valid_triggers_listed() -> None:
    sm = docs_machine()
    sm.trigger("start")
    with pytest.raises(InvalidTransition) as info:
        sm.trigger("stop")
    error = info.value
    assert isinstance(error, QubitSimError)
    assert error.current_state == "STARTING"
    assert error.trigger == "stop"
    assert error.valid_triggers == ["ready", "fail"]
    assert "valid triggers: ready, fail" in str(error)
    assert "ast_custom_001" in str(error)
    assert sm.state == "STARTING" and len(sm.history) == 1


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(states=set()), "states must not be empty"),
        (dict(initial_state="MOON"), "initial_state 'MOON' is not declared"),
        (dict(transitions={"LIMBO": {"x": "OFF"}}), "undeclared source state 'LIMBO'"),
        (dict(transitions={"OFF": {"go": "MOON"}}), r"-> 'MOON' is not a declared state"),
        (dict(transitions={"OFF": {"": "OFF"}}), "must be a non-empty string"),
        (dict(asset_id=""), "asset_id"),
    ],
)
def test_declaration_errors_name_the_problem(kwargs: dict, match: str) -> None:
    args = dict(
        asset_id="ast_x", states={"OFF", "ON"}, initial_state="OFF", transitions={"OFF": {}}
    )
    args.update(kwargs)
    with pytest.raises(StateMachineError, match=match):
        StateMachine(**args)


@pytest.mark.parametrize("state", list(EV_TABLE))
@pytest.mark.parametrize("trigger", EV_TRIGGERS)
def test_ev_charger_full_table(state: str, trigger: str) -> None:
    sm = create_ev_charger_state_machine("ast_ch_1", initial_state=state)
    expected = EV_TABLE[state].get(trigger)
    assert sm.can_trigger(trigger) is (expected is not None)
    if expected is None:
        with pytest.raises(InvalidTransition) as info:
            sm.trigger(trigger)
        assert info.value.valid_triggers == [t for t in EV_TRIGGERS if t in EV_TABLE[state]]
        assert sm.state == state
    else:
        assert sm.trigger(trigger) == expected


@pytest.mark.parametrize("state", list(BATTERY_TABLE))
@pytest.mark.parametrize("trigger", BATTERY_TRIGGERS)
def test_battery_full_table(state: str, trigger: str) -> None:
    sm = create_battery_state_machine("ast_batt_1", initial_state=state)
    expected = BATTERY_TABLE[state].get(trigger)
    assert sm.can_trigger(trigger) is (expected is not None)
    if expected is None:
        with pytest.raises(InvalidTransition):
            sm.trigger(trigger)
        assert sm.state == state
    else:
        assert sm.trigger(trigger) == expected


def test_machines_declare_the_documented_states() -> None:
    charger = create_ev_charger_state_machine("ast_ch_1")
    battery = create_battery_state_machine("ast_batt_1")
    assert charger.states == set(EV_TABLE) and len(charger.states) == 7
    assert battery.states == set(BATTERY_TABLE) and len(battery.states) == 5
    assert charger.state == ChargerState.AVAILABLE == "AVAILABLE"
    assert battery.state == BatteryState.IDLE == "IDLE"


@pytest.mark.parametrize(
    "path",
    [
        ["plug_in", "start_charge", "complete", "unplug"],  # normal session
        ["plug_in", "start_charge", "suspend", "resume", "complete", "unplug"],  # grid pause
        ["plug_in", "start_charge", "unplug"],  # early departure
        ["plug_in", "start_charge", "fault", "reset"],  # fault recovery
        ["disable", "enable"],
    ],
)
def test_documented_charger_scenarios_return_to_available(path: list[str]) -> None:
    sm = create_ev_charger_state_machine("ast_ch_1")
    for trigger in path:
        sm.trigger(trigger)
    assert sm.state == "AVAILABLE"
    assert [h["trigger"] for h in sm.history] == path


def test_battery_switches_charge_to_discharge_directly() -> None:
    sm = create_battery_state_machine("ast_batt_1")
    assert [sm.trigger(t) for t in ["charge", "discharge", "charge", "stop"]] == [
        "CHARGING",
        "DISCHARGING",
        "CHARGING",
        "IDLE",
    ]


def test_every_state_can_fault_except_faulted_and_fault_resets() -> None:
    for state in EV_TABLE:
        sm = create_ev_charger_state_machine("ast_ch_1", initial_state=state)
        if state == "FAULTED":
            assert not sm.can_trigger("fault")
        else:
            assert sm.trigger("fault") == "FAULTED"
            assert sm.trigger("reset") == "AVAILABLE"


def test_ocpp_status_mapping_round_trips() -> None:
    expected = {
        "AVAILABLE": "Available",
        "PREPARING": "Preparing",
        "CHARGING": "Charging",
        "SUSPENDED": "SuspendedEVSE",
        "FINISHING": "Finishing",
        "FAULTED": "Faulted",
        "UNAVAILABLE": "Unavailable",
    }
    for state, status in expected.items():
        assert ocpp_status(state) == status
        assert charger_state_from_ocpp(status) == state
    assert ocpp_status("SUSPENDED", suspended_by_ev=True) == "SuspendedEV"
    assert charger_state_from_ocpp("SuspendedEV") == "SUSPENDED"
    with pytest.raises(StateMachineError, match="Reserved"):
        charger_state_from_ocpp("Reserved")
    with pytest.raises(StateMachineError, match="not an EV charger state"):
        ocpp_status("IDLE")


def test_state_changed_events_use_the_injected_clock() -> None:
    bus = EventBus()
    log = EventLog.attach(bus)
    now = {"t": 0}
    sm = create_ev_charger_state_machine("ast_ch_1", bus, clock=lambda: now["t"], epoch=EPOCH)
    now["t"] = 90
    sm.trigger("plug_in")
    sm.trigger("start_charge", now=120)
    assert [r["time"] for r in log] == ["2025-01-15T00:01:30Z", "2025-01-15T00:02:00Z"]
    assert log.records[0] == {
        "type": EventType.STATE_CHANGED.value,
        "time": "2025-01-15T00:01:30Z",
        "asset_id": "ast_ch_1",
        "data": {"from_state": "AVAILABLE", "to_state": "PREPARING", "trigger": "plug_in"},
    }
    assert [h["timestamp"] for h in sm.history] == [90, 120]


def test_publishing_needs_a_time_and_an_epoch_for_numbers() -> None:
    sm = create_battery_state_machine("ast_batt_1", EventBus())
    with pytest.raises(StateMachineError, match="without a time"):
        sm.trigger("charge")
    assert sm.state == "IDLE"
    with pytest.raises(TimeBaseError, match="no epoch"):
        sm.trigger("charge", now=5)
    assert sm.state == "IDLE"
    assert sm.trigger("charge", now=EPOCH) == "CHARGING"


@settings(max_examples=200, deadline=None)
@given(
    kind=st.sampled_from(["charger", "battery"]),
    triggers=st.lists(st.sampled_from(sorted(set(EV_TRIGGERS + BATTERY_TRIGGERS))), max_size=40),
)
def test_random_trigger_sequences_stay_in_declared_states(kind: str, triggers: list[str]) -> None:
    if kind == "charger":
        sm, table = create_ev_charger_state_machine("ast_ch_1"), EV_TABLE
    else:
        sm, table = create_battery_state_machine("ast_batt_1"), BATTERY_TABLE
    for trigger in triggers:
        before = sm.state
        if sm.can_trigger(trigger):
            assert sm.trigger(trigger) == table[before][trigger]
        else:
            with pytest.raises(InvalidTransition):
                sm.trigger(trigger)
            assert sm.state == before
        assert sm.state in table
    history = sm.history
    for previous, entry in zip(history, history[1:], strict=False):
        assert entry["from_state"] == previous["to_state"]
    if history:
        assert history[-1]["to_state"] == sm.state
