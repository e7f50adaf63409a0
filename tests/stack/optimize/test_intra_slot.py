"""Steps inside the slots: the offline LP prices every step's import and export exactly."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qubit_sim.stack.optimize import (
    IntraSlot,
    ObjectiveWeights,
    OptimizationError,
    evaluate_plan,
    offline_optimal,
    site_power_kw,
)
from qubit_sim.stack.optimize.direct import solve_direct

N_STEPS = 5


def _intra(problem, rng: np.random.Generator, swing_kw: float) -> IntraSlot:
    """Random step swings around each slot and step prices around the slot price."""
    t = problem.n_slots
    deviation = rng.normal(0.0, swing_kw, (t, N_STEPS))
    deviation -= deviation.mean(axis=1, keepdims=True)
    price = problem.price_per_kwh[:, None] + rng.uniform(-0.03, 0.03, (t, N_STEPS))
    export = np.minimum(problem.export_price_per_kwh[:, None] + rng.uniform(0, 0.1, (t, 1)), price)
    return IntraSlot(deviation, price, export, rng.uniform(0, 400, (t, N_STEPS)))


def _stepped(opt, seed: int, n_slots: int, n_ev: int, battery: bool, swing_kw: float = 25.0):
    rng = np.random.default_rng(seed)
    problem = opt.random_problem(rng, n_slots=n_slots, n_ev=n_ev, battery=battery, slot_s=900)
    weights = ObjectiveWeights(demand_charge_per_kw=float(rng.uniform(0, 10)), carbon_weight=1e-5)
    return replace(
        problem,
        weights=weights,
        billing_period=(np.arange(n_slots) >= n_slots // 2).astype(int),
        intra_slot=_intra(problem, rng, swing_kw),
    )


def _step_objective(problem, plan) -> float:
    """The objective re-computed step by step, independently of evaluate_plan."""
    intra = problem.intra_slot
    w = problem.weights
    step_h = problem.dt_h / intra.n_steps
    total = 0.0
    peaks: dict[int, float] = {}
    site = site_power_kw(problem, plan)
    for t, period in enumerate(problem.period_index()):
        imports = []
        for j in range(intra.n_steps):
            p = site[t] + intra.deviation_kw[t, j]
            imp, exp = max(p, 0.0), max(-p, 0.0)
            imports.append(imp)
            total += (intra.price_per_kwh[t, j] * imp - intra.export_price_per_kwh[t, j] * exp) * (
                w.cost_weight * step_h
            )
            total += w.carbon_weight * intra.carbon_g_per_kwh[t, j] * imp * step_h
        peaks[int(period)] = max(peaks.get(int(period), 0.0), sum(imports) / len(imports))
    floor = problem.peak_floor_kw()
    total += w.demand_charge_per_kw * sum(max(v - floor[p], 0.0) for p, v in peaks.items())
    steps = problem.step_power_kw(site)
    excess = np.maximum(steps - problem.import_max_kw, 0.0) + np.maximum(
        -steps - problem.export_max_kw, 0.0
    )
    total += w.limit_penalty_per_kwh * float(excess.sum()) * step_h
    terms = evaluate_plan(replace(problem, intra_slot=None), plan)
    # Degradation, unmet energy and terminal value do not depend on the steps.
    return total + terms.degradation_cost + terms.unmet_penalty - terms.terminal_value


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n_slots=st.integers(1, 16),
    n_ev=st.integers(0, 5),
    battery=st.booleans(),
)
def test_step_lp_is_exact_and_beats_slot_mean_plans(opt, seed, n_slots, n_ev, battery):
    """The step LP's optimum is the step-priced cost of its plan (cvxpy and HiGHS agree), and no
    plan made on slot means costs less when the steps are priced."""
    problem = _stepped(opt, seed, n_slots, n_ev, battery)
    result = offline_optimal(problem)
    direct = solve_direct(problem)
    stepped = _step_objective(problem, result.plan)
    assert result.objective.total == pytest.approx(stepped, rel=1e-9, abs=1e-9)
    assert evaluate_plan(problem, direct.plan).total == pytest.approx(stepped, rel=1e-6, abs=1e-6)
    slot_plan = offline_optimal(replace(problem, intra_slot=None)).plan
    assert stepped <= _step_objective(problem, slot_plan) + 1e-6 * (1.0 + abs(stepped))


def test_without_swings_the_steps_change_nothing(opt):
    rng = np.random.default_rng(7)
    problem = opt.random_problem(rng, n_slots=12, n_ev=4, battery=True, slot_s=900)
    t = problem.n_slots
    flat = IntraSlot(
        np.zeros((t, N_STEPS)),
        np.repeat(problem.price_per_kwh[:, None], N_STEPS, axis=1),
        np.repeat(problem.export_price_per_kwh[:, None], N_STEPS, axis=1),
        np.repeat(problem.carbon_g_per_kwh[:, None], N_STEPS, axis=1),
    )
    slot = offline_optimal(problem)
    step = offline_optimal(replace(problem, intra_slot=flat))
    assert step.objective.total == pytest.approx(slot.objective.total, rel=1e-7)
    # Evaluated without swings, every plan costs the same per step as per slot.
    terms = evaluate_plan(replace(problem, intra_slot=flat), slot.plan)
    assert terms.total == pytest.approx(slot.objective.total, rel=1e-12)


def test_sign_change_inside_a_slot_is_priced_per_step(opt):
    """One slot at 0 kW mean, +-10 kW swings: 5 kW mean import, paid as such, and a demand peak
    of the mean *import* (5 kW), not of the mean power (0 kW)."""
    problem = opt.build_problem(
        price=[0.3], load=[10.0], pv=[10.0], slot_s=900, export_price=np.array([0.1])
    )
    problem = replace(
        problem,
        weights=ObjectiveWeights(demand_charge_per_kw=2.0),
        intra_slot=IntraSlot([[10.0, -10.0]], [[0.3, 0.3]], [[0.1, 0.1]], [[0.0, 0.0]]),
    )
    result = offline_optimal(problem)
    terms = result.objective
    assert terms.energy_cost == pytest.approx(0.3 * 10.0 * 0.125)
    assert terms.export_revenue == pytest.approx(0.1 * 10.0 * 0.125)
    assert terms.demand_charge == pytest.approx(2.0 * 5.0)
    assert result.schedule["slot_cost"].iloc[0] == pytest.approx(0.375 - 0.125)


def test_limits_hold_at_every_step(opt):
    """A slot whose mean is inside the import limit but whose steps are not: the step LP curtails
    nothing it need not, and charges no limit penalty it can avoid by shifting a battery."""
    rng = np.random.default_rng(3)
    problem = opt.random_problem(rng, n_slots=8, n_ev=0, battery=True, slot_s=900)
    limit = float(problem.load_kw.max()) + 5.0
    problem = replace(problem, import_max_kw=limit, intra_slot=_intra(problem, rng, 12.0))
    result = offline_optimal(problem)
    steps = problem.step_power_kw(site_power_kw(problem, result.plan))
    excess = np.maximum(steps - limit, 0.0).sum() * problem.dt_h / N_STEPS
    assert result.objective.import_excess_kwh == pytest.approx(excess, abs=1e-9)
    # The battery can always cover the overshoot here (it holds energy and 8 slots are short).
    assert result.objective.import_excess_kwh == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"deviation_kw": [[1.0, 0.0]]}, "averages"),
        ({"price_per_kwh": [[0.2, 0.2, 0.2]]}, "has shape"),
        ({"export_price_per_kwh": [[0.1, 0.5]]}, "cap it at the import price"),
        ({"carbon_g_per_kwh": [[-1.0, 0.0]]}, ">= 0"),
        ({"price_per_kwh": [[np.nan, 0.2]]}, "non-finite"),
    ],
)
def test_bad_intra_slot_is_rejected(kwargs, message):
    base = {
        "deviation_kw": [[1.0, -1.0]],
        "price_per_kwh": [[0.2, 0.2]],
        "export_price_per_kwh": [[0.1, 0.1]],
        "carbon_g_per_kwh": [[0.0, 0.0]],
    }
    with pytest.raises(OptimizationError, match=message):
        IntraSlot(**{**base, **kwargs})


def test_intra_slot_must_cover_the_horizon(opt):
    problem = opt.build_problem(price=[0.2, 0.2], slot_s=900)
    intra = IntraSlot([[1.0, -1.0]], [[0.2, 0.2]], [[0.1, 0.1]], [[0.0, 0.0]])
    with pytest.raises(OptimizationError, match="covers 1 slots; the problem has 2"):
        replace(problem, intra_slot=intra)
