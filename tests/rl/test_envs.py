"""The single environments: gymnasium/SB3 checkers, registration, determinism, projection, reward."""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Any

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import qubit_sim.rl
from qubit_sim.errors import SimulationError
from qubit_sim.rl.envs import ChargerFleetEnv, SiteDispatchEnv
from qubit_sim.rl.horizon import Horizon
from qubit_sim.rl.reward import REWARD_TERMS
from qubit_sim.rl.wrappers import EpisodeCosts

SCENARIOS = Path(__file__).parent / "scenarios"
SMALL_SITE = SCENARIOS / "small_site.yaml"


ENVS = [SiteDispatchEnv, ChargerFleetEnv]


def _episode(env: gymnasium.Env, actions: np.ndarray, **reset: Any) -> list[tuple]:
    obs, info = env.reset(**reset)
    out: list[tuple] = [(obs, 0.0, info)]
    for action in actions:
        obs, reward, terminated, truncated, info = env.step(action)
        assert terminated is False
        out.append((obs, float(reward), info))
        if truncated:
            break
    return out


@pytest.mark.parametrize("env_id", sorted(qubit_sim.rl.ENV_IDS))
def test_env_passes_gymnasium_and_sb3_checkers(env_id: str, small_horizon: Horizon) -> None:
    env = gymnasium.make(env_id, horizon=small_horizon, disable_env_checker=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env.unwrapped)
        sb3_check_env(env.unwrapped)


def test_make_by_id_with_and_without_module_prefix() -> None:
    assert set(qubit_sim.rl.ENV_IDS) <= set(gymnasium.registry)
    env = gymnasium.make("qubit_sim/SiteDispatch-v0", scenario=str(SMALL_SITE))
    assert isinstance(env.unwrapped, SiteDispatchEnv)
    env = gymnasium.make("qubit_sim.rl:qubit_sim/ChargerFleet-v0", scenario=str(SMALL_SITE))
    assert isinstance(env.unwrapped, ChargerFleetEnv)
    assert env.action_space.shape == (1 + env.unwrapped.horizon.site.fleet.n,)
    qubit_sim.rl.register_envs()  # idempotent
    vec = gymnasium.make_vec("qubit_sim/SiteDispatch-v0", num_envs=3, scenario=str(SMALL_SITE))
    assert type(vec).__name__ == "SiteDispatchVectorEnv" and vec.num_envs == 3


def test_importing_qubit_sim_does_not_import_gymnasium() -> None:
    import subprocess
    import sys

    code = "import sys, qubit_sim; print('gymnasium' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("cls", ENVS)
def test_same_seed_same_trajectory(cls: type, small_horizon: Horizon) -> None:
    env = cls(horizon=small_horizon)
    actions = np.random.default_rng(0).uniform(-1, 1, (96,) + env.action_space.shape)
    first = _episode(env, actions, seed=7)
    other = cls(horizon=small_horizon)
    _episode(other, actions[:5], seed=123)  # a different history must not matter
    second = _episode(other, actions, seed=7)
    assert len(first) == len(second) == 97
    for (o1, r1, i1), (o2, r2, i2) in zip(first, second, strict=True):
        assert np.array_equal(o1, o2) and r1 == r2
        assert i1.keys() == i2.keys()
    blocks = {cls(horizon=small_horizon).reset(seed=s)[1]["block"] for s in range(12)}
    assert blocks <= set(small_horizon.blocks("train")) and len(blocks) > 1


def test_reset_options_pick_split_episode_and_block(small_horizon: Horizon) -> None:
    env = SiteDispatchEnv(horizon=small_horizon)
    test_blocks = small_horizon.blocks("test")
    for seed in range(5):
        assert env.reset(seed=seed, options={"split": "test"})[1]["block"] in test_blocks
    assert env.reset(options={"split": "all", "episode": 4})[1]["block"] == 4
    assert env.reset(options={"block": 6})[1]["block"] == 6
    with pytest.raises(SimulationError, match="block 9 does not exist"):
        env.reset(options={"block": 9})
    test_env = SiteDispatchEnv(horizon=small_horizon, split="test")
    assert test_env.reset(seed=0)[1]["block"] in test_blocks


def test_step_before_reset_and_after_the_end_is_refused(small_horizon: Horizon) -> None:
    env = SiteDispatchEnv(horizon=small_horizon, episode_length="1d")
    with pytest.raises(SimulationError, match="call reset"):
        env.step(np.zeros(2))
    _episode(env, np.zeros((96, 2)), seed=0)
    with pytest.raises(SimulationError, match="episode is over"):
        env.step(np.zeros(2))


