"""L3 optimisation: the documented Qubit baselines and exact LP optimisers.

* :func:`greedy_schedule` - the Qubit greedy EV scheduler.
* :func:`peak_shaving` - the Qubit two-pass battery peak shaving; :func:`qubit_baseline_plan`
  chains both.
* :class:`MpcOptimizer` - the exact site LP, re-solved per cycle: assembled as sparse matrices for
  HiGHS (default), or the cvxpy model built once with DPP Parameters (reference and fallback).
* :func:`offline_optimal` - the same LP over the whole horizon with perfect foresight.

Demand charges are per billing period: a :class:`SiteProblem` with ``billing_period`` labels has one
peak per period the horizon touches.
* :func:`evaluate_plan` - the one objective every plan is scored with.

cvxpy is imported only when :class:`MpcOptimizer` or :func:`offline_optimal` is first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from qubit_sim.stack.optimize.greedy import GreedyResult, greedy_schedule
from qubit_sim.stack.optimize.peak_shaving import (
    PeakShavingResult,
    auto_peak_target_kw,
    peak_shaving,
    qubit_baseline_plan,
)
from qubit_sim.stack.optimize.plan import (
    ObjectiveTerms,
    OptimizationResult,
    Plan,
    evaluate_plan,
    schedule_frame,
    site_power_kw,
)
from qubit_sim.stack.optimize.problem import (
    BatteryParams,
    EvSessions,
    IntraSlot,
    LinearGridConstraint,
    ObjectiveWeights,
    OptimizationError,
    SiteProblem,
)

if TYPE_CHECKING:  # pragma: no cover
    from qubit_sim.stack.optimize.mpc import MpcOptimizer
    from qubit_sim.stack.optimize.offline import offline_optimal

__all__ = [
    "BatteryParams",
    "EvSessions",
    "GreedyResult",
    "IntraSlot",
    "LinearGridConstraint",
    "MpcOptimizer",
    "ObjectiveTerms",
    "ObjectiveWeights",
    "OptimizationError",
    "OptimizationResult",
    "PeakShavingResult",
    "Plan",
    "SiteProblem",
    "auto_peak_target_kw",
    "evaluate_plan",
    "greedy_schedule",
    "offline_optimal",
    "peak_shaving",
    "qubit_baseline_plan",
    "schedule_frame",
    "site_power_kw",
]

_LAZY = {
    "MpcOptimizer": ("qubit_sim.stack.optimize.mpc", "MpcOptimizer"),
    "offline_optimal": ("qubit_sim.stack.optimize.offline", "offline_optimal"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module_name, attr = _LAZY[name]
        return getattr(importlib.import_module(module_name), attr)
    raise AttributeError(f"module 'qubit_sim.stack.optimize' has no attribute {name!r}")
