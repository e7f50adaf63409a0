"""Episode windows, train/test splits, the demand tracker and the action projections."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qubit_sim.core.tariff import demand_peaks_kw
from qubit_sim.errors import ScenarioError
from qubit_sim.rl.actions import battery_projection, charger_projection, ev_level_projection
from qubit_sim.rl.horizon import Horizon
from qubit_sim.rl.reward import BatchDemandTracker, DemandTracker

SCENARIOS = Path(__file__).parent / "scenarios"
SMALL_SITE = SCENARIOS / "small_site.yaml"


def test_blocks_tile_the_horizon_and_splits_are_disjoint(small_horizon: Horizon) -> None:
    h = small_horizon
    assert h.episode_steps == 96 and h.control_every == 1
    assert np.array_equal(h.block_offset_step, np.arange(7) * 96)
    train, test = set(h.blocks("train")), set(h.blocks("test"))
    assert train and test
    assert not train & test
    assert train | test == set(h.blocks("all")) == set(range(7))


def test_split_is_stable_across_builds_and_longer_horizons(small_horizon: Horizon) -> None:
    again = Horizon(SMALL_SITE)
    assert np.array_equal(again.blocks("test"), small_horizon.blocks("test"))
    # Membership depends on the block's start instant only: a longer horizon keeps it.
    longer = Horizon(SMALL_SITE, overrides={"site": {"duration": "14d"}})
    assert np.array_equal(
        longer.blocks("test")[longer.blocks("test") < 7], small_horizon.blocks("test")
    )
    other_seed = [tuple(Horizon(SMALL_SITE, split_seed=s).blocks("test")) for s in (1, 2, 3)]
    assert len(set(other_seed) | {tuple(small_horizon.blocks("test"))}) > 1


def test_windows_shift_sessions_and_start_fresh(small_horizon: Horizon) -> None:
    h = small_horizon
    plan = h.plan(2)
    low, high = 2 * 86400, 3 * 86400
    sessions = h.site.sessions
    inside = (sessions.departure_s > low) & (sessions.arrival_s < high)
    assert len(plan.sessions) == int(inside.sum())
    assert np.array_equal(plan.sessions.departure_s, np.asarray(sessions.departure_s)[inside] - low)
    assert (plan.sessions.arrival_s >= 0).all()
    site = h.site_for(2, controller=None)
    assert site.clock.duration_s == 86400
    assert site.clock.start == h.site.clock.start + pd.Timedelta(days=2)
    assert np.array_equal(site.load_kw, h.site.load_kw[2 * 96 : 3 * 96])
    assert np.array_equal(site.batteries.soc, h.battery_soc_initial)
    assert site.fleet is not h.site.fleet and not site.fleet.connected.any()


def test_bad_arguments_name_the_fix() -> None:
    with pytest.raises(ScenarioError, match="multiple of the control period"):
        Horizon(SMALL_SITE, episode_length="7min")
    with pytest.raises(ScenarioError, match="exceeds the scenario horizon"):
        Horizon(SMALL_SITE, episode_length="8d")
    with pytest.raises(ScenarioError, match="'oracle' or 'l2'"):
        Horizon(SMALL_SITE, forecast="perfect")
    with pytest.raises(ScenarioError, match="power_flow=True needs a grid"):
        Horizon(SMALL_SITE, power_flow=True)


def test_empty_test_split_is_an_error() -> None:
    whole = Horizon(SMALL_SITE, episode_length="7d")
    assert list(whole.blocks("train")) == [0]
    with pytest.raises(ScenarioError, match="'test' split is empty"):
        whole.blocks("test")


def test_lookahead_is_the_mean_of_the_next_hours(small_horizon: Horizon) -> None:
    h = small_horizon
    names = h.exo_names
    k = 40
    price = h.site.price_per_kwh
    expected = price[k + 4 : k + 8].mean() / h.price_scale
    assert h.exo[k, names.index("price_h2")] == pytest.approx(expected, rel=1e-12)
    load = h.load_total_kw
    assert h.exo[k, names.index("load_h1")] == pytest.approx(
        load[k : k + 4].mean() / h.power_scale_kw, rel=1e-12
    )


@settings(max_examples=40, deadline=None)
@given(
    step_s=st.sampled_from([60, 300, 900, 3600]),
    period=st.sampled_from(["day", "week", "month"]),
    days=st.integers(1, 3),
    start_hour=st.integers(0, 23),
    seed=st.integers(0, 2**31),
)
def test_demand_increments_sum_to_the_tariffs_demand_peaks(
    step_s: int, period: str, days: int, start_hour: int, seed: int
) -> None:
    n = days * 86400 // step_s
    times = pd.date_range(
        pd.Timestamp("2025-03-29T00:00Z") + pd.Timedelta(hours=start_hour),
        periods=n + 1,
        freq=pd.Timedelta(seconds=step_s),
    )
    imports = np.random.default_rng(seed).uniform(0, 100, n)
    tz = "Europe/Amsterdam"
    peaks = demand_peaks_kw(imports, step_s, times[:-1], tz, period, 900)
    # The horizon's window numbering, rebuilt for these times.
    local = times[:-1].tz_convert(tz)
    utc_s = times[:-1].as_unit("s").asi8
    offset = local.tz_localize(None).as_unit("s").asi8 - utc_s
    wall = utc_s + offset
    if step_s >= 900:
        window = np.arange(n)
    else:
        window = np.unique(wall - wall % 900 - offset, return_inverse=True)[1]
    from qubit_sim.core.tariff import billing_periods

    labels = billing_periods(times[:-1], tz, period)
    tracker = DemandTracker(np.append(window, -1), labels)
    tracker.reset(0, n)
    total = sum(tracker.add(k, float(imports[k])) for k in range(n))
    assert total == pytest.approx(float(peaks["peak_kw"].sum()), rel=1e-9, abs=1e-9)
    batch = BatchDemandTracker(np.append(window, -1), labels)
    batch.reset(np.array([0, 0]), n)
    both = np.zeros(2)
    for k in range(n):
        both += batch.add(k, np.array([imports[k], 0.0]))
    assert both[0] == pytest.approx(total, rel=1e-12) and both[1] == 0.0


@settings(max_examples=60, deadline=None)
@given(
    action=st.floats(-3, 3),
    soc_room=st.lists(st.tuples(st.floats(0, 80), st.floats(0, 80)), min_size=1, max_size=3),
)
def test_battery_projection_stays_feasible(
    action: float, soc_room: list[tuple[float, float]]
) -> None:
    p_min = -np.array([[d for d, _ in soc_room]])
    p_max = np.array([[c for _, c in soc_room]])
    requested, applied, per = battery_projection(np.array([action]), p_min, p_max, 100.0, 120.0)
    assert requested[0] == pytest.approx(np.clip(action, -1, 1) * (100.0 if action >= 0 else 120.0))
    assert p_min.sum() - 1e-9 <= applied[0] <= p_max.sum() + 1e-9
    assert (per >= p_min - 1e-9).all() and (per <= p_max + 1e-9).all()
    assert per.sum() == pytest.approx(applied[0], abs=1e-9)
    if p_min.sum() <= requested[0] <= p_max.sum():
        assert applied[0] == pytest.approx(requested[0])


@settings(max_examples=60, deadline=None)
@given(
    action=st.lists(st.floats(-2, 2), min_size=4, max_size=4),
    plugged=st.lists(st.booleans(), min_size=4, max_size=4),
    ev_share=st.lists(st.floats(0, 1), min_size=4, max_size=4),
)
def test_ev_projections_respect_what_evs_can_take(
    action: list[float], plugged: list[bool], ev_share: list[float]
) -> None:
    rated = np.array([22.0, 22.0, 11.0, 150.0])
    connected = np.array([plugged])
    ev_max = np.where(connected, rated * np.array(ev_share), 0.0)
    requested, limit = charger_projection(np.array([action]), ev_max, rated)
    assert (limit <= ev_max + 1e-12).all() and (limit >= 0).all()
    assert (requested <= rated + 1e-12).all()
    level_req, level_applied, level_limit = ev_level_projection(
        np.array([action[0]]), connected, ev_max, rated
    )
    assert (level_limit <= ev_max + 1e-12).all()
    assert level_applied[0] == pytest.approx(min(level_req[0], ev_max.sum()), abs=1e-9)
