"""Settlement of whole runs: bills by hand, reconciliation on the shipped scenarios, determinism."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import qubit_sim
from qubit_sim.control import Controller, Observation, Setpoints
from qubit_sim.core.results import RunResult
from qubit_sim.core.tariff import EnergyRate, Tariff
from qubit_sim.errors import SimulationError
from qubit_sim.scenario.loader import load_scenario
from qubit_sim.stack.settle import SettlementError, read_ledger
from qubit_sim.stack.settle.bills import bill_lines, bill_totals
from qubit_sim.stack.settle.context import SiteContext
from qubit_sim.stack.settle.inputs import KEY_DIR_ENV, default_key_dir
from qubit_sim.stack.settle.metering import pv_hourly_metered
from qubit_sim.stack.settle.run import UNSETTLED, SettlementReport, settle_results, verify_results

ROOT = Path(__file__).resolve().parents[3]
SCENARIOS = sorted((ROOT / "scenarios").glob("*.yaml"))
DAY_S = 86400

# ---------------------------------------------------------------- a synthetic run, by hand
# Four local days (Europe/Amsterdam, CEST = UTC+2) at 1-min steps: Fri 30 May .. Mon 2 June 2025.
START = pd.Timestamp("2025-05-29T22:00:00Z")
N_STEPS = 4 * 1440
SCENARIO = {
    "site": {
        "name": "synthetic",
        "location": {"lat": 52.0, "lon": 5.0, "tz": "Europe/Amsterdam"},
        "start": "2025-05-29T22:00:00Z",
        "duration": "4d",
        "step": "60s",
    },
    "tariff": {
        "currency": "EUR",
        "energy_rates": [
            {"name": "night", "rate": 0.15, "start_time": "23:00", "end_time": "06:59"},
            {
                "name": "peak",
                "rate": 0.40,
                "start_time": "07:00",
                "end_time": "22:59",
                "weekdays": ["monday", "tuesday", "wednesday", "thursday", "friday"],
                "months": [6],
            },
        ],
        "default_rate": 0.20,
        "export_price_per_kwh": 0.05,
        "demand_charge_per_kw": 9.5,
        "driver_price_per_kwh": 0.39,
        "carbon": {"hourly_g_per_kwh": [200] * 7 + [400] * 16 + [200]},
    },
}


# The same site and tariff as the run records them in its manifest.
CONTEXT = SiteContext(
    site_name="synthetic",
    tz="Europe/Amsterdam",
    start=START.to_pydatetime(),
    step_s=60,
    tariff=Tariff(
        currency="EUR",
        energy_rates=(
            EnergyRate("night", 0.15, "23:00", "06:59"),
            EnergyRate("peak", 0.40, "07:00", "22:59", weekdays=(0, 1, 2, 3, 4), months=(6,)),
        ),
        default_price_per_kwh=0.20,
        export_price_per_kwh=0.05,
        demand_charge_per_kw=9.5,
    ),
    driver_price_per_kwh=0.39,
)


def at(day: int, minute: int) -> int:
    """Step index of local ``day`` (0 = Friday) and minute of that day."""
    return day * 1440 + minute


def synthetic_frame() -> pd.DataFrame:
    load = np.full(N_STEPS, 6.0)
    load[at(0, 600)] = 100.0  # Fri 10:00, one minute: a high instant, a low 15-min average
    load[at(0, 1080) : at(0, 1095)] = 30.0  # Fri 18:00-18:14: May's demand peak
    load[at(3, 420) : at(3, 435)] = 46.0  # Mon 07:00-07:14: June's demand peak, first peak minute
    load[at(3, 727)] = 200.0  # Mon 12:07
    load[at(3, 1379)] = 66.0  # Mon 22:59, the inclusive last minute of the peak window
    pv = np.zeros(N_STEPS)
    pv[at(2, 720) : at(2, 780)] = -18.0  # Sun 12:00-12:59
    battery = np.zeros(N_STEPS)
    battery[at(1, 120) : at(1, 180)] = 10.0  # Sat 02:00-02:59 charging
    battery[at(1, 1080) : at(1, 1140)] = -10.0  # Sat 18:00-18:59 discharging
    cp1 = np.zeros(N_STEPS)
    cp1[at(3, 60) : at(3, 180)] = 11.0  # Mon 01:00-02:59, session 0
    cp2 = np.zeros(N_STEPS)
    cp2[at(3, 1380) :] = 7.0  # Mon 23:00 to the end, session 2, still plugged
    site = load + pv + battery + cp1 + cp2
    minute_of_day = np.arange(N_STEPS) % 1440
    carbon = np.where((minute_of_day < 420) | (minute_of_day >= 1380), 200.0, 400.0)
    return pd.DataFrame(
        {
            "time": pd.date_range(START, periods=N_STEPS, freq="60s"),
            "t_s": np.arange(N_STEPS) * 60,
            "site_p_kw": site,
            "grid_import_kw": np.clip(site, 0, None),
            "grid_export_kw": np.clip(-site, 0, None),
            "carbon_g_per_kwh": carbon,
            "charger_cp1_p_kw": cp1,
            "charger_cp1_connected": (cp1 > 0).astype(float),
            "charger_cp2_p_kw": cp2,
            "charger_cp2_connected": (cp2 > 0).astype(float),
            "battery_b1_p_kw": battery,
            "pv_roof_p_kw": pv,
            "load_bldg_p_kw": load,
        }
    )


def synthetic_sessions() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "session_id": [0, 1, 2],
            "vehicle_id": ["ev_1", "ev_2", "ev_3"],
            "charger_id": ["cp1", "", "cp2"],
            "plugged_s": [at(3, 60) * 60, -1, at(3, 1380) * 60],
            "unplugged_s": [at(3, 180) * 60, -1, -1],
            "rejected": [False, True, False],
            "meter_start_wh": [1000, -1, 500],
            "meter_stop_wh": [23000, -1, 7500],
        }
    )


def write_synthetic(folder: Path, frame: pd.DataFrame | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "scenario.yaml").write_text(yaml.safe_dump(SCENARIO, sort_keys=False))
    manifest = {"scenario": "synthetic", "seed": 0, "controller": "none", "n_steps": N_STEPS,
                "status": "complete", **CONTEXT.to_manifest()}  # fmt: skip
    (folder / "manifest.json").write_text(json.dumps(manifest))
    (synthetic_frame() if frame is None else frame).to_parquet(folder / "timeseries.parquet")
    synthetic_sessions().to_parquet(folder / "sessions.parquet")
    return folder


@pytest.fixture(scope="module")
def key_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("keys")


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory, key_dir: Path) -> SettlementReport:
    folder = write_synthetic(tmp_path_factory.mktemp("synthetic"))
    return settle_results(folder, key_dir=key_dir)


def test_bill_matches_the_hand_computed_example(synthetic: SettlementReport) -> None:
    lines = synthetic.bill_lines
    assert synthetic.period == "month" and list(lines["period"].unique()) == ["2025-05", "2025-06"]

    def amount(period: str, line: str, rate: str = "") -> tuple[float, float]:
        row = lines[(lines.period == period) & (lines.line == line) & (lines.rate == rate)]
        assert len(row) == 1, (period, line, rate)
        return float(row.quantity.iloc[0]), float(row.amount.iloc[0])

    # May (Fri + Sat): no peak rate (month filter), night 00:00-06:59 + 23:00-23:59 daily.
    may_night = 2 * 480 * 0.1 + 10.0  # 6 kW = 0.1 kWh/min, + the battery charging Sat 02:00-02:59
    may_default = (1920 - 60) * 0.1 + 24 * 15 / 60 + 94 / 60  # Sat 18:00-18:59 exports
    assert amount("2025-05", "energy", "night") == pytest.approx((may_night, may_night * 0.15))
    assert amount("2025-05", "energy", "default") == pytest.approx((may_default, may_default * 0.2))
    assert amount("2025-05", "demand") == pytest.approx((30.0, 30.0 * 9.5))  # not 100 kW
    assert amount("2025-05", "export") == pytest.approx((4.0, -4.0 * 0.05))
    # June (Sun + Mon): peak only on Monday 07:00-22:59, 22:59 included.
    june_night = 2 * 480 * 0.1 + 22.0 + 7.0  # + session 0 (Mon 01:00-02:59) and session 2
    june_default = (960 - 60) * 0.1  # Sunday, less the exporting hour
    june_peak = 960 * 0.1 + 40 * 15 / 60 + 194 / 60 + 60 / 60
    assert amount("2025-06", "energy", "night") == pytest.approx((june_night, june_night * 0.15))
    assert amount("2025-06", "energy", "default") == pytest.approx(
        (june_default, june_default * 0.2)
    )
    assert amount("2025-06", "energy", "peak") == pytest.approx((june_peak, june_peak * 0.4))
    assert amount("2025-06", "demand") == pytest.approx((46.0, 46.0 * 9.5))  # not 200 kW
    assert amount("2025-06", "export") == pytest.approx((12.0, -12.0 * 0.05))
    may_total = may_night * 0.15 + may_default * 0.2 + 285.0 - 0.2
    june_total = june_night * 0.15 + june_default * 0.2 + june_peak * 0.4 + 437.0 - 0.6
    assert amount("2025-05", "total")[1] == pytest.approx(may_total)
    assert amount("2025-06", "total")[1] == pytest.approx(june_total)
    assert synthetic.bill_total == pytest.approx(may_total + june_total)
    demand = lines[(lines.period == "2025-06") & (lines.line == "demand")].note.iloc[0]
    assert "2025-06-02T07:00:00+02:00" in demand
    on_disk = pd.read_csv(synthetic.folder / "bill_lines.csv")
    assert on_disk["amount"].to_numpy() == pytest.approx(lines["amount"].to_numpy())
    assert pd.read_parquet(synthetic.folder / "bill_lines.parquet").equals(lines)
    assert "| 2025-06 | energy (peak) |" in (synthetic.folder / "summary.md").read_text()


def test_invoices_certificates_and_carbon_of_the_example(synthetic: SettlementReport) -> None:
    folder = synthetic.folder
    invoices = [json.loads(line) for line in (folder / "invoices.jsonl").read_text().splitlines()]
    assert [(i["session_id"], i["wh_delivered"], i["cost"]) for i in invoices] == [
        ("0", 22000, "8.58")
    ]
    assert invoices[0]["started_at"] == "2025-06-01T23:00:00Z"
    assert invoices[0]["stopped_at"] == "2025-06-02T01:00:00Z"
    assert synthetic.open_sessions == 1
    certificates = [
        json.loads(line) for line in (folder / "certificates.jsonl").read_text().splitlines()
    ]
    assert [
        (c["asset_id"], c["period_start"], c["wh_produced"], c["wh_exported"],
         c["wh_consumed_on_site"], c["carbon_intensity_g_per_kwh"])
        for c in certificates
    ] == [("roof", "2025-06-01T10:00:00Z", 18000, 12000, 6000, "400.0")]  # fmt: skip
    carbon = json.loads((folder / "carbon.json").read_text())
    total = carbon["total"]
    night_kwh = 2 * 96.0 + 10 + 22 + 7
    day_kwh = (1860 + 900 + 960) * 0.1 + 6 + 94 / 60 + 10 + 194 / 60 + 1
    assert total["grid_import_kwh"] == pytest.approx(night_kwh + day_kwh)
    assert total["grid_import_kg"] == pytest.approx(night_kwh * 0.2 + day_kwh * 0.4)
    assert total["pv_self_consumed_kwh"] == pytest.approx(6.0)
    assert total["pv_self_consumption_avoided_kg"] == pytest.approx(6.0 * 0.4)
    assert total["battery_shift_avoided_kg"] == pytest.approx(-(10 * 0.2 - 10 * 0.4))
    assert [p["period"] for p in carbon["periods"]] == ["2025-05", "2025-06"]
    assert sum(p["grid_import_kg"] for p in carbon["periods"]) == pytest.approx(
        total["grid_import_kg"]
    )
    sessions = {s["session_id"]: s for s in carbon["sessions"]}
    assert set(sessions) == {"0", "2"} and sessions["2"]["open"]
    assert sessions["0"]["co2_kg"] == pytest.approx(22 * 0.2)
    assert sessions["2"]["co2_kg"] == pytest.approx(7 * 0.2)
    assert synthetic.reconciled
    entries = read_ledger(folder / "ledger.jsonl")
    assert [(e.period, e.certificate_count, e.invoice_count) for e in entries] == [
        ("2025-06", 1, 1)
    ]
    assert verify_results(synthetic.results_dir).ok


@pytest.mark.parametrize(
    ("period", "labels", "peaks"),
    [
        ("week", ["2025-W22", "2025-W23"], [30.0, 46.0]),
        ("day", ["2025-05-30", "2025-05-31", "2025-06-01", "2025-06-02"], [30.0, 16.0, 6.0, 46.0]),
    ],
)
def test_other_periods_move_demand_not_energy(
    synthetic: SettlementReport,
    tmp_path: Path,
    key_dir: Path,
    period: str,
    labels: list[str],
    peaks: list[float],
) -> None:
    shutil.copytree(synthetic.results_dir, tmp_path / "run")
    report = settle_results(tmp_path / "run", period=period, key_dir=key_dir)
    totals = bill_totals(report.bill_lines)
    month = bill_totals(synthetic.bill_lines)
    assert list(totals.index) == labels
    assert totals["peak_kw"].tolist() == pytest.approx(peaks)
    for column in ("import_kwh", "export_kwh", "energy", "export_credit"):
        assert totals[column].sum() == pytest.approx(month[column].sum())
    ledger = read_ledger(report.folder / "ledger.jsonl")
    expected = ["2025-W22", "2025-W23"] if period == "week" else ["2025-06-01", "2025-06-02"]
    assert [entry.period for entry in ledger] == expected  # the certificate's and invoice's
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["settlement"]["period"] == period
    assert manifest["settlement"]["ledger_head"] == ledger[-1].entry_hash


def test_feeder_balance_is_checked_when_the_background_is_recorded(
    tmp_path: Path, key_dir: Path
) -> None:
    frame = synthetic_frame()
    site = frame["site_p_kw"].to_numpy()
    frame["grid_losses_kw"] = 0.02 * np.abs(site)
    frame["grid_background_kw"] = 50.0
    frame["grid_ext_p_kw"] = site + 50.0 + frame["grid_losses_kw"]
    balanced = settle_results(write_synthetic(tmp_path / "ok", frame), key_dir=key_dir)
    check = {c["name"]: c for c in balanced.reconciliation["checks"]}["feeder_balance"]
    assert check["status"] == "pass" and abs(check["difference_wh"]) < 1e-3
    frame.loc[100:159, "grid_ext_p_kw"] += 0.1  # 100 Wh the balance cannot explain
    off = settle_results(write_synthetic(tmp_path / "off", frame), key_dir=key_dir)
    check = {c["name"]: c for c in off.reconciliation["checks"]}["feeder_balance"]
    assert check["status"] == "fail" and check["difference_wh"] == pytest.approx(100.0)
    assert not off.reconciled


def test_meters_that_disagree_with_the_twins_fail_reconciliation(
    synthetic: SettlementReport, tmp_path: Path, key_dir: Path
) -> None:
    folder = shutil.copytree(synthetic.results_dir, tmp_path / "run")
    sessions = pd.read_parquet(folder / "sessions.parquet")
    sessions.loc[0, "meter_stop_wh"] += 2  # the register claims 2 Wh the charger never drew
    sessions.to_parquet(folder / "sessions.parquet")
    frame = pd.read_parquet(folder / "timeseries.parquet")
    frame.loc[10, "grid_import_kw"] += 0.12  # 2 Wh more through the site meter in one minute
    frame.to_parquet(folder / "timeseries.parquet")
    report = settle_results(folder, key_dir=key_dir)
    checks = {c["name"]: c for c in report.reconciliation["checks"]}
    assert checks["charging_sessions"]["status"] == "fail"
    assert checks["charging_sessions"]["first_failures"] == ["0"]
    assert checks["site_meter_vs_assets"]["difference_wh"] == pytest.approx(2.0)
    assert checks["site_meter_vs_assets"]["status"] == "fail"
    assert checks["pv_certificates"]["status"] == "pass"
    assert not report.reconciled
    assert json.loads((report.folder / "reconciliation.json").read_text())["passed"] is False
    assert json.loads((folder / "manifest.json").read_text())["settlement"]["reconciliation"] == (
        "fail"
    )


def test_csms_transactions_replace_the_registers_the_run_read(
    tmp_path: Path, key_dir: Path
) -> None:
    """With a CSMS transaction table, invoices and open sessions come from it, not sessions."""
    folder = write_synthetic(tmp_path / "run")
    table = pd.DataFrame(
        {
            "transaction_id": ["41", "cp2-1"],
            "charge_point": ["cp1", "cp2"],
            "connector": [1, 1],
            "id_tag": ["QUBITSIM", ""],
            "start_time": ["2025-06-01T23:00:00.000Z", "2025-06-02T21:00:00.000Z"],
            "stop_time": ["2025-06-02T01:00:00.000Z", ""],
            "start_s": [at(3, 60) * 60, at(3, 1380) * 60],
            "stop_s": [at(3, 180) * 60, -1],
            # 2.0.1 registers come in 0.1 Wh; invoices read whole Wh, rounded down.
            "meter_start_wh": [1000.0, 500.7],
            "meter_stop_wh": [23000.0, float("nan")],
            "energy_wh": [22000.0, 6999.5],
            "n_meter_values": [120, 59],
            "stop_reason": ["EVDisconnected", ""],
            "offline_messages": [0, 4],
        }
    )
    table.to_parquet(folder / "csms_transactions.parquet", index=False)
    sessions = pd.read_parquet(folder / "sessions.parquet")
    sessions.loc[0, "meter_stop_wh"] += 500  # the simulator's reading no longer counts
    sessions.to_parquet(folder / "sessions.parquet")
    report = settle_results(folder, key_dir=key_dir)
    assert report.reconciled and report.open_sessions == 1
    (invoice,) = [json.loads(line) for line in (report.folder / "invoices.jsonl").open()]
    assert (invoice["session_id"], invoice["vehicle_id"]) == ("41", "ev_1")
    assert (invoice["meter_start_wh"], invoice["wh_delivered"]) == (1000, 22000)
    checks = {c["name"]: c for c in report.reconciliation["checks"]}
    assert checks["charging_sessions"]["source"] == "csms_transactions"
    energy = checks["charger_energy"]
    # 22000 Wh invoiced + floor(500.7 + 6999.5) - floor(500.7) = 7000 Wh metered while open.
    assert (energy["invoiced_wh"], energy["open_sessions_wh"]) == (22000.0, 7000.0)
    assert energy["measured_wh"] == pytest.approx(energy["reference_wh"]) == 29000.0
    assert energy["status"] == "pass" and energy["sessions"] == 2


def test_settling_needs_a_results_folder(tmp_path: Path, key_dir: Path) -> None:
    with pytest.raises(SettlementError, match="does not exist"):
        settle_results(tmp_path / "nothing", key_dir=key_dir)
    folder = write_synthetic(tmp_path / "run")
    (folder / "timeseries.parquet").unlink()
    with pytest.raises(SettlementError, match="no timeseries.parquet"):
        settle_results(folder, key_dir=key_dir)
    with pytest.raises(SettlementError, match="'quarter' is not one of month, week, day"):
        settle_results(write_synthetic(tmp_path / "again"), period="quarter", key_dir=key_dir)


def test_the_default_key_folder_honours_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_DIR_ENV, "/somewhere/keys")
    assert default_key_dir() == Path("/somewhere/keys")
    monkeypatch.delenv(KEY_DIR_ENV)
    monkeypatch.setenv("XDG_CONFIG_HOME", "/cfg")
    assert default_key_dir() == Path("/cfg/qubit-sim/keys")


# ------------------------------------------------------------------ the shipped scenarios
@pytest.fixture(scope="module", params=SCENARIOS, ids=lambda p: p.stem)
def shipped(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
            key_dir: Path) -> RunResult:  # fmt: skip
    out = tmp_path_factory.mktemp(request.param.stem)
    return qubit_sim.run(request.param, out=out, until_s=DAY_S, plots=False, key_dir=key_dir)


def test_reconciliation_passes_on_every_shipped_scenario(
    shipped: RunResult, assert_site_checks_pass: Callable[[dict[str, dict]], None]
) -> None:
    section = shipped.manifest["settlement"]
    assert section["reconciliation"] == "pass"
    reconciliation = json.loads((shipped.out_dir / "settlement/reconciliation.json").read_text())
    checks = {check["name"]: check for check in reconciliation["checks"]}
    assert reconciliation["passed"]
    assert_site_checks_pass(checks)
    # Every shipped scenario has a feeder: its balance is a real check with real numbers.
    feeder = checks["feeder_balance"]
    assert feeder["background_wh"] != 0 and feeder["losses_wh"] > 0
    assert checks["charging_sessions"]["source"] == "charger_registers"
    assert checks["charger_energy"]["reference_wh"] > 0
    sessions = shipped.sessions()
    finished = sessions[(sessions.charger_id != "") & (sessions.unplugged_s >= 0)]
    assert section["invoices"] == checks["charging_sessions"]["items"] == len(finished) > 0
    spec = load_scenario(ROOT / "scenarios" / f"{shipped.manifest['scenario']}.yaml").spec
    assert (section["certificates"] > 0) == bool(spec.assets.pv)
    # The bill, priced from the tariff, agrees with the KPIs priced from the recorded prices.
    kpis = shipped.kpis
    assert section["bill_total"] == pytest.approx(kpis["total_cost"], rel=1e-9, abs=1e-9)
    carbon = json.loads((shipped.out_dir / "settlement/carbon.json").read_text())
    assert carbon["total"]["grid_import_kg"] == pytest.approx(kpis["co2_kg"], rel=1e-9)
    assert verify_results(shipped.out_dir).ok


def test_settling_twice_gives_identical_files(
    shipped: RunResult, tmp_path: Path, key_dir: Path
) -> None:
    first = {p.relative_to(shipped.out_dir): p.read_bytes()
             for p in (shipped.out_dir / "settlement").rglob("*") if p.is_file()}  # fmt: skip
    copy = shutil.copytree(shipped.out_dir, tmp_path / "copy")
    settle_results(copy, key_dir=key_dir)
    settle_results(copy, key_dir=key_dir)
    again = {p.relative_to(copy): p.read_bytes()
             for p in (copy / "settlement").rglob("*") if p.is_file()}  # fmt: skip
    assert len(first) == 10 and again == first
    manifest = json.loads((copy / "manifest.json").read_text())
    assert manifest["settlement"] == shipped.manifest["settlement"]
    assert not (copy / ".settlement.partial").exists()


class _FailingController(Controller):
    name = "failing"

    def act(self, obs: Observation) -> Setpoints:
        if obs.t_s >= 7200:
            raise RuntimeError("controller exploded")
        n_pv = len(obs.pv_available_kw)
        return Setpoints.unlimited(len(obs.charger_connected), len(obs.battery_soc), n_pv)


def test_a_run_that_stopped_early_is_settled_as_far_as_it_got(
    tmp_path: Path, key_dir: Path
) -> None:
    loaded = load_scenario(
        ROOT / "scenarios" / "depot_overnight.yaml", overrides={"grid": {"power_flow": False}}
    )
    with pytest.raises(SimulationError):
        qubit_sim.run(loaded, out=tmp_path, controller=_FailingController(), plots=False,
                      key_dir=key_dir)  # fmt: skip
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["status"] == "incomplete" and manifest["settlement"]["reconciliation"] == "pass"
    lines = pd.read_csv(tmp_path / "settlement" / "bill_lines.csv")
    assert set(lines["data_end"]) == {"2025-03-03T02:00:00Z"}
    summary = (tmp_path / "settlement" / "summary.md").read_text()
    assert "Run: incomplete, 120 of 10080 steps recorded." in summary
    assert verify_results(tmp_path).ok


def test_runs_can_skip_settlement(tmp_path: Path) -> None:
    loaded = load_scenario(
        ROOT / "scenarios" / "depot_overnight.yaml", overrides={"grid": {"power_flow": False}}
    )
    result = qubit_sim.run(loaded, out=tmp_path, until_s=3600, plots=False, settle=False)
    assert "settlement" not in result.manifest and not (tmp_path / "settlement").exists()
    report = verify_results(tmp_path)
    assert not report.ok and report.first is not None and report.first.kind == UNSETTLED
    assert report.first_failure == (
        "unsettled manifest.json has no settlement section; run `qubit-sim settle` on this folder "
        "first"
    )
    # The command says so, without calling it tampering.
    from typer.testing import CliRunner

    from qubit_sim.cli import app

    out = CliRunner().invoke(app, ["verify", str(tmp_path)], env={"COLUMNS": "200"})
    assert out.exit_code == 1
    assert "not settled:" in out.output and "TAMPERED" not in out.output


# -------------------------------------------------------------------------- invariants
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    step_s=st.sampled_from([60, 300, 900, 3600]),
    offset_steps=st.integers(0, 30),
    n_steps=st.integers(1, 200),
    n_inverters=st.integers(1, 3),
    seed=st.integers(0, 2**32 - 1),
)
def test_pv_registers_count_whole_wh_within_1_wh_per_hour(
    step_s: int, offset_steps: int, n_steps: int, n_inverters: int, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    times = pd.date_range(
        pd.Timestamp("2025-06-01T00:00:00Z") + pd.Timedelta(seconds=offset_steps * step_s),
        periods=n_steps, freq=pd.Timedelta(seconds=step_s),
    )  # fmt: skip
    pv = {f"pv{i}": -rng.uniform(0, 50, n_steps) * (rng.random(n_steps) < 0.7)
          for i in range(n_inverters)}  # fmt: skip
    export = rng.uniform(0, 80, n_steps) * (rng.random(n_steps) < 0.5)
    table = pv_hourly_metered(times, step_s, pv, export, rng.uniform(0, 500, n_steps))
    assert len(table) == n_inverters * len(times.floor("h").unique())
    assert (np.abs(table["wh_register"] - table["wh_twin"]) <= 1.0 + 1e-9).all()
    assert (table["e_exported_kwh"] <= table["e_produced_kwh"] + 1e-12).all()
    assert table["e_exported_kwh"].sum() * 1000 <= export.sum() * step_s / 3.6 + 1e-6
    for asset, p_kw in pv.items():
        produced_wh = float(np.sum(-p_kw) * step_s / 3.6)
        registered = table.loc[table["asset_id"] == asset, "wh_register"].sum()
        assert registered == np.rint(produced_wh)  # the hours add up to the register exactly


@settings(max_examples=30, deadline=None)
@given(
    days=st.integers(1, 3),
    start_hour=st.integers(0, 23),
    seed=st.integers(0, 2**32 - 1),
    period=st.sampled_from(["month", "week", "day"]),
)
def test_bill_lines_add_up(days: int, start_hour: int, seed: int, period: str) -> None:
    rng = np.random.default_rng(seed)
    n = days * 96
    # From 29 March: the spring DST change is inside most draws.
    times = pd.date_range(pd.Timestamp("2025-03-29T00:00:00Z") + pd.Timedelta(hours=start_hour),
                          periods=n, freq="15min")  # fmt: skip
    site = rng.normal(20, 40, n)
    imports, exports = np.clip(site, 0, None), np.clip(-site, 0, None)
    tariff = Tariff(
        energy_rates=(EnergyRate("day", 0.3, "07:00", "22:59", weekdays=(0, 1, 2, 3, 4)),),
        default_price_per_kwh=0.2, export_price_per_kwh=0.05, demand_charge_per_kw=7.0,
        billing_period=period,
    )  # fmt: skip
    lines = bill_lines(times, 900, imports, exports, tariff, "Europe/Amsterdam")
    energy = lines[lines.line == "energy"]
    assert energy["quantity"].sum() == pytest.approx(imports.sum() / 4)
    assert lines.loc[lines.line == "export", "quantity"].sum() == pytest.approx(exports.sum() / 4)
    assert (lines.loc[lines.line == "demand", "quantity"] <= imports.max() + 1e-9).all()
    for _, group in lines.groupby("period"):
        parts = group.loc[group.line != "total", "amount"].sum()
        assert group.loc[group.line == "total", "amount"].iloc[0] == pytest.approx(parts)
