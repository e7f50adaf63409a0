"""Simulation time: integer seconds since the scenario start, and its mapping to UTC.

Durations are written in scenario files as ``"7d"``, ``"15min"``, ``"1h30min"``, ``"60s"`` or as a
plain integer number of seconds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np

__all__ = ["SimClock", "format_duration", "parse_duration"]

_UNITS = {
    "w": 7 * 86400,
    "d": 86400,
    "h": 3600,
    "min": 60,
    "m": 60,
    "s": 1,
}
_TOKEN = re.compile(r"(\d+(?:\.\d+)?)\s*(w|d|h|min|m|s)")


def parse_duration(value: str | int | float) -> int:
    """Parse a duration into whole seconds.

    Accepts an integer (seconds) or a string of one or more ``<number><unit>`` parts with units
    ``w, d, h, min (or m), s``: ``"7d"``, ``"15min"``, ``"1h30min"``, ``"90s"``.

    Raises:
        ValueError: for anything else, naming the value and the accepted forms.
    """
    if isinstance(value, bool):
        raise ValueError(f"duration {value!r} is a boolean; write e.g. '15min' or 900")
    if isinstance(value, int | float):
        if value != int(value) or value < 0:
            raise ValueError(f"duration {value!r} must be a whole, non-negative number of seconds")
        return int(value)
    text = str(value).strip().lower().replace(" ", "")
    if text.isdigit():
        return int(text)
    pos = 0
    total = 0.0
    for match in _TOKEN.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise ValueError(
            f"cannot read duration {value!r}; write e.g. '7d', '15min', '1h30min', '60s' or seconds"
        )
    if total != int(total):
        raise ValueError(f"duration {value!r} is not a whole number of seconds")
    return int(total)


def format_duration(seconds: int) -> str:
    """Format whole seconds compactly, e.g. ``90061 -> '1d1h1min1s'``."""
    if seconds == 0:
        return "0s"
    parts = []
    rest = int(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60), ("s", 1)):
        count, rest = divmod(rest, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


@dataclass(frozen=True)
class SimClock:
    """Maps simulation seconds to UTC instants.

    Attributes:
        start: Scenario start, timezone-aware UTC.
        step_s: Physics step [s].
        duration_s: Scenario length [s]; a multiple of ``step_s``.
    """

    start: datetime
    step_s: int
    duration_s: int

    def __post_init__(self) -> None:
        if self.start.tzinfo is None:
            raise ValueError("SimClock.start must be timezone-aware (UTC)")
        if self.step_s <= 0 or self.duration_s % self.step_s:
            raise ValueError(
                f"step {self.step_s} s must be positive and divide the duration {self.duration_s} s"
            )

    @property
    def n_steps(self) -> int:
        """Number of physics steps in the scenario."""
        return self.duration_s // self.step_s

    def to_utc(self, sim_time_s: int) -> datetime:
        """UTC instant of simulation time ``sim_time_s``."""
        return (self.start + timedelta(seconds=int(sim_time_s))).astimezone(UTC)

    def iso(self, sim_time_s: int) -> str:
        """ISO 8601 UTC timestamp with a ``Z`` suffix."""
        return self.to_utc(sim_time_s).strftime("%Y-%m-%dT%H:%M:%SZ")

    def step_times_s(self, n_steps: int | None = None) -> np.ndarray:
        """Start time [s] of every step."""
        n = self.n_steps if n_steps is None else n_steps
        return np.arange(n, dtype=np.int64) * self.step_s

    def index(self, n_steps: int | None = None):  # -> pandas.DatetimeIndex
        """UTC :class:`pandas.DatetimeIndex` of every step start."""
        import pandas as pd

        start = pd.Timestamp(self.start).tz_convert("UTC")
        n = self.n_steps if n_steps is None else n_steps
        return pd.date_range(start, periods=n, freq=pd.Timedelta(seconds=self.step_s))