@pytest.mark.parametrize("cls", ENVS)
def test_observation_is_what_the_controller_sees_at_the_same_instant(
    cls: type, small_horizon: Horizon
) -> None:
    """The observation after a step shows the EVs that plug in at that instant."""
    env = cls(horizon=small_horizon, split="all")
    seen: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    act = env.controller.act

    def spy(obs: Any) -> Any:
        seen.append(
            (obs.charger_connected.copy(), obs.charger_ev_max_kw.copy(), obs.battery_soc.copy())
        )
        return act(obs)

    env.controller.act = spy
    names = env.observation_names
    rated = small_horizon.site.fleet.rated_kw
    obs, _ = env.reset(options={"block": 1})
    arrivals = 0
    for k in range(96):
        before = obs
        obs, *_ = env.step(np.full(env.action_space.shape, 0.3))
        connected, ev_max, soc = seen[k]
        n = len(connected)
        assert before[names.index("ev_occupancy")] == pytest.approx(connected.mean(), abs=1e-6)
        assert before[names.index("battery_soc")] == pytest.approx(soc[0], abs=1e-6)
        assert before[names.index("ev_power_available")] == pytest.approx(
            ev_max.sum() / rated.sum(), abs=1e-6
        )
        if cls is ChargerFleetEnv:
            first = names.index(f"occupied_{small_horizon.site.fleet.ids[0]}")
            assert np.array_equal(before[first : first + n], connected.astype(np.float32))
        arrivals += int(connected.sum())
    assert arrivals > 0


def test_projection_is_reported_and_respects_limits(small_horizon: Horizon) -> None:
    env = ChargerFleetEnv(horizon=small_horizon, split="all")
    env.reset(options={"block": 0})
    bank = small_horizon.site.batteries
    rated = small_horizon.site.fleet.rated_kw
    saw_cap = saw_battery_cap = False
    for _ in range(96):
        # Full charge of the battery and every charger: more than the EVs or the SOC window allow.
        _, _, _, truncated, info = env.step(
            np.ones(1 + small_horizon.site.fleet.n, dtype=np.float32)
        )
        assert info["battery_kw_requested"] == pytest.approx(bank.p_charge_max_kw.sum())
        assert info["battery_kw_applied"] <= info["battery_kw_requested"] + 1e-9
        assert np.allclose(info["charger_kw_requested"], rated)
        assert (info["charger_kw_applied"] <= info["charger_kw_requested"] + 1e-9).all()
        saw_cap |= bool((info["charger_kw_applied"] < rated - 1e-6).any())
        saw_battery_cap |= info["battery_kw_applied"] < info["battery_kw_requested"] - 1e-6
    assert saw_cap and saw_battery_cap
    # Out-of-range actions are clipped before the projection.
    dispatch = SiteDispatchEnv(horizon=small_horizon)
    dispatch.reset(seed=0)
    _, _, _, _, info = dispatch.step(np.array([-5.0, 5.0], dtype=np.float32))
    assert info["battery_kw_requested"] == pytest.approx(-bank.p_discharge_max_kw.sum())
    assert info["ev_kw_applied"] <= info["ev_kw_requested"] + 1e-9


@pytest.mark.parametrize("cls", ENVS)
def test_reward_terms_sum_to_the_reward_and_to_the_episode_kpis(
    cls: type, small_horizon: Horizon
) -> None:
    env = cls(horizon=small_horizon, split="all", carbon_price_per_kg=0.08, reward_scale=0.01)
    actions = np.random.default_rng(1).uniform(-1, 1, (96,) + env.action_space.shape)
    totals = dict.fromkeys((*REWARD_TERMS, "co2_kg", "unmet_kwh", "import_kwh"), 0.0)
    for _, reward, info in _episode(env, actions, options={"block": 3})[1:]:
        terms = [info[name] for name in REWARD_TERMS]
        assert reward == pytest.approx(-0.01 * sum(terms), rel=1e-12, abs=1e-12)
        for name in totals:
            totals[name] += info[name]
    kpis = env.episode_kpis()
    assert totals["cost_energy"] == pytest.approx(kpis["energy_cost"] - kpis["export_credit"])
    assert totals["cost_demand"] == pytest.approx(kpis["demand_charge"], rel=1e-9)
    assert kpis["demand_charge"] > 0
    assert totals["co2_kg"] == pytest.approx(kpis["co2_kg"], rel=1e-9)
    assert totals["cost_carbon"] == pytest.approx(0.08 * kpis["co2_kg"], rel=1e-9)
    assert totals["import_kwh"] == pytest.approx(kpis["grid_import_kwh"], rel=1e-9)
    sim = env.sim
    rejected = float(np.asarray(sim.site.sessions.e_needed_kwh)[sim.session_rejected].sum())
    assert totals["unmet_kwh"] == pytest.approx(kpis["ev_energy_unmet_kwh"] - rejected, abs=1e-9)
    assert totals["cost_unmet"] == pytest.approx(totals["unmet_kwh"] * 1.0)
    assert totals["cost_grid"] == 0.0
    # The battery's wear and the change of its stored energy, valued as objective_cost values them.
    battery = kpis["battery_degradation_cost"] - (
        kpis["battery_energy_change_kwh"] * kpis["battery_terminal_value_per_kwh"]
    )
    assert kpis["battery_throughput_kwh"] > 0
    assert totals["cost_battery"] == pytest.approx(battery, rel=1e-9, abs=1e-9)


