"""Start and stop stand-in devices as OS processes, and write bench files for them.

Used by the HIL tests and handy for trying a bench without hardware.
"""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from qubit_sim.hil.testing.fake_battery import REGISTER_MAP

__all__ = [
    "FakeBatteryProcess",
    "battery_device",
    "free_port",
    "stop_process",
    "wait_for",
    "write_bench",
]


def free_port() -> int:
    """A TCP port nobody listens on now (on 127.0.0.1)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop_process(proc: subprocess.Popen[str], timeout_s: float = 30.0) -> None:
    """Kill ``proc`` if it still runs and collect it."""
    if proc.poll() is None:
        proc.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.communicate(timeout=timeout_s)


@dataclass
class FakeBatteryProcess:
    """A running ``python -m qubit_sim.hil.testing.fake_battery`` process.

    Attributes:
        proc: The process.
        port: Its Modbus TCP port on 127.0.0.1.
        log: Its JSON-lines log of writes and reverts.
    """

    proc: subprocess.Popen[str]
    port: int
    log: Path

    @classmethod
    def start(cls, log: Path, *args: str, cwd: Path | None = None) -> FakeBatteryProcess:
        """Start one on a free port; returns once it listens.

        Raises:
            RuntimeError: when it does not start.
        """
        proc = subprocess.Popen(
            [sys.executable, "-m", "qubit_sim.hil.testing.fake_battery", "--log", str(log), *args],
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.startswith("listening on"):
            stop_process(proc)
            raise RuntimeError(f"fake battery did not start: {line!r}")
        return cls(proc, int(line.rsplit(":", 1)[1]), log)

    def stop(self) -> None:
        """Kill it."""
        stop_process(self.proc)

    def events(self) -> list[dict[str, Any]]:
        """Every write and revert it logged so far."""
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines() if line]

    def setpoint_writes(self) -> list[dict[str, Any]]:
        """Writes that set the power setpoint."""
        return [e for e in self.events() if e["event"] == "write" and e["address"] == 200]


def battery_device(port: int, **overrides: Any) -> dict[str, Any]:
    """A bench device entry for a fake battery on ``port`` replacing ``lab_battery``."""
    device: dict[str, Any] = {
        "id": "bess",
        "replaces": "lab_battery",
        "protocol": "modbus",
        "modbus": {"port": port, "unit_id": 3, "register_map": REGISTER_MAP},
        "identity": {"manufacturer": "Acme Storage", "model": "AB-10", "serial": "SN-0001"},
        "limits": {
            "max_charge_kw": 5,
            "max_discharge_kw": 5,
            "soc_min": 0.15,
            "soc_max": 0.85,
            "max_ramp_kw_per_s": 4,
        },
        "revert_s": 2,
    }
    device.update(overrides)
    return device


def write_bench(folder: Path, scenario: Path, devices: list[dict[str, Any]], **fields: Any) -> Path:
    """A bench file for ``scenario`` at x60 on a free CSMS port; ``fields`` override."""
    bench: dict[str, Any] = {
        "name": "test_bench",
        "scenario": str(scenario),
        "factor": 60,
        "until": "4min",
        "watchdog_s": 3,
        "lag_threshold_s": 5,
        "identify_timeout_s": 30,
        "csms_port": 0,
        "devices": devices,
    }
    bench.update(fields)
    path = folder / f"{bench['name']}.yaml"
    path.write_text(yaml.safe_dump(bench, sort_keys=False))
    return path


def wait_for(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Poll ``predicate`` every 50 ms until it holds.

    Raises:
        TimeoutError: after ``timeout_s`` [s], naming ``what``.
    """
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.05)
