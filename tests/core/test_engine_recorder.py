"""The engine's event ordering and the recorder's streaming to Parquet."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from qubit_sim.core.clock import SimClock
from qubit_sim.core.engine import Engine
from qubit_sim.core.recorder import Recorder
from qubit_sim.errors import SimulationError

START = datetime(2025, 1, 6, tzinfo=UTC)


def test_device_events_run_before_the_step_at_the_same_instant() -> None:
    clock = SimClock(START, 60, 600)
    log: list[tuple[str, int]] = []
    engine: Engine

    def step(k: int) -> None:
        log.append(("step", k * 60))

    engine = Engine(clock, step)
    engine.at(120, lambda: log.append(("event", engine.now_s)))
    engine.at(0, lambda: log.append(("event", engine.now_s)))
    engine.at(90, lambda: log.append(("event", engine.now_s)))
    engine.run()
    assert log.index(("event", 0)) < log.index(("step", 0))
    assert log.index(("event", 120)) < log.index(("step", 120))
    assert log.index(("step", 60)) < log.index(("event", 90)) < log.index(("step", 120))
    assert engine.steps_done == 10


def test_engine_reports_where_it_failed() -> None:
    clock = SimClock(START, 60, 600)

    def step(k: int) -> None:
        if k == 4:
            raise RuntimeError("boom")

    engine = Engine(clock, step)
    with pytest.raises(SimulationError, match=r"t=240 s \(2025-01-06T00:04:00Z\).*boom") as info:
        engine.run()
    assert info.value.sim_time_s == 240
    assert engine.steps_done == 4


def test_engine_refuses_events_in_the_past() -> None:
    engine = Engine(SimClock(START, 60, 600), lambda k: None)
    engine.run(3)
    with pytest.raises(SimulationError, match="past"):
        engine.at(0, lambda: None)


def test_recorder_streams_chunks_and_survives_a_failure(tmp_path: Path) -> None:
    path = tmp_path / "ts.parquet"
    recorder = Recorder(["a_kw", "b_kw"], START, 60, path=path, chunk_rows=4)
    for k in range(10):
        row = recorder.row()
        row[0] = k
        row[1] = -k
        recorder.commit()
    # Two chunks are already on disk; a crash now still leaves a readable file after close.
    recorder.close()
    df = pd.read_parquet(path)
    assert list(df.columns) == ["time", "t_s", "a_kw", "b_kw"]
    assert np.array_equal(df["a_kw"].to_numpy(), np.arange(10.0))
    assert df["time"].iloc[3] == pd.Timestamp("2025-01-06T00:03:00Z")
    assert recorder.frame().equals(df)


def test_recorder_rejects_duplicate_columns() -> None:
    with pytest.raises(ValueError, match="duplicate"):
        Recorder(["a", "a"], START, 60)


def test_run_until_steps_a_run_from_outside() -> None:
    clock = SimClock(START, 60, 600)
    seen: list[int] = []
    engine = Engine(clock, seen.append)
    engine.run_until(180)
    assert seen == [0, 1, 2] and engine.now_s == 180 and not engine.finished
    engine.run_until(180)  # no time passes: nothing runs
    assert seen == [0, 1, 2]
    engine.run_until(10_000)  # clipped to the end of the scenario
    assert seen == list(range(10)) and engine.finished
