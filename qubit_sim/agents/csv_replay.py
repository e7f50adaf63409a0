"""Reading recorded charging sessions from CSV (see :meth:`SessionTable.from_csv`)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from qubit_sim.errors import QubitSimError

__all__ = ["read_sessions_csv", "to_utc_timestamp"]

_MAX_REPORTED = 10
_TOL_KWH = 1e-9
_FIELDS = (
    "session_id",
    "vehicle_id",
    "vehicle_type",
    "arrival_s",
    "departure_s",
    "e_needed_kwh",
    "arrival_soc",
    "capacity_kwh",
    "max_ac_kw",
    "max_dc_kw",
    "knee_soc",
    "home_charger",
)


def to_utc_timestamp(value: datetime | str | pd.Timestamp, what: str) -> pd.Timestamp:
    """A tz-aware UTC timestamp from a datetime or ISO string that carries its offset."""
    try:
        stamp = pd.Timestamp(value)
    except (ValueError, TypeError) as exc:
        raise QubitSimError(
            f"{what} {value!r} is not a time; write e.g. 2025-01-06T00:00:00Z"
        ) from exc
    if stamp.tzinfo is None:
        raise QubitSimError(
            f"{what} {value!r} has no time zone; write it in UTC, e.g. ...T00:00:00Z"
        )
    return stamp.tz_convert("UTC")


def _parse_time(text: str, tz: str | None) -> pd.Timestamp:
    stamp = pd.Timestamp(text.strip())
    if stamp is pd.NaT:
        raise ValueError("empty time")
    if stamp.tzinfo is None:
        if tz is None:
            raise ValueError(f"time {text!r} has no UTC offset; add one (e.g. Z) or pass tz=")
        stamp = stamp.tz_localize(tz, ambiguous="raise", nonexistent="raise")
    return stamp.tz_convert("UTC")


def _number(row: pd.Series, column: str, default: float) -> float:
    text = row.get(column)
    if text is None or (isinstance(text, float) and np.isnan(text)) or str(text).strip() == "":
        return default
    return float(text)


def read_sessions_csv(
    path: Path, start_utc: datetime | str, tz: str | None, defaults: dict[str, Any]
) -> dict[str, np.ndarray]:
    """Columns of a :class:`SessionTable` (unsorted) from a sessions CSV; see ``from_csv``."""
    start = to_utc_timestamp(start_utc, "start_utc")
    try:
        table = pd.read_csv(path, dtype=str, skipinitialspace=True, keep_default_na=False)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise QubitSimError(f"cannot read sessions CSV {path}: {exc}") from exc
    table.columns = [str(c).strip() for c in table.columns]
    missing = [c for c in ("arrival", "departure", "kwh") if c not in table.columns]
    if missing:
        raise QubitSimError(
            f"sessions CSV {path} lacks column(s) {', '.join(missing)}; it has "
            f"{', '.join(table.columns)}. Required: arrival, departure, kwh; optional: vehicle_id, "
            "battery_kwh, arrival_soc, max_kw, max_dc_kw, charger"
        )
    problems: list[str] = []
    out: dict[str, list] = {name: [] for name in _FIELDS}
    has_soc = "arrival_soc" in table.columns
    for row_index, row in table.iterrows():
        line = int(row_index) + 2  # header is line 1
        try:
            arrival = _parse_time(row["arrival"], tz)
            departure = _parse_time(row["departure"], tz)
        except (ValueError, TypeError) as exc:
            problems.append(f"line {line}: unparsable time ({exc})")
            continue
        try:
            kwh = float(row["kwh"])
            battery = _number(row, "battery_kwh", defaults["battery_kwh"])
            max_ac = _number(row, "max_kw", defaults["max_ac_kw"])
            max_dc = _number(row, "max_dc_kw", defaults["max_dc_kw"])
            charger = int(_number(row, "charger", defaults["home_charger"]))
            soc_given = has_soc and str(row["arrival_soc"]).strip() != ""
            soc = _number(row, "arrival_soc", defaults["arrival_soc"])
        except ValueError as exc:
            problems.append(f"line {line}: not a number ({exc})")
            continue
        arrival_s = int(round((arrival - start).total_seconds()))
        departure_s = int(round((departure - start).total_seconds()))
        if departure_s <= arrival_s:
            problems.append(f"line {line}: departure {departure} is not after arrival {arrival}")
            continue
        if arrival_s < 0:
            problems.append(
                f"line {line}: arrival {arrival} is before the scenario start {start}; start the "
                "scenario earlier or drop the row"
            )
            continue
        if not np.isfinite(kwh) or kwh < 0:
            problems.append(f"line {line}: kwh must be a number >= 0, got {row['kwh']!r}")
            continue
        if not battery > 0 or not max_ac > 0 or not max_dc > 0:
            problems.append(f"line {line}: battery_kwh, max_kw and max_dc_kw must be > 0")
            continue
        if kwh > battery + _TOL_KWH:
            problems.append(
                f"line {line}: kwh {kwh} exceeds the battery ({battery} kWh); add a battery_kwh "
                "column or raise the default"
            )
            continue
        if soc_given:
            if not 0.0 <= soc <= 1.0 or kwh > (1.0 - soc) * battery + _TOL_KWH:
                problems.append(
                    f"line {line}: arrival_soc {soc} leaves {(1.0 - soc) * battery:g} kWh of room "
                    f"but the session wants {kwh} kWh"
                )
                continue
        else:
            # Lower the assumed arrival SOC just enough for the recorded energy to fit.
            soc = max(min(soc, 1.0 - kwh / battery), 0.0)
        vehicle = str(row.get("vehicle_id", "")).strip() or f"csv_{int(row_index) + 1}"
        out["session_id"].append(int(row_index))
        out["vehicle_id"].append(vehicle)
        out["vehicle_type"].append("csv")
        out["arrival_s"].append(arrival_s)
        out["departure_s"].append(departure_s)
        out["e_needed_kwh"].append(kwh)
        out["arrival_soc"].append(soc)
        out["capacity_kwh"].append(battery)
        out["max_ac_kw"].append(max_ac)
        out["max_dc_kw"].append(max_dc)
        out["knee_soc"].append(float(defaults["knee_soc"]))
        out["home_charger"].append(charger)
    problems += _overlaps(out)
    if problems:
        shown = "\n  ".join(problems[:_MAX_REPORTED])
        more = (
            f"\n  ... and {len(problems) - _MAX_REPORTED} more"
            if len(problems) > _MAX_REPORTED
            else ""
        )
        raise QubitSimError(f"sessions CSV {path}: {len(problems)} bad row(s)\n  {shown}{more}")
    if not out["session_id"]:
        raise QubitSimError(f"sessions CSV {path} has no data rows")
    return {name: np.asarray(values) for name, values in out.items()}


def _overlaps(out: dict[str, list]) -> list[str]:
    problems = []
    by_vehicle: dict[str, list[tuple[int, int, int]]] = {}
    for sid, vehicle, arrival, departure in zip(
        out["session_id"], out["vehicle_id"], out["arrival_s"], out["departure_s"], strict=True
    ):
        by_vehicle.setdefault(vehicle, []).append((arrival, departure, sid))
    for vehicle, stays in by_vehicle.items():
        stays.sort()
        for (_, dep_a, sid_a), (arr_b, _, sid_b) in zip(stays, stays[1:], strict=False):
            if arr_b < dep_a:
                problems.append(
                    f"lines {sid_a + 2} and {sid_b + 2}: sessions of vehicle {vehicle!r} overlap"
                )
    return problems
