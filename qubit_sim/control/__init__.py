"""Controllers: the interface, the registry and the built-ins."""

from qubit_sim.control.base import Controller, Observation, Oracle, Setpoints, SiteInfo
from qubit_sim.control.registry import (
    ControllerRegistry,
    controller_names,
    default_registry,
    make_controller,
)

__all__ = [
    "Controller",
    "ControllerRegistry",
    "Observation",
    "Oracle",
    "Setpoints",
    "SiteInfo",
    "controller_names",
    "default_registry",
    "make_controller",
]
