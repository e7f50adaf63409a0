"""``mode: realtime`` / ``qubit-sim serve``: twins paced by the wall clock, open to outside software.

Claims checked here: a paced run gives exactly the results of ``fast`` for the same horizon; the
served CSMS admits an outside OCPP 1.6 charge point on the YAML allow-list and refuses wrong
credentials; a Modbus client finds the SunSpec marker on a served battery; the lag report is
written; Ctrl-C writes the results folder marked incomplete; a strict lag policy stops the run.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from ocpp.v16 import ChargePoint, call
from pymodbus.client import AsyncModbusTcpClient
from typer.testing import CliRunner
from websockets.exceptions import InvalidStatus

import qubit_sim
from qubit_sim.cli import app
from qubit_sim.core.results import RunResult
from qubit_sim.errors import ScenarioError, SimulationError
from qubit_sim.protocols.csms import Csms
from qubit_sim.scenario.realtime import LagPolicy, LagStats, ServeOptions, serve

ROOT = Path(__file__).resolve().parents[2]
EXTERNAL_ID = "EXT-CP-1"
EXTERNAL_PASSWORD = "allowed-password-0123"
HORIZON_S = 1800

# (csms_url, identity, password) -> an OCPP 1.6 charge point connected to the CSMS (conftest).
ChargePointSession = Callable[[str, str, str], AbstractAsyncContextManager[ChargePoint]]


@pytest.fixture(scope="module")
def scenario(office_realtime_scenario: Callable[..., Path]) -> Path:
    # From 09:00 local time, when the EVs arrive, PV produces and the battery is dispatched.
    return office_realtime_scenario(
        "realtime_workplace", "2025-06-02T07:00:00Z", EXTERNAL_ID, EXTERNAL_PASSWORD
    )


def _free_ports() -> ServeOptions:
    return ServeOptions(csms_port=0, modbus_base_port=0)


# ------------------------------------------------------------------- paced run vs fast run


@pytest.fixture(scope="module")
def pair(scenario: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("pair")
    fast = qubit_sim.run(
        scenario, out=out / "fast", until_s=HORIZON_S, mode="fast", plots=False, settle=False
    )
    endpoints: list[Any] = []
    started = time.perf_counter()
    paced = serve(
        scenario,
        ServeOptions(factor=600, csms_port=0, modbus_base_port=0),
        out=out / "realtime",
        until_s=HORIZON_S,
        plots=False,
        settle=False,
        on_ready=endpoints.extend,
    )
    wall_s = time.perf_counter() - started
    return {"fast": fast, "realtime": paced, "endpoints": endpoints, "wall_s": wall_s}


def test_a_paced_run_gives_the_results_of_fast_mode(pair: dict[str, Any]) -> None:
    fast: RunResult = pair["fast"]
    paced: RunResult = pair["realtime"]
    assert paced.manifest["mode"] == "realtime" and paced.manifest["status"] == "complete"
    a, b = fast.timeseries(), paced.timeseries()
    assert len(a) == HORIZON_S // 60
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    pd.testing.assert_frame_equal(fast.sessions(), paced.sessions(), check_exact=True)
    assert (fast.out_dir / "events.jsonl").read_bytes() == (
        paced.out_dir / "events.jsonl"
    ).read_bytes()
    lag_keys = {"realtime_lag_max_s", "realtime_lag_mean_s"}
    assert {k: v for k, v in paced.kpis.items() if k not in lag_keys} == fast.kpis
    # Something happened worth comparing: EVs charged and the battery was dispatched.
    assert a["ev_p_kw"].max() > 0 and a["battery_p_kw"].abs().max() > 0


def test_a_paced_run_follows_the_wall_clock(pair: dict[str, Any]) -> None:
    # 30 simulated minutes at x600 take 3 s; the last step is due 29 min / 600 after the start.
    assert pair["wall_s"] >= (HORIZON_S - 60) / 600
    simulate_s = pair["realtime"].manifest["timings_s"]["simulate"]
    assert simulate_s >= (HORIZON_S - 60) / 600


def test_the_lag_report_is_in_the_manifest_and_the_kpis(pair: dict[str, Any]) -> None:
    paced: RunResult = pair["realtime"]
    report = paced.manifest["realtime"]
    assert report["factor"] == 600 and report["lag_policy"] == "warn"
    assert report["steps"] == HORIZON_S // 60
    assert 0 <= report["lag_mean_s"] <= report["lag_max_s"]
    assert 0 <= report["steps_behind"] <= report["steps"]
    assert paced.kpis["realtime_lag_max_s"] == report["lag_max_s"]
    assert paced.kpis["realtime_lag_mean_s"] == report["lag_mean_s"]
    on_disk = json.loads((paced.out_dir / "manifest.json").read_text())
    assert on_disk["realtime"]["lag_max_s"] == report["lag_max_s"]


def test_the_endpoint_table_lists_every_socket(pair: dict[str, Any]) -> None:
    endpoints = pair["endpoints"]
    kinds = [e.kind for e in endpoints]
    assert kinds == ["csms"] + ["charger"] * 6 + ["battery", "pv"]
    csms_url = endpoints[0].url
    assert re.fullmatch(r"ws://127\.0\.0\.1:\d+", csms_url)
    assert all(e.url == f"{csms_url}/{e.asset_id}" for e in endpoints if e.kind == "charger")
    assert EXTERNAL_ID in endpoints[0].detail
    ports = [int(e.url.rsplit(":", 1)[1]) for e in endpoints if e.kind != "charger"]
    assert len(set(ports)) == len(ports)


# --------------------------------------------------------------- a live served run (CLI)


def _read_table(proc: subprocess.Popen[str], deadline_s: float) -> dict[str, str]:
    """Endpoint URL per asset id, from the table ``qubit-sim serve`` prints at start-up."""
    assert proc.stdout is not None
    urls: dict[str, str] = {}
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        line = proc.stdout.readline()
        if not line:
            break
        fields = line.split()
        if len(fields) >= 3 and fields[0] in ("csms", "charger", "battery", "pv"):
            urls[fields[1]] = fields[2]
            if fields[0] == "pv":
                return urls
    raise AssertionError(f"no endpoint table; stderr: {proc.stderr.read() if proc.stderr else ''}")


def _start_serving(scenario: Path, out: Path) -> tuple[subprocess.Popen[str], dict[str, str]]:
    """``qubit-sim serve`` at x60 on free ports in a subprocess, and its endpoint table."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "qubit_sim",
            "serve",
            str(scenario),
            "--csms-port",
            "0",
            "--modbus-base-port",
            "0",
            "--until",
            "12h",
            "--out",
            str(out),
            "--no-plots",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        return proc, _read_table(proc, 120)
    except BaseException:
        proc.kill()
        proc.wait(timeout=30)
        raise


