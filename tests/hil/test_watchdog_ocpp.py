"""The watchdog's OCPP path: a hung controller, and the physical charger gets its safe limit.

The charger is a separate ``qubit-sim serve`` process whose charger twin joins the bench's CSMS
under the identity the bench allows, with an EV plugged in from the start; the bench's controller
hangs after its first command.

Claims checked here: the watchdog expires while the controller still hangs and sends the
charger a 0 kW profile through the CSMS then, not only when the run closes; the charger itself
drops to 0 kW and stays there; the run stops with the watchdog's reason, recorded in its
manifest.
"""

from __future__ import annotations

import json
import logging
import signal
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from qubit_sim.errors import SimulationError
from qubit_sim.hil import run_bench
from qubit_sim.hil.testing.processes import (
    charger_device,
    free_port,
    gridless_scenario,
    serve_charger,
    stop_process,
    write_bench,
)

ROOT = Path(__file__).resolve().parents[2]
LAB_SITE = ROOT / "hil" / "scenarios" / "lab_site.yaml"
IDENTITY = "LAB-CP-9"
PASSWORD = "bench-password-0123"
STALL_S = 5.5
WATCHDOG_S = 1.0


def _hanging_site(folder: Path) -> Path:
    """The lab site without its feeder; the controller caps chargers at 9 kW, then hangs."""
    scenario = yaml.safe_load(gridless_scenario(LAB_SITE, folder).read_text())
    scenario["controller"]["params"] = {
        "battery_kw": 0.0,
        "charger_kw": 9.0,
        "stall_at_s": 120,
        "stall_for_s": STALL_S,
    }
    site = folder / "hanging_site.yaml"
    site.write_text(yaml.safe_dump(scenario))
    return site


def _hung_run(folder: Path) -> dict[str, Any]:
    port = free_port()
    charger = serve_charger(folder, IDENTITY, PASSWORD, port)
    device = charger_device(IDENTITY, PASSWORD)
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    hil_logger = logging.getLogger("qubit_sim.hil")
    hil_logger.addHandler(handler)
    try:
        bench = write_bench(
            folder,
            _hanging_site(folder),
            [device],
            name="hung",
            csms_port=port,
            watchdog_s=WATCHDOG_S,
            lag_threshold_s=60,
            until="6min",
        )
        with pytest.raises(SimulationError, match="watchdog expired") as failure:
            run_bench(bench, out=folder / "hil", twin_tick_s=0.2)
        ended = time.time()
        # The charger runs on by itself for a few of its steps, then writes its own results.
        time.sleep(1.5)
        charger.send_signal(signal.SIGINT)
        charger.communicate(timeout=60)
    finally:
        hil_logger.removeHandler(handler)
        stop_process(charger)
    own = pd.read_parquet(folder / "charger_out" / "timeseries.parquet")
    manifest = json.loads((folder / "hil" / "manifest.json").read_text())
    return {
        "error": str(failure.value),
        "ended": ended,
        "records": records,
        "manifest": manifest,
        "charger_own": own,
    }


def _records(hung_run: dict[str, Any], text: str) -> list[logging.LogRecord]:
    return [r for r in hung_run["records"] if text in r.getMessage()]


def test_a_hung_controller_leaves_the_charger_on_its_safe_limit(tmp_path: Path) -> None:
    # One test, one run: split across xdist workers, a shared module fixture would run twice.
    hung_run = _hung_run(tmp_path)

    # The bench's side: the 0 kW profile went out as the watchdog expired, logged once the
    # charger accepted it, while the controller still hung (it hangs STALL_S from about
    # WATCHDOG_S + one step before expiry), not only as the run closed.
    (expiry,) = _records(hung_run, "putting every device in its safe state")
    safe = _records(hung_run, "charge_point: safe state (0 kW) written")
    assert len(safe) == 2  # the watchdog's, the closing one
    assert 0.0 <= safe[0].created - expiry.created < STALL_S - WATCHDOG_S - 1.5
    assert hung_run["ended"] - safe[0].created > 1.0
    assert _records(hung_run, "failed") == []

    # The run stopped with the watchdog's reason, and its manifest says so.
    manifest = hung_run["manifest"]
    assert "watchdog expired" in hung_run["error"]
    assert manifest["status"] == "incomplete"
    assert "watchdog expired" in manifest["error"]
    watchdog = manifest["hil"]["watchdog"]
    assert watchdog["expired"] is True and watchdog["timeout_s"] == WATCHDOG_S
    (device,) = manifest["hil"]["devices"]
    assert device["protocol"] == "ocpp" and device["errors"] == []
    assert device["envelope"]["clamped"] >= 1
    assert device["max_abs_sent_kw"] == pytest.approx(7.0)
    assert device["writes"] >= 3  # the command, the watchdog's safe limit, the closing one

    # The charger's own record: the command (9 kW asked, 7 kW sent) reached it, then 0 kW to
    # the end while it ran on by itself, the EV still plugged in (the 0 kW is the limit).
    own = hung_run["charger_own"]
    p_kw = own[f"charger_{IDENTITY}_p_kw"].to_numpy()
    assert np.all(own[f"charger_{IDENTITY}_connected"].to_numpy() == 1.0)
    commanded = np.flatnonzero(np.isclose(p_kw, 7.0, atol=0.05))
    assert commanded.size >= 1, p_kw
    after = p_kw[commanded[-1] + 1 :]
    assert after.size >= 2 and np.all(after == 0.0), p_kw
    assert p_kw.max() <= 7.0 + 1e-6, p_kw
