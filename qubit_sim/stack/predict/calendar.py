"""Local-time calendar of epoch-grid slots: time of day, weekday, weekend.

Load and EV demand follow the local clock (office hours, weekends), so calendar features are
taken in the site's time zone; slots themselves stay on the UTC epoch grid.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from qubit_sim.stack.predict.base import DAY_S
from qubit_sim.stack.predict.errors import PredictionError

__all__ = ["CalendarCache", "SlotCalendar", "check_timezone", "slot_calendar"]

_NS = 1_000_000_000


@dataclass(frozen=True, eq=False)
class SlotCalendar:
    """Local calendar of slots (arrays, one entry per slot).

    Attributes:
        hour: Local hour of the slot start, 0..23.
        weekday: Local day of week, Monday = 0.
        weekend: Saturday or Sunday.
        tod_s: Local time of day of the slot start [s], 0..86399.
    """

    hour: np.ndarray
    weekday: np.ndarray
    weekend: np.ndarray
    tod_s: np.ndarray

    def tod_bin(self, slot_s: int) -> np.ndarray:
        """Local slot-of-day index, ``0 .. 86400 // slot_s - 1``."""
        return self.tod_s // slot_s


def check_timezone(tz: str) -> str:
    """Return ``tz`` if pandas knows it, else raise :class:`PredictionError`."""
    try:
        pd.Timestamp(0, tz="UTC").tz_convert(tz)
    except Exception as exc:  # pytz/zoneinfo raise different types for an unknown zone
        raise PredictionError(
            f"unknown time zone {tz!r}; use an IANA name like 'Europe/Amsterdam'"
        ) from exc
    return tz


def slot_calendar(slots: np.ndarray, slot_s: int, tz: str) -> SlotCalendar:
    """Calendar of epoch-grid slots ``slots`` of length ``slot_s`` [s] in time zone ``tz``."""
    start_ns = np.asarray(slots, dtype=np.int64) * (slot_s * _NS)
    local = pd.DatetimeIndex(start_ns.astype("datetime64[ns]")).tz_localize("UTC").tz_convert(tz)
    hour = np.asarray(local.hour, dtype=np.int64)
    tod_s = hour * 3600 + np.asarray(local.minute, dtype=np.int64) * 60 + local.second
    weekday = np.asarray(local.dayofweek, dtype=np.int64)
    return SlotCalendar(
        hour=hour,
        weekday=weekday,
        weekend=weekday >= 5,
        tod_s=np.asarray(tod_s, dtype=np.int64) % DAY_S,
    )


class CalendarCache:
    """:func:`slot_calendar` memoised per UTC day, for forecasters that ask every cycle.

    Args:
        tz: IANA time zone.
    """

    def __init__(self, tz: str) -> None:
        self.tz = check_timezone(tz)
        # (slot_s, UTC day number) -> array (3, slots per day): hour, weekday, tod_s.
        self._days: dict[tuple[int, int], np.ndarray] = {}

    def __call__(self, slots: np.ndarray, slot_s: int) -> SlotCalendar:
        """Calendar of epoch-grid slots ``slots`` of length ``slot_s`` [s]."""
        slots = np.asarray(slots, dtype=np.int64)
        spd = DAY_S // slot_s
        days = slots // spd
        unique_days = np.unique(days)
        missing = [d for d in unique_days.tolist() if (slot_s, d) not in self._days]
        if missing:
            all_slots = (
                np.asarray(missing, dtype=np.int64)[:, None] * spd + np.arange(spd)
            ).ravel()
            fresh = slot_calendar(all_slots, slot_s, self.tz)
            table = np.stack([fresh.hour, fresh.weekday, fresh.tod_s]).reshape(3, len(missing), spd)
            for row, day in enumerate(missing):
                self._days[(slot_s, day)] = table[:, row, :]
        if not len(slots):
            return slot_calendar(slots, slot_s, self.tz)
        stacked = np.stack([self._days[(slot_s, d)] for d in unique_days.tolist()])
        values = stacked[np.searchsorted(unique_days, days), :, slots - days * spd]
        hour, weekday, tod_s = values[:, 0], values[:, 1], values[:, 2]
        return SlotCalendar(hour=hour, weekday=weekday, weekend=weekday >= 5, tod_s=tod_s)
