"""The Qubit L3 tariff shape and its conversion to the simulator's tariff."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qubit_sim.core import tariff as core
from qubit_sim.stack.data import DocumentError, Tariff

DOCUMENTED = {
    "energy_rates": [
        {
            "name": "off_peak",
            "rate": 0.08,
            "schedule": {"start_time": "00:00", "end_time": "06:59"},
        },
        {"name": "peak", "rate": 0.25, "schedule": {"start_time": "07:00", "end_time": "22:59"}},
        {
            "name": "off_peak_night",
            "rate": 0.08,
            "schedule": {"start_time": "23:00", "end_time": "23:59"},
        },
    ]
}
TZ = "Europe/Amsterdam"


def _prices(tariff: core.Tariff, local: list[str], tz: str = TZ) -> list[float]:
    times = pd.DatetimeIndex(local).tz_localize(tz).tz_convert("UTC")
    return core.energy_price_series(tariff, times, tz).tolist()


def test_documented_example_prices_with_an_inclusive_end_minute() -> None:
    tariff = Tariff.from_document(DOCUMENTED)
    assert tariff.to_json() == DOCUMENTED
    converted = tariff.to_core()
    local = ["2025-01-15 06:59", "2025-01-15 07:00", "2025-01-15 22:59:30", "2025-01-15 23:00"]
    assert _prices(converted, local) == [0.08, 0.25, 0.25, 0.08]
    # the windows are local: a summer 07:00 is 05:00Z, a winter 07:00 is 06:00Z
    assert _prices(converted, ["2025-07-15 07:00", "2025-07-15 06:59"]) == [0.25, 0.08]


def test_weekdays_and_months_may_sit_on_the_rate_or_in_its_schedule() -> None:
    on_rate = {"name": "summer_weekday", "rate": 0.3, "weekdays": ["monday", 1], "months": [6, 7]}
    in_schedule = {
        "name": "summer_weekday",
        "rate": 0.3,
        "schedule": {"weekdays": ["Monday", "tuesday"], "months": [6, 7]},
    }
    local = ["2025-06-02 12:00", "2025-06-03 12:00", "2025-06-04 12:00", "2025-08-04 12:00"]
    for rate in (on_rate, in_schedule):
        tariff = Tariff.from_document({"energy_rates": [rate]}).to_core(default_price_per_kwh=0.1)
        # Monday, Tuesday in June; a Wednesday; a Monday in August
        assert _prices(tariff, local) == [0.3, 0.3, 0.1, 0.1]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"schedule": {"start_time": "22:00", "end_time": "24:00"}}, "inclusive.*'23:59'"),
        ({"schedule": {"start_time": "7:00"}}, "'HH:MM'"),
        ({"weekdays": ["funday"]}, "weekday 'funday'"),
        ({"months": [13]}, r"months\[0\]"),
        ({"weekdays": []}, "weekdays"),
        ({"rate": "0.25"}, "rate"),
        ({"weekdays": ["monday"], "schedule": {"weekdays": ["sunday"]}}, "keep one"),
        ({"price": 0.2}, "unknown field"),
    ],
)
def test_invalid_rates_are_refused_with_the_reason(change: dict[str, Any], message: str) -> None:
    rate = {"name": "peak", "rate": 0.25, **change}
    with pytest.raises(DocumentError, match=message):
        Tariff.from_document({"energy_rates": [rate]})


def test_currency_is_carried_over_and_overrides_reach_the_core_tariff() -> None:
    document = {**copy.deepcopy(DOCUMENTED), "currency": "USD"}
    converted = Tariff.from_document(document).to_core(demand_charge_per_kw=9.5)
    assert converted.currency == "USD" and converted.demand_charge_per_kw == 9.5
    with pytest.raises(DocumentError, match="currency"):
        Tariff.from_document({**DOCUMENTED, "currency": "usd"})


_minute = st.integers(min_value=0, max_value=1439).map(lambda m: f"{m // 60:02d}:{m % 60:02d}")
_rates = st.lists(
    st.builds(
        core.EnergyRate,
        name=st.sampled_from(["a", "b", "c"]),
        price_per_kwh=st.floats(min_value=-0.5, max_value=2.0, allow_nan=False),
        start=_minute,
        end=_minute,
        weekdays=st.none() | st.sets(st.integers(0, 6), min_size=1).map(tuple),
        months=st.none() | st.sets(st.integers(1, 12), min_size=1).map(tuple),
    ),
    min_size=1,
    max_size=4,
)


@settings(max_examples=40, deadline=None)
@given(rates=_rates, default=st.none() | st.floats(min_value=0, max_value=1, allow_nan=False))
def test_core_tariff_survives_the_qubit_shape(
    rates: list[core.EnergyRate], default: float | None
) -> None:
    original = core.Tariff(
        energy_rates=tuple(rates), default_price_per_kwh=0.2 if default is None else default
    )
    again = Tariff.from_core(original).to_core()
    # a week in every month, at 15 minutes, in a zone with DST
    times = pd.date_range("2025-01-01", "2026-01-01", freq="15min", tz="UTC")[::97]
    expected = core.energy_price_series(original, times, TZ)
    assert np.array_equal(core.energy_price_series(again, times, TZ), expected)
