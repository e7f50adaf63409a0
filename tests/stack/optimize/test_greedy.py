"""The greedy EV scheduler: hand-worked examples and invariants."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qubit_sim.stack.optimize import EvSessions, greedy_schedule

DOCUMENTED_COLUMNS = [
    "total_ev_kw",
    "background_load_kw",
    "solar_generation_kw",
    "net_load_kw",
    "price_per_kwh",
    "slot_cost",
]


def _sessions(**overrides):
    n = len(overrides["ev_ids"])
    base = dict(
        arrival_slot=np.zeros(n, dtype=int),
        departure_slot=np.full(n, 4),
        e_needed_kwh=np.full(n, 10.0),
        soc0=np.zeros(n),
        capacity_kwh=np.full(n, 100.0),
        p_max_kw=np.full(n, 11.0),
        knee_soc=np.ones(n),
        charger_efficiency=np.ones(n),
        priority=np.ones(n, dtype=int),
    )
    base.update(overrides)
    return EvSessions(**base)


def test_hand_worked_priority_example(opt):
    # 4 one-hour slots, 20 kW site, no background load. B is urgent; C (normal) leaves before A
    # (normal) so it is served second. Cheapest slots: 1 and 3 (0.10, earlier first), then 2, 0.
    evs = _sessions(
        ev_ids=("A", "B", "C"),
        departure_slot=np.array([4, 4, 2]),
        e_needed_kwh=np.array([20.0, 15.0, 5.0]),
        p_max_kw=np.array([11.0, 11.0, 7.0]),
        priority=np.array([1, 3, 1]),
    )
    problem = opt.build_problem(
        price=np.array([0.30, 0.10, 0.20, 0.10]), import_max_kw=20.0, evs=evs
    )
    result = greedy_schedule(problem)
    s = result.schedule
    # B: slot 1 gets 11 kW, slot 3 the remaining 4. C: slot 1, 5 kW (headroom 9).
    # A: slot 1 gets the last 4 kW of headroom, slot 3 11 kW, slot 2 the remaining 5.
    np.testing.assert_allclose(s["ev_B_kw"], [0, 11, 0, 4])
    np.testing.assert_allclose(s["ev_C_kw"], [0, 5, 0, 0])
    np.testing.assert_allclose(s["ev_A_kw"], [0, 4, 5, 11])
    np.testing.assert_allclose(s["total_ev_kw"], [0, 20, 5, 15])
    np.testing.assert_allclose(s["net_load_kw"], [0, 20, 5, 15])
    np.testing.assert_allclose(s["slot_cost"], [0, 2.0, 1.0, 1.5])
    assert result.total_cost == pytest.approx(4.5)
    np.testing.assert_allclose(result.unmet_kwh.to_numpy(), 0.0, atol=1e-12)
    assert list(s.columns[:3]) == ["ev_A_kw", "ev_B_kw", "ev_C_kw"]
    for column in DOCUMENTED_COLUMNS:
        assert column in s.columns
    assert str(s.index.tz) == "UTC"


def test_unmet_energy_is_reported_per_vehicle(opt):
    evs = _sessions(
        ev_ids=("x", "y"), e_needed_kwh=np.array([30.0, 30.0]), priority=np.array([1, 2])
    )
    problem = opt.build_problem(price=np.full(4, 0.2), import_max_kw=11.0, evs=evs)
    result = greedy_schedule(problem)
    # 44 kWh of site capacity: the high-priority vehicle takes 30, the other gets 14.
    assert result.unmet_kwh["y"] == pytest.approx(0.0)
    assert result.unmet_kwh["x"] == pytest.approx(16.0)


def test_headroom_counts_pv_and_background_load(opt):
    evs = _sessions(ev_ids=("a",), e_needed_kwh=np.array([100.0]), p_max_kw=np.array([50.0]))
    problem = opt.build_problem(
        price=np.full(4, 0.2),
        load=np.array([10.0, 10.0, 30.0, 0.0]),
        pv=np.array([0.0, 20.0, 0.0, 0.0]),
        import_max_kw=25.0,
        evs=evs,
    )
    result = greedy_schedule(problem)
    # headroom = import_max - (load - pv) = [15, 35, -5 -> 0, 25]
    np.testing.assert_allclose(result.schedule["ev_a_kw"], [15, 35, 0, 25])


def test_linear_taper_hand_worked(opt):
    # knee 0.5 at soc0 0.5: the taper binds from the start. With end-of-slot SOC,
    # p_t = a (1 - soc_t) / (1 + a k), a = p_max / (1 - knee) = 20, k = dt / cap = 0.1,
    # so chronological filling delivers 10/3 kW, then a third of it each following slot.
    evs = _sessions(
        ev_ids=("t",),
        departure_slot=np.array([3]),
        e_needed_kwh=np.array([10.0]),
        soc0=np.array([0.5]),
        capacity_kwh=np.array([10.0]),
        p_max_kw=np.array([10.0]),
        knee_soc=np.array([0.5]),
    )
    problem = opt.build_problem(price=np.array([0.1, 0.2, 0.3]), evs=evs)
    result = greedy_schedule(problem)
    np.testing.assert_allclose(result.schedule["ev_t_kw"], [10 / 3, 10 / 9, 10 / 27], rtol=1e-12)
    assert result.unmet_kwh["t"] == pytest.approx(10 - 10 / 3 - 10 / 9 - 10 / 27)
    opt.assert_feasible(problem, result.plan, tol=1e-12)


def test_taper_holds_when_late_slots_are_cheaper(opt):
    # Filling a cheap late slot first must not be invalidated by filling earlier slots later.
    evs = _sessions(
        ev_ids=("t",),
        departure_slot=np.array([4]),
        e_needed_kwh=np.array([8.0]),
        soc0=np.array([0.3]),
        capacity_kwh=np.array([12.0]),
        p_max_kw=np.array([7.0]),
        knee_soc=np.array([0.6]),
    )
    problem = opt.build_problem(price=np.array([0.4, 0.3, 0.2, 0.1]), evs=evs)
    result = greedy_schedule(problem)
    sim = opt.assert_feasible(problem, result.plan, tol=1e-9)
    assert sim.delivered_kwh[0] > 3.0  # it does charge, not just stay within limits by idling
    assert result.plan.p_ev_kw[0, 3] > 0


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), n_slots=st.integers(1, 30), n_ev=st.integers(0, 8))
def test_greedy_never_exceeds_limits(opt, seed, n_slots, n_ev):
    rng = np.random.default_rng(seed)
    problem = opt.random_problem(rng, n_slots=n_slots, n_ev=n_ev, battery=False)
    result = greedy_schedule(problem)
    sim = opt.assert_feasible(problem, result.plan, tol=1e-9)
    # EVs never push the site over its limit beyond what the background load already does.
    background = problem.load_kw - problem.pv_kw
    ev_grid = result.schedule["total_ev_grid_kw"].to_numpy()
    assert np.all(ev_grid <= np.maximum(problem.import_max_kw - background, 0.0) + 1e-9)
    np.testing.assert_allclose(result.schedule["net_load_kw"], sim.site_kw, atol=1e-9)
    np.testing.assert_allclose(
        result.unmet_kwh.to_numpy(), problem.evs.e_needed_kwh - sim.delivered_kwh, atol=1e-9
    )


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_greedy_meets_need_when_capacity_allows(opt, seed):
    # Unconstrained site, no taper, long windows: every vehicle's need is met exactly.
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 6))
    evs = _sessions(
        ev_ids=tuple(f"v{i}" for i in range(n)),
        departure_slot=np.full(n, 12),
        e_needed_kwh=rng.uniform(0, 60, n),
        p_max_kw=rng.uniform(5, 22, n),
        charger_efficiency=rng.uniform(0.85, 1.0, n),
        priority=rng.integers(1, 4, n),
    )
    problem = opt.build_problem(price=rng.uniform(0.05, 0.3, 12), evs=evs)
    result = greedy_schedule(problem)
    np.testing.assert_allclose(result.unmet_kwh.to_numpy(), 0.0, atol=1e-9)
    delivered = result.plan.p_ev_kw.sum(axis=1)
    np.testing.assert_allclose(delivered, evs.e_needed_kwh, rtol=1e-12, atol=1e-9)
