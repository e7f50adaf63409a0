"""An episode is a simulator run: replaying its actions through ``qubit_sim.run`` gives the same
time series and KPIs (one engine, no re-implementation)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import qubit_sim
from qubit_sim.errors import ControllerError
from qubit_sim.rl.actions import ActionReplay
from qubit_sim.rl.envs import ChargerFleetEnv, SiteDispatchEnv
from qubit_sim.scenario.loader import load_scenario

SCENARIOS = Path(__file__).parent / "scenarios"
FEEDER_DAY = SCENARIOS / "feeder_day.yaml"
SMALL_SITE = SCENARIOS / "small_site.yaml"


def _play(env: SiteDispatchEnv | ChargerFleetEnv, seed: int) -> tuple[np.ndarray, float]:
    """Play one episode of random actions (some out of range).

    Returns:
        The last observation and the summed demand-charge term.
    """
    rng = np.random.default_rng(seed)
    obs, _ = env.reset(options={"block": 0})
    truncated = False
    demand = 0.0
    while not truncated:
        obs, _, _, truncated, info = env.step(rng.uniform(-1.1, 1.1, env.action_space.shape))
        demand += info["cost_demand"]
    return obs, demand


def _assert_same_run(env: SiteDispatchEnv | ChargerFleetEnv, scenario: object, out: Path) -> None:
    replay = ActionReplay(env.kind, env.episode_actions)
    result = qubit_sim.run(scenario, controller=replay, out=out, plots=False, settle=False)  # type: ignore[arg-type]
    frame = env.episode_timeseries()
    written = pd.read_parquet(out / "timeseries.parquet")
    assert list(written.columns) == list(frame.columns)
    for column in frame.columns[1:]:
        assert np.array_equal(
            written[column].to_numpy(), frame[column].to_numpy(), equal_nan=True
        ), column
    assert env.episode_kpis() == result.kpis


def test_charger_fleet_episode_on_a_feeder_equals_the_run(tmp_path: Path) -> None:
    env = ChargerFleetEnv(FEEDER_DAY, split="all")
    assert env.horizon.power_flow
    obs, demand = _play(env, seed=3)
    assert demand == pytest.approx(env.episode_kpis()["demand_charge"], rel=1e-9)
    frame = env.episode_timeseries()
    assert frame["grid_vm_site_pu"].notna().all() and frame["ev_p_kw"].gt(0).any()
    expected = (frame["grid_vm_site_pu"].iloc[-1] - 1.0) / 0.05
    assert obs[env.observation_names.index("site_voltage")] == pytest.approx(expected, abs=1e-5)
    _assert_same_run(env, FEEDER_DAY, tmp_path)


def test_site_dispatch_with_several_steps_per_period_equals_the_run(tmp_path: Path) -> None:
    overrides = {"site": {"duration": "1d", "step": "5min"}}
    env = SiteDispatchEnv(SMALL_SITE, overrides=overrides, split="all")
    assert env.horizon.control_every == 3
    _, demand = _play(env, seed=4)
    # 5-min steps: the demand window (15 min) spans several steps.
    assert demand == pytest.approx(env.episode_kpis()["demand_charge"], rel=1e-9)
    assert demand > 0
    assert len(env.episode_actions) == 96
    _assert_same_run(env, load_scenario(SMALL_SITE, overrides=overrides), tmp_path)


def test_replay_needs_actions() -> None:
    with pytest.raises(ControllerError, match="at least one action"):
        ActionReplay("site_dispatch", [])
