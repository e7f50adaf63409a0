"""The comparison end to end: real runs of every controller on a real feeder, local and on Ray."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from qubit_sim.experiments import (
    MAIN_KPIS,
    ComparisonResult,
    LocalExecutor,
    compare,
    summary_table,
)

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = ROOT / "scenarios" / "depot_overnight.yaml"
CONTROLLERS = ["uncontrolled", "qubit_greedy", "mpc", "offline_optimal"]
SEEDS = 2
UNTIL_S = 3 * 3600
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> ComparisonResult:
    out = tmp_path_factory.mktemp("compare-local")
    return compare([SCENARIO], CONTROLLERS, SEEDS, out, until_s=UNTIL_S, executor=LocalExecutor(2))


def test_summary_has_a_row_per_controller_and_the_kpi_columns(local: ComparisonResult) -> None:
    summary = local.summary
    assert list(summary.controller) == CONTROLLERS
    assert set(summary.scenario) == {"depot_overnight"}
    assert (summary.n_runs == SEEDS).all() and (summary.n_failed == 0).all()
    for key, _, _ in MAIN_KPIS:
        for suffix in ("mean", "std", "ci95"):
            assert f"{key}_{suffix}" in summary
    assert {"gap_objective_cost", "gap_objective_cost_ci95", "gap_objective_cost_pct"} <= set(
        summary.columns
    )
    on_disk = pd.read_csv(local.out_dir / "summary.csv")
    assert list(on_disk.columns) == list(summary.columns)
    runs = pd.read_parquet(local.out_dir / "kpis.parquet")
    assert len(runs) == len(CONTROLLERS) * SEEDS
    assert len(pd.read_csv(local.out_dir / "kpis.csv")) == len(runs)


def test_ci_is_the_t_interval_of_the_runs(local: ComparisonResult) -> None:
    from scipy import stats

    runs = local.runs
    row = local.summary.set_index("controller").loc["uncontrolled"]
    values = runs[runs.controller == "uncontrolled"].peak_import_15min_kw.to_numpy(float)
    assert row.peak_import_15min_kw_mean == pytest.approx(values.mean())
    half = stats.t.ppf(0.975, SEEDS - 1) * values.std(ddof=1) / SEEDS**0.5
    assert row.peak_import_15min_kw_ci95 == pytest.approx(half)
    # Two seeds give two different episodes, so the interval has width.
    assert row.peak_import_15min_kw_ci95 > 0


def test_every_controller_sees_the_same_sessions_for_a_seed(local: ComparisonResult) -> None:
    runs = local.runs
    for seed in range(SEEDS):
        frames = [
            pd.read_parquet(Path(row.run_dir) / "sessions.parquet")[
                ["vehicle_id", "arrival_s", "departure_s", "e_needed_kwh"]
            ]
            for row in runs[runs.seed == seed].itertuples()
        ]
        assert len(frames[0]) > 0
        for frame in frames[1:]:
            pd.testing.assert_frame_equal(frame, frames[0])
        assert runs[runs.seed == seed].episode_digest.nunique() == 1
    assert runs.groupby("seed").episode_digest.first().nunique() == SEEDS


def test_no_controller_beats_the_offline_optimum(local: ComparisonResult) -> None:
    summary = local.summary.set_index("controller")
    base = summary.loc["offline_optimal", "objective_cost_mean"]
    for controller in CONTROLLERS:
        assert summary.loc[controller, "gap_objective_cost"] >= -1e-3 * abs(base)
    assert summary.loc["offline_optimal", "gap_objective_cost"] == 0.0
    assert summary.loc["uncontrolled", "gap_objective_cost"] > 0


def test_run_folders_and_plots(local: ComparisonResult) -> None:
    for controller in CONTROLLERS:
        for seed in range(SEEDS):
            folder = local.out_dir / "runs" / "depot_overnight" / controller / f"seed{seed}"
            assert (folder / "kpis.json").is_file() and (folder / "timeseries.parquet").is_file()
    names = {p.name for p in local.plots}
    assert names == {
        "cost_bars.png",
        "peak_bars.png",
        "unmet_bars.png",
        "profiles_depot_overnight.png",
    }
    for path in local.plots:
        assert path.read_bytes()[:8] == PNG_MAGIC
    from rich.console import Console

    console = Console(width=250, record=True)
    console.print(summary_table(local))
    text = console.export_text()
    assert "offline_optimal" in text and "±" in text
    # Lowercase units in brackets are rich markup tags unless escaped.
    for header in ("peak import 15-min [kW]", "EV energy unmet [kWh]", "CO2 [kg]"):
        assert header in text
    assert f"total cost [{local.currency}]" in text


def test_ray_executor_gives_the_same_table(local: ComparisonResult, tmp_path: Path) -> None:
    pytest.importorskip("ray", reason="ray is not installed (pip install 'qubit-sim[ray]')")
    from qubit_sim.experiments import RayExecutor

    # Two controllers keep the test short; the gap needs only the baseline's runs.
    chosen = ["qubit_greedy", "offline_optimal"]
    result = compare(
        [SCENARIO],
        chosen,
        SEEDS,
        tmp_path / "ray",
        until_s=UNTIL_S,
        executor=RayExecutor(num_cpus=2),
        plots=False,
    )
    expected = local.summary[local.summary.controller.isin(chosen)].reset_index(drop=True)
    pd.testing.assert_frame_equal(result.summary, expected)

    def deterministic(runs: pd.DataFrame) -> pd.DataFrame:
        # Wall-clock and solver timings differ from run to run; everything else must not.
        timing = [c for c in runs.columns if c in ("wall_s", "run_dir") or "time" in c]
        picked = runs[runs.controller.isin(chosen)].drop(columns=timing)
        # KPIs only other controllers report are empty columns here.
        return picked.dropna(axis=1, how="all").sort_index(axis=1).reset_index(drop=True)

    # Integer KPIs are float in the local frame, where other controllers leave them empty.
    pd.testing.assert_frame_equal(
        deterministic(result.runs), deterministic(local.runs), check_dtype=False
    )
    assert not (tmp_path / "ray").joinpath("plots").exists()


def test_cli_compare_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "cmp"
    env = {**os.environ, "COLUMNS": "250"}
    result = subprocess.run(
        [
            sys.executable, "-m", "qubit_sim", "compare",
            "--scenarios", str(SCENARIO),
            "--controllers", "uncontrolled", "offline_optimal",
            "--seeds", "2", "--until", "2h", "--out", str(out), "--workers", "1", "--quiet",
        ],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr + result.stdout
    assert "offline_optimal" in result.stdout and "gap" in result.stdout
    assert "[kW]" in result.stdout and "[kg]" in result.stdout
    summary = pd.read_csv(out / "summary.csv")
    assert list(summary.controller) == ["uncontrolled", "offline_optimal"]
    for name in ("cost_bars", "peak_bars", "unmet_bars", "profiles_depot_overnight"):
        assert (out / "plots" / f"{name}.png").read_bytes()[:8] == PNG_MAGIC
    assert (out / "kpis.parquet").is_file() and (out / "compare.json").is_file()


def test_cli_compare_rejects_a_typo(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable, "-m", "qubit_sim", "compare", "--scenarios", str(SCENARIO),
            "--controllers", "mcp", "--seeds", "1", "--out", str(tmp_path / "x"),
        ],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2
    assert "did you mean 'mpc'" in result.stderr
