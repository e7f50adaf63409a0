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
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from qubit_sim.cli import app
from qubit_sim.hil.bench import DeviceSpec
from qubit_sim.hil.devices import RegisterMapBattery
from qubit_sim.hil.testing.processes import (
    FakeBatteryProcess,
    battery_device,
    wait_for,
    write_bench,
)

ROOT = Path(__file__).resolve().parents[2]
LAB_SITE = ROOT / "hil" / "scenarios" / "lab_site.yaml"
REVERT_S = 2


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


Commanded = Callable[[int], tuple[FakeBatteryProcess, subprocess.Popen[str]]]


@pytest.fixture
def commanded(
    fake_batteries: Callable[..., FakeBatteryProcess],
    hil_process: Callable[[Path], subprocess.Popen[str]],
    gridless_site: Path,
    tmp_path: Path,
) -> Commanded:
    """``start(revert_s)``: a stand-in battery and a bench process commanding it 5 kW with
    setpoints that expire after ``revert_s``; returns once the bench commands it."""

    def start(revert_s: int) -> tuple[FakeBatteryProcess, subprocess.Popen[str]]:
        battery = fake_batteries()
        device = battery_device(battery.port, revert_s=revert_s)
        proc = hil_process(write_bench(tmp_path, gridless_site, [device], until="1h"))

        def commanding() -> bool:
            return any(w["setpoint_kw"] >= 4.9 for w in battery.setpoint_writes())

        wait_for(lambda: commanding() or proc.poll() is not None, 90, "the bench to command")
        return battery, proc

    return start


def test_after_kill_9_the_device_reverts_by_itself(commanded: Commanded) -> None:
    battery, proc = commanded(REVERT_S)
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


def test_ctrl_c_puts_the_device_in_its_safe_state_and_exits(commanded: Commanded) -> None:
    battery, proc = commanded(30)  # setpoints last 30 s: only the safe state brings it to 0
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
