"""Agent-based EV population (mesa): drivers, behaviour presets and charging sessions.

Names are imported on first use, so importing the package does not load mesa.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = [
    "Behaviour",
    "DayPattern",
    "Driver",
    "EvPopulation",
    "SessionTable",
    "VehicleType",
    "available_behaviours",
    "behaviour_preset",
    "default_vehicle_types",
]

if TYPE_CHECKING:  # pragma: no cover
    from qubit_sim.agents.behaviour import (
        Behaviour,
        DayPattern,
        VehicleType,
        available_behaviours,
        behaviour_preset,
        default_vehicle_types,
    )
    from qubit_sim.agents.population import Driver, EvPopulation
    from qubit_sim.agents.sessions import SessionTable

_MODULE_OF = {
    "Behaviour": "behaviour",
    "DayPattern": "behaviour",
    "VehicleType": "behaviour",
    "available_behaviours": "behaviour",
    "behaviour_preset": "behaviour",
    "default_vehicle_types": "behaviour",
    "Driver": "population",
    "EvPopulation": "population",
    "SessionTable": "sessions",
}


def __getattr__(name: str) -> Any:
    if name in _MODULE_OF:
        module = importlib.import_module(f"qubit_sim.agents.{_MODULE_OF[name]}")
        return getattr(module, name)
    raise AttributeError(f"module 'qubit_sim.agents' has no attribute {name!r}")
