"""The one-battery float path of ActionController equals the batched projection bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qubit_sim.errors import SimulationError
from qubit_sim.rl.actions import ActionController, battery_projection
from qubit_sim.rl.envs import SiteDispatchEnv
from qubit_sim.rl.horizon import Horizon

EDGES = [-1.0, 1.0, 0.0, -0.0, -2.0, 2.0, 1e-300, -1e-300]


@settings(max_examples=300, deadline=None)
@given(
    action=st.one_of(st.sampled_from(EDGES), st.floats(-3.0, 3.0)),
    p_min=st.one_of(st.sampled_from([0.0, -0.0, -100.0]), st.floats(-150.0, 0.0)),
    p_max=st.one_of(st.sampled_from([0.0, -0.0, 100.0]), st.floats(0.0, 150.0)),
    charge_total=st.sampled_from([100.0, 0.0, 37.5]),
    discharge_total=st.sampled_from([100.0, 0.0, 90.0]),
)
def test_one_battery_path_is_the_projection(
    action: float, p_min: float, p_max: float, charge_total: float, discharge_total: float
) -> None:
    controller = ActionController("site_dispatch")
    controller._charge_total = charge_total
    controller._discharge_total = discharge_total
    requested, applied = controller._one_battery(action, p_min, p_max)
    want_req, want_applied, per_battery = battery_projection(
        np.array([action]), np.array([[p_min]]), np.array([[p_max]]), charge_total, discharge_total
    )
    assert np.array([requested]).tobytes() == want_req.tobytes()
    assert np.array([applied]).tobytes() == want_applied.tobytes()
    assert np.array([applied]).tobytes() == per_battery[0].tobytes()


def test_a_nan_battery_action_is_refused_not_clipped(small_horizon: Horizon) -> None:
    env = SiteDispatchEnv(horizon=small_horizon)
    env.reset(seed=0)
    env.step(np.array([0.5, 0.0], dtype=np.float32))  # a valid action goes through
    with pytest.raises(SimulationError, match="NaN battery_kw"):
        env.step(np.array([np.nan, 0.0], dtype=np.float32))
