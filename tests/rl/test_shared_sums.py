"""Sums the observation shares with the EV-level projection give the projection's own results."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qubit_sim.rl.actions import ev_level_projection
from qubit_sim.rl.envs import SiteDispatchEnv
from qubit_sim.rl.horizon import Horizon

actions = st.one_of(st.floats(-1.5, 1.5), st.sampled_from([-1.0, 1.0, 0.0, -0.0]))


@pytest.fixture(scope="module")
def env(small_horizon: Horizon) -> SiteDispatchEnv:
    env = SiteDispatchEnv(horizon=small_horizon)
    env.reset(seed=0)
    return env


def _state(draw: st.DrawFn, n: int) -> dict[str, np.ndarray]:
    connected = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    need = np.array(draw(st.lists(st.floats(0.0, 80.0), min_size=n, max_size=n)))
    departure = np.array(draw(st.lists(st.integers(0, 4 * 86400), min_size=n, max_size=n)))
    ev_max = np.array(draw(st.lists(st.floats(0.0, 22.0), min_size=n, max_size=n)))
    return {
        "connected": connected,
        "e_needed_kwh": np.where(connected, need, 0.0),
        "departure_s": np.where(connected, departure, -1).astype(np.int64),
        "ev_max_kw": np.where(connected, ev_max, 0.0),
    }


@settings(max_examples=100, deadline=None)
@given(action=actions, data=st.data())
def test_observed_sums_give_the_projection_bit_for_bit(
    env: SiteDispatchEnv, action: float, data: st.DataObject
) -> None:
    layout, controller = env.layout, env.controller
    state = _state(data.draw, layout.n_chargers)
    out = np.empty(layout.size - layout.n_exo)
    layout.fill_state_one(
        out,
        3,
        900.0,
        np.array([0.5]),
        state["connected"],
        state["e_needed_kwh"],
        state["departure_s"],
        state["ev_max_kw"],
        0.0,
        0.0,
        1.0,
    )
    assert layout.ev_sums is not None and layout.ev_sums[0] is state["ev_max_kw"]
    want = ev_level_projection(
        np.array([action]),
        state["connected"][None, :],
        state["ev_max_kw"][None, :],
        controller._rated,
    )
    want_bytes = np.array([want[0][0], want[1][0]]).tobytes()
    controller.ev_sums = layout.ev_sums
    requested, applied, limit = controller._one_ev_level(
        action, state["connected"], state["ev_max_kw"]
    )
    assert np.array([requested, applied]).tobytes() == want_bytes
    assert limit.tobytes() == want[2][0].tobytes()
    # Sums of another array (an EV plugged in since) are not used.
    controller.ev_sums = (state["ev_max_kw"].copy(), 1e6, 1e-3)
    requested, applied, limit = controller._one_ev_level(
        action, state["connected"], state["ev_max_kw"]
    )
    assert np.array([requested, applied]).tobytes() == want_bytes
    assert limit.tobytes() == want[2][0].tobytes()


def test_the_env_hands_its_observed_sums_to_the_projection(env: SiteDispatchEnv) -> None:
    env.reset(seed=1)
    env.step(np.array([0.2, 0.4], dtype=np.float32))
    sums = env.controller.ev_sums
    assert sums is env.layout.ev_sums
    assert sums is not None and sums[0] is env.sim.ev_max_kw(env._k)
    assert sums[2] == float(np.add.reduce(env.sim.ev_max_kw(env._k)))


@pytest.mark.parametrize(("cap_kw", "curtailing"), [(None, False), (0.0, True), (12.5, True)])
def test_curtailing_follows_the_single_plant_cap(
    small_horizon: Horizon, cap_kw: float | None, curtailing: bool
) -> None:
    env = SiteDispatchEnv(horizon=small_horizon)
    env.reset(seed=0)
    devices, links = env.sim.devices, env.sim.router.pv_links
    assert len(links) == 1
    links[0].set_power_limit(5.0)
    assert devices.curtailing()
    links[0].set_power_limit(cap_kw)
    assert devices.curtailing() is curtailing
    assert curtailing is not math.isnan(float(np.fmin.reduce(devices.pv_limit_kw)))


def test_the_occupied_chargers_are_recounted_when_an_ev_plugs_in(small_horizon: Horizon) -> None:
    from qubit_sim.rl.features import ObservationLayout

    layout = ObservationLayout(small_horizon, per_charger=True)
    n = layout.n_chargers
    connected = np.zeros(n, dtype=bool)
    need = np.zeros(n)
    departure = np.full(n, -1, dtype=np.int64)
    ev_max = np.zeros(n)
    width = layout.size - layout.n_exo
    for charger in range(n):
        # The same arrays changed in place, as the fleet changes them.
        connected[charger] = True
        need[charger] = 10.0 + charger
        departure[charger] = 3600 * (charger + 2)
        ev_max[charger] = 7.4
        for t_s in (0.0, 900.0):
            one = np.full(width, np.nan)
            batched = np.full((1, width), np.nan)
            args = (connected, need, departure, ev_max)
            layout.fill_state_one(one, 1, t_s, np.array([0.5]), *args, 0.0, 0.0, 1.0)
            layout.fill_state(
                batched,
                1,
                np.array([t_s]),
                np.array([[0.5]]),
                *(value[None, :] for value in args),
                *(np.array([value]) for value in (0.0, 0.0, 1.0)),
            )
            assert one.tobytes() == batched[0].tobytes()
            assert one[2] == (charger + 1) / n  # ev_occupancy
            assert layout.ev_sums is not None
            assert layout.ev_sums[1] == float(np.add.reduce(connected * layout.rated_kw))
