"""Stand-in physical devices as separate OS processes, always cleaned up at teardown."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from qubit_sim.hil.testing.processes import FakeBatteryProcess, gridless_scenario, stop_process

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


@pytest.fixture(scope="module")
def gridless_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The lab site without its feeder: a bench process starts in seconds."""
    site = ROOT / "hil" / "scenarios" / "lab_site.yaml"
    return gridless_scenario(site, tmp_path_factory.mktemp("site"))


@pytest.fixture
def hil_process(tmp_path: Path) -> Iterator[Callable[[Path], subprocess.Popen[str]]]:
    """``start(bench)`` runs ``qubit-sim hil bench`` as its own process; killed at teardown."""
    procs: list[subprocess.Popen[str]] = []

    def start(bench: Path) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "qubit_sim", "hil", str(bench), "--out", str(tmp_path / "out")]
            + ["--no-plots"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        stop_process(proc)
