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
    "FakePvProcess",
    "battery_device",
    "charger_device",
    "gridless_scenario",
    "free_port",
    "pv_device",
    "serve_charger",
    "sunspec_battery_device",
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
        proc, port = _spawn("qubit_sim.hil.testing.fake_battery", ["--log", str(log), *args], cwd)
        return cls(proc, port, log)

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


def _spawn(module: str, args: list[str], cwd: Path | None) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [sys.executable, "-m", module, *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("listening on"):
        stop_process(proc)
        raise RuntimeError(f"{module} did not start: {line!r}")
    return proc, int(line.rsplit(":", 1)[1])


@dataclass
class FakePvProcess:
    """A running ``python -m qubit_sim.hil.testing.fake_pv`` process (SunSpec PV inverter).

    Attributes:
        proc: The process.
        port: Its Modbus TCP port on 127.0.0.1.
    """

    proc: subprocess.Popen[str]
    port: int

    @classmethod
    def start(cls, *args: str, cwd: Path | None = None) -> FakePvProcess:
        """Start one on a free port; returns once it listens.

        Raises:
            RuntimeError: when it does not start.
        """
        return cls(*_spawn("qubit_sim.hil.testing.fake_pv", list(args), cwd))

    def stop(self) -> None:
        """Kill it."""
        stop_process(self.proc)


def pv_device(port: int, **overrides: Any) -> dict[str, Any]:
    """A bench device entry for a fake PV inverter on ``port`` replacing ``lab_pv``: 10 kW
    rating, at most 50 % curtailment, caps expiring after 2 s."""
    device: dict[str, Any] = {
        "id": "inverter",
        "replaces": "lab_pv",
        "asset": "pv",
        "protocol": "modbus",
        "modbus": {"port": port, "sunspec": True},
        "identity": {"manufacturer": "Sol Lab", "model": "SL-10", "serial": "PV-0001"},
        "limits": {"max_discharge_kw": 10, "max_curtailment_pct": 50},
        "revert_s": 2,
    }
    device.update(overrides)
    return device


def sunspec_battery_device(port: int, **overrides: Any) -> dict[str, Any]:
    """A bench device entry for a SunSpec battery on ``port`` replacing ``lab_battery``: 5 kW
    both ways, setpoints expiring after 7 s."""
    device: dict[str, Any] = {
        "id": "sunspec_bess",
        "replaces": "lab_battery",
        "protocol": "modbus",
        "modbus": {"port": port, "sunspec": True},
        "limits": {"max_charge_kw": 5, "max_discharge_kw": 5},
        "revert_s": 7,
    }
    device.update(overrides)
    return device


def gridless_scenario(scenario: Path, folder: Path) -> Path:
    """A copy of ``scenario`` in ``folder`` without its feeder (a process starts in seconds)."""
    document = yaml.safe_load(scenario.read_text())
    del document["grid"]
    path = folder / f"{scenario.stem}_gridless.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


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


#: A one-charger site whose EV is plugged in from 08:00 to 18:00 wanting 60 kWh at up to 22 kW:
#: what ``qubit-sim serve`` runs as a stand-in physical charge point.
_CHARGER_SITE = """
site:
  name: physical_charger
  location: {{lat: 52.37, lon: 4.90, tz: Europe/Amsterdam}}
  start: 2025-06-02T08:00:00Z
  duration: 1d
  step: 60s
  seed: 5
assets:
  chargers:
    - {{template: ac_22kw, count: 1, id: {identity}}}
evs:
  sessions_csv: sessions.csv
controller:
  name: uncontrolled
"""


def serve_charger(
    folder: Path, identity: str, password: str, csms_port: int, *, factor: float = 60.0
) -> subprocess.Popen[str]:
    """Start ``qubit-sim serve`` as an independent charge point ``identity`` that connects to the
    bench's CSMS on ``csms_port`` with basic auth; it writes its own results to
    ``folder/charger_out`` when it stops (SIGINT)."""
    (folder / "sessions.csv").write_text(
        "arrival,departure,kwh,battery_kwh,max_kw\n"
        "2025-06-02T08:00:00Z,2025-06-02T18:00:00Z,60,80,22\n"
    )
    site = folder / "charger_site.yaml"
    site.write_text(_CHARGER_SITE.format(identity=identity))
    return subprocess.Popen(
        [sys.executable, "-m", "qubit_sim", "serve", str(site)]
        + ["--factor", str(factor), "--csms-port", "0", "--modbus-base-port", "0"]
        + ["--until", "2h", "--csms-url", f"ws://{identity}:{password}@127.0.0.1:{csms_port}"]
        + ["--out", str(folder / "charger_out"), "--no-plots"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def charger_device(identity: str, password: str, **overrides: Any) -> dict[str, Any]:
    """Bench entry: the served charge point ``identity`` in place of the lab site's ``lab1``,
    held to 7 kW."""
    device: dict[str, Any] = {
        "id": "charge_point",
        "replaces": "lab1",
        "protocol": "ocpp",
        "ocpp": {
            "identity": identity,
            "password": password,
            "profile_duration_s": 600,
            "clock_factor": 60,
        },
        "identity": {"vendor": "QubitSim", "model": "SimCharger"},
        "limits": {"max_charge_kw": 7},
    }
    device.update(overrides)
    return device
