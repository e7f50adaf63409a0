"""Simulated time as seen by the coordination layer.

Callers pass ``now`` either as integer seconds since the scenario start or as a timezone-aware
datetime. Internally every instant is a timezone-aware UTC :class:`~datetime.datetime`, because L3
schedules are indexed in UTC. Integer seconds are placed on that line with an *epoch* (the scenario
start); there is deliberately no default epoch, so a bare integer never silently means 1970.
Nothing here reads the wall clock.
"""

from __future__ import annotations

import numbers
from datetime import UTC, datetime, timedelta

from qubit_sim.stack.coordinate.errors import TimeBaseError

__all__ = ["SimTime", "iso_z", "to_utc"]

SimTime = int | float | datetime
"""An instant: seconds since the scenario start [s], or a timezone-aware datetime."""


def to_utc(time: SimTime, epoch: datetime | None = None, *, what: str = "time") -> datetime:
    """Place ``time`` on the UTC time line.

    Args:
        time: Seconds since ``epoch`` [s] or a timezone-aware datetime (pandas Timestamps work).
        epoch: The instant of second 0; needed only when ``time`` is a number.
        what: Name of the argument, used in error messages.

    Raises:
        TimeBaseError: naive datetime, numeric time without an epoch, or an unsupported type.
    """
    if isinstance(time, datetime):
        if time.tzinfo is None or time.utcoffset() is None:
            raise TimeBaseError(
                f"{what} {time!r} is a naive datetime; pass a timezone-aware UTC datetime "
                "(e.g. datetime(..., tzinfo=UTC)) or integer seconds since the scenario start"
            )
        instant: datetime = time.to_pydatetime() if hasattr(time, "to_pydatetime") else time
        return instant.astimezone(UTC)
    if isinstance(time, bool) or not isinstance(time, numbers.Real):
        raise TimeBaseError(
            f"{what} {time!r} has type {type(time).__name__}; pass integer seconds since the "
            "scenario start or a timezone-aware datetime"
        )
    if epoch is None:
        raise TimeBaseError(
            f"{what} {time!r} is a number of seconds but no epoch is set; pass epoch=<scenario "
            "start, a timezone-aware datetime> to the component, or pass a datetime"
        )
    return to_utc(epoch, what="epoch") + timedelta(seconds=float(time))


def iso_z(instant: datetime) -> str:
    """ISO 8601 UTC text with a ``Z`` suffix; milliseconds only when the instant has them."""
    utc = to_utc(instant, what="instant")
    if utc.microsecond:
        return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"
    return utc.strftime("%Y-%m-%dT%H:%M:%SZ")
