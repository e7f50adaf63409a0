"""L3 optimisation benchmark: MPC re-solve and greedy scheduling at 50 EVs x 96 slots + battery.

A rolling day is replayed for ``--cycles`` control cycles: every cycle the horizon moves one
quarter-hour, forecasts get new noise, departed sessions are replaced by new arrivals, needs and
the battery state change. For each cycle we time

* the MPC re-solve (one :class:`MpcOptimizer`, DPP parameters refreshed, HiGHS),
* the baseline it replaces: a fresh model build + solve of the same cycle (every 3rd cycle),
* the greedy EV scheduler and the full Qubit baseline (greedy + two-pass peak shaving),

and print medians, ratios against the in-run baseline, and the targets (MPC < 50 ms, greedy
< 5 ms). A week-long offline optimum (672 slots, 300 sessions) is timed once.

Run: ``.venv/bin/python benchmarks/bench_optimize.py [--cycles 30] [--seed 0]``
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import replace

import numpy as np
import pandas as pd

from qubit_sim.stack.optimize import (
    BatteryParams,
    EvSessions,
    MpcOptimizer,
    ObjectiveWeights,
    SiteProblem,
    evaluate_plan,
    greedy_schedule,
    offline_optimal,
    qubit_baseline_plan,
)

SLOT_S = 900
HORIZON = 96
N_EV = 50
MPC_TARGET_MS = 50.0
GREEDY_TARGET_MS = 5.0


def _profiles(rng: np.random.Generator, n_slots: int) -> dict[str, np.ndarray]:
    hours = (np.arange(n_slots) * SLOT_S / 3600.0) % 24
    price = np.where((hours >= 7) & (hours < 23), 0.25, 0.08) + rng.uniform(0, 0.03, n_slots)
    return {
        "price": price,
        "carbon": 250 + 120 * np.cos(2 * np.pi * (hours - 19) / 24),
        "load": 60 + 40 * np.sin(np.pi * hours / 24) ** 2,
        "pv": np.maximum(0.0, 90 * np.sin(np.pi * (hours - 6) / 12)),
    }


def _new_sessions(rng: np.random.Generator, n: int, first_slot: int) -> dict[str, np.ndarray]:
    arrival = first_slot + rng.integers(0, 40, n)
    return {
        "arrival_slot": arrival,
        "departure_slot": arrival + rng.integers(12, 56, n),
        "e_needed_kwh": rng.uniform(5, 45, n),
        "soc0": rng.uniform(0.1, 0.6, n),
        "capacity_kwh": rng.uniform(40, 90, n),
        "p_max_kw": rng.choice([7.4, 11.0, 22.0], n),
        "knee_soc": rng.uniform(0.75, 0.9, n),
        "charger_efficiency": rng.uniform(0.9, 0.96, n),
        "priority": rng.integers(1, 4, n),
    }


def rolling_cycles(seed: int, cycles: int) -> list[SiteProblem]:
    """``cycles`` consecutive MPC problems of one site."""
    rng = np.random.default_rng(seed)
    total = HORIZON + cycles
    base = _profiles(rng, total)
    start = pd.Timestamp("2025-01-15T00:00:00Z")
    sessions = _new_sessions(rng, N_EV, -10)
    ids = np.array([f"ev_{i:03d}" for i in range(N_EV)], dtype=object)
    next_id = N_EV
    soc = 0.5
    problems = []
    for cycle in range(cycles):
        window = slice(cycle, cycle + HORIZON)
        # Sessions that have left are replaced by new ones arriving within the horizon.
        gone = sessions["departure_slot"] <= cycle
        if gone.any():
            fresh = _new_sessions(rng, int(gone.sum()), cycle)
            for key, values in fresh.items():
                sessions[key][gone] = values
            ids[gone] = [f"ev_{next_id + k:03d}" for k in range(int(gone.sum()))]
            next_id += int(gone.sum())
        charging = (sessions["arrival_slot"] <= cycle) & (rng.random(N_EV) < 0.5)
        sessions["e_needed_kwh"][charging] = np.maximum(
            sessions["e_needed_kwh"][charging] - rng.uniform(0, 3, int(charging.sum())), 0.0
        )
        soc = float(np.clip(soc + rng.normal(0, 0.03), 0.1, 0.9))
        noise = rng.normal(1.0, 0.08, HORIZON)
        evs = EvSessions(
            ev_ids=tuple(ids),
            arrival_slot=sessions["arrival_slot"] - cycle,
            departure_slot=sessions["departure_slot"] - cycle,
            **{k: v for k, v in sessions.items() if k not in ("arrival_slot", "departure_slot")},
        )
        problems.append(
            SiteProblem(
                slot_s=SLOT_S,
                times_utc=pd.date_range(
                    start + pd.Timedelta(seconds=SLOT_S * cycle),
                    periods=HORIZON,
                    freq=f"{SLOT_S}s",
                ),
                price_per_kwh=base["price"][window],
                export_price_per_kwh=0.4 * base["price"][window],
                carbon_g_per_kwh=base["carbon"][window],
                load_kw=base["load"][window] * noise,
                pv_kw=base["pv"][window] * rng.uniform(0.6, 1.0),
                import_max_kw=250.0,
                export_max_kw=100.0,
                evs=evs,
                battery=BatteryParams(
                    200.0, 50.0, 50.0, 0.95, 0.95, 0.1, 0.9, soc, degradation_cost_per_kwh=0.02
                ),
                weights=ObjectiveWeights(
                    carbon_weight=5e-5, demand_charge_per_kw=8.0, unmet_penalty_per_kwh=1.0
                ),
                peak_so_far_kw=120.0,
            )
        )
    return problems


def week_problem(seed: int, n_sessions: int = 300) -> SiteProblem:
    """672 quarter-hour slots with ``n_sessions`` sessions of 3-14 h."""
    rng = np.random.default_rng(seed + 1)
    n_slots = 672
    base = _profiles(rng, n_slots)
    fields = _new_sessions(rng, n_sessions, 0)
    fields["arrival_slot"] = rng.integers(0, n_slots - 12, n_sessions)
    fields["departure_slot"] = fields["arrival_slot"] + rng.integers(12, 56, n_sessions)
    evs = EvSessions(ev_ids=tuple(f"ev_{i:03d}" for i in range(n_sessions)), **fields)
    problem = rolling_cycles(seed, 1)[0]
    return replace(
        problem,
        times_utc=pd.date_range("2025-01-13T00:00:00Z", periods=n_slots, freq=f"{SLOT_S}s"),
        price_per_kwh=base["price"],
        export_price_per_kwh=0.4 * base["price"],
        carbon_g_per_kwh=base["carbon"],
        load_kw=base["load"],
        pv_kw=base["pv"],
        evs=evs,
    )


def _ms(seconds: list[float]) -> float:
    return 1e3 * statistics.median(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    problems = rolling_cycles(args.seed, args.cycles + 1)
    mpc = MpcOptimizer(HORIZON, N_EV, has_battery=True)
    mpc.solve(problems[0])  # the first solve compiles the DPP program
    resolve_s, solver_s, fresh_s, greedy_s, stack_s = [], [], [], [], []
    mpc_obj, stack_obj = [], []
    fallbacks = 0
    for k, problem in enumerate(problems[1:]):
        t0 = time.perf_counter()
        result = mpc.solve(problem)
        resolve_s.append(time.perf_counter() - t0)
        solver_s.append(result.solve_time_s)
        fallbacks += result.solver != "HIGHS"
        mpc_obj.append(result.objective.total)
        if k % 3 == 0:
            t0 = time.perf_counter()
            MpcOptimizer(HORIZON, N_EV, has_battery=True).solve(problem)
            fresh_s.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        greedy_schedule(problem)
        greedy_s.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        plan = qubit_baseline_plan(problem)
        stack_s.append(time.perf_counter() - t0)
        stack_obj.append(evaluate_plan(problem, plan).total)

    week = week_problem(args.seed)
    t0 = time.perf_counter()
    week_result = offline_optimal(week)
    week_s = time.perf_counter() - t0

    mpc_ms, fresh_ms, greedy_ms = _ms(resolve_s), _ms(fresh_s), _ms(greedy_s)
    print(
        f"L3 optimisation benchmark: {N_EV} EVs x {HORIZON} slots + battery, {args.cycles} cycles"
    )
    print(
        f"  MPC re-solve (DPP, HiGHS)      median {mpc_ms:8.2f} ms   target < {MPC_TARGET_MS:.0f} ms"
        f"   {'met' if mpc_ms < MPC_TARGET_MS else 'MISSED'}"
    )
    print(
        f"    of which cvxpy solve call    median {_ms(solver_s):8.2f} ms   fallbacks {fallbacks}"
    )
    print(
        f"  baseline: fresh build + solve  median {fresh_ms:8.2f} ms   ratio {fresh_ms / mpc_ms:5.2f}x"
    )
    print(
        f"  greedy EV scheduler            median {greedy_ms:8.2f} ms   target < {GREEDY_TARGET_MS:.0f} ms"
        f"   {'met' if greedy_ms < GREEDY_TARGET_MS else 'MISSED'}"
    )
    print(f"  greedy + peak shaving          median {_ms(stack_s):8.2f} ms")
    print(f"  MPC / greedy time ratio        {mpc_ms / greedy_ms:8.1f}x")
    gap = statistics.mean(s - m for s, m in zip(stack_obj, mpc_obj, strict=True))
    print(
        f"  objective, mean per cycle      MPC {statistics.mean(mpc_obj):10.2f}   "
        f"greedy+peak shaving {statistics.mean(stack_obj):10.2f}   (gap {gap:.2f})"
    )
    print(
        f"  offline week (672 slots, {week.evs.n} sessions): {week_s:6.2f} s total, "
        f"solve {week_result.solve_time_s:6.2f} s, status {week_result.status}"
    )


if __name__ == "__main__":
    main()
