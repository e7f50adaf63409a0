"""Telemetry quality flags, document adapters, and that no adapter modifies its input."""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qubit_sim.stack.data import (
    ENERGY_REGISTER,
    SOC_FRACTION,
    AmbiguousTimeError,
    Bounds,
    NonexistentTimeError,
    TelemetryError,
    TimeSeries,
    UnitError,
    convert_timeseries,
    timeseries_to_utc,
    validate_series,
    validate_timeseries,
)

START = pd.Timestamp("2025-01-15T00:00:00Z")


def _minutes(*offsets: int) -> pd.DatetimeIndex:
    return pd.DatetimeIndex([START + pd.Timedelta(minutes=m) for m in offsets])


def test_each_rule_gives_its_quality() -> None:
    values = [0.5, math.nan, 1.2, -0.1, math.inf, 0.9]
    result = validate_series(_minutes(0, 1, 2, 3, 4, 5), values, SOC_FRACTION)
    assert list(result.quality) == ["measured", "missing", "error", "error", "error", "measured"]
    assert result.flags == ((), (), ("out_of_range",), ("out_of_range",), ("out_of_range",), ())
    summary = result.summary
    assert (summary.out_of_range, summary.missing, summary.count) == (3, 1, 6)
    assert summary.counts["measured"] == 2 and not summary.passed
    assert summary.messages[0] == "2025-01-15T00:01:00Z: value missing"
    assert (
        summary.messages[1] == "2025-01-15T00:02:00Z: value 1.2 outside the physical range [0, 1]"
    )


def test_energy_register_must_not_be_negative_or_fall() -> None:
    values = [10.0, 12.0, 11.5, -1.0, 12.5, 12.5 - 1e-10]
    result = validate_series(_minutes(*range(6)), values, ENERGY_REGISTER)
    assert list(result.quality) == ["measured", "measured", "error", "error", "measured", "error"]
    assert result.summary.register_decreases == 2 and result.summary.out_of_range == 1
    assert "register fell to 11.5 below the earlier reading 12" in result.summary.messages[0]
    tolerant = validate_series(_minutes(*range(6)), values, Bounds(0.0, None, True, 1e-9))
    assert tolerant.quality[5] == "measured"


def test_linear_fill_only_between_valid_neighbours_and_within_the_limit() -> None:
    times = _minutes(0, 1, 2, 3, 10, 30, 31)
    values = [np.nan, 0.0, np.nan, 3.0, np.nan, 7.0, np.nan]
    result = validate_series(times, values, fill="linear", max_fill_s=600)
    # 00:02 lies between 00:01 and 00:03; 00:10 between 00:03 and 00:30 (27 min > 10 min);
    # the first and last points have no neighbour on one side
    assert list(result.quality) == [
        "missing", "measured", "interpolated", "measured", "missing", "measured", "missing",
    ]  # fmt: skip
    assert result.values[2] == pytest.approx(1.5)
    assert result.flags[2] == ("interpolated",)
    unlimited = validate_series(times, values, fill="linear")
    assert unlimited.values[4] == pytest.approx(3.0 + 4.0 * 7 / 27)


def test_missing_timestamps_are_inserted_on_a_regular_grid() -> None:
    result = validate_series(_minutes(0, 1, 4), [1.0, 2.0, 5.0], interval_s=60, fill="linear")
    assert list(result.times.strftime("%H:%M")) == ["00:00", "00:01", "00:02", "00:03", "00:04"]
    assert list(result.values) == pytest.approx([1, 2, 3, 4, 5])
    assert result.summary.inserted == 2 and result.summary.interpolated == 2
    with pytest.raises(TelemetryError, match="off the 60 s grid"):
        validate_series([START, START + pd.Timedelta(seconds=65)], [1, 2], interval_s=60)


