"""The single environment's one-site paths give the batched functions' results bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qubit_sim.control.base import SiteInfo
from qubit_sim.rl.actions import ActionController, ev_level_projection
from qubit_sim.rl.features import ObservationLayout
from qubit_sim.rl.horizon import Horizon

N = 6
fractions = st.floats(0.0, 1.0)
actions = st.one_of(st.floats(-1.5, 1.5), st.sampled_from([-1.0, 1.0, 0.0, -0.0, np.inf, -np.inf]))


def _charger_state(draw: st.DrawFn, n: int) -> dict[str, np.ndarray]:
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


@pytest.fixture(scope="module")
def layouts(small_horizon: Horizon) -> tuple[ObservationLayout, ...]:
    two_batteries = ObservationLayout(small_horizon, per_charger=False)
    two_batteries.capacity_kwh = np.array([200.0, 55.5])
    two_batteries._capacity_total = 255.5
    return (
        ObservationLayout(small_horizon, per_charger=False),
        ObservationLayout(small_horizon, per_charger=True),
        two_batteries,
    )


@settings(max_examples=80, deadline=None)
@given(data=st.data())
def test_fill_state_one_is_fill_state_of_one_site(
    layouts: tuple[ObservationLayout, ...], data: st.DataObject
) -> None:
    draw = data.draw
    for layout in layouts:
        state = _charger_state(draw, layout.n_chargers)
        n_batteries = len(layout.capacity_kwh)
        soc = np.array(draw(st.lists(fractions, min_size=n_batteries, max_size=n_batteries)))
        k = draw(st.integers(0, layout.episode_steps))
        t_s = float(draw(st.integers(0, 86400)))
        scalars = [draw(st.floats(-500.0, 500.0)) for _ in range(2)] + [draw(st.floats(0.9, 1.1))]
        width = layout.size - layout.n_exo
        batched = np.full((1, width), np.nan)
        layout.fill_state(
            batched,
            k,
            np.array([t_s]),
            soc[None, :],
            state["connected"][None, :],
            state["e_needed_kwh"][None, :],
            state["departure_s"][None, :],
            state["ev_max_kw"][None, :],
            *(np.array([value]) for value in scalars),
        )
        one = np.full(width, np.nan)
        layout.fill_state_one(
            one,
            k,
            t_s,
            soc,
            state["connected"],
            state["e_needed_kwh"],
            state["departure_s"],
            state["ev_max_kw"],
            *scalars,
        )
        assert one.tobytes() == batched[0].tobytes()


def _controller(kind: str) -> ActionController:
    controller = ActionController(kind)
    site = SiteInfo(
        step_s=900,
        period_s=900,
        charger_ids=tuple(f"c{i}" for i in range(N)),
        battery_ids=("b",),
        pv_ids=(),
        load_ids=(),
        charger_max_kw=np.array([22.0, 11.0, 7.4, 22.0, 50.0, 3.7]),
        charger_efficiency=np.full(N, 0.95),
        battery_capacity_kwh=np.array([200.0]),
        battery_charge_max_kw=np.array([100.0]),
        battery_discharge_max_kw=np.array([80.0]),
        import_limit_kw=np.inf,
        export_limit_kw=np.inf,
        tz="UTC",
    )
    controller.reset(site, np.random.default_rng(0))
    return controller


@settings(max_examples=200, deadline=None)
@given(action=actions, data=st.data())
def test_the_one_site_ev_level_is_the_batched_projection(
    action: float, data: st.DataObject
) -> None:
    controller = _controller("site_dispatch")
    state = _charger_state(data.draw, N)
    requested, applied, limit = controller._one_ev_level(
        action, state["connected"], state["ev_max_kw"]
    )
    want = ev_level_projection(
        np.array([action]),
        state["connected"][None, :],
        state["ev_max_kw"][None, :],
        controller._rated,
    )
    assert np.array([requested, applied]).tobytes() == np.array([want[0][0], want[1][0]]).tobytes()
    assert limit.tobytes() == want[2][0].tobytes()
