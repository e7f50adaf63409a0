"""Shared builders and an independent physics re-simulation for the L3 optimiser tests."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from qubit_sim.stack.optimize import (
    BatteryParams,
    EvSessions,
    ObjectiveWeights,
    Plan,
    SiteProblem,
)

TOL = 1e-6


def _times(n_slots: int, slot_s: int) -> pd.DatetimeIndex:
    return pd.date_range("2025-01-15", periods=n_slots, freq=pd.Timedelta(seconds=slot_s), tz="UTC")


def build_problem(
    *,
    price: np.ndarray,
    load: np.ndarray | None = None,
    pv: np.ndarray | None = None,
    slot_s: int = 3600,
    import_max_kw: float = 1000.0,
    export_max_kw: float = 1000.0,
    evs: EvSessions | None = None,
    battery: BatteryParams | None = None,
    weights: ObjectiveWeights | None = None,
    export_price: np.ndarray | None = None,
    carbon: np.ndarray | None = None,
    peak_so_far_kw: float = 0.0,
    pv_curtailment_allowed: bool = True,
) -> SiteProblem:
    price = np.asarray(price, dtype=float)
    n = price.shape[0]
    return SiteProblem(
        slot_s=slot_s,
        times_utc=_times(n, slot_s),
        price_per_kwh=price,
        export_price_per_kwh=np.zeros(n) if export_price is None else export_price,
        carbon_g_per_kwh=np.zeros(n) if carbon is None else carbon,
        load_kw=np.zeros(n) if load is None else load,
        pv_kw=np.zeros(n) if pv is None else pv,
        import_max_kw=import_max_kw,
        export_max_kw=export_max_kw,
        evs=EvSessions.empty() if evs is None else evs,
        battery=battery,
        weights=ObjectiveWeights() if weights is None else weights,
        peak_so_far_kw=peak_so_far_kw,
        pv_curtailment_allowed=pv_curtailment_allowed,
    )


def random_problem(
    rng: np.random.Generator,
    n_slots: int = 24,
    n_ev: int = 6,
    battery: bool = True,
    slot_s: int = 3600,
    import_max_kw: float | None = None,
) -> SiteProblem:
    """A small random site with TOU prices, PV, EVs with tapers and a battery."""
    hours = (np.arange(n_slots) * slot_s / 3600.0) % 24
    price = np.where((hours >= 7) & (hours < 23), 0.25, 0.08) + rng.uniform(0, 0.05, n_slots)
    load = 20 + 15 * np.sin(np.pi * hours / 24) ** 2 + rng.uniform(0, 5, n_slots)
    pv = np.maximum(0, 40 * np.sin(np.pi * (hours - 6) / 12)) * rng.uniform(0.3, 1.2)
    arrival = rng.integers(-2, max(n_slots // 2, 1), n_ev)
    departure = arrival + rng.integers(1, n_slots + 2, n_ev)
    evs = EvSessions(
        ev_ids=tuple(f"ev_{i:03d}" for i in range(n_ev)),
        arrival_slot=arrival,
        departure_slot=departure,
        e_needed_kwh=rng.uniform(2, 45, n_ev),
        soc0=rng.uniform(0.05, 0.7, n_ev),
        capacity_kwh=rng.uniform(30, 80, n_ev),
        p_max_kw=rng.choice([3.7, 7.4, 11.0, 22.0], n_ev),
        knee_soc=rng.uniform(0.6, 1.0, n_ev),
        charger_efficiency=rng.uniform(0.85, 1.0, n_ev),
        priority=rng.integers(1, 4, n_ev),
    )
    bat = None
    if battery:
        bat = BatteryParams(
            capacity_kwh=float(rng.uniform(40, 150)),
            p_charge_max_kw=float(rng.uniform(10, 40)),
            p_discharge_max_kw=float(rng.uniform(10, 40)),
            eta_charge=float(rng.uniform(0.9, 0.98)),
            eta_discharge=float(rng.uniform(0.9, 0.98)),
            soc_min=0.1,
            soc_max=0.9,
            soc0=float(rng.uniform(0.1, 0.9)),
            degradation_cost_per_kwh=float(rng.uniform(0, 0.03)),
        )
    return SiteProblem(
        slot_s=slot_s,
        times_utc=_times(n_slots, slot_s),
        price_per_kwh=price,
        export_price_per_kwh=price * rng.uniform(0, 0.8),
        carbon_g_per_kwh=rng.uniform(100, 400, n_slots),
        load_kw=load,
        pv_kw=pv,
        import_max_kw=float(rng.uniform(60, 120)) if import_max_kw is None else import_max_kw,
        export_max_kw=float(rng.uniform(10, 40)),
        evs=evs,
        battery=bat,
        weights=ObjectiveWeights(
            cost_weight=1.0,
            carbon_weight=float(rng.uniform(0, 2e-4)),
            demand_charge_per_kw=float(rng.uniform(0, 5)),
            unmet_penalty_per_kwh=float(rng.uniform(0.5, 3)),
        ),
        peak_so_far_kw=float(rng.uniform(0, 50)),
        pv_curtailment_allowed=bool(rng.integers(0, 2)),
    )


def resimulate(problem: SiteProblem, plan: Plan) -> SimpleNamespace:
    """Apply the stated physics with plain numpy, independently of the package."""
    dt = problem.slot_s / 3600.0
    evs = problem.evs
    ev_energy = np.cumsum(plan.p_ev_kw * dt, axis=1)
    soc_end = evs.soc0[:, None] + ev_energy / evs.capacity_kwh[:, None]
    site = (
        problem.load_kw
        + (plan.p_ev_kw / evs.charger_efficiency[:, None]).sum(axis=0)
        + plan.p_charge_kw
        - plan.p_discharge_kw
        - plan.pv_used_kw
    )
    battery_e = np.zeros(problem.n_slots)
    if problem.battery is not None:
        b = problem.battery
        e = b.soc0 * b.capacity_kwh
        for t in range(problem.n_slots):
            e = (
                e
                + plan.p_charge_kw[t] * dt * b.eta_charge
                - plan.p_discharge_kw[t] * dt / b.eta_discharge
            )
            battery_e[t] = e
    return SimpleNamespace(
        site_kw=site,
        soc_end=soc_end,
        delivered_kwh=ev_energy[:, -1] if problem.n_slots else np.zeros(evs.n),
        battery_e_kwh=battery_e,
    )


def assert_feasible(problem: SiteProblem, plan: Plan, tol: float = TOL) -> SimpleNamespace:
    """Every hard limit of the stated physics holds to ``tol``; returns the re-simulation."""
    sim = resimulate(problem, plan)
    evs = problem.evs
    avail = np.zeros((evs.n, problem.n_slots), dtype=bool)
    for i in range(evs.n):
        avail[
            i, max(evs.arrival_slot[i], 0) : max(min(evs.departure_slot[i], problem.n_slots), 0)
        ] = True
    p = plan.p_ev_kw
    assert np.all(p >= -tol), "negative EV power"
    assert np.all(np.abs(p[~avail]) <= tol), "EV charges while absent"
    assert np.all(p <= evs.p_max_kw[:, None] + tol), "EV above p_max"
    # Linear CC-CV taper at the end-of-slot SOC.
    taper = p * (1 - evs.knee_soc[:, None]) - evs.p_max_kw[:, None] * (1 - sim.soc_end)
    assert np.all(taper <= tol), f"taper violated by {taper.max()}"
    assert np.all(sim.soc_end <= 1 + tol), "EV SOC above 1"
    assert np.all(sim.delivered_kwh <= evs.e_needed_kwh + tol), "EV overcharged"
    assert np.all(plan.pv_used_kw >= -tol) and np.all(plan.pv_used_kw <= problem.pv_kw + tol)
    if not problem.pv_curtailment_allowed:
        np.testing.assert_allclose(plan.pv_used_kw, problem.pv_kw, atol=tol)
    if problem.battery is None:
        assert np.all(np.abs(plan.p_charge_kw) <= tol) and np.all(
            np.abs(plan.p_discharge_kw) <= tol
        )
    else:
        b = problem.battery
        e0 = b.soc0 * b.capacity_kwh
        lo, hi = min(b.soc_min * b.capacity_kwh, e0), max(b.soc_max * b.capacity_kwh, e0)
        assert np.all(plan.p_charge_kw >= -tol) and np.all(
            plan.p_charge_kw <= b.p_charge_max_kw + tol
        )
        assert np.all(plan.p_discharge_kw >= -tol)
        assert np.all(plan.p_discharge_kw <= b.p_discharge_max_kw + tol)
        assert np.all(sim.battery_e_kwh >= lo - tol), f"SOC below min: {sim.battery_e_kwh.min()}"
        assert np.all(sim.battery_e_kwh <= hi + tol), f"SOC above max: {sim.battery_e_kwh.max()}"
    return sim


def rel_diff(a: float, b: float) -> float:
    """|a - b| relative to the larger of |a|, |b| and 1 (objective values near zero)."""
    return abs(a - b) / max(1.0, abs(a), abs(b))


@pytest.fixture(scope="session")
def opt() -> SimpleNamespace:
    """Test helpers: ``build_problem``, ``random_problem``, ``resimulate``, ``assert_feasible``,
    ``rel_diff``."""
    return SimpleNamespace(
        build_problem=build_problem,
        random_problem=random_problem,
        resimulate=resimulate,
        assert_feasible=assert_feasible,
        rel_diff=rel_diff,
        TOL=TOL,
    )
