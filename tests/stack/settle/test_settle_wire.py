"""Settlement of a wire run from what the CSMS received, through a disconnect storm.

The depot runs over real OCPP websockets and Modbus TCP while a third of its chargers lose their
link every hour. The invoices come from the CSMS's transaction records; they must equal the
charger twins' own registers to the Wh (nothing lost, nothing counted twice), and every
reconciliation check must pass — including the feeder balance of the real power flow.
"""

from __future__ import annotations

import ast
import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import qubit_sim
from qubit_sim.core.results import RunResult
from qubit_sim.protocols.ocpp_csms_state import TransactionRecord
from qubit_sim.protocols.ocpp_meter import MeterSample
from qubit_sim.scenario.loader import load_scenario_text
from qubit_sim.stack.settle import SettlementError
from qubit_sim.stack.settle.run import settle_results, verify_results
from qubit_sim.stack.settle.transactions import (
    CSMS_TRANSACTIONS_FILE,
    TRANSACTION_COLUMNS,
    read_transactions,
    transaction_table,
)

ROOT = Path(__file__).resolve().parents[3]
# Five-minute steps keep the run short; vans leave from 04:10 on, so 9 h gives finished sessions.
DEPOT = (ROOT / "scenarios" / "depot_overnight.yaml").read_text().replace("step: 60s", "step: 5min")
STORM = """
faults:
  - {kind: link_drop, devices: {fraction: 0.33}, at: 30min, duration: 25min, repeat_every: 1h,
     count: 8}
"""
HOURS = 9


@pytest.fixture(scope="module")
def key_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("keys")


@pytest.fixture(scope="module")
def storm(tmp_path_factory: pytest.TempPathFactory, key_dir: Path) -> RunResult:
    loaded = load_scenario_text(DEPOT + STORM, base_dir=ROOT / "scenarios")
    out = tmp_path_factory.mktemp("wire-storm")
    return qubit_sim.run(
        loaded, out=out, until_s=HOURS * 3600, plots=False, mode="wire", key_dir=key_dir
    )


def checks_of(folder: Path) -> dict[str, dict]:
    reconciliation = json.loads((folder / "settlement" / "reconciliation.json").read_text())
    return {check["name"]: check for check in reconciliation["checks"]}


