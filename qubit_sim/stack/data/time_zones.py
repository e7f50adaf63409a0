"""Local wall-clock times -> UTC, with explicit errors at daylight-saving transitions.

A local time in a spring-forward **gap** never happened on the wall clock (2024-03-10 02:30 in
America/Los_Angeles); a local time in an autumn **overlap** happened twice (2024-11-03 01:30 there,
first at 08:30Z, then at 09:30Z). Both raise, naming the time, the zone and the fix, unless the
caller decides:

* ``fold=0`` takes the first (earlier) of the two instants of an ambiguous time, ``fold=1`` the
  second — the meaning of :pep:`495`'s ``fold``.
* ``nonexistent="shift_forward"`` moves a gap time to the first instant after the gap;
  for series, ``nonexistent="NaT"`` marks it missing.

Times that already carry an offset (aware datetimes, ``...Z``/``+01:00`` strings) are instants:
they are converted by their own offset and ``tz`` is not applied to them. A series mixing naive and
offset-carrying strings is refused rather than guessed. Inputs are never modified.
"""

from __future__ import annotations

import datetime as dt
import difflib
import re
from collections.abc import Sequence
from functools import lru_cache
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import numpy as np
import pandas as pd

from qubit_sim.stack.data.errors import AmbiguousTimeError, NonexistentTimeError, TimezoneError

__all__ = ["check_timezone", "local_to_utc", "localize_to_utc", "parse_times", "utc_to_local"]

Nonexistent = Literal["raise", "shift_forward", "NaT"]
_OFFSET = re.compile(r"\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?\s*(?:[Zz]|[+-]\d{2}(?::?\d{2})?)\s*$")


@lru_cache(maxsize=1)
def _zone_names() -> tuple[str, ...]:
    return tuple(sorted(available_timezones()))