def test_local_times_need_their_zone_and_dst_gaps_raise() -> None:
    naive = ["2024-03-10 01:30", "2024-03-10 03:30"]
    with pytest.raises(TelemetryError, match="tz='UTC'"):
        validate_series(naive, [1, 2])
    result = validate_series(naive, [1, 2], tz="America/Los_Angeles")
    assert list(result.times.strftime("%H:%M")) == ["09:30", "10:30"]
    with pytest.raises(NonexistentTimeError):
        validate_series(["2024-03-10 02:30"], [1], tz="America/Los_Angeles")


@pytest.mark.parametrize(
    ("times", "values", "message"),
    [
        (_minutes(0, 2, 1), [1, 2, 3], "strictly increasing"),
        (_minutes(0, 0), [1, 2], "strictly increasing"),
        (_minutes(0, 1), [1, 2, 3], "2 times but values of shape"),
        (_minutes(0, 1), ["1", "2"], "not strings"),
    ],
)
def test_malformed_telemetry_is_refused(times: Any, values: Any, message: str) -> None:
    with pytest.raises(TelemetryError, match=message):
        validate_series(times, values)


def test_booleans_and_valid_quality() -> None:
    result = validate_series(_minutes(0, 1), [True, False], valid_quality="estimated")
    assert list(result.quality) == ["estimated", "estimated"]
    assert [p["value"] for p in result.data_points(boolean=True)] == [True, False]


def test_results_fill_a_schema_valid_timeseries(schema_errors: Any) -> None:
    result = validate_series(_minutes(0, 1, 3), [0.2, np.inf, 0.4], SOC_FRACTION, interval_s=60)
    document = {
        "id": "tse_soc",
        "source": {"type": "calculated", "site_id": "sit_a"},
        "measurement": {"parameter": "state_of_charge", "unit": "dimensionless"},
        "interval": "1m",
        "period": {"start": "2025-01-15T00:00:00Z", "end": "2025-01-15T00:04:00Z"},
        "data_points": result.data_points(decimals=3),
        "statistics": result.statistics(include_sum=True),
        "validation": result.validation(),
    }
    assert schema_errors("timeseries", document) == []
    series = TimeSeries.from_document(document)
    assert [p.quality for p in series.data_points] == ["measured", "error", "missing", "measured"]
    assert [p.value for p in series.data_points] == [0.2, None, None, 0.4]
    assert series.statistics.count == 4 and series.statistics.missing_count == 1
    assert series.statistics.mean == pytest.approx(0.3) and series.validation.passed is False


# --- inputs are never modified ---------------------------------------------------------------------

_series_values = st.lists(
    st.one_of(st.floats(-10, 10, allow_nan=False), st.just(math.nan), st.just(math.inf)),
    min_size=1,
    max_size=30,
)


@settings(max_examples=60, deadline=None)
@given(values=_series_values, gaps=st.lists(st.integers(1, 3), min_size=30, max_size=30))
def test_validate_series_leaves_its_inputs_alone(values: list[float], gaps: list[int]) -> None:
    offsets = np.cumsum([0] + gaps[: len(values) - 1])
    times = pd.DatetimeIndex([START + pd.Timedelta(minutes=int(m)) for m in offsets])
    array = np.asarray(values)
    listed = list(values)
    series = pd.Series(values, index=times)
    saved = (times.copy(), array.copy(), list(listed), series.copy())
    for given_values in (array, listed, series):
        result = validate_series(
            times, given_values, Bounds(-5, 5, non_decreasing=True), interval_s=60, fill="linear"
        )
        counts = result.summary.counts
        assert sum(counts.values()) == result.summary.count == int(offsets[-1]) + 1
    assert times.equals(saved[0])
    np.testing.assert_array_equal(array, saved[1])
    assert [repr(v) for v in listed] == [repr(v) for v in saved[2]]
    pd.testing.assert_series_equal(series, saved[3])


