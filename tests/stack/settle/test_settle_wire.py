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
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import qubit_sim
from qubit_sim.core.results import RunResult
from qubit_sim.protocols.ocpp_csms_state import TransactionRecord
from qubit_sim.protocols.ocpp_meter import MeterSample
from qubit_sim.scenario.loader import load_scenario_text
from qubit_sim.stack.settle import SettlementError
from qubit_sim.stack.settle.inputs import RunInputs, read_run_inputs
from qubit_sim.stack.settle.metering import csms_sessions
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


def test_reconciliation_passes_through_the_storm(
    storm: RunResult, assert_site_checks_pass: Callable[[dict[str, dict]], None]
) -> None:
    assert storm.manifest["mode"] == "wire"
    assert storm.manifest["settlement"]["reconciliation"] == "pass"
    checks = checks_of(storm.out_dir)
    assert_site_checks_pass(checks)
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


# ------------------------------------------------------------ outside charge points (no twin)
OUTSIDE = "EXT-A"


def _outside_row(
    tx_id: str, start_s: int, stop_s: int, start_wh: float, stop_wh: float, running: bool = False
) -> dict:
    """A transaction row as the CSMS records it; ``stop_s`` is -1 while running."""
    return {
        "transaction_id": tx_id,
        "charge_point": OUTSIDE,
        "connector": 1,
        "id_tag": "OUTSIDE",
        "start_time": "",
        "stop_time": "" if running else "x",
        "start_s": start_s,
        "stop_s": -1 if running else stop_s,
        "meter_start_wh": start_wh,
        "meter_stop_wh": float("nan") if running else stop_wh,
        "energy_wh": stop_wh - start_wh,
        "n_meter_values": 0,
        "stop_reason": "" if running else "Local",
        "offline_messages": 0,
    }


@pytest.fixture(scope="module")
def storm_inputs(storm: RunResult) -> RunInputs:
    return read_run_inputs(storm.out_dir)


def _with_outside(storm: RunResult, folder: Path, rows: list[dict], allow: bool) -> Path:
    """A copy of the storm run whose CSMS also served an outside charge point."""
    copy = shutil.copytree(storm.out_dir, folder)
    table = pd.read_parquet(copy / CSMS_TRANSACTIONS_FILE)
    table = pd.concat([table, pd.DataFrame(rows)], ignore_index=True)
    table.to_parquet(copy / CSMS_TRANSACTIONS_FILE, index=False)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["realtime"] = {"allowed_charge_points": [OUTSIDE] if allow else []}
    (copy / "manifest.json").write_text(json.dumps(manifest))
    return copy


def test_an_unknown_charge_point_that_is_not_allow_listed_is_refused(
    storm: RunResult, tmp_path: Path, key_dir: Path
) -> None:
    copy = _with_outside(storm, tmp_path / "run", [_outside_row("o1", 60, 600, 0, 10)], False)
    with pytest.raises(SettlementError, match=r"\['EXT-A'\].*allow-list"):
        settle_results(copy, key_dir=key_dir)