def test_episode_costs_wrapper_totals_the_episode(small_horizon: Horizon) -> None:
    env = EpisodeCosts(SiteDispatchEnv(horizon=small_horizon), kpis=True)
    actions = np.random.default_rng(2).uniform(-1, 1, (96, 2))
    steps = _episode(env, actions, seed=3)
    summary = steps[-1][2]["episode_costs"]
    assert summary["return"] == pytest.approx(sum(r for _, r, _ in steps))
    assert summary["cost"] == pytest.approx(-summary["return"])
    assert summary["cost_demand"] == pytest.approx(steps[-1][2]["episode_kpis"]["demand_charge"])


def test_docstring_tables_list_the_observation(small_horizon: Horizon) -> None:
    env = SiteDispatchEnv(horizon=small_horizon)
    names = env.observation_names
    assert len(names) == env.reset(seed=0)[0].shape[0] == 18 + 3 * 6
    doc = SiteDispatchEnv.__doc__ or ""
    section = doc[doc.index("## Observation Space") : doc.index("## Rewards")]
    documented: list[str] = []
    for row in re.findall(r"^\s*\| [0-9.+H-]+ \| ([A-Za-z_0-9., ]+?) \|", section, re.M):
        for part in (p.strip() for p in row.split(",")):
            if ".." in part:  # price_h1..price_hH
                stem = part.split("..")[0][:-1]
                documented += [f"{stem}{h}" for h in range(1, 7)]
            else:
                documented.append(part)
    assert documented == names
    fleet = ChargerFleetEnv(horizon=small_horizon)
    ids = small_horizon.site.fleet.ids
    blocks = ("occupied", "need", "time_left", "power_available")
    assert fleet.observation_names == names + [f"{b}_{cid}" for b in blocks for cid in ids]
    for heading in (
        "Description",
        "Action Space",
        "Observation Space",
        "Rewards",
        "Episode End",
        "Arguments",
    ):
        assert f"## {heading}" in doc
        assert f"## {heading}" in (ChargerFleetEnv.__doc__ or "")


def test_docstring_control_periods_are_those_of_the_shipped_scenarios() -> None:
    from qubit_sim.scenario.loader import load_scenario

    shipped = Path(__file__).resolve().parents[2] / "scenarios"
    period_s = {}
    for name in ("workplace_pv_battery", "depot_overnight", "residential_feeder"):
        spec = load_scenario(shipped / f"{name}.yaml").spec
        period_s[name] = spec.controller.period or spec.site.step
    assert period_s == {
        "workplace_pv_battery": 900,
        "depot_overnight": 60,
        "residential_feeder": 60,
    }
    doc = " ".join((SiteDispatchEnv.__doc__ or "").split())
    assert "``workplace_pv_battery`` sets 15 min (96 steps a day)" in doc
    assert "``depot_overnight`` and ``residential_feeder`` set none and step every 60 s" in doc
    assert "a one-day episode there is 1,440 steps" in doc


def test_l2_forecasts_replace_the_oracle_look_ahead() -> None:
    env = SiteDispatchEnv(SMALL_SITE, forecast="l2", split="all")
    oracle = env.horizon.exo.copy()
    obs, _ = env.reset(options={"block": 5})
    for _ in range(3):
        obs, *_ = env.step(np.zeros(2, dtype=np.float32))
    assert env.observation_space.contains(obs)
    names = env.observation_names
    ahead = [names.index(f"load_h{h}") for h in range(1, 7)]
    step = env.plan.offset_step + 3
    assert np.allclose(obs[names.index("load")], oracle[step, names.index("load")], atol=1e-6)
    assert not np.allclose(obs[ahead], oracle[step, ahead], atol=1e-4)


def test_public_names_resolve() -> None:
    assert sorted(qubit_sim.rl.__all__) == [
        "ActionController",
        "ActionReplay",
        "ChargerFleetEnv",
        "ChargerFleetVectorEnv",
        "ENV_IDS",
        "EpisodeCosts",
        "Horizon",
        "SiteDispatchEnv",
        "SiteDispatchVectorEnv",
        "register_envs",
    ]
    for name in qubit_sim.rl.__all__:
        assert getattr(qubit_sim.rl, name) is not None
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = qubit_sim.rl.Nope