def _local_document() -> dict[str, Any]:
    return {
        "id": "tse_local",
        "source": {"type": "meter", "meter_id": "met_a", "site_id": "sit_a"},
        "measurement": {"parameter": "active_power", "unit": "kW"},
        "interval": "1h",
        "timezone": "America/Los_Angeles",
        "period": {"start": "2024-11-03T00:00:00", "end": "2024-11-03T03:00:00"},
        "data_points": [
            {"timestamp": "2024-11-03T00:00:00", "value": 1.5, "quality": "manual"},
            {"timestamp": "2024-11-03T02:00:00", "value": None},
            {"timestamp": "2024-11-03T03:00:00", "value": -2.0, "flags": ["billing"]},
        ],
        "statistics": {"min": -2.0, "max": 1.5},
        "metadata": {"nested": {"list": [1, 2]}},
    }


def test_document_adapters_do_not_modify_their_input() -> None:
    document = _local_document()
    before = copy.deepcopy(document)
    in_watts = convert_timeseries(document, "W")
    in_utc = timeseries_to_utc(in_watts)
    checked = validate_timeseries(in_utc, Bounds(low=0.0), fill="linear")
    assert document == before
    assert in_watts["data_points"][0]["value"] == 1500.0 and in_utc["timezone"] == "UTC"
    # each step returned fresh nested objects: changing the output leaves the input alone
    checked["data_points"][0]["value"] = 99
    checked["metadata"]["nested"]["list"].append(3)
    assert document == before and in_utc["data_points"][0]["value"] == 1500.0


def test_the_adapter_pipeline_produces_a_valid_utc_series(schema_errors: Any) -> None:
    result = validate_timeseries(
        timeseries_to_utc(convert_timeseries(_local_document(), "W")),
        Bounds(low=0.0),
        fill="linear",
    )
    assert schema_errors("timeseries", result) == []
    assert [p["timestamp"] for p in result["data_points"]] == [
        "2024-11-03T07:00:00Z",
        "2024-11-03T10:00:00Z",
        "2024-11-03T11:00:00Z",
    ]
    assert result["period"] == {"start": "2024-11-03T07:00:00Z", "end": "2024-11-03T11:00:00Z"}
    assert result["measurement"] == {
        "parameter": "active_power",
        "unit": "W",
        "original_unit": "kW",
    }
    assert result["metadata"]["source_timezone"] == "America/Los_Angeles"
    points = result["data_points"]
    # a passing point keeps its manual quality; the gap stays missing, as its only valid
    # neighbour is before it; the negative value is an error
    assert [p["quality"] for p in points] == ["manual", "missing", "error"]
    assert points[2]["flags"] == ["billing", "out_of_range"]
    assert result["validation"]["passed"] is False
    assert TimeSeries.from_document(result).data_points[2].value == -2000.0


def test_ambiguous_document_times_raise_unless_a_fold_is_given() -> None:
    document = _local_document()
    document["data_points"][1]["timestamp"] = "2024-11-03T01:30:00"
    with pytest.raises(AmbiguousTimeError, match="ambiguous"):
        timeseries_to_utc(document)
    resolved = timeseries_to_utc(document, fold=1)
    assert resolved["data_points"][1]["timestamp"] == "2024-11-03T09:30:00Z"


def test_official_example_survives_unit_and_time_adaptation(
    examples: dict[str, Any], schema_errors: Any
) -> None:
    original = copy.deepcopy(examples["timeseries"])
    adapted = timeseries_to_utc(convert_timeseries(examples["timeseries"], "MW"))
    assert examples["timeseries"] == original
    assert schema_errors("timeseries", adapted) == []
    assert adapted["data_points"][9]["value"] == pytest.approx(2.5)
    assert [p["timestamp"] for p in adapted["data_points"]] == [
        p["timestamp"] for p in original["data_points"]
    ]
    with pytest.raises(UnitError, match="not of power"):
        convert_timeseries(examples["timeseries"], "kWh")