def invoices_of(folder: Path) -> list[dict]:
    lines = (folder / "settlement" / "invoices.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def test_reconciliation_passes_through_the_storm(storm: RunResult) -> None:
    assert storm.manifest["mode"] == "wire"
    assert storm.manifest["settlement"]["reconciliation"] == "pass"
    checks = checks_of(storm.out_dir)
    assert set(checks) == {
        "site_meter_vs_assets", "feeder_balance", "charging_sessions", "charger_energy",
        "pv_certificates",
    }  # fmt: skip
    for check in checks.values():
        assert check["status"] == "pass", check
        assert abs(check["difference_wh"]) <= check["tolerance_wh"]
    assert checks["charging_sessions"]["source"] == "csms_transactions"
    assert checks["feeder_balance"]["losses_wh"] > 0
    assert checks["charger_energy"]["reference_wh"] > 0
    assert verify_results(storm.out_dir).ok


def test_invoices_are_the_csms_transactions_and_equal_the_twin_meters_to_the_wh(
    storm: RunResult,
) -> None:
    table = read_transactions(storm.out_dir)
    assert table is not None and list(table.columns) == list(TRANSACTION_COLUMNS)
    finished = table[table["stop_s"] >= 0]
    invoices = invoices_of(storm.out_dir)
    assert len(invoices) == len(finished) > 0
    by_tx = {row.transaction_id: row for row in finished.itertuples(index=False)}
    # The twins' own registers, as the simulator read them at plug-in and unplug.
    sessions = storm.sessions()
    twin = {
        (row.charger_id, int(row.plugged_s)): row
        for row in sessions[sessions["unplugged_s"] >= 0].itertuples(index=False)
    }
    assert len(twin) == len(invoices)
    for invoice in invoices:
        tx = by_tx[invoice["session_id"]]
        assert invoice["charger_id"] == tx.charge_point
        assert invoice["meter_start_wh"] == int(np.floor(tx.meter_start_wh))
        assert invoice["meter_stop_wh"] == int(np.floor(tx.meter_stop_wh))
        session = twin[(tx.charge_point, int(tx.start_s))]
        assert invoice["vehicle_id"] == session.vehicle_id
        assert invoice["wh_delivered"] == session.meter_stop_wh - session.meter_start_wh > 0
        assert tx.stop_reason == "EVDisconnected" and tx.n_meter_values > 1
    # Some of those transactions lived through link drops (meter values queued while offline).
    events = [json.loads(line) for line in (storm.out_dir / "events.jsonl").open()]
    dropped = {e["device_id"] for e in events if e["type"] == "fault_start"}
    assert dropped & {invoice["charger_id"] for invoice in invoices}


def test_settling_without_the_csms_records_gives_the_same_energies(
    storm: RunResult, tmp_path: Path, key_dir: Path
) -> None:
    """The fast path (charger registers the run read) bills exactly what the CSMS received."""
    copy = shutil.copytree(storm.out_dir, tmp_path / "run")
    (copy / CSMS_TRANSACTIONS_FILE).unlink()
    report = settle_results(copy, key_dir=key_dir)
    assert report.reconciled
    assert checks_of(copy)["charging_sessions"]["source"] == "charger_registers"

    def energies(folder: Path) -> list[tuple]:
        return sorted(
            (i["charger_id"], i["started_at"], i["stopped_at"], i["wh_delivered"], i["cost"])
            for i in invoices_of(folder)
        )

    assert energies(copy) == energies(storm.out_dir)


@pytest.mark.parametrize("damage", ["lost", "double_counted", "short_metered"])
def test_a_lost_double_counted_or_short_transaction_fails_reconciliation(
    storm: RunResult, tmp_path: Path, key_dir: Path, damage: str
) -> None:
    copy = shutil.copytree(storm.out_dir, tmp_path / "run")
    table = pd.read_parquet(copy / CSMS_TRANSACTIONS_FILE)
    finished = table.index[table["stop_s"] >= 0]
    if damage == "lost":
        table = table.drop(index=finished[0])
    elif damage == "double_counted":
        again = table.loc[[finished[0]]].assign(transaction_id="resent-1")
        table = pd.concat([table, again], ignore_index=True)
    else:
        table.loc[finished[0], "meter_stop_wh"] -= 2.0
    table.to_parquet(copy / CSMS_TRANSACTIONS_FILE, index=False)
    report = settle_results(copy, key_dir=key_dir)
    checks = checks_of(copy)
    assert not report.reconciled
    assert checks["site_meter_vs_assets"]["status"] == "pass"  # the site meter is untouched
    energy, sessions = checks["charger_energy"], checks["charging_sessions"]
    if damage == "lost":
        # The lost session's energy lies outside every session; the others still match.
        assert energy["status"] == "fail" and energy["difference_wh"] < -1000
        assert sessions["status"] == "pass"
    elif damage == "double_counted":
        assert energy["status"] == "fail" and energy["difference_wh"] > 1000
    else:
        # Every Wh is still inside a session, but one session is billed 2 Wh short.
        assert energy["status"] == "pass"
        assert sessions["status"] == "fail" and sessions["items_outside_tolerance"] == 1


def test_a_transaction_id_used_twice_is_refused(
    storm: RunResult, tmp_path: Path, key_dir: Path
) -> None:
    copy = shutil.copytree(storm.out_dir, tmp_path / "run")
    table = pd.read_parquet(copy / CSMS_TRANSACTIONS_FILE)
    table.loc[1, "transaction_id"] = table.loc[0, "transaction_id"]
    table.to_parquet(copy / CSMS_TRANSACTIONS_FILE, index=False)
    with pytest.raises(SettlementError, match="occur more than once"):
        settle_results(copy, key_dir=key_dir)


# ------------------------------------------------------------------ the table, without a run
START = datetime(2025, 3, 2, 23, 0, tzinfo=UTC)


def sample(stamp: str, wh: float) -> MeterSample:
    return MeterSample(timestamp=stamp, energy_wh=wh)


def test_the_transaction_table_keeps_what_the_csms_received() -> None:
    done_16 = TransactionRecord("cp_a", "7", 1, "TAG", "2025-03-02T23:05:00Z", 1200.0)
    done_16.add_sample(sample("2025-03-02T23:06:00Z", 1300.0))
    done_16.add_sample(sample("2025-03-02T23:06:00Z", 1300.0))  # a re-sent one counts once
    done_16.stop_time, done_16.meter_stop_wh, done_16.stop_reason = (
        "2025-03-03T00:00:00Z", 5400.0, "EVDisconnected",
    )  # fmt: skip
    running_201 = TransactionRecord("cp_b", "cp_b-1", 2, "", "2025-03-02T23:30:00Z", 10.3)
    running_201.add_sample(sample("2025-03-02T23:31:00Z", 150.7))
    running_201.offline_messages = 3
    table = transaction_table([running_201, done_16], START)
    assert list(table.columns) == list(TRANSACTION_COLUMNS)
    first, second = table.to_dict("records")
    assert (first["transaction_id"], first["start_s"], first["stop_s"]) == ("7", 300, 3600)
    assert (first["energy_wh"], first["n_meter_values"]) == (4200.0, 1)
    assert (first["stop_reason"], first["charge_point"]) == ("EVDisconnected", "cp_a")
    assert (second["transaction_id"], second["stop_s"], second["stop_time"]) == ("cp_b-1", -1, "")
    assert second["energy_wh"] == pytest.approx(140.4)
    assert np.isnan(second["meter_stop_wh"]) and second["offline_messages"] == 3
    assert transaction_table([], START).columns.tolist() == list(TRANSACTION_COLUMNS)


def test_settlement_does_not_import_the_scenario_layer() -> None:
    """The stack sits below the scenario layer: no module of it imports qubit_sim.scenario."""
    package = ROOT / "qubit_sim" / "stack" / "settle"
    offenders = []
    for path in sorted(package.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.startswith("qubit_sim.scenario")]
    assert offenders == []


def test_a_folder_without_the_site_facts_names_the_fix(
    storm: RunResult, tmp_path: Path, key_dir: Path
) -> None:
    copy = shutil.copytree(storm.out_dir, tmp_path / "run")
    manifest = json.loads((copy / "manifest.json").read_text())
    del manifest["tariff"]
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(SettlementError, match="no 'tariff' section; re-run the scenario"):
        settle_results(copy, key_dir=key_dir)


def test_the_site_facts_survive_the_manifest_round_trip() -> None:
    from qubit_sim.core.tariff import EnergyRate, Tariff
    from qubit_sim.stack.settle.context import SiteContext, context_from_manifest

    tariff = Tariff(
        currency="CHF",
        energy_rates=(EnergyRate("peak", 0.4, "07:00", "21:59", weekdays=(0, 4), months=(1, 12)),),
        default_price_per_kwh=None,
        export_price_per_kwh=-0.01,
        demand_charge_per_kw=12.0,
        demand_window_s=1800,
        billing_period="week",
    )
    context = SiteContext("yard", "Europe/Zurich", START, 300, tariff, 0.55)
    manifest = json.loads(json.dumps(context.to_manifest()))
    assert context_from_manifest(manifest) == context
    manifest["tariff"]["energy_rates"][0]["end"] = "25:00"
    with pytest.raises(SettlementError, match="tariff cannot be read.*25:00"):
        context_from_manifest(manifest)
