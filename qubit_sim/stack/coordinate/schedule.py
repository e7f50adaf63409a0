"""L3 schedule table -> timed setpoint commands, with change detection.

Column contract (Qubit L3 -> L4):

========================  ======================  ===================================
column                    command                 asset (via ``asset_map``)
========================  ======================  ===================================
``ev_{key}_kw``           ``SET_CHARGE_RATE``     ``asset_map[key]`` (an EV charger)
``battery_charge_kw``     ``SET_CHARGE_RATE``     ``asset_map["battery"]``
``battery_discharge_kw``  ``SET_DISCHARGE_RATE``  ``asset_map["battery"]``
========================  ======================  ===================================

Every other column (``total_ev_kw``, ``net_load_kw``, prices, forecasts...) is ignored. Values are
magnitudes [kW] >= 0; slight solver noise down to ``-tolerance_kw`` reads as 0.

Change detection: a command is emitted at a slot when its value differs from the previous slot's by
more than ``tolerance_kw``. The first slot always emits, a change to zero is a real command, and the
battery's charge and discharge columns are diffed independently (a charge -> discharge flip gives
``SET_CHARGE_RATE 0`` then ``SET_DISCHARGE_RATE x`` at the same slot; zeroing commands are ordered
first within a slot). Several EV keys mapped to one charger (vehicles sharing a bay over the day)
are summed per slot before the diff, since a connector has one power limit.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import numpy as np

from qubit_sim.stack.coordinate.commands import CommandType
from qubit_sim.stack.coordinate.errors import ScheduleError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = [
    "BATTERY_CHARGE_COLUMN",
    "BATTERY_DISCHARGE_COLUMN",
    "BATTERY_KEY",
    "PlannedCommand",
    "SchedulePlan",
    "plan_schedule",
]

BATTERY_KEY = "battery"
BATTERY_CHARGE_COLUMN = "battery_charge_kw"
BATTERY_DISCHARGE_COLUMN = "battery_discharge_kw"
_EV_COLUMN = re.compile(r"^ev_(?P<key>.+)_kw$")


@dataclass(frozen=True)
class PlannedCommand:
    """A setpoint change found in a schedule.

    Attributes:
        schedule_key: Key(s) in ``asset_map`` (``"ev_001"``; ``"ev_001+ev_002"`` when summed).
        asset_id: Target asset.
        type: ``SET_CHARGE_RATE`` or ``SET_DISCHARGE_RATE``.
        value_kw: Power magnitude [kW] >= 0.
        scheduled_at: Slot start (UTC).
        column: Source column(s), ``+``-joined when summed.
    """

    schedule_key: str
    asset_id: str
    type: CommandType
    value_kw: float
    scheduled_at: datetime
    column: str


@dataclass(frozen=True)
class SchedulePlan:
    """Result of :func:`plan_schedule`: the commands plus what the table covered."""

    commands: tuple[PlannedCommand, ...]
    start: datetime
    end: datetime
    n_slots: int
    asset_ids: tuple[str, ...]
    columns_used: tuple[str, ...]
    columns_ignored: tuple[str, ...]


@dataclass
class _Channel:
    asset_id: str
    type: CommandType
    keys: list[str]
    columns: list[str]
    first_position: int


def _index_utc(schedule: pd.DataFrame) -> list[datetime]:
    import pandas as pd

    if not isinstance(schedule, pd.DataFrame):
        raise ScheduleError(f"schedule must be a pandas DataFrame, got {type(schedule).__name__}")
    index = schedule.index
    if not isinstance(index, pd.DatetimeIndex):
        raise ScheduleError(
            f"schedule index must be a DatetimeIndex of slot starts (UTC), got "
            f"{type(index).__name__}"
        )
    if len(index) == 0:
        raise ScheduleError("schedule has no rows; nothing to dispatch")
    if index.tz is None:
        raise ScheduleError(
            f"schedule index is timezone-naive (first slot {index[0]}); localise it, e.g. "
            "schedule.tz_localize('UTC')"
        )
    if not (index.is_monotonic_increasing and index.is_unique):
        raise ScheduleError("schedule index must be strictly increasing (sorted, no duplicates)")
    return list(index.tz_convert("UTC").to_pydatetime())


def _channels(columns: list[str], asset_map: Mapping[str, str]) -> tuple[list[_Channel], list[str]]:
    channels: dict[tuple[str, CommandType], _Channel] = {}
    ignored: list[str] = []
    missing: list[tuple[str, str]] = []
    kind_of_asset: dict[str, str] = {}
    for position, column in enumerate(columns):
        match = _EV_COLUMN.match(column)
        if column == BATTERY_CHARGE_COLUMN:
            key, command_type, kind = BATTERY_KEY, CommandType.SET_CHARGE_RATE, "battery"
        elif column == BATTERY_DISCHARGE_COLUMN:
            key, command_type, kind = BATTERY_KEY, CommandType.SET_DISCHARGE_RATE, "battery"
        elif match:
            key, command_type, kind = match.group("key"), CommandType.SET_CHARGE_RATE, "charger"
        else:
            ignored.append(column)
            continue
        asset_id = asset_map.get(key)
        if not isinstance(asset_id, str) or not asset_id:
            missing.append((column, key))
            continue
        if kind_of_asset.setdefault(asset_id, kind) != kind:
            raise ScheduleError(
                f"asset {asset_id!r} is mapped from both battery and EV columns; map the "
                "'battery' key and the EV keys to different assets"
            )
        channel = channels.get((asset_id, command_type))
        if channel is None:
            channel = _Channel(asset_id, command_type, [], [], position)
            channels[(asset_id, command_type)] = channel
        channel.keys.append(key)
        channel.columns.append(column)
    if missing:
        known = list(asset_map)
        parts = []
        for column, key in missing:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            parts.append(f"{column!r} needs asset_map[{key!r}]{hint}")
        raise ScheduleError("schedule columns without an asset: " + "; ".join(parts))
    return list(channels.values()), ignored


def _values(
    schedule: pd.DataFrame, channel: _Channel, times: list[datetime], tol: float
) -> np.ndarray:
    total = np.zeros(len(times))
    for column in channel.columns:
        try:
            values = schedule[column].to_numpy(dtype=float)
        except (TypeError, ValueError) as exc:
            raise ScheduleError(f"column {column!r} is not numeric: {exc}") from exc
        bad = ~np.isfinite(values)
        if bad.any():
            slot = times[int(np.argmax(bad))]
            raise ScheduleError(f"column {column!r} has a missing/non-finite value at {slot}")
        negative = values < -tol
        if negative.any():
            i = int(np.argmax(negative))
            raise ScheduleError(
                f"column {column!r} is {values[i]} kW at {times[i]}; schedule powers are "
                "magnitudes >= 0 (use battery_discharge_kw for discharge)"
            )
        total += np.maximum(values, 0.0)
    return total


def plan_schedule(
    schedule: pd.DataFrame, asset_map: Mapping[str, str], tolerance_kw: float = 1e-6
) -> SchedulePlan:
    """Turn an L3 schedule into setpoint changes (see the module docstring for the contract).

    Args:
        schedule: Table indexed by slot start (timezone-aware; converted to UTC).
        asset_map: Schedule key (``"ev_001"``, ``"battery"``) -> asset id.
        tolerance_kw: Changes up to this size [kW] are not changes.

    Raises:
        ScheduleError: bad index, non-numeric/NaN/negative values, unmapped keys, a battery
            charging and discharging in the same slot.
    """
    if not tolerance_kw >= 0:
        raise ScheduleError(f"tolerance_kw {tolerance_kw!r} must be >= 0")
    times = _index_utc(schedule)
    columns = [str(c) for c in schedule.columns]
    channels, ignored = _channels(columns, asset_map)
    planned: list[tuple[int, int, int, PlannedCommand]] = []
    battery_series: dict[str, dict[CommandType, np.ndarray]] = {}
    for channel in channels:
        values = _values(schedule, channel, times, tolerance_kw)
        if channel.keys[0] == BATTERY_KEY:
            battery_series.setdefault(channel.asset_id, {})[channel.type] = values
        changed = np.ones(len(values), dtype=bool)
        changed[1:] = np.abs(np.diff(values)) > tolerance_kw
        key = "+".join(dict.fromkeys(channel.keys))
        column = "+".join(channel.columns)
        is_battery = channel.keys[0] == BATTERY_KEY
        for slot in np.flatnonzero(changed):
            value = float(values[slot])
            # A battery holds one signed setpoint: the zeroing half of a flip goes first.
            rank = 0 if is_battery and value <= tolerance_kw else 1
            command = PlannedCommand(
                key, channel.asset_id, channel.type, value, times[slot], column
            )
            planned.append((int(slot), rank, channel.first_position, command))
    for asset_id, series in battery_series.items():
        if len(series) == 2:
            both = (series[CommandType.SET_CHARGE_RATE] > tolerance_kw) & (
                series[CommandType.SET_DISCHARGE_RATE] > tolerance_kw
            )
            if both.any():
                clash = times[int(np.argmax(both))]
                raise ScheduleError(
                    f"battery {asset_id!r} is scheduled to charge and discharge in the same slot "
                    f"({clash}); one of battery_charge_kw / battery_discharge_kw must be 0"
                )
    planned.sort(key=lambda item: item[:3])
    used = [c for c in columns if c not in ignored]
    return SchedulePlan(
        commands=tuple(item[3] for item in planned),
        start=times[0],
        end=times[-1],
        n_slots=len(times),
        asset_ids=tuple(sorted({c.asset_id for c in channels})),
        columns_used=tuple(used),
        columns_ignored=tuple(ignored),
    )
