"""``qubit-sim hil`` as its own OS process against a stand-in battery in another.

Claims checked here: the command prints the bench report and runs; after ``kill -9`` of the
simulator — which can say nothing any more — the battery reverts to 0 kW by itself within its
revert time; after Ctrl-C the command puts the battery in its safe state and exits cleanly; a
bench with a mistake is refused with the YAML path of the mistake.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from qubit_sim.cli import app
from qubit_sim.hil.bench import DeviceSpec
from qubit_sim.hil.devices import RegisterMapBattery
from qubit_sim.hil.testing.processes import (
    FakeBatteryProcess,
    battery_device,
    stop_process,
    wait_for,
    write_bench,
)

ROOT = Path(__file__).resolve().parents[2]
LAB_SITE = ROOT / "hil" / "scenarios" / "lab_site.yaml"
REVERT_S = 2


@pytest.fixture(scope="module")
def gridless_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The lab site without its feeder: the process starts in seconds."""
    scenario = yaml.safe_load(LAB_SITE.read_text())
    del scenario["grid"]
    path = tmp_path_factory.mktemp("site") / "lab_site_gridless.yaml"
    path.write_text(yaml.safe_dump(scenario))
    return path


@pytest.fixture
def hil_process(tmp_path: Path) -> Iterator[Callable[[Path], subprocess.Popen[str]]]:
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


def _read_power_kw(battery: FakeBatteryProcess) -> float:
    spec = DeviceSpec.model_validate(battery_device(battery.port))

    async def read() -> float:
        device = RegisterMapBattery(spec)
        await device.connect()
        try:
            return (await device.read()).p_kw
        finally:
            await device.close()

    return asyncio.run(read())


def _commanding(battery: FakeBatteryProcess) -> bool:
    return any(w["setpoint_kw"] >= 4.9 for w in battery.setpoint_writes())


def test_after_kill_9_the_device_reverts_by_itself(
    fake_batteries: Callable[..., FakeBatteryProcess],
    hil_process: Callable[[Path], subprocess.Popen[str]],
    gridless_site: Path,
    tmp_path: Path,
) -> None:
    battery = fake_batteries()
    device = battery_device(battery.port, revert_s=REVERT_S)
    proc = hil_process(write_bench(tmp_path, gridless_site, [device], until="1h"))
    wait_for(lambda: _commanding(battery) or proc.poll() is not None, 90, "the bench to command")
    assert proc.poll() is None, proc.communicate()
    wait_for(lambda: _read_power_kw(battery) > 4.9, 5, "the battery to follow")
    proc.send_signal(signal.SIGKILL)
    killed = time.time()
    proc.wait(timeout=10)
    wait_for(lambda: abs(_read_power_kw(battery)) < 1e-6, REVERT_S + 2, "the battery to revert")
    reverts = [e for e in battery.events() if e["event"] == "revert"]
    assert len(reverts) == 1
    assert 0.0 < reverts[0]["wall_s"] - killed <= REVERT_S + 0.5
    # Nobody told it: its last command was the 5 kW setpoint, never a safe state.
    assert battery.setpoint_writes()[-1]["setpoint_kw"] == pytest.approx(5.0)
    stdout = proc.stdout.read() if proc.stdout else ""
    assert "identity OK" in stdout and "envelope [-5, 5] kW" in stdout


def test_ctrl_c_puts_the_device_in_its_safe_state_and_exits(
    fake_batteries: Callable[..., FakeBatteryProcess],
    hil_process: Callable[[Path], subprocess.Popen[str]],
    gridless_site: Path,
    tmp_path: Path,
) -> None:
    battery = fake_batteries()
    device = battery_device(battery.port, revert_s=30)  # only the safe state brings it to 0
    proc = hil_process(write_bench(tmp_path, gridless_site, [device], until="1h"))
    wait_for(lambda: _commanding(battery) or proc.poll() is not None, 90, "the bench to command")
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    assert battery.setpoint_writes()[-1]["setpoint_kw"] == 0.0
    assert not [e for e in battery.events() if e["event"] == "revert"]
    assert "stopped early" in stdout and "marked incomplete" in stdout
    assert "largest |command| 5.00 kW" in stdout


def test_a_bench_with_a_mistake_is_refused_with_its_path(tmp_path: Path) -> None:
    device = battery_device(1502)
    device["limits"]["max_charge_kw"] = -1
    bench = write_bench(tmp_path, LAB_SITE, [device])
    result = CliRunner().invoke(app, ["hil", str(bench)])
    assert result.exit_code == 2
    assert "devices[0].limits.max_charge_kw" in result.output
