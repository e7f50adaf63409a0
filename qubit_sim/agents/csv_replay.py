"""Reading recorded charging sessions from CSV (see :meth:`SessionTable.from_csv`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from qubit_sim.core.csv_input import read_csv_table
from qubit_sim.errors import QubitSimError

__all__ = ["SESSION_DEFAULTS", "read_sessions_csv", "to_utc_timestamp"]

SESSION_DEFAULTS: dict[str, float] = {
    "battery_kwh": 60.0,
    "arrival_soc": 0.2,
    "max_ac_kw": 11.0,
    "max_dc_kw": 50.0,
    "knee_soc": 0.8,
    "home_charger": -1,
}
"""Values of the optional columns where a sessions CSV leaves them out (those of
:meth:`SessionTable.from_csv`): battery [kWh], arrival SOC, AC and DC limits [kW], knee SOC,
home charger (-1: any free charger)."""

_MAX_REPORTED = 10
_TOL_KWH = 1e-9
# No vehicle battery holds 1,000 kWh; a session "needing" that much was written in Wh.
_WH_HINT_KWH = 1000.0
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


def _number(row: pd.Series, column: str, default: float, decimal_comma: bool) -> float:
    text = row.get(column)
    if text is None or str(text).strip() == "":
        return default
    text = str(text).strip()
    return float(text.replace(",", ".") if decimal_comma else text)


def _charger(text: Any, default: int, charger_ids: Sequence[str]) -> int:
    """A charger given by id (as the results name it) or by 0-based position."""
    written = "" if text is None else str(text).strip()
    if written == "":
        return default
    if written in charger_ids:
        return list(charger_ids).index(written)
    try:
        position = float(written)
    except ValueError:
        position = np.nan
    n = len(charger_ids)
    # -1 is the default's "any free charger".
    if position.is_integer() and (position == -1 or n == 0 or 0 <= position < n):
        return int(position)
    if n:
        listed = ", ".join(charger_ids[:6]) + (", ..." if n > 6 else "")
        raise ValueError(
            f"charger {written!r} is neither a charger id ({listed}) nor a position 0..{n - 1}"
        )
    raise ValueError(f"charger {written!r} is not a charger position (a whole number from 0)")


def read_sessions_csv(
    path: Path,
    start_utc: datetime | str,
    tz: str | None,
    defaults: dict[str, Any],
    charger_ids: Sequence[str] = (),
) -> dict[str, np.ndarray]:
    """Columns of a :class:`SessionTable` (unsorted) from a sessions CSV; see ``from_csv``.

    Times follow :mod:`qubit_sim.core.csv_input`: with an offset as written, without one local
    time of ``tz`` (``None`` refuses them). ``charger`` names a charger by its id in
    ``charger_ids`` or by its 0-based position.
    """
    start = to_utc_timestamp(start_utc, "start_utc")
    table = read_csv_table(path, "sessions CSV")
    table.require(
        {"arrival": "", "departure": "", "kwh": "kWh"},
        {
            "vehicle_id": "",
            "battery_kwh": "kWh",
            "arrival_soc": "",
            "max_kw": "kW",
            "max_dc_kw": "kW",
            "charger": "",
        },
    )
    frame = table.frame
    decimal_comma = table.separator != ","
    arrivals = table.time_column("arrival", tz)
    departures = table.time_column("departure", tz)
    problems: list[str] = []
    out: dict[str, list] = {name: [] for name in _FIELDS}
    has_soc = table.has("arrival_soc")
    for position, (_, row) in enumerate(frame.iterrows()):
        line = int(table.lines[position])
        bad_time = arrivals.row_problem(position) or departures.row_problem(position)
        if bad_time is not None:
            problems.append(f"line {line}: {bad_time}")
            continue
        arrival = arrivals.utc[position]
        departure = departures.utc[position]
        try:
            if str(row["kwh"]).strip() == "":
                raise ValueError("kwh is empty")
            kwh = _number(row, "kwh", np.nan, decimal_comma)
            battery = _number(row, "battery_kwh", defaults["battery_kwh"], decimal_comma)
            max_ac = _number(row, "max_kw", defaults["max_ac_kw"], decimal_comma)
            max_dc = _number(row, "max_dc_kw", defaults["max_dc_kw"], decimal_comma)
            soc_given = has_soc and str(row["arrival_soc"]).strip() != ""
            soc = _number(row, "arrival_soc", defaults["arrival_soc"], decimal_comma)
        except ValueError as exc:
            problems.append(f"line {line}: not a number ({exc})")
            continue
        try:
            charger = _charger(row.get("charger"), int(defaults["home_charger"]), charger_ids)
        except ValueError as exc:
            problems.append(f"line {line}: {exc}")
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
            unit = " (is it in Wh? kwh is in kWh)" if kwh >= _WH_HINT_KWH else ""
            problems.append(
                f"line {line}: kwh {kwh} exceeds the battery ({battery} kWh){unit}; add a "
                "battery_kwh column or raise the default"
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
        vehicle = str(row.get("vehicle_id", "")).strip() or f"csv_{position + 1}"
        out["session_id"].append(position)
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
