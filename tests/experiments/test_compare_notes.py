"""The comparison warns when runs end with EVs still plugged in and owed energy."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pandas as pd

import qubit_sim
from qubit_sim.experiments.compare import (
    OWED_AT_END_KWH,
    _billing_notes,
    _load,
    _Scenario,
    _seed_notes,
    comparison_notes,
)

ROOT = Path(__file__).resolve().parents[2]


def test_energy_owed_at_the_end_is_measured(tmp_path: Path) -> None:
    scenario = ROOT / "scenarios" / "workplace_pv_battery.yaml"
    # Noon: the office cars are plugged in. The optimum with a full month's demand charge on half
    # a day leaves much of their energy for after the end; charging at once leaves little.
    owed = {}
    for controller in ("uncontrolled", "offline_optimal"):
        run = qubit_sim.run(
            scenario,
            out=tmp_path / controller,
            until_s=12 * 3600,
            controller=controller,
            plots=False,
            settle=False,
        )
        kpis = run.kpis
        assert 0.0 <= kpis["ev_energy_unmet_at_end_kwh"] <= kpis["ev_energy_unmet_kwh"] + 1e-9
        sessions = run.sessions()
        still = sessions[(sessions.plugged_s >= 0) & (sessions.unplugged_s < 0)]
        expected = (still.e_needed_kwh - still.e_delivered_kwh).clip(lower=0.0).sum()
        assert abs(kpis["ev_energy_unmet_at_end_kwh"] - expected) < 1e-9
        owed[controller] = kpis["ev_energy_unmet_at_end_kwh"]
    assert owed["offline_optimal"] > OWED_AT_END_KWH
    assert owed["offline_optimal"] > 10 * owed["uncontrolled"]


def test_notes_name_the_controllers_that_left_energy_owed() -> None:
    runs = pd.DataFrame(
        {
            "scenario": ["depot"] * 4 + ["workplace"] * 2,
            "controller": ["uncontrolled", "uncontrolled", "offline_optimal", "offline_optimal"]
            + ["offline_optimal"] * 2,
            "ev_energy_unmet_at_end_kwh": [0.0, 0.5, 60.0, 40.0, 0.0, 0.0],
        }
    )
    notes = comparison_notes(runs)
    assert len(notes) == 1
    # Per scenario: the depot's 50 kWh is not diluted by the workplace's zeros.
    assert "depot/offline_optimal 50.0 kWh" in notes[0]
    assert "uncontrolled" not in notes[0] and "workplace" not in notes[0]
    assert "unmet_energy_penalty_per_kwh" in notes[0]
    runs["ev_energy_unmet_at_end_kwh"] = 0.0
    assert comparison_notes(runs) == []
    assert comparison_notes(runs.drop(columns="ev_energy_unmet_at_end_kwh")) == []


def test_the_cli_prints_the_note_under_the_table(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from qubit_sim.cli import app

    scenario = ROOT / "scenarios" / "workplace_pv_battery.yaml"
    args = ["compare", "--scenarios", str(scenario), "--controllers", "uncontrolled"]
    args += ["offline_optimal", "--seeds", "1", "--until", "12h", "--workers", "1"]
    result = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "cmp"), "-q"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "note: Runs ended with EVs still plugged in" in text
    assert "offline_optimal" in text.split("note:")[1]
    manifest = (tmp_path / "cmp" / "compare.json").read_text()
    assert "unmet_energy_penalty_per_kwh" in manifest
    # Half a day on a monthly demand charge, one seed: both said under the table and recorded.
    assert "workplace_pv_battery: runs of 0.5 d are each billed a whole month's demand" in text
    assert "about 61x more against energy" in text
    assert "One seed: no 95% confidence intervals; --seeds 5 or more" in text
    assert "billed a whole month" in manifest and "One seed" in manifest


def _scenario(path: Path, **tariff: object) -> _Scenario:
    loaded = _load([path])[0]
    return replace(loaded, **tariff)  # type: ignore[arg-type]


def test_billing_note_only_for_runs_shorter_than_a_period_with_a_demand_charge() -> None:
    workplace = _scenario(ROOT / "scenarios" / "workplace_pv_battery.yaml")
    assert workplace.billing_period == "month" and workplace.demand_charge_per_kw > 0
    assert workplace.duration_s < 28 * 86400
    (note,) = _billing_notes([workplace], None)
    days = workplace.duration_s / 86400
    assert f"runs of {days:.3g} d" in note and f"{workplace.demand_charge_per_kw:g} EUR/kW" in note
    assert _billing_notes([workplace], 3600)[0].count("runs of 0.0417 d") == 1
    assert _billing_notes([replace(workplace, demand_charge_per_kw=0.0)], None) == []
    assert _billing_notes([replace(workplace, duration_s=31 * 86400)], None) == []
    # A 1-day run on a daily period covers it whole; 12 h of it do not.
    daily = replace(workplace, billing_period="day")
    assert _billing_notes([daily], 86400) == []
    assert "about 2x more" in _billing_notes([daily], 43200)[0]


def test_seed_note_gives_the_interval_width_against_five_seeds() -> None:
    from scipy import stats

    (two,) = _seed_notes(2, 0.95)
    t2, t5 = stats.t.ppf(0.975, 1), stats.t.ppf(0.975, 4)
    assert f"t = {t2:.2f}" in two
    assert f"{(t2 / 2**0.5) / (t5 / 5**0.5):.1f}x the width 5 seeds" in two
    assert "90%" in _seed_notes(3, 0.90)[0]
    assert _seed_notes(5, 0.95) == [] and _seed_notes(12, 0.95) == []
