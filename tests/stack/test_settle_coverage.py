"""Billing periods a run covers only in part: marked in the bill, the table, the summary and the
manifest, still billed in full (so the bill keeps agreeing with the KPIs)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import qubit_sim
from qubit_sim.cli import app
from qubit_sim.core.tariff import Tariff
from qubit_sim.scenario.loader import load_scenario
from qubit_sim.stack.settle.bills import (
    bill_lines,
    coverage_text,
    partial_note,
    period_coverage,
)

ROOT = Path(__file__).resolve().parents[2]
WORKPLACE = ROOT / "scenarios" / "workplace_pv_battery.yaml"
DAY_S = 86400
runner = CliRunner()


@pytest.fixture(scope="module")
def key_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("keys")


def _run(tmp_path_factory: pytest.TempPathFactory, start: str, days: int) -> Path:
    """The workplace site (PV, battery, chargers, monthly tariff with a demand charge) without
    its feeder, from ``start`` (UTC) for ``days`` days, unsettled."""
    loaded = load_scenario(WORKPLACE, overrides={"grid": None, "site": {"start": start}})
    out = tmp_path_factory.mktemp("run")
    qubit_sim.run(loaded, out=out, until_s=days * DAY_S, plots=False, settle=False)
    return out


@pytest.fixture(scope="module")
def one_day(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Monday 2 June 2025 from local midnight (CEST, UTC+2), one day."""
    return _run(tmp_path_factory, "2025-06-01T22:00:00Z", 1)