def test_outside_sessions_are_billed_from_their_registers_with_their_clock_clamped(
    storm: RunResult, tmp_path: Path, key_dir: Path
) -> None:
    end_s = HOURS * 3600
    rows = [
        # Its clock a year ahead of simulated time, then one behind the scenario start.
        _outside_row("o-ahead", 365 * 86400, 365 * 86400 + 3600, 50_000.4, 62_345.9),
        _outside_row("o-behind", -7200, 1800, 100.0, 2100.0),
        _outside_row("o-inside", 3600, 5400, 0.0, 1234.0),
        _outside_row("o-running", 7200, -1, 5000.0, 5600.0, running=True),
        # Stopped, by a clock so far behind that its stop is before the scenario start.
        _outside_row("o-stopped-early", -9000, -3600, 7.0, 9.0),
    ]
    copy = _with_outside(storm, tmp_path / "run", rows, True)
    report = settle_results(copy, key_dir=key_dir)
    assert report.reconciled and verify_results(copy).ok
    outside = {i["session_id"]: i for i in invoices_of(copy) if i["charger_id"] == OUTSIDE}
    # The running one is not billed.
    assert set(outside) == {"o-ahead", "o-behind", "o-inside", "o-stopped-early"}
    assert [outside[s]["wh_delivered"] for s in ("o-ahead", "o-behind", "o-inside")] == [
        62_345 - 50_000, 2000, 1234,
    ]  # fmt: skip
    assert all(invoice["vehicle_id"] is None for invoice in outside.values())
    run_start = read_run_inputs(copy).start
    end = (run_start + timedelta(seconds=end_s)).strftime("%Y-%m-%dT%H:%M:%SZ")
    start = run_start.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert outside["o-ahead"]["started_at"] == outside["o-ahead"]["stopped_at"] == end
    assert outside["o-behind"]["started_at"] == start
    early = outside["o-stopped-early"]
    assert early["started_at"] == early["stopped_at"] == start and early["wh_delivered"] == 2
    # The twins' checks are the storm's own, to the Wh.
    checks, before = checks_of(copy), checks_of(storm.out_dir)
    for name in ("site_meter_vs_assets", "charging_sessions", "charger_energy"):
        assert checks[name]["measured_wh"] == before[name]["measured_wh"]
        assert (
            checks[name]["items" if name == "charging_sessions" else "status"]
            == before[name]["items" if name == "charging_sessions" else "status"]
        )
    line = checks["external_sessions"]
    assert line["status"] == "pass" and line["sessions"] == 5 and line["open_sessions"] == 1
    assert line["invoiced_wh"] == 62_345 - 50_000 + 2000 + 1234 + 2
    assert line["open_sessions_wh"] == 600.0
    assert line["clock_clamped"] == ["o-ahead", "o-behind", "o-stopped-early"]
    carbon = json.loads((copy / "settlement" / "carbon.json").read_text())
    inside = next(s for s in carbon["sessions"] if s["session_id"] == "o-inside")
    assert inside["external"] is True and inside["energy_kwh"] == 1.234 and inside["co2_kg"] > 0


@settings(max_examples=40, deadline=None)
@given(
    data=st.lists(
        st.tuples(
            st.integers(-(10**8), 10**8),
            st.integers(-(10**8), 10**8),
            st.integers(0, 10**7),
            st.integers(0, 10**6),
            st.booleans(),
        ),
        min_size=1,
        max_size=5,
    )
)
def test_outside_sessions_lie_inside_the_run_and_keep_their_registers(
    storm_inputs: RunInputs, data: list[tuple[int, int, int, int, bool]]
) -> None:
    rows = [
        _outside_row(f"o{n}", start, stop, float(wh), float(wh + delivered), running)
        for n, (start, stop, wh, delivered, running) in enumerate(data)
    ]
    assert storm_inputs.transactions is not None
    table = pd.concat([storm_inputs.transactions, pd.DataFrame(rows)], ignore_index=True)
    manifest = {**storm_inputs.manifest, "realtime": {"allowed_charge_points": [OUTSIDE]}}
    inputs = replace(storm_inputs, transactions=table, manifest=manifest)
    sessions = csms_sessions(inputs)
    twins = csms_sessions(storm_inputs)
    pd.testing.assert_frame_equal(sessions[~sessions["external"]], twins)
    outside = sessions[sessions["external"]].reset_index(drop=True)
    end_s = inputs.n_steps * inputs.step_s
    done = outside[~outside["is_open"]]
    assert ((outside["start_s"] >= 0) & (outside["start_s"] <= end_s)).all()
    assert ((done["stop_s"] >= done["start_s"]) & (done["stop_s"] <= end_s)).all()
    assert outside["is_open"].tolist() == [running for *_, running in data]
    assert (outside["wh_metered"] == [delivered for *_, delivered, _ in data]).all()
    assert (outside["wh_twin"] == 0).all() and outside["vehicle_id"].isna().all()
    moved = [
        not 0 <= start <= end_s or (not running and not start <= stop <= end_s)
        for start, stop, _, _, running in data
    ]
    assert outside["clock_clamped"].tolist() == moved
