"""qubit-sim: digital twin and co-simulation environment for energy sites.

Run a scenario from Python::

    import qubit_sim
    result = qubit_sim.run("scenarios/depot_overnight.yaml", seed=1)
    result.kpis["total_cost"]

Heavy dependencies (pandapower, pvlib, cvxpy, ...) are imported lazily, on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from qubit_sim.errors import (
    ControllerError,
    GridError,
    ProtocolError,
    QubitSimError,
    ScenarioError,
    SimulationError,
)

__version__ = "0.1.0"

__all__ = [
    "ControllerError",
    "GridError",
    "ProtocolError",
    "QubitSimError",
    "RunResult",
    "ScenarioError",
    "SimulationError",
    "__version__",
    "load_scenario",
    "run",
]

if TYPE_CHECKING:  # pragma: no cover
    from qubit_sim.core.results import RunResult
    from qubit_sim.scenario.loader import load_scenario
    from qubit_sim.scenario.runner import run

_LAZY = {
    "RunResult": ("qubit_sim.core.results", "RunResult"),
    "load_scenario": ("qubit_sim.scenario.loader", "load_scenario"),
    "run": ("qubit_sim.scenario.runner", "run"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module_name, attr = _LAZY[name]
        return getattr(importlib.import_module(module_name), attr)
    raise AttributeError(f"module 'qubit_sim' has no attribute {name!r}")
