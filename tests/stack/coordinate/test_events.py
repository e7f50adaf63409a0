"""Event bus: ordering, wildcard, error collection, and JSON records."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from qubit_sim.errors import QubitSimError
from qubit_sim.stack.coordinate import (
    Command,
    CommandEventData,
    CommandState,
    CommandType,
    CoordinationError,
    Event,
    EventBus,
    EventHandlerError,
    EventLog,
    EventType,
    ScheduleReceivedData,
    StateChangedData,
    TimeBaseError,
    to_record,
)

T0 = datetime(2025, 1, 15, 8, 0, tzinfo=UTC)


def state_event(asset_id: str = "ast_ch_1", time: datetime = T0) -> Event:
    return Event(EventType.STATE_CHANGED, time, asset_id, StateChangedData("A", "B", "go"))


def command_event(event_type: EventType = EventType.COMMAND_CREATED) -> Event:
    command = Command("cmd_000001", "ast_ch_1", CommandType.SET_CHARGE_RATE, T0, value_kw=22.0)
    return Event(event_type, T0, "ast_ch_1", CommandEventData.from_command(command))


def test_event_types_are_the_eight_documented_ones() -> None:
    assert {t.value for t in EventType} == {
        "COMMAND_CREATED",
        "COMMAND_DISPATCHED",
        "COMMAND_ACKNOWLEDGED",
        "COMMAND_COMPLETED",
        "COMMAND_FAILED",
        "COMMAND_TIMED_OUT",
        "STATE_CHANGED",
        "SCHEDULE_RECEIVED",
    }


def test_handlers_run_in_registration_order_with_wildcards_interleaved() -> None:
    bus = EventBus()
    calls: list[str] = []
    bus.subscribe(EventType.STATE_CHANGED, lambda e: calls.append("typed-1"))
    bus.subscribe(None, lambda e: calls.append("wild"))
    bus.subscribe(EventType.COMMAND_CREATED, lambda e: calls.append("other-type"))
    bus.subscribe(EventType.STATE_CHANGED, lambda e: calls.append("typed-2"))
    bus.publish(state_event())
    assert calls == ["typed-1", "wild", "typed-2"]
    calls.clear()
    bus.publish(command_event())
    assert calls == ["wild", "other-type"]
    assert bus.handler_count(EventType.STATE_CHANGED) == 3
    assert bus.handler_count() == 4


def test_unsubscribe_stops_delivery_and_reports_unknown() -> None:
    bus = EventBus()
    seen: list[Event] = []
    subscription = bus.subscribe(None, seen.append)
    bus.publish(state_event())
    assert bus.unsubscribe(subscription) is True
    assert bus.unsubscribe(subscription) is False
    bus.publish(state_event())
    assert len(seen) == 1


def test_handler_errors_are_collected_after_all_handlers_ran() -> None:
    bus = EventBus()
    seen: list[str] = []

    def broken(event: Event) -> None:
        raise ValueError("boom")

    def also_broken(event: Event) -> None:
        raise KeyError("gone")

    bus.subscribe(None, broken)
    bus.subscribe(None, lambda e: seen.append("after-first"))
    bus.subscribe(None, also_broken)
    bus.subscribe(None, lambda e: seen.append("last"))
    with pytest.raises(EventHandlerError) as info:
        bus.publish(state_event())
    assert seen == ["after-first", "last"]
    error = info.value
    assert isinstance(error, QubitSimError)
    assert [type(exc) for _, exc in error.failures] == [ValueError, KeyError]
    assert isinstance(error.__cause__, ValueError)
    assert "2 handlers failed on STATE_CHANGED" in str(error)
    assert "broken" in str(error) and "boom" in str(error)


def test_handler_may_publish_and_subscribe_during_delivery() -> None:
    bus = EventBus()
    order: list[str] = []

    def first(event: Event) -> None:
        order.append(f"first:{event.type}")
        if event.type is EventType.STATE_CHANGED:
            bus.subscribe(None, lambda e: order.append("late"))
            bus.publish(command_event())

    bus.subscribe(None, first)
    bus.subscribe(None, lambda e: order.append(f"second:{e.type}"))
    bus.publish(state_event())
    # depth-first; the handler added mid-publish sees only later publishes
    assert order == [
        "first:STATE_CHANGED",
        "first:COMMAND_CREATED",
        "second:COMMAND_CREATED",
        "late",
        "second:STATE_CHANGED",
    ]


def test_payload_class_must_match_event_type() -> None:
    with pytest.raises(CoordinationError, match="STATE_CHANGED events carry StateChangedData"):
        Event(EventType.STATE_CHANGED, T0, "a", command_event().data)
    with pytest.raises(CoordinationError, match="unknown event type"):
        Event("NOT_A_TYPE", T0, "a", StateChangedData("A", "B", "t"))  # type: ignore[arg-type]


def test_event_time_must_be_aware_and_is_normalised_to_utc() -> None:
    with pytest.raises(TimeBaseError, match="naive"):
        state_event(time=datetime(2025, 1, 15, 8, 0))
    plus_two = timezone(timedelta(hours=2))
    event = state_event(time=datetime(2025, 1, 15, 10, 0, tzinfo=plus_two))
    assert event.time == T0 and event.time.utcoffset() == timedelta(0)


def test_subscribe_rejects_bad_type_and_handler() -> None:
    bus = EventBus()
    with pytest.raises(CoordinationError, match="not an event type"):
        bus.subscribe("COMMAND_EXPLODED", print)  # type: ignore[arg-type]
    with pytest.raises(CoordinationError, match="not callable"):
        bus.subscribe(None, 42)  # type: ignore[arg-type]
    with pytest.raises(CoordinationError, match="takes an Event"):
        bus.publish({"type": "STATE_CHANGED"})  # type: ignore[arg-type]


def test_to_record_is_json_for_every_payload_kind() -> None:
    schedule = ScheduleReceivedData(
        site_id="sit_x",
        start=T0,
        end=T0 + timedelta(hours=3),
        n_slots=4,
        asset_ids=("ast_a",),
        columns_used=("ev_1_kw",),
        columns_ignored=("price_per_kwh",),
        n_commands=2,
        n_cancelled=0,
    )
    events = [
        state_event(),
        command_event(EventType.COMMAND_FAILED),
        Event(EventType.SCHEDULE_RECEIVED, T0, None, schedule),
    ]
    records = [to_record(e) for e in events]
    for record in records:
        assert json.loads(json.dumps(record, allow_nan=False)) == record
        assert record["time"] == "2025-01-15T08:00:00Z"
    assert records[0]["data"] == {"from_state": "A", "to_state": "B", "trigger": "go"}
    command = records[1]["data"]
    assert command["command_type"] == "SET_CHARGE_RATE"
    assert command["state"] == CommandState.PENDING.value
    assert command["scheduled_at"] == "2025-01-15T08:00:00Z"
    assert records[2]["data"]["end"] == "2025-01-15T11:00:00Z"
    assert records[2]["data"]["asset_ids"] == ["ast_a"]
    assert records[2]["asset_id"] is None


def test_event_log_keeps_order_and_writes_jsonl(tmp_path) -> None:
    bus = EventBus()
    log = EventLog.attach(bus)
    bus.publish(command_event())
    bus.publish(state_event(time=T0 + timedelta(milliseconds=1500)))
    assert len(log) == 2
    assert [r["type"] for r in log] == ["COMMAND_CREATED", "STATE_CHANGED"]
    assert log.of_type(EventType.STATE_CHANGED)[0]["time"] == "2025-01-15T08:00:01.500Z"
    path = log.write_jsonl(tmp_path / "events.jsonl")
    lines = path.read_text().splitlines()
    assert [json.loads(line) for line in lines] == log.records