def check_timezone(tz: str) -> ZoneInfo:
    """The :class:`~zoneinfo.ZoneInfo` of an IANA name.

    Raises:
        TimezoneError: an unknown name, with the closest IANA names as suggestions.
    """
    try:
        if not isinstance(tz, str) or not tz:
            raise ValueError
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        names = _zone_names()
        by_case = [name for name in names if isinstance(tz, str) and name.lower() == tz.lower()]
        close = by_case or difflib.get_close_matches(str(tz), names, n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise TimezoneError(
            f"unknown time zone {tz!r}{hint} Use an IANA name such as 'Europe/Amsterdam'"
        ) from None


def parse_times(times: Any) -> pd.DatetimeIndex:
    """Timestamps as a DatetimeIndex: aware if they carry offsets, naive if none does.

    Raises:
        TimezoneError: unreadable timestamps, or a mix of naive and offset-carrying ones.
    """
    if isinstance(times, pd.DatetimeIndex):
        return times
    if isinstance(times, pd.Series | np.ndarray) and pd.api.types.is_datetime64_any_dtype(
        times.dtype
    ):
        return pd.DatetimeIndex(times)
    values = list(times)
    texts = [v for v in values if isinstance(v, str)]
    stamps = [v for v in values if isinstance(v, dt.datetime)]
    with_offset = sum(bool(_OFFSET.search(t)) for t in texts)
    with_offset += sum(v.tzinfo is not None and v.utcoffset() is not None for v in stamps)
    if 0 < with_offset < len(texts) + len(stamps):
        raise TimezoneError(
            f"{with_offset} of {len(values)} timestamps carry a UTC offset and the others do not; "
            "convert the offset-carrying instants and the local wall-clock times separately"
        )
    try:
        return pd.DatetimeIndex(pd.to_datetime(values, utc=with_offset > 0, format="ISO8601"))
    except (ValueError, TypeError) as exc:
        raise TimezoneError(f"cannot read timestamps as ISO 8601 date-times: {exc}") from None


def _clock(instant_ns: int, zone: str) -> str:
    stamp = pd.Timestamp(instant_ns, tz="UTC")
    local = stamp.tz_convert(zone)
    return f"{stamp.strftime('%Y-%m-%dT%H:%M:%S')}Z (UTC{local.strftime('%z')[:3]}:{local.strftime('%z')[3:]})"


def localize_to_utc(
    times: Sequence[Any] | pd.DatetimeIndex | pd.Series,
    tz: str,
    *,
    fold: int | None = None,
    nonexistent: Nonexistent = "raise",
) -> pd.DatetimeIndex:
    """Local wall-clock times in ``tz`` -> a UTC :class:`~pandas.DatetimeIndex`.

    Args:
        times: Naive datetimes, ISO 8601 strings without offset, or a naive DatetimeIndex.
            Offset-carrying times are converted by their own offset. NaT stays NaT.
        tz: IANA zone of the wall clock.
        fold: How to resolve ambiguous times (DST overlap): 0 = first instant, 1 = second;
            None raises.
        nonexistent: Gap times: ``"raise"``, ``"shift_forward"`` (to the end of the gap) or
            ``"NaT"``.

    Raises:
        AmbiguousTimeError: an ambiguous time and ``fold`` is None.
        NonexistentTimeError: a gap time and ``nonexistent="raise"``.
        TimezoneError: an unknown zone, unreadable or mixed naive/offset timestamps, bad options.
    """
    check_timezone(tz)
    if fold not in (None, 0, 1) or isinstance(fold, bool):
        raise TimezoneError(f"fold must be 0 (first instant), 1 (second) or None, got {fold!r}")
    if nonexistent not in ("raise", "shift_forward", "NaT"):
        raise TimezoneError(
            f"nonexistent must be 'raise', 'shift_forward' or 'NaT', got {nonexistent!r}"
        )
    index = parse_times(times).as_unit("ns")
    if index.tz is not None:
        return index.tz_convert("UTC")
    n = len(index)
    present = ~index.isna()
    plain = index.tz_localize(tz, ambiguous="NaT", nonexistent="NaT").tz_convert("UTC")
    result = plain.asi8.copy()
    unresolved = plain.isna() & present
    if not unresolved.any():
        return plain
    as_dst = index.tz_localize(tz, ambiguous=np.ones(n, bool), nonexistent="NaT")
    as_std = index.tz_localize(tz, ambiguous=np.zeros(n, bool), nonexistent="NaT")
    gap = as_dst.isna() & present
    ambiguous = unresolved & ~gap
    if ambiguous.any():
        first = np.minimum(as_dst.asi8, as_std.asi8)
        second = np.maximum(as_dst.asi8, as_std.asi8)
        if fold is None:
            at = int(np.argmax(ambiguous))
            raise AmbiguousTimeError(
                f"local time {index[at]} in {tz} is ambiguous: the clocks went back and showed "
                f"it twice, at {_clock(first[at], tz)} and then {_clock(second[at], tz)}; pass "
                "fold=0 for the first instant or fold=1 for the second" + _count(ambiguous, at)
            )
        result[ambiguous] = (first if fold == 0 else second)[ambiguous]
    if gap.any():
        if nonexistent == "raise":
            at = int(np.argmax(gap))
            raise NonexistentTimeError(
                f"local time {index[at]} does not exist in {tz}: the clocks jumped forward over "
                "it (daylight-saving gap); correct the source clock, or pass "
                f"nonexistent='shift_forward' to move it to {_clock(_gap_end_ns(index[at], tz), tz)}"
                ", the first instant after the gap" + _count(gap, at)
            )
        if nonexistent == "shift_forward":
            result[gap] = [_gap_end_ns(index[i], tz) for i in np.flatnonzero(gap)]
        else:
            result[gap] = pd.NaT.value
    return pd.DatetimeIndex(result.view("datetime64[ns]")).tz_localize("UTC")


def _gap_end_ns(wall: pd.Timestamp, tz: str) -> int:
    """UTC instant [ns] at which the gap containing the wall-clock time ``wall`` ends."""
    # pandas' own shift_forward lands on the next whole hour, which is wrong for zones whose
    # clocks move by 30 minutes (Australia/Lord_Howe); search the offset change instead.
    zone = ZoneInfo(tz)
    naive = wall.floor("s").to_pydatetime()
    bounds = sorted(naive.replace(tzinfo=zone, fold=f).astimezone(dt.UTC) for f in (0, 1))
    low_s, high_s = (int(b.timestamp()) for b in bounds)
    after = dt.datetime.fromtimestamp(high_s, zone).utcoffset()
    while high_s - low_s > 1:
        middle = (low_s + high_s) // 2
        if dt.datetime.fromtimestamp(middle, zone).utcoffset() == after:
            high_s = middle
        else:
            low_s = middle
    return high_s * 1_000_000_000


def _count(mask: np.ndarray, at: int) -> str:
    total = int(mask.sum())
    return f" ({total} such times; the first is at position {at})" if total > 1 else ""


def local_to_utc(
    local: dt.datetime | pd.Timestamp | str,
    tz: str,
    *,
    fold: int | None = None,
    nonexistent: Literal["raise", "shift_forward"] = "raise",
) -> dt.datetime:
    """One local wall-clock time in ``tz`` -> an aware UTC datetime.

    A datetime's own ``fold`` attribute is ignored; pass ``fold=`` to resolve an ambiguous time.
    See :func:`localize_to_utc` for the rules and errors.

    Example:
        >>> local_to_utc("2024-07-15T14:30", "America/Los_Angeles").isoformat()
        '2024-07-15T21:30:00+00:00'
    """
    if nonexistent == "NaT":
        raise TimezoneError("nonexistent='NaT' is for series; a single time must resolve")
    if not isinstance(local, dt.datetime | str):
        raise TimezoneError(f"expected a datetime or an ISO 8601 string, got {local!r}")
    if isinstance(local, dt.datetime) and local.tzinfo is not None:
        check_timezone(tz)
        return local.astimezone(dt.UTC)
    instant = localize_to_utc([local], tz, fold=fold, nonexistent=nonexistent)[0]
    return instant.to_pydatetime()


def utc_to_local(instant: dt.datetime | pd.Timestamp | str, tz: str) -> dt.datetime:
    """An instant (aware datetime or offset-carrying string) as an aware local datetime in ``tz``.

    Raises:
        TimezoneError: a naive time (it names no instant) or an unknown zone.
    """
    zone = check_timezone(tz)
    if isinstance(instant, str):
        if not _OFFSET.search(instant):
            raise TimezoneError(
                f"{instant!r} has no UTC offset, so it names no instant; write e.g. "
                "'2025-01-15T14:30:00Z'"
            )
        instant = pd.Timestamp(instant).to_pydatetime()
    if not isinstance(instant, dt.datetime) or instant.tzinfo is None:
        raise TimezoneError(
            f"{instant!r} is not an aware datetime; attach its zone (UTC: tzinfo=datetime.UTC)"
        )
    return instant.astimezone(zone)
