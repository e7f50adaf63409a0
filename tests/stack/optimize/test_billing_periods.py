"""Demand charges over several billing periods: one peak per period, in the LP and in the score."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qubit_sim.core.tariff import billing_periods, demand_peaks_kw
from qubit_sim.stack.optimize import (
    EvSessions,
    MpcOptimizer,
    ObjectiveWeights,
    OptimizationError,
    Plan,
    evaluate_plan,
    offline_optimal,
    qubit_baseline_plan,
    site_power_kw,
)


def _two_day_problem(opt):
    """Two hourly slots late on 15 January, two early on 16 January (daily billing, UTC).

    Day 1 has a low load, day 2 a 50 kW peak in slot 2 and room below it in slot 3. A 40 kWh EV can
    charge in either day; day 1 is cheaper per kWh but raises day 1's peak, while slot 3 fits under
    day 2's peak for free.
    """
    evs = EvSessions(
        ev_ids=("a",),
        arrival_slot=[0],
        departure_slot=[4],
        e_needed_kwh=[40.0],
        soc0=[0.2],
        capacity_kwh=[100.0],
        p_max_kw=[40.0],
        knee_soc=[1.0],
        charger_efficiency=[1.0],
        priority=[1],
    )
    problem = opt.build_problem(
        price=np.array([0.10, 0.10, 0.11, 0.11]),
        load=np.array([10.0, 10.0, 50.0, 10.0]),
        evs=evs,
        weights=ObjectiveWeights(demand_charge_per_kw=1.0, unmet_penalty_per_kwh=5.0),
    )
    times = pd.date_range("2025-01-15T22:00Z", periods=4, freq="1h")
    return replace(
        problem,
        times_utc=times,
        billing_period=billing_periods(times, "UTC", "day"),
    )


def test_labels_from_the_tariff_split_the_horizon(opt):
    problem = _two_day_problem(opt)
    np.testing.assert_array_equal(problem.billing_period, [20250115, 20250115, 20250116, 20250116])
    np.testing.assert_array_equal(problem.period_index(), [0, 0, 1, 1])
    assert problem.n_periods == 2
    assert replace(problem, billing_period=None).n_periods == 1


def test_demand_charge_scores_each_period_like_the_bill(opt):
    problem = replace(_two_day_problem(opt), peak_so_far_kw=15.0)
    plan = Plan(np.array([[20.0, 20.0, 0.0, 0.0]]), np.zeros(4), np.zeros(4), np.zeros(4))
    terms = evaluate_plan(problem, plan)
    # Day 1 peaks at 30 kW, 15 kW above the peak already reached; day 2 at 50 kW from zero.
    assert terms.demand_charge == pytest.approx(15.0 + 50.0)
    # The billing code, on the same imports (hourly steps count as their own 15-min average).
    imports = site_power_kw(problem, plan)
    peaks = demand_peaks_kw(imports, 3600, problem.times_utc, "UTC", "day")
    assert peaks["peak_kw"].tolist() == pytest.approx([30.0, 50.0])
    assert terms.demand_charge == pytest.approx(peaks["peak_kw"].sum() - 15.0)


def test_offline_charges_under_the_later_periods_peak(opt):
    problem = _two_day_problem(opt)
    result = offline_optimal(problem)
    # Exact: all 40 kWh in slot 3, under day 2's 50 kW peak; no demand added anywhere.
    np.testing.assert_allclose(result.plan.p_ev_kw, [[0.0, 0.0, 0.0, 40.0]], atol=1e-6)
    assert result.objective.demand_charge == pytest.approx(10.0 + 50.0)
    # The one-peak model sees day 1 as free (below the 50 kW horizon peak) and charges there: on the
    # true bill that costs at least 20 kW of day-1 demand for 0.40 of energy saved.
    one_peak = offline_optimal(replace(problem, billing_period=None))
    assert one_peak.plan.p_ev_kw[0, :2].sum() == pytest.approx(40.0, abs=1e-6)
    added_kw = float(one_peak.plan.p_ev_kw[0, :2].max())
    assert added_kw >= 20.0 - 1e-6
    approximated = evaluate_plan(problem, one_peak.plan).total
    assert approximated - result.objective.total == pytest.approx(added_kw - 0.4, abs=1e-6)


def test_mpc_models_both_peaks_and_refuses_too_many_periods(opt):
    problem = _two_day_problem(opt)
    two = MpcOptimizer(6, 2, has_battery=False, max_billing_periods=2).solve(problem)
    assert two.objective.total == pytest.approx(offline_optimal(problem).objective.total, abs=1e-6)
    with pytest.raises(OptimizationError, match="max_billing_periods = 1"):
        MpcOptimizer(6, 2, has_battery=False, max_billing_periods=1).solve(problem)
    with pytest.raises(OptimizationError, match="must be >= 1"):
        MpcOptimizer(6, 2, has_battery=False, max_billing_periods=0)


def test_billing_labels_must_not_decrease(opt):
    problem = _two_day_problem(opt)
    with pytest.raises(OptimizationError, match=r"billing_period\[2\]"):
        replace(problem, billing_period=[3, 3, 2, 2])
    with pytest.raises(OptimizationError, match="billing_period has 3 entries"):
        replace(problem, billing_period=[1, 1, 2])


@pytest.fixture(scope="module")
def mpc3() -> MpcOptimizer:
    return MpcOptimizer(12, 5, has_battery=True, max_billing_periods=3)


@settings(max_examples=20, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    cuts=st.lists(st.integers(1, 11), min_size=0, max_size=2, unique=True),
)
def test_mpc_equals_offline_and_beats_the_baseline_over_periods(opt, mpc3, seed, cuts):
    rng = np.random.default_rng(seed)
    problem = opt.random_problem(rng, n_slots=12, n_ev=int(rng.integers(0, 6)), slot_s=900)
    labels = np.zeros(12, dtype=np.int64)
    for cut in cuts:
        labels[cut:] += 1
    problem = replace(problem, billing_period=labels)
    offline = offline_optimal(problem)
    opt.assert_feasible(problem, offline.plan)
    mpc = mpc3.solve(problem)
    assert abs(mpc.objective.total - offline.objective.total) <= 1e-6 * max(
        1.0, abs(offline.objective.total)
    )
    baseline = evaluate_plan(problem, qubit_baseline_plan(problem)).total
    assert offline.objective.total <= baseline + 1e-6 * max(1.0, abs(baseline))
    # Demand is charged per period: never less than the one-peak charge of the same plan.
    merged = evaluate_plan(replace(problem, billing_period=None), offline.plan)
    assert offline.objective.demand_charge >= merged.demand_charge - 1e-9
