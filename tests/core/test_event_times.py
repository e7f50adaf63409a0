"""Event timestamps: the simulation's cached formatting writes what the clock writes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from types import SimpleNamespace

from hypothesis import given, settings
from hypothesis import strategies as st

from qubit_sim.core.clock import SimClock
from qubit_sim.scenario.simulation import Simulation

STARTS = [
    datetime(2025, 5, 5, tzinfo=UTC),
    datetime(2024, 2, 29, 23, 59, 59, 999_999, tzinfo=UTC),
    datetime(2025, 3, 30, 0, 30, tzinfo=timezone(timedelta(hours=2))),
    datetime(999, 12, 31, 23, 0, tzinfo=UTC),
]


@settings(max_examples=300, deadline=None)
@given(start=st.sampled_from(STARTS), times=st.lists(st.integers(0, 400 * 86_400), max_size=8))
def test_event_time_is_the_clock_iso(start: datetime, times: list[int]) -> None:
    clock = SimClock(start, 60, 401 * 86_400)
    sim = SimpleNamespace(site=SimpleNamespace(clock=clock), _iso_cache={})
    for t_s in [*times, *times]:  # the second pass reads the cache
        assert Simulation._iso(sim, t_s) == clock.iso(t_s)  # type: ignore[arg-type]
