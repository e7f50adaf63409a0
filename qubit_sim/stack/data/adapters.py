"""L1 adapters: units, time zones and telemetry quality, for values and for TimeSeries documents.

The value-level functions live in :mod:`.unit_conversion`, :mod:`.time_zones` and
:mod:`.telemetry` and are re-exported here. The document-level adapters below form the ingestion
pipeline ``raw TimeSeries dict -> convert_timeseries -> timeseries_to_utc -> validate_timeseries ->
TimeSeries.from_document``. Each returns a new document and leaves its input untouched (deep copy),
nested dicts included.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np

from qubit_sim.stack.data.errors import DataError
from qubit_sim.stack.data.schema_types import format_utc
from qubit_sim.stack.data.telemetry import (
    ENERGY_REGISTER,
    SOC_FRACTION,
    SOC_PERCENT,
    Bounds,
    QualitySummary,
    SeriesValidation,
    validate_series,
)
from qubit_sim.stack.data.time_zones import (
    check_timezone,
    local_to_utc,
    localize_to_utc,
    parse_times,
    utc_to_local,
)
from qubit_sim.stack.data.unit_conversion import (
    BASE_UNITS,
    UNITS,
    convert,
    current_to_power_kw,
    power_to_current_a,
    quantity_of,
    to_amperes,
    to_kw,
    to_kwh,
    to_volts,
    unit_factor,
)

__all__ = [
    "BASE_UNITS",
    "ENERGY_REGISTER",
    "SOC_FRACTION",
    "SOC_PERCENT",
    "UNITS",
    "Bounds",
    "QualitySummary",
    "SeriesValidation",
    "check_timezone",
    "convert",
    "convert_timeseries",
    "current_to_power_kw",
    "local_to_utc",
    "localize_to_utc",
    "parse_times",
    "power_to_current_a",
    "quantity_of",
    "timeseries_to_utc",
    "to_amperes",
    "to_kw",
    "to_kwh",
    "to_volts",
    "unit_factor",
    "utc_to_local",
    "validate_series",
    "validate_timeseries",
]

_STAT_VALUES = ("min", "max", "mean", "median", "std_dev", "sum")


def _section(document: Mapping[str, Any], key: str) -> Any:
    if key not in document:
        raise DataError(f"TimeSeries document has no {key!r}")
    return document[key]


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def convert_timeseries(document: Mapping[str, Any], to_unit: str) -> dict[str, Any]:
    """A copy of a TimeSeries document with its values and statistics in ``to_unit``.

    ``measurement.unit`` becomes ``to_unit`` and ``measurement.original_unit`` records the unit
    the data arrived in (the schema leaves ``measurement`` open). Non-numeric values (null,
    booleans, strings) are kept as they are.

    Raises:
        UnitError: unknown units or different quantities. DataError: no measurement unit.
    """
    out = copy.deepcopy(dict(document))
    measurement = _section(out, "measurement")
    from_unit = measurement.get("unit") if isinstance(measurement, dict) else None
    if from_unit is None:
        raise DataError("TimeSeries document has no measurement.unit to convert from")
    unit_factor(from_unit, to_unit)  # raises before anything is converted
    for point in out.get("data_points", ()):
        if _is_number(point.get("value")):
            point["value"] = convert(point["value"], from_unit, to_unit)
    stats = out.get("statistics")
    for key in _STAT_VALUES:
        if isinstance(stats, dict) and _is_number(stats.get(key)):
            stats[key] = convert(stats[key], from_unit, to_unit)
    measurement.setdefault("original_unit", from_unit)
    measurement["unit"] = to_unit
    return out


def timeseries_to_utc(
    document: Mapping[str, Any],
    tz: str | None = None,
    *,
    fold: int | None = None,
    nonexistent: Literal["raise", "shift_forward"] = "raise",
) -> dict[str, Any]:
    """A copy of a TimeSeries document with every timestamp in UTC (``...Z``).

    Naive timestamps are wall-clock times in ``tz`` (default: the document's ``timezone``, else
    UTC); offset-carrying ones are converted by their own offset. ``timezone`` becomes ``"UTC"``
    and a non-UTC source zone is kept in ``metadata.source_timezone``.

    Raises:
        AmbiguousTimeError, NonexistentTimeError: a timestamp at a DST transition (see
            :func:`localize_to_utc` for ``fold`` and ``nonexistent``).
        TimezoneError: unknown zone, unreadable or mixed timestamps.
    """
    out = copy.deepcopy(dict(document))
    zone = tz or out.get("timezone") or "UTC"
    check_timezone(zone)
    points = out.get("data_points", [])
    if points:
        stamps = localize_to_utc(
            [p.get("timestamp") for p in points], zone, fold=fold, nonexistent=nonexistent
        )
        for point, stamp in zip(points, stamps, strict=True):
            point["timestamp"] = format_utc(stamp.to_pydatetime())

    def one(value: Any) -> Any:
        if value is None:
            return None
        return format_utc(local_to_utc(value, zone, fold=fold, nonexistent=nonexistent))

    for holder, key in (
        (out.get("period"), "start"),
        (out.get("period"), "end"),
        (out, "created_at"),
        (out, "updated_at"),
        (out.get("validation"), "timestamp"),
    ):
        if isinstance(holder, dict) and key in holder:
            holder[key] = one(holder[key])
    if zone != "UTC":
        metadata = out.setdefault("metadata", {})
        metadata.setdefault("source_timezone", zone)
    out["timezone"] = "UTC"
    return out


def validate_timeseries(
    document: Mapping[str, Any],
    bounds: Bounds | None = None,
    *,
    fill: Literal["linear"] | None = None,
    max_fill_s: float | None = None,
    valid_quality: Literal["measured", "validated", "estimated", "manual"] = "measured",
    method: str = "qubit_sim range and register checks",
) -> dict[str, Any]:
    """A copy of a TimeSeries document with each point's ``quality`` and ``flags`` set by
    :func:`validate_series`, plus ``statistics`` and ``validation``.

    A point that passes keeps a quality it already had (e.g. ``manual``); a point that fails gets
    ``error``, ``missing`` or, when filled, ``interpolated`` with the filled value. Existing flags
    are kept. Timestamps must carry offsets: run :func:`timeseries_to_utc` first on local times.

    Raises:
        DataError: a non-numeric value (strings, booleans); TelemetryError: naive or unordered
            timestamps, bad options.
    """
    out = copy.deepcopy(dict(document))
    points = _section(out, "data_points")
    values = []
    for number, point in enumerate(points):
        value = point.get("value")
        if value is not None and not _is_number(value):
            raise DataError(
                f"data_points[{number}].value {value!r} is not a number; validate_timeseries "
                "checks numeric series"
            )
        values.append(math.nan if value is None else float(value))
    result = validate_series(
        [p.get("timestamp") for p in points],
        np.asarray(values, dtype=float),
        bounds,
        fill=fill,
        max_fill_s=max_fill_s,
        valid_quality=valid_quality,
    )
    for i, point in enumerate(points):
        verdict = str(result.quality[i])
        if verdict == "interpolated":
            point["value"] = float(result.values[i])
        if verdict != valid_quality or "quality" not in point:
            point["quality"] = verdict
        if result.flags[i]:
            point["flags"] = list(dict.fromkeys([*point.get("flags", []), *result.flags[i]]))
    out["statistics"] = result.statistics()
    out["validation"] = result.validation(method)
    return out
