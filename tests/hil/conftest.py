"""Stand-in physical devices as separate OS processes, always cleaned up at teardown."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from qubit_sim.hil.testing.processes import FakeBatteryProcess

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def fake_batteries(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., FakeBatteryProcess]]:
    """``start(*args)`` starts a fake battery process; every one is killed at teardown."""
    started: list[FakeBatteryProcess] = []
    folder = tmp_path_factory.mktemp("batteries")

    def start(*args: str) -> FakeBatteryProcess:
        battery = FakeBatteryProcess.start(folder / f"battery{len(started)}.jsonl", *args, cwd=ROOT)
        started.append(battery)
        return battery

    yield start
    for battery in started:
        battery.stop()
