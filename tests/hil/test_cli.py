"""``qubit-sim hil`` as its own OS process against a stand-in battery in another.

Claims checked here: the command prints the bench report and runs; after ``kill -9`` of the
simulator — which can say nothing any more — the battery reverts to 0 kW by itself within its
revert time; after Ctrl-C the command puts the battery in its safe state, writes the results
marked incomplete and exits 130; SIGTERM (systemd, docker, CI time-outs) takes the same path and
exits 143, also while the bench is still taking its devices over; a bench with a mistake is
refused with the YAML path of the mistake; a CSMS port already taken is refused in one line
naming it and the bench key that changes it, with the results folder marked incomplete.
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
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
    free_port,
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


@pytest.mark.parametrize(
    ("stop", "exit_code", "stopped_by"),
    [(signal.SIGINT, 130, "user (Ctrl-C)"), (signal.SIGTERM, 143, "SIGTERM")],
)
def test_a_stop_puts_the_device_in_its_safe_state_and_exits_non_zero(
    commanded: Commanded, tmp_path: Path, stop: signal.Signals, exit_code: int, stopped_by: str
) -> None:
    battery, proc = commanded(30)  # setpoints last 30 s: only the safe state brings it to 0
    proc.send_signal(stop)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == exit_code, stderr
    assert "Traceback" not in stderr
    assert battery.setpoint_writes()[-1]["setpoint_kw"] == 0.0
    assert not [e for e in battery.events() if e["event"] == "revert"]
    assert "stopped early" in stdout and "marked incomplete" in stdout
    assert "largest |command| 5.00 kW" in stdout
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["status"] == "incomplete" and manifest["stopped_by"] == stopped_by
    done, n_steps = manifest["steps_done"], manifest["n_steps"]
    assert 1 <= done < n_steps == 60
    # The summary counts the steps simulated, not the steps planned.
    assert f"{done} of {n_steps} steps of 60 s simulated" in stdout


def test_sigterm_while_the_bench_takes_a_device_over_leaves_it_safe(
    fake_batteries: Callable[..., FakeBatteryProcess],
    hil_process: Callable[[Path], subprocess.Popen[str]],
    gridless_site: Path,
    tmp_path: Path,
) -> None:
    # Stuck at 8 kW, beyond its 5 kW envelope: the takeover keeps writing the safe state.
    battery = fake_batteries("--stuck-kw", "8")
    device = battery_device(battery.port, revert_s=30)
    bench = write_bench(tmp_path, gridless_site, [device], until="1h", takeover_timeout_s=60)
    proc = hil_process(bench)
    wait_for(
        lambda: len(battery.setpoint_writes()) >= 2 or proc.poll() is not None,
        90,
        "the takeover to write the safe state",
    )
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 1 and "Traceback" not in stderr, stderr
    assert "stopped by SIGTERM before the clock started" in stdout.replace("\n", " ")
    assert {w["setpoint_kw"] for w in battery.setpoint_writes()} == {0.0}
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["status"] == "incomplete" and manifest["steps_done"] == 0
    assert "SIGTERM" in manifest["error"]


def test_a_bench_with_a_mistake_is_refused_with_its_path(tmp_path: Path) -> None:
    device = battery_device(1502)
    device["limits"]["max_charge_kw"] = -1
    bench = write_bench(tmp_path, LAB_SITE, [device])
    result = CliRunner().invoke(app, ["hil", str(bench)])
    assert result.exit_code == 2
    assert "devices[0].limits.max_charge_kw" in result.output


@pytest.mark.parametrize("dry_run", [True, False])
def test_a_taken_csms_port_is_refused_in_one_line(
    gridless_site: Path, tmp_path: Path, dry_run: bool
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        # No device is contacted: the port is checked before anything opens.
        bench = write_bench(tmp_path, gridless_site, [battery_device(free_port())], csms_port=port)
        out = tmp_path / "out"
        args = ["hil", str(bench), "--out", str(out), "--no-plots"]
        result = CliRunner().invoke(app, args + (["--dry-run"] if dry_run else []))
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert f"127.0.0.1:{port}" in lines[0] and "already in use" in lines[0]
    assert "csms_port in the bench file" in lines[0]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "incomplete" and manifest["steps_done"] == 0
    assert f"127.0.0.1:{port}" in manifest["error"]
