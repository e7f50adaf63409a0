"""Statistics of the comparison: t intervals, paired gaps, episode checks, controller parsing."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qubit_sim.errors import ControllerError, ScenarioError
from qubit_sim.experiments import (
    EpisodeMismatchError,
    check_identical_episodes,
    mean_ci,
    parse_controller,
    plan_runs,
    summarize,
)


def test_mean_ci_matches_the_t_formula() -> None:
    values = [10.0, 12.0, 11.0, 15.0, 9.0]
    mean, half = mean_ci(values)
    # t_{0.975, 4} = 2.7764451 (tables); s = sqrt(5.3)
    assert mean == pytest.approx(11.4)
    assert half == pytest.approx(2.7764451 * math.sqrt(5.3) / math.sqrt(5), rel=1e-6)


def test_mean_ci_of_one_value_has_no_interval() -> None:
    mean, half = mean_ci([3.0])
    assert mean == 3.0 and math.isnan(half)
    with pytest.raises(ValueError, match="confidence"):
        mean_ci([1.0, 2.0], confidence=1.5)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=2, max_size=30),
    st.floats(-1e3, 1e3, allow_nan=False),
)
def test_mean_ci_shifts_with_the_data_and_widens_with_confidence(
    values: list[float], shift: float
) -> None:
    mean, half = mean_ci(values)
    shifted_mean, shifted_half = mean_ci([v + shift for v in values])
    assert shifted_mean == pytest.approx(mean + shift, abs=1e-6 * (1 + abs(mean)))
    assert shifted_half == pytest.approx(half, rel=1e-6, abs=1e-6)
    _, wider = mean_ci(values, confidence=0.99)
    assert half >= 0 and wider >= half


def _runs() -> pd.DataFrame:
    rows = []
    for seed, base in enumerate([100.0, 120.0, 80.0]):
        rows.append(("s", "offline_optimal", seed, base))
        rows.append(("s", "mpc", seed, base + 5.0 + seed))
    frame = pd.DataFrame(rows, columns=["scenario", "controller", "seed", "objective_cost"])
    frame["status"] = "complete"
    return frame


def test_summary_gap_is_paired_over_seeds() -> None:
    summary = summarize(_runs(), ["objective_cost"]).set_index("controller")
    # Differences 5, 6, 7: mean 6, s = 1, t_{0.975,2} = 4.3026527
    assert summary.loc["mpc", "gap_objective_cost"] == pytest.approx(6.0)
    assert summary.loc["mpc", "gap_objective_cost_ci95"] == pytest.approx(4.3026527 / math.sqrt(3))
    assert summary.loc["mpc", "gap_objective_cost_pct"] == pytest.approx(6.0)
    assert summary.loc["offline_optimal", "gap_objective_cost"] == 0.0
    assert summary.loc["mpc", "objective_cost_mean"] == pytest.approx(106.0)
    assert summary.loc["mpc", "n_runs"] == 3


def test_failed_runs_are_counted_and_left_out() -> None:
    runs = _runs()
    runs.loc[1, "status"] = "failed"
    runs.loc[1, "objective_cost"] = np.nan
    row = summarize(runs, ["objective_cost"]).set_index("controller").loc["mpc"]
    assert row.n_runs == 2 and row.n_failed == 1
    assert row.gap_objective_cost == pytest.approx(6.5)


def test_different_sessions_for_one_seed_are_caught() -> None:
    runs = pd.DataFrame(
        {
            "scenario": ["s", "s", "s", "s"],
            "seed": [0, 0, 1, 1],
            "controller": ["a", "b", "a", "b"],
            "episode_digest": ["x", "x", "y", "z"],
        }
    )
    with pytest.raises(EpisodeMismatchError, match="seed 1"):
        check_identical_episodes(runs)
    check_identical_episodes(runs.iloc[:2])


def test_rl_shorthand_and_folders() -> None:
    spec = parse_controller("rl:models/ppo_depot")
    assert spec.name == "rl_policy"
    assert spec.params == {"model": str(Path.cwd() / "models" / "ppo_depot")}
    assert parse_controller("mpc").params == {}
    with pytest.raises(ControllerError, match="rl:models"):
        parse_controller("rl:")
    tasks = plan_runs(
        [("depot", Path("a.yaml"))],
        [spec, parse_controller("mpc")],
        [0, 1],
        Path("out"),
    )
    assert len(tasks) == 4
    assert tasks[0].out.endswith("runs/depot/rl-models-ppo_depot/seed0")
    with pytest.raises(ScenarioError, match="repeat"):
        plan_runs([("d", Path("a.yaml"))], [spec], [0, 0], Path("o"))
