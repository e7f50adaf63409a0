"""Durations, the simulation clock and the seeded random tree."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from qubit_sim.core.clock import SimClock, format_duration, parse_duration
from qubit_sim.core.rng import RngTree


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("7d", 604800), ("15min", 900), ("1h30min", 5400), ("60s", 60), (900, 900), ("90", 90),
     ("1w", 604800), ("2h", 7200), ("0.5h", 1800)],
)
def test_parse_duration(text: str | int, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["", "7 days", "15minutes", "-5", "1.5s", -3, 1.5, True, "h"])
def test_parse_duration_rejects(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(bad)  # type: ignore[arg-type]


@given(st.integers(min_value=0, max_value=10**9))
def test_format_then_parse_round_trips(seconds: int) -> None:
    assert parse_duration(format_duration(seconds)) == seconds


def test_clock_maps_seconds_to_utc() -> None:
    clock = SimClock(datetime(2025, 3, 30, tzinfo=UTC), 900, 86400)
    assert clock.n_steps == 96
    assert clock.iso(3600) == "2025-03-30T01:00:00Z"
    index = clock.index()
    assert len(index) == 96 and str(index.tz) == "UTC"
    assert (np.diff(index.asi8) == 900 * 10**9).all()  # no DST jumps in UTC


def test_clock_rejects_bad_steps() -> None:
    with pytest.raises(ValueError, match="divide"):
        SimClock(datetime(2025, 1, 1, tzinfo=UTC), 7 * 60, 3600)
    with pytest.raises(ValueError, match="timezone-aware"):
        SimClock(datetime(2025, 1, 1), 60, 3600)


def test_rng_streams_are_reproducible_and_independent() -> None:
    a, b = RngTree(5), RngTree(5)
    assert np.array_equal(a.generator("evs").random(8), b.generator("evs").random(8))
    assert not np.array_equal(a.generator("evs").random(8), a.generator("pv").random(8))
    assert not np.array_equal(RngTree(6).generator("evs").random(8), b.generator("evs").random(8))
    # Asking for another stream first does not change a stream's numbers.
    c = RngTree(5)
    c.generator("other").random(100)
    assert np.array_equal(c.generator("evs").random(8), RngTree(5).generator("evs").random(8))
    assert RngTree(5).child_seed("x") == RngTree(5).child_seed("x")
    with pytest.raises(ValueError):
        RngTree(-1)
