"""Schedule column contract and change detection."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qubit_sim.stack.coordinate import CommandType, ScheduleError, plan_schedule

DAY = datetime(2025, 1, 15, tzinfo=UTC)


def hourly(start_hour: int, **columns: list[float]) -> pd.DataFrame:
    n = len(next(iter(columns.values())))
    index = pd.date_range(DAY + timedelta(hours=start_hour), periods=n, freq="1h")
    return pd.DataFrame(columns, index=index)


def test_documented_h8_to_h11_example() -> None:
    schedule = hourly(8, ev_ev_001_kw=[22.0, 22.0, 22.0, 0.0], total_ev_kw=[22.0, 22, 22, 0])
    plan = plan_schedule(schedule, {"ev_001": "ast_ev_001"})
    assert [(c.scheduled_at.hour, c.type, c.value_kw) for c in plan.commands] == [
        (8, CommandType.SET_CHARGE_RATE, 22.0),
        (11, CommandType.SET_CHARGE_RATE, 0.0),
    ]
    assert {c.asset_id for c in plan.commands} == {"ast_ev_001"}
    assert plan.columns_used == ("ev_ev_001_kw",)
    assert plan.columns_ignored == ("total_ev_kw",)
    assert (plan.n_slots, plan.start.hour, plan.end.hour) == (4, 8, 11)


def test_first_slot_always_emits_even_zero() -> None:
    plan = plan_schedule(hourly(0, ev_a_kw=[0.0, 0.0, 7.4]), {"a": "ast_a"})
    assert [(c.scheduled_at.hour, c.value_kw) for c in plan.commands] == [(0, 0.0), (2, 7.4)]


def test_battery_flip_gives_two_commands_zero_first() -> None:
    schedule = hourly(
        0,
        battery_charge_kw=[30.0, 30.0, 0.0, 0.0],
        battery_discharge_kw=[0.0, 0.0, 20.0, 20.0],
        net_load_after_kw=[1.0, 2.0, 3.0, 4.0],
    )
    plan = plan_schedule(schedule, {"battery": "ast_batt_001"})
    assert [(c.scheduled_at.hour, c.type.value, c.value_kw) for c in plan.commands] == [
        (0, "SET_DISCHARGE_RATE", 0.0),
        (0, "SET_CHARGE_RATE", 30.0),
        (2, "SET_CHARGE_RATE", 0.0),
        (2, "SET_DISCHARGE_RATE", 20.0),
    ]
    assert {c.schedule_key for c in plan.commands} == {"battery"}


def test_tolerance_and_solver_noise() -> None:
    schedule = hourly(0, ev_a_kw=[11.0, 11.0 + 1e-9, 11.0, -1e-9, 5.0])
    plan = plan_schedule(schedule, {"a": "ast_a"})
    assert [(c.scheduled_at.hour, c.value_kw) for c in plan.commands] == [
        (0, 11.0),
        (3, 0.0),
        (4, 5.0),
    ]


def test_keys_sharing_a_charger_are_summed() -> None:
    schedule = hourly(8, ev_v1_kw=[11.0, 11.0, 0.0, 0.0], ev_v2_kw=[0.0, 0.0, 0.0, 7.0])
    plan = plan_schedule(schedule, {"v1": "ast_bay_1", "v2": "ast_bay_1"})
    assert [(c.scheduled_at.hour, c.value_kw) for c in plan.commands] == [
        (8, 11.0),
        (10, 0.0),
        (11, 7.0),
    ]
    assert plan.commands[0].schedule_key == "v1+v2"


def test_non_utc_index_is_converted() -> None:
    index = pd.date_range("2025-01-15 09:00", periods=2, freq="1h", tz="Europe/Amsterdam")
    plan = plan_schedule(pd.DataFrame({"ev_a_kw": [1.0, 2.0]}, index=index), {"a": "ast_a"})
    assert plan.start == DAY + timedelta(hours=8)
    assert plan.start.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    ("schedule", "match"),
    [
        (pd.DataFrame({"ev_a_kw": [1.0]}, index=[0]), "DatetimeIndex"),
        (
            pd.DataFrame({"ev_a_kw": [1.0]}, index=pd.date_range("2025-01-15", periods=1)),
            "timezone-naive",
        ),
        (hourly(0, ev_a_kw=[1.0, np.nan]), "non-finite value"),
        (hourly(0, ev_a_kw=[1.0, -3.0]), "magnitudes >= 0"),
        (hourly(0, ev_b_kw=[1.0]), r"asset_map\['b'\]"),
        (hourly(0, ev_a_kw=["x"]), "not numeric"),
        (hourly(0, battery_charge_kw=[5.0], battery_discharge_kw=[5.0]), "charge and discharge"),
        (hourly(0, ev_a_kw=[])[:0], "no rows"),
        ([1, 2], "DataFrame"),
    ],
)
def test_contract_violations_raise_clear_errors(schedule, match: str) -> None:
    with pytest.raises(ScheduleError, match=match):
        plan_schedule(schedule, {"a": "ast_a", "battery": "ast_batt"})


def test_unsorted_index_and_did_you_mean() -> None:
    schedule = hourly(0, ev_a_kw=[1.0, 2.0]).iloc[::-1]
    with pytest.raises(ScheduleError, match="strictly increasing"):
        plan_schedule(schedule, {"a": "ast_a"})
    with pytest.raises(ScheduleError, match="did you mean 'ev_001'"):
        plan_schedule(hourly(0, ev_ev_01_kw=[1.0]), {"ev_001": "ast_a"})
    with pytest.raises(ScheduleError, match="both battery and EV"):
        plan_schedule(
            hourly(0, ev_a_kw=[1.0], battery_charge_kw=[1.0]), {"a": "ast_x", "battery": "ast_x"}
        )


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.lists(st.sampled_from([0.0, 3.7, 7.4, 11.0, 22.0]), min_size=1, max_size=30),
        min_size=1,
        max_size=4,
    ).filter(lambda cols: len({len(c) for c in cols}) == 1)
)
def test_holding_the_last_command_reproduces_the_schedule(columns: list[list[float]]) -> None:
    data = {f"ev_{i}_kw": values for i, values in enumerate(columns)}
    schedule = hourly(0, **data)
    asset_map = {str(i): f"ast_bay_{i}" for i in range(len(columns))}
    plan = plan_schedule(schedule, asset_map)
    for i, values in enumerate(columns):
        mine = [c for c in plan.commands if c.asset_id == f"ast_bay_{i}"]
        changes = sum(a != b for a, b in zip(values, values[1:], strict=False))
        assert len(mine) == 1 + changes
        held = []
        for slot_time in schedule.index:
            latest = [c for c in mine if c.scheduled_at <= slot_time][-1]
            held.append(latest.value_kw)
        assert held == values
    times = [c.scheduled_at for c in plan.commands]
    assert times == sorted(times)