@pytest.fixture(scope="module")
def live(scenario: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A served run that outside clients connect to."""
    proc, urls = _start_serving(scenario, tmp_path_factory.mktemp("live") / "results")
    try:
        yield {"proc": proc, "urls": urls}
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate(timeout=30)


async def _boot(session: ChargePointSession, url: str, identity: str, password: str) -> str:
    async with session(url, identity, password) as cp:
        answer = await cp.call(
            call.BootNotification(charge_point_model="Wallbox", charge_point_vendor="Acme")
        )
        return str(answer.status)


def test_an_allow_listed_ocpp16_charge_point_joins_the_served_csms(
    live: dict[str, Any], charge_point_session: ChargePointSession
) -> None:
    status = asyncio.run(
        _boot(charge_point_session, live["urls"]["csms"], EXTERNAL_ID, EXTERNAL_PASSWORD)
    )
    assert status == "Accepted"


@pytest.mark.parametrize(
    ("identity", "password", "http_status"),
    [
        (EXTERNAL_ID, "a-wrong-password-0123", 401),
        ("NOT-LISTED", EXTERNAL_PASSWORD, 404),
        ("office1", "not-the-twins-password", 401),
    ],
)
def test_the_served_csms_refuses_wrong_credentials(
    live: dict[str, Any],
    charge_point_session: ChargePointSession,
    identity: str,
    password: str,
    http_status: int,
) -> None:
    with pytest.raises(InvalidStatus) as refused:
        asyncio.run(_boot(charge_point_session, live["urls"]["csms"], identity, password))
    assert refused.value.response.status_code == http_status


async def _read_marker(host: str, port: int) -> tuple[bytes, int]:
    client = AsyncModbusTcpClient(host, port=port, timeout=5)
    await client.connect()
    try:
        reply = await client.read_holding_registers(40000, count=3, device_id=1)
        assert not reply.isError(), reply
        regs = reply.registers
        return regs[0].to_bytes(2, "big") + regs[1].to_bytes(2, "big"), regs[2]
    finally:
        client.close()


def test_a_modbus_client_reads_the_sunspec_marker_of_the_served_battery(
    live: dict[str, Any],
) -> None:
    url = live["urls"]["office_battery"]
    host, port = url.removeprefix("modbus://").rsplit(":", 1)
    marker, first_model = asyncio.run(_read_marker(host, int(port)))
    assert marker == b"SunS"
    assert first_model == 1  # the common model comes first


@pytest.mark.parametrize(
    ("sent", "stopped_by", "exit_code"),
    [(signal.SIGINT, "user (Ctrl-C)", 130), (signal.SIGTERM, "SIGTERM", 143)],
    ids=["ctrl-c", "sigterm"],
)
def test_a_stop_signal_ends_the_served_run_and_writes_incomplete_results(
    scenario: Path, tmp_path: Path, sent: signal.Signals, stopped_by: str, exit_code: int
) -> None:
    out = tmp_path / "results"
    proc, _ = _start_serving(scenario, out)
    time.sleep(1.0)  # at x60 a few steps run
    proc.send_signal(sent)
    stdout, stderr = proc.communicate(timeout=120)
    # The shell's convention for a process stopped by a signal: 128 + its number.
    assert proc.returncode == exit_code, stderr
    assert "marked incomplete" in stdout
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "incomplete" and manifest["stopped_by"] == stopped_by
    steps = manifest["steps_done"]
    assert 1 <= steps < manifest["n_steps"]
    frame = pd.read_parquet(out / "timeseries.parquet")
    assert len(frame) == steps
    report = manifest["realtime"]
    assert report["steps"] == steps and report["lag_max_s"] >= report["lag_mean_s"] >= 0
    kpis = json.loads((out / "kpis.json").read_text())
    assert kpis["realtime_lag_max_s"] == report["lag_max_s"]
    assert (out / "settlement").is_dir()


# ------------------------------------------------------------------------------ lag policy


def test_a_strict_lag_policy_stops_a_run_that_cannot_keep_up(
    scenario: Path, tmp_path: Path
) -> None:
    # At x1e6 a 60 s step is due every 60 µs: no step over sockets is that fast.
    with pytest.raises(SimulationError, match="behind"):
        serve(
            scenario,
            ServeOptions(factor=1e6, csms_port=0, modbus_base_port=0, lag="strict"),
            out=tmp_path,
            until_s=3600,
            plots=False,
            settle=False,
        )
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["status"] == "incomplete" and "behind" in manifest["error"]
    assert manifest["realtime"]["steps_behind"] >= 1
    assert manifest["realtime"]["lag_max_s"] > 60 / 1e6


def test_a_lag_threshold_stops_the_run_once_exceeded(scenario: Path, tmp_path: Path) -> None:
    with pytest.raises(SimulationError, match=r"more than the 0\.02 s allowed"):
        serve(
            scenario,
            ServeOptions(factor=1e6, csms_port=0, modbus_base_port=0, lag=0.02),
            out=tmp_path,
            until_s=6 * 3600,
            plots=False,
            settle=False,
        )
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["realtime"]["lag_max_s"] > 0.02
    assert manifest["realtime"]["lag_policy"] == "0.02 s"


@given(st.floats(min_value=1e-3, max_value=1e6, allow_nan=False))
def test_a_positive_number_is_a_lag_threshold(threshold: float) -> None:
    for text in (threshold, str(threshold), f"{threshold!r}s"):
        policy = LagPolicy.parse(text)
        assert policy.mode == "threshold" and policy.threshold_s == threshold


@given(st.text(max_size=12))
def test_anything_else_is_not_a_lag_policy(text: str) -> None:
    stripped = text.strip().lower()
    try:
        number = float(stripped.removesuffix("s"))
    except ValueError:
        number = math.nan
    valid = stripped in ("warn", "strict") or (math.isfinite(number) and number > 0)
    if valid:
        assert LagPolicy.parse(text).mode in ("warn", "strict", "threshold")
    else:
        with pytest.raises(ScenarioError, match="lag policy"):
            LagPolicy.parse(text)


@given(st.lists(st.tuples(st.floats(0, 100), st.booleans()), max_size=50))
def test_lag_stats_mean_never_exceeds_max(samples: list[tuple[float, bool]]) -> None:
    stats = LagStats()
    for lag_s, behind in samples:
        stats.add(lag_s, behind)
    report = stats.to_dict()
    assert report["steps"] == len(samples)
    assert report["steps_behind"] == sum(b for _, b in samples)
    assert 0 <= stats.mean_s <= stats.max_s + 1e-12
    assert stats.max_s == max((lag for lag, _ in samples), default=0.0)


# ---------------------------------------------------------------------------- external CSMS


def test_with_an_external_csms_the_twins_boot_there_and_the_run_is_uncontrolled(
    scenario: Path, tmp_path: Path, external_csms: Csms, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="qubit_sim.realtime")
    notices: list[str] = []
    result = serve(
        scenario,
        ServeOptions(factor=3600, csms_port=0, modbus_base_port=0, csms_url=external_csms.url),
        out=tmp_path,
        until_s=600,
        plots=False,
        settle=False,
        notify=notices.append,
    )
    assert result.manifest["controller"] == "uncontrolled"
    assert result.manifest["realtime"]["external_csms"] == external_csms.url
    assert notices and "uncontrolled" in notices[0] and "rule_based" in notices[0]
    # Said once, to the caller that listens, and it says the battery and PV lose their control.
    assert len(notices) == 1 and "battery and PV" in notices[0]
    assert not [r for r in caplog.records if "uncontrolled" in r.getMessage()]
    (stack_csms,) = [e for e in result.manifest["realtime"]["endpoints"] if e["kind"] == "csms"]
    # The stack's CSMS admits only the listed outside charge points: the twins went elsewhere.
    assert stack_csms["detail"] == "OCPP 1.6J/2.0.1; admits EXT-CP-1"
    booted = {cp_id for cp_id, r in external_csms.state.charge_points.items() if r.boots >= 1}
    assert booted == {f"office{i}" for i in range(1, 7)}


def test_with_an_external_csms_and_no_listed_charge_points_the_stack_csms_admits_nobody(
    scenario: Path, tmp_path: Path, external_csms: Csms
) -> None:
    text = scenario.read_text()
    alone = tmp_path / "alone.yaml"
    alone.write_text(text[: text.index("  charge_points:")])
    result = serve(
        alone,
        ServeOptions(factor=3600, csms_port=0, modbus_base_port=0, csms_url=external_csms.url),
        out=tmp_path / "run",
        until_s=300,
        plots=False,
        settle=False,
        notify=lambda _: None,
    )
    (stack_csms,) = [e for e in result.manifest["realtime"]["endpoints"] if e["kind"] == "csms"]
    assert stack_csms["detail"] == "OCPP 1.6J/2.0.1; admits nobody (twins use --csms-url)"


# ------------------------------------------------------------------------------------ CLI


def test_serve_help_lists_its_options() -> None:
    result = CliRunner().invoke(app, ["serve", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for option in (
        "--factor",
        "--csms-url",
        "--host",
        "--csms-port",
        "--modbus-base-port",
        "--lag",
        "--until",
    ):
        assert option in result.output


def test_serve_rejects_a_bad_lag_policy(scenario: Path) -> None:
    result = CliRunner().invoke(app, ["serve", str(scenario), "--lag", "sometimes"])
    assert result.exit_code == 2
    assert "lag policy 'sometimes'" in result.output
