"""The engine's step loop runs every event in exactly the order plain simpy would; the
memory-only recorder writes rows in place.

The loop advances the clock itself between steps when nothing else is scheduled; a reference
engine that yields a simpy timeout after every step must see the same sequence of events.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from datetime import UTC, datetime

import numpy as np
import simpy
from hypothesis import given, settings
from hypothesis import strategies as st

from qubit_sim.core.clock import SimClock
from qubit_sim.core.engine import PRIORITY_DEPARTURE, PRIORITY_DEVICE, Engine
from qubit_sim.core.recorder import Recorder

START = datetime(2025, 1, 6, tzinfo=UTC)
STEP_S = 60
N_STEPS = 12


class SimpyEngine(Engine):
    """Reference: one simpy timeout per step and simpy's own ``run(until=...)``."""

    def _loop(self, n_steps: int) -> Generator[simpy.Event, None, None]:
        for k in range(n_steps):
            self._step(k)
            self.steps_done = k + 1
            if self._progress is not None and (k + 1) % self._progress_every == 0:
                self._progress(k + 1)
            yield self.env.timeout(self.clock.step_s)

    def run_until(self, t_s: int) -> None:
        if not self._started:
            self.env.process(self._loop(self.clock.n_steps))
            self._started = True
        if t_s > self.env.now:
            self._guarded(min(t_s, self.clock.duration_s))


event_spec = st.tuples(
    st.integers(0, N_STEPS * STEP_S),  # time
    st.sampled_from([PRIORITY_DEPARTURE, PRIORITY_DEVICE]),
    st.integers(-1, 3 * STEP_S),  # follow-up delay (-1: none), scheduled from the callback
)
step_spec = st.lists(st.integers(0, 2 * STEP_S), max_size=3)  # delays scheduled by a step


def _drive(
    engine_cls: type[Engine],
    events: list[tuple[int, int, int]],
    step_events: dict[int, list[int]],
    sleepers: list[int],
    stops: list[int] | None,
) -> tuple[list[tuple[str, int, int]], int, int]:
    log: list[tuple[str, int, int]] = []
    engine: Engine

    def step(k: int) -> None:
        log.append(("step", k, engine.now_s))
        for j, delay in enumerate(step_events.get(k, [])):
            engine.at(engine.now_s + delay, _logger(("from_step", k * 10 + j)))

    def _logger(tag: tuple[str, int], follow: int = -1) -> Callable[[], None]:
        def callback() -> None:
            log.append((tag[0], tag[1], engine.now_s))
            if follow >= 0:
                engine.at(engine.now_s + follow, _logger(("follow", tag[1])))

        return callback

    def sleeper(i: int, every: int) -> Generator[simpy.Event, None, None]:
        # A foreign simpy process at normal priority, as the L4 coordinator's timers are.
        while True:
            yield engine.env.timeout(every)
            log.append(("sleeper", i, engine.now_s))

    progress: list[int] = []
    engine = engine_cls(SimClock(START, STEP_S, N_STEPS * STEP_S), step, progress.append, 5)
    for i, (t, priority, follow) in enumerate(events):
        engine.at(t, _logger(("event", i), follow), priority)
    for i, every in enumerate(sleepers):
        engine.env.process(sleeper(i, every))
    if stops is None:
        engine.run()
        log.append(("progress", len(progress), progress[-1]))
    else:
        for t in sorted(stops):
            engine.run_until(t)
            log.append(("stopped", engine.steps_done, engine.now_s))
    return log, engine.steps_done, engine.now_s


@settings(max_examples=150, deadline=None)
@given(
    events=st.lists(event_spec, max_size=8),
    step_events=st.dictionaries(st.integers(0, N_STEPS - 1), step_spec, max_size=4),
    sleepers=st.lists(st.sampled_from([45, 60, 120, 500]), max_size=1),
    stops=st.one_of(st.none(), st.lists(st.integers(1, N_STEPS * STEP_S), min_size=1, max_size=6)),
)
def test_the_loop_orders_events_as_plain_simpy(
    events: list[tuple[int, int, int]],
    step_events: dict[int, list[int]],
    sleepers: list[int],
    stops: list[int] | None,
) -> None:
    if sleepers and stops is None:
        stops = [N_STEPS * STEP_S]  # a never-ending sleeper needs a stop
    fast = _drive(Engine, events, step_events, sleepers, stops)
    reference = _drive(SimpyEngine, events, step_events, sleepers, stops)
    assert fast == reference
    steps = [entry for entry in fast[0] if entry[0] == "step"]
    assert all(t == k * STEP_S for _, k, t in steps)


def test_a_quiet_run_steps_every_instant_and_ends_at_the_horizon() -> None:
    seen: list[tuple[int, int]] = []
    engine: Engine

    def step(k: int) -> None:
        seen.append((k, engine.now_s))

    engine = Engine(SimClock(START, STEP_S, N_STEPS * STEP_S), step)
    engine.run()
    assert seen == [(k, k * STEP_S) for k in range(N_STEPS)]
    assert engine.now_s == N_STEPS * STEP_S
    assert engine.finished


@settings(max_examples=60, deadline=None)
@given(
    hint=st.integers(0, 12),
    n_rows=st.integers(0, 30),
    chunk_rows=st.integers(1, 7),
    reads=st.sets(st.integers(0, 30), max_size=5),
)
def test_memory_recorder_keeps_every_row_whatever_the_length_hint(
    hint: int, n_rows: int, chunk_rows: int, reads: set[int]
) -> None:
    # Rows go straight into the kept array while the hint lasts, then in chunks.
    recorder = Recorder(["a_kw", "b_kw"], START, 60, chunk_rows=chunk_rows, n_rows_hint=hint)
    for k in range(n_rows):
        row = recorder.row()
        row[0] = k
        row[1] = -2.0 * k
        recorder.commit()
        assert recorder.n_rows == k + 1
        if k in reads:  # reading in the middle of a run must not disturb it
            assert np.array_equal(recorder.array()[:, 0], np.arange(k + 1.0))
    data = recorder.array()
    assert data.shape == (n_rows, 2)
    assert np.array_equal(data[:, 0], np.arange(float(n_rows)))
    assert np.array_equal(data[:, 1], -2.0 * np.arange(float(n_rows)))
    frame = recorder.frame()
    assert list(frame["t_s"]) == [60 * k for k in range(n_rows)]
