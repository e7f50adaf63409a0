"""The batched environments reproduce N single environments; gymnasium's vector wrappers work."""

from __future__ import annotations

import gymnasium
import numpy as np
import pytest

from qubit_sim.rl.envs import ChargerFleetEnv, SiteDispatchEnv
from qubit_sim.rl.horizon import Horizon
from qubit_sim.rl.vector import ChargerFleetVectorEnv, SiteDispatchVectorEnv

PAIRS = [(SiteDispatchEnv, SiteDispatchVectorEnv), (ChargerFleetEnv, ChargerFleetVectorEnv)]


@pytest.mark.parametrize(("single_cls", "vector_cls"), PAIRS)
def test_batch_equals_single_envs_fed_the_same_actions(
    single_cls: type, vector_cls: type, small_horizon: Horizon
) -> None:
    n = 4
    vec = vector_cls(horizon=small_horizon, num_envs=n, split="all", carbon_price_per_kg=0.1)
    singles = [
        single_cls(horizon=small_horizon, split="all", carbon_price_per_kg=0.1) for _ in range(n)
    ]
    rng = np.random.default_rng(11)
    for _ in range(2):
        blocks = rng.choice(7, size=n)
        obs, info = vec.reset(options={"block": blocks})
        assert np.array_equal(info["block"], blocks)
        for i, env in enumerate(singles):
            single_obs, _ = env.reset(options={"block": int(blocks[i])})
            np.testing.assert_allclose(obs[i], single_obs, atol=1e-6)
        for _ in range(96):
            actions = rng.uniform(-1.2, 1.2, vec.action_space.shape).astype(np.float32)
            obs, reward, terminated, truncated, info = vec.step(actions)
            assert obs.shape == vec.observation_space.shape and vec.observation_space.contains(obs)
            for i, env in enumerate(singles):
                s_obs, s_reward, s_term, s_trunc, s_info = env.step(actions[i])
                np.testing.assert_allclose(obs[i], s_obs, atol=1e-6)
                assert reward[i] == pytest.approx(s_reward, rel=1e-9, abs=1e-9)
                assert (terminated[i], truncated[i]) == (s_term, s_trunc)
                for key, value in s_info.items():
                    np.testing.assert_allclose(info[key][i], value, rtol=1e-9, atol=1e-9)
                battery = env.sim.bank.soc
                np.testing.assert_allclose(vec.battery_soc[i], battery, rtol=0, atol=1e-12)
                np.testing.assert_allclose(vec.soc[i], env.sim.fleet.soc, rtol=0, atol=1e-12)
        assert truncated.all()
        # NEXT_STEP autoreset: the next call starts new episodes and ignores its actions.
        obs, reward, terminated, truncated, info = vec.step(actions)
        assert (reward == 0).all() and not truncated.any() and (info["t_s"] == 0).all()


def test_batch_draws_blocks_from_its_split(small_horizon: Horizon) -> None:
    vec = SiteDispatchVectorEnv(horizon=small_horizon, num_envs=64, split="test")
    _, info = vec.reset(seed=5)
    assert set(info["block"]) <= set(small_horizon.blocks("test"))
    _, again = SiteDispatchVectorEnv(horizon=small_horizon, num_envs=64, split="test").reset(seed=5)
    assert np.array_equal(info["block"], again["block"])
    with pytest.raises(ValueError, match="without power flow"):
        SiteDispatchVectorEnv(horizon=small_horizon, num_envs=2, power_flow=True)


def test_sync_vector_env_runs_the_single_env(small_horizon: Horizon) -> None:
    envs = gymnasium.vector.SyncVectorEnv(
        [lambda: gymnasium.make("qubit_sim/ChargerFleet-v0", horizon=small_horizon)] * 3
    )
    obs, info = envs.reset(seed=[1, 2, 3])
    assert obs.shape == (3, len(envs.envs[0].unwrapped.observation_names))  # type: ignore[attr-defined]
    total = np.zeros(3)
    for _ in range(96):
        obs, reward, terminated, truncated, info = envs.step(envs.action_space.sample())
        total += reward
    assert truncated.all() and not terminated.any()
    assert np.isfinite(total).all() and (total < 0).all()
    assert info["cost_energy"].shape == (3,)
    envs.close()