@pytest.fixture(scope="module")
def two_days(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2 and 3 June 2025, whole local days."""
    return _run(tmp_path_factory, "2025-06-01T22:00:00Z", 2)


@pytest.fixture(scope="module")
def across_months(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Noon 30 June to noon 1 July 2025, local time."""
    return _run(tmp_path_factory, "2025-06-30T10:00:00Z", 1)


def _settle(folder: Path, key_dir: Path, *period: str) -> tuple[str, pd.DataFrame, dict]:
    """``qubit-sim settle``: its output (whitespace folded), bill lines and manifest section."""
    args = ["settle", str(folder), "--key-dir", str(key_dir)]
    result = runner.invoke(app, [*args, *(["--period", *period] if period else [])])
    assert result.exit_code == 0, result.output
    lines = pd.read_parquet(folder / "settlement" / "bill_lines.parquet")
    manifest = json.loads((folder / "manifest.json").read_text())
    return " ".join(result.output.split()), lines, manifest["settlement"]


def _billed_as_the_kpis(folder: Path, lines: pd.DataFrame, section: dict) -> None:
    """Partial or not, the bill is the KPIs' total cost and every demand line is charged whole."""
    kpis = json.loads((folder / "kpis.json").read_text())
    assert section["bill_total"] == pytest.approx(kpis["total_cost"], rel=1e-9, abs=1e-9)
    demand = lines[lines["line"] == "demand"]
    assert (demand["amount"] > 0).all()
    assert demand["amount"].to_numpy() == pytest.approx(
        (demand["quantity"] * demand["unit_price"]).to_numpy()
    )
    assert demand["amount"].sum() == pytest.approx(kpis["demand_charge"], rel=1e-9)


def test_a_day_on_a_monthly_tariff_is_one_of_30_days(one_day: Path, key_dir: Path) -> None:
    output, lines, section = _settle(one_day, key_dir)
    assert section["period"] == "month" and section["partial_periods"] == ["2025-06"]
    assert set(lines["period"]) == {"2025-06"}
    assert (lines["partial"]).all() and lines["partial"].dtype == bool
    assert set(lines["covered_s"]) == {DAY_S} and set(lines["period_s"]) == {30 * DAY_S}
    assert set(lines["period_end"]) == {"2025-07-01T00:00:00+02:00"}
    assert "2025-06* │" in output
    assert "partly covered by the run: 2025-06 (1 of 30 d)." in output
    assert "demand charge of a partial period is billed in full" in output
    assert output.count("partly covered") == 1
    summary = (one_day / "settlement" / "summary.md").read_text()
    assert "| 2025-06* |" in summary
    assert "\n\\* partly covered by the run: 2025-06 (1 of 30 d)." in summary
    csv = pd.read_csv(one_day / "settlement" / "bill_lines.csv")
    assert csv["partial"].tolist() == lines["partial"].tolist()
    _billed_as_the_kpis(one_day, lines, section)


def test_a_run_across_a_month_end_has_two_partial_periods(
    across_months: Path, key_dir: Path
) -> None:
    output, lines, section = _settle(across_months, key_dir)
    assert section["partial_periods"] == ["2025-06", "2025-07"]
    coverage = period_coverage(lines)
    assert coverage["covered_s"].tolist() == [DAY_S // 2, DAY_S // 2]
    assert coverage["period_s"].tolist() == [30 * DAY_S, 31 * DAY_S]
    assert coverage["partial"].tolist() == [True, True]
    assert "2025-06* │" in output and "2025-07* │" in output
    assert "partly covered by the run: 2025-06 (0.5 of 30 d), 2025-07 (0.5 of 31 d)." in output
    _billed_as_the_kpis(across_months, lines, section)


def test_whole_days_are_not_partial_and_get_no_note(two_days: Path, key_dir: Path) -> None:
    output, lines, section = _settle(two_days, key_dir, "day")
    assert section["partial_periods"] == []
    coverage = period_coverage(lines)
    assert list(coverage.index) == ["2025-06-02", "2025-06-03"]
    assert coverage["covered_s"].tolist() == coverage["period_s"].tolist() == [DAY_S, DAY_S]
    assert not coverage["partial"].any()
    assert "2025-06-02 │" in output and "2025-06-03 │" in output
    assert "*" not in output and "partly covered" not in output
    assert "partly covered" not in (two_days / "settlement" / "summary.md").read_text()
    # Per month, the scenario's billing period (which the KPIs price), it is two of 30 days.
    output, lines, section = _settle(two_days, key_dir, "month")
    assert section["partial_periods"] == ["2025-06"]
    assert "2025-06 (2 of 30 d)" in output
    _billed_as_the_kpis(two_days, lines, section)


def test_coverage_stays_out_of_the_signed_records(across_months: Path, key_dir: Path) -> None:
    """Signed certificates, invoices and ledger entries keep their format; verify passes."""
    _settle(across_months, key_dir)
    folder = across_months / "settlement"
    for name in ("certificates.jsonl", "invoices.jsonl", "ledger.jsonl"):
        text = (folder / name).read_text()
        assert text and "covered" not in text and "partial" not in text, name
    result = runner.invoke(app, ["verify", str(across_months)])
    assert result.exit_code == 0, result.output


# ------------------------------------------------------------------ bill lines by hand


def _lines(start: str, n_steps: int, step_s: int, period: str, tz: str) -> pd.DataFrame:
    times = pd.date_range(start, periods=n_steps, freq=pd.Timedelta(seconds=step_s))
    tariff = Tariff(default_price_per_kwh=0.2, demand_charge_per_kw=5.0, billing_period=period)
    imports = np.ones(n_steps)
    return bill_lines(times, step_s, imports, np.zeros(n_steps), tariff, tz)


@pytest.mark.parametrize(
    ("start", "hours", "text"),
    [
        ("2025-03-29T23:00:00Z", 23, "23 of 23 h"),  # spring forward: a 23-hour day
        ("2025-10-25T22:00:00Z", 25, "25 of 25 h"),  # fall back: a 25-hour day
    ],
)
def test_a_whole_dst_day_is_not_partial(start: str, hours: int, text: str) -> None:
    lines = _lines(start, hours * 4, 900, "day", "Europe/Amsterdam")
    coverage = period_coverage(lines)
    assert len(coverage) == 1
    row = coverage.iloc[0]
    assert row.period_s == row.covered_s == hours * 3600 and not row.partial
    assert coverage_text(row.period_start, row.period_end, row.period_s, row.covered_s) == text
    assert partial_note(lines) is None
    # One step short, the same day is partial.
    short = period_coverage(_lines(start, hours * 4 - 1, 900, "day", "Europe/Amsterdam"))
    assert short["partial"].tolist() == [True]


def test_coverage_text_in_days_and_hours() -> None:
    month = ("2025-03-01T00:00:00+01:00", "2025-04-01T00:00:00+02:00")
    month_s = 31 * DAY_S - 3600
    assert coverage_text(*month, month_s, month_s) == "31 of 31 d"
    assert coverage_text(*month, month_s, month_s // 31) == "1 of 31 d"
    week = ("2025-06-02T00:00:00+02:00", "2025-06-09T00:00:00+02:00")
    assert coverage_text(*week, 7 * DAY_S, 7 * DAY_S - 7200) == "6.92 of 7 d"
    day = ("2025-06-02T00:00:00+02:00", "2025-06-03T00:00:00+02:00")
    assert coverage_text(*day, DAY_S, 7200) == "2 of 24 h"


@settings(max_examples=60, deadline=None)
@given(
    start_steps=st.integers(0, 40 * 24),
    n_steps=st.integers(1, 24 * 50),
    step_s=st.sampled_from([900, 3600]),
    period=st.sampled_from(["month", "week", "day"]),
    tz=st.sampled_from(["Europe/Amsterdam", "America/New_York", "UTC"]),
    season=st.sampled_from(["2025-02-20T00:00:00Z", "2025-10-01T00:00:00Z"]),
)
def test_coverage_adds_up_to_the_run(
    start_steps: int, n_steps: int, step_s: int, period: str, tz: str, season: str
) -> None:
    """Periods tile the run: covered time sums to the run's length, only the first and last
    period can be partial, each period ends where the next starts."""
    start = pd.Timestamp(season) + pd.Timedelta(seconds=start_steps * 3600)
    coverage = period_coverage(_lines(str(start), n_steps, step_s, period, tz))
    assert coverage["covered_s"].sum() == n_steps * step_s
    assert (coverage["covered_s"] > 0).all()
    assert (coverage["covered_s"] <= coverage["period_s"]).all()
    assert (coverage["partial"] == (coverage["covered_s"] < coverage["period_s"])).all()
    assert not coverage["partial"].iloc[1:-1].any()
    ends = pd.to_datetime(coverage["period_end"].iloc[:-1].tolist(), utc=True)
    starts = pd.to_datetime(coverage["period_start"].iloc[1:].tolist(), utc=True)
    assert (ends == starts).all()
    nominal = {"day": [1], "week": [7], "month": [28, 29, 30, 31]}[period]
    # a DST change makes a period one hour shorter or longer than its calendar days
    lengths = {d * DAY_S + shift for d in nominal for shift in (-3600, 0, 3600)}
    assert set(coverage["period_s"]) <= lengths
    note = partial_note(_lines(str(start), n_steps, step_s, period, tz))
    assert (note is None) == (not coverage["partial"].any())
    if note is not None:
        for label in coverage.index[coverage["partial"]]:
            assert f"{label} (" in note
