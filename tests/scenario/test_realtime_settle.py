"""Settlement of served runs from what the stack's CSMS received.

Claims checked here: a served run (``mode: realtime``) on the stack's CSMS writes
``csms_transactions.parquet`` and settles from it — one invoice per finished transaction with the
registers that arrived over OCPP, reconciliation passing against the twins; the pacing reaches
the end of the horizon, so the last interval's meter values are in the CSMS records; an
allow-listed outside charge point's transaction is recorded with its own registers, invoiced from
them (its clock clamped into the run) and reported on its own reconciliation line, outside the
twins' checks; with an external CSMS no such file is written and settlement reads the chargers'
registers.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from ocpp.v16 import ChargePoint, call

from qubit_sim.core.results import RunResult
from qubit_sim.protocols.csms import Csms
from qubit_sim.scenario.realtime import Endpoint, ServeOptions, serve
from qubit_sim.stack.settle.run import verify_results
from qubit_sim.stack.settle.transactions import CSMS_TRANSACTIONS_FILE

EXTERNAL_ID = "EXT-CP-9"
EXTERNAL_PASSWORD = "allowed-password-9876"
HORIZON_S = 7200
OUTSIDE_HORIZON_S = 1800
FACTOR = 7200.0

# (csms_url, identity, password) -> an OCPP 1.6 charge point connected to the CSMS (conftest).
ChargePointSession = Callable[[str, str, str], AbstractAsyncContextManager[ChargePoint]]


@pytest.fixture(scope="module")
def scenario(office_realtime_scenario: Callable[..., Path]) -> Path:
    # The office car park in the afternoon: the EVs are plugged in at the start and the first two
    # leave within the two hours served, so two transactions finish and four are still running.
    return office_realtime_scenario(
        "realtime_settle", "2025-06-02T13:00:00Z", EXTERNAL_ID, EXTERNAL_PASSWORD
    )


@pytest.fixture(scope="module")
def settled(scenario: Path, tmp_path_factory: pytest.TempPathFactory) -> RunResult:
    return serve(
        scenario,
        ServeOptions(factor=FACTOR, csms_port=0, modbus_base_port=0),
        out=tmp_path_factory.mktemp("served") / "results",
        until_s=HORIZON_S,
        plots=False,
    )


def _reconciliation(result: RunResult) -> dict[str, Any]:
    return json.loads((result.out_dir / "settlement" / "reconciliation.json").read_text())


def test_a_served_run_writes_the_csms_transactions(settled: RunResult) -> None:
    table = pd.read_parquet(settled.out_dir / CSMS_TRANSACTIONS_FILE)
    assert sorted(table["charge_point"]) == [f"office{i}" for i in range(1, 7)]
    finished = table[table["stop_s"] >= 0]
    sessions = settled.sessions()
    left = sessions[sessions["unplugged_s"] >= 0]
    # The CSMS saw each departure when it happened, with the register the charger read.
    assert sorted(zip(finished["charge_point"], finished["stop_s"], strict=True)) == sorted(
        zip(left["charger_id"], left["unplugged_s"], strict=True)
    )
    assert len(finished) == 2


def test_the_served_run_is_invoiced_from_the_csms_records(settled: RunResult) -> None:
    section = settled.manifest["settlement"]
    assert section["reconciliation"] == "pass"
    report = _reconciliation(settled)
    assert report["passed"] is True
    sessions = next(c for c in report["checks"] if c["name"] == "charging_sessions")
    assert sessions["source"] == "csms_transactions"
    assert sessions["items_checked"] == 2 and sessions["items_outside_tolerance"] == 0
    table = pd.read_parquet(settled.out_dir / CSMS_TRANSACTIONS_FILE)
    finished = table[table["stop_s"] >= 0]
    lines = (settled.out_dir / "settlement" / "invoices.jsonl").read_text().splitlines()
    invoices = [json.loads(line) for line in lines if line.strip()]
    assert section["invoices"] == len(invoices) == 2
    text = "\n".join(lines)
    for tx_id in finished["transaction_id"]:
        assert f'"{tx_id}"' in text  # each invoice names its transaction


def test_the_last_interval_reaches_the_csms(settled: RunResult) -> None:
    # Pacing runs to the end of the horizon: a running transaction's energy so far is what its
    # charger delivered over the whole horizon, to the register's rounding.
    table = pd.read_parquet(settled.out_dir / CSMS_TRANSACTIONS_FILE)
    running = table[table["stop_s"] < 0]
    assert len(running) == 4
    frame = settled.timeseries()
    assert len(frame) == HORIZON_S // 60
    for row in running.itertuples():
        delivered_wh = frame[f"charger_{row.charge_point}_p_kw"].sum() * 60 / 3.6
        assert delivered_wh > 1000
        assert row.energy_wh == pytest.approx(delivered_wh, abs=1.0)
        assert row.n_meter_values == HORIZON_S // 60


# ---------------------------------------------------------- an allow-listed charge point


async def _outside_session(session: ChargePointSession, url: str) -> int:
    """Boot, start and stop one transaction as an OCPP 1.6 charge point; its id."""
    async with session(url, EXTERNAL_ID, EXTERNAL_PASSWORD) as cp:
        boot = await cp.call(
            call.BootNotification(charge_point_model="Wallbox", charge_point_vendor="Acme")
        )
        assert boot.status == "Accepted"
        started = await cp.call(
            call.StartTransaction(
                connector_id=1,
                id_tag="OUTSIDE-TAG",
                meter_start=1000,
                timestamp="2025-06-02T13:10:00Z",
            )
        )
        await cp.call(
            call.StopTransaction(
                meter_stop=8500,
                timestamp="2025-06-02T13:40:00Z",
                transaction_id=started.transaction_id,
                reason="EVDisconnected",
            )
        )
        return int(started.transaction_id)


@pytest.fixture(scope="module")
def with_outside(
    scenario: Path,
    tmp_path_factory: pytest.TempPathFactory,
    charge_point_session: ChargePointSession,
) -> tuple[RunResult, int]:
    """Half an hour served while an allow-listed charge point runs one transaction; settled."""
    ids: list[int] = []

    def outside(endpoints: list[Endpoint]) -> None:
        ids.append(asyncio.run(_outside_session(charge_point_session, endpoints[0].url)))

    result = serve(
        scenario,
        ServeOptions(factor=FACTOR * 4, csms_port=0, modbus_base_port=0),
        out=tmp_path_factory.mktemp("outside") / "results",
        until_s=OUTSIDE_HORIZON_S,
        plots=False,
        on_ready=outside,
    )
    return result, ids[0]


def test_an_allow_listed_charge_points_transaction_is_recorded(
    with_outside: tuple[RunResult, int],
) -> None:
    result, tx_id = with_outside
    table = pd.read_parquet(result.out_dir / CSMS_TRANSACTIONS_FILE)
    row = table[table["charge_point"] == EXTERNAL_ID]
    assert len(row) == 1 and row["transaction_id"].iloc[0] == str(tx_id)
    assert (row["start_s"].iloc[0], row["stop_s"].iloc[0]) == (600, 2400)
    assert (row["meter_start_wh"].iloc[0], row["meter_stop_wh"].iloc[0]) == (1000.0, 8500.0)
    assert row["energy_wh"].iloc[0] == 7500.0 and row["id_tag"].iloc[0] == "OUTSIDE-TAG"
    # The twins' transactions are there beside it.
    assert set(table["charge_point"]) == {EXTERNAL_ID} | {f"office{i}" for i in range(1, 7)}


def test_an_allow_listed_charge_points_session_is_invoiced_from_its_registers(
    with_outside: tuple[RunResult, int],
) -> None:
    result, tx_id = with_outside
    assert result.manifest["settlement"]["reconciliation"] == "pass"
    assert verify_results(result.out_dir).ok
    lines = (result.out_dir / "settlement" / "invoices.jsonl").read_text().splitlines()
    invoices = [json.loads(line) for line in lines if line.strip()]
    outside = [invoice for invoice in invoices if invoice["charger_id"] == EXTERNAL_ID]
    assert len(outside) == 1
    invoice = outside[0]
    assert invoice["session_id"] == str(tx_id) and invoice["vehicle_id"] is None
    assert (invoice["meter_start_wh"], invoice["meter_stop_wh"]) == (1000, 8500)
    assert invoice["wh_delivered"] == 7500 and invoice["kwh"] == "7.500"
    # Its clock said 13:10-13:40; the run recorded 13:00-13:30, so the stop is clamped to the end.
    assert invoice["started_at"] == "2025-06-02T13:10:00Z"
    assert invoice["stopped_at"] == "2025-06-02T13:30:00Z"
    assert result.manifest["settlement"]["invoices"] == len(invoices)


def test_an_allow_listed_charge_point_is_its_own_reconciliation_line(
    with_outside: tuple[RunResult, int],
) -> None:
    result, tx_id = with_outside
    report = _reconciliation(result)
    assert report["passed"] is True
    checks = {check["name"]: check for check in report["checks"]}
    line = checks["external_sessions"]
    assert line["status"] == "pass" and line["informational"] is True
    assert line["charge_points"] == [EXTERNAL_ID] and line["sessions"] == 1
    assert line["kwh"] == 7.5 and line["invoiced"] == 1 and line["invoiced_wh"] == 7500.0
    assert line["clock_clamped"] == [str(tx_id)]
    # The twins' checks leave it out: no invoice of theirs names the outside charge point, and
    # the charger twins' energy is still all inside their own sessions.
    sessions = checks["charging_sessions"]
    table = pd.read_parquet(result.out_dir / CSMS_TRANSACTIONS_FILE)
    twins_finished = table[(table["stop_s"] >= 0) & (table["charge_point"] != EXTERNAL_ID)]
    assert sessions["items_checked"] == len(twins_finished)
    assert checks["charger_energy"]["status"] == "pass"
    assert checks["charger_energy"]["reference_wh"] > 0
    assert "not part of the simulated site power" in checks["site_meter_vs_assets"]["note"]
    assert any(EXTERNAL_ID in note for note in report["notes"])
    summary = (result.out_dir / "settlement" / "summary.md").read_text()
    assert "external_sessions" in summary and "not part of the simulated site power" in summary


# ------------------------------------------------------------------------- external CSMS


def test_with_an_external_csms_settlement_reads_the_charger_registers(
    scenario: Path, tmp_path: Path, external_csms: Csms
) -> None:
    result = serve(
        scenario,
        ServeOptions(factor=FACTOR, csms_port=0, modbus_base_port=0, csms_url=external_csms.url),
        out=tmp_path,
        until_s=HORIZON_S,
        plots=False,
    )
    assert not (result.out_dir / CSMS_TRANSACTIONS_FILE).exists()
    # The twins' transactions went to the external CSMS.
    assert {tx.cp_id for tx in external_csms.state.transactions.values()} == {
        f"office{i}" for i in range(1, 7)
    }
    report = _reconciliation(result)
    sessions = next(c for c in report["checks"] if c["name"] == "charging_sessions")
    assert sessions["source"] == "charger_registers"
    assert report["passed"] is True and sessions["items_checked"] == 2
    assert np.isfinite(result.manifest["settlement"]["bill_total"])
