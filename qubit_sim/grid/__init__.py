"""The feeder: network models, their background profiles and a fast AC power flow.

This is the only package of qubit-sim that imports pandapower and simbench (lazily, on first use).

* :func:`load_network` / :func:`resolve_bus` / :func:`network_buses` - SimBench or pandapower
  feeders by name, buses by index or name.
* :func:`background_profiles` - the feeder's own loads and PV over the scenario's time steps.
* :class:`FastPowerFlow` - AC Newton-Raphson that builds the model once and re-solves each step;
  :func:`runpp_reference` computes the same step with a plain ``pandapower.runpp``.
"""

from __future__ import annotations

from qubit_sim.grid.network import known_specs, load_network, network_buses, resolve_bus
from qubit_sim.grid.powerflow import FastPowerFlow
from qubit_sim.grid.profiles import (
    PROFILE_CLOCK_UTC_OFFSET_H,
    PROFILE_STEP_S,
    PROFILE_YEAR,
    BackgroundProfiles,
    background_profiles,
    profile_row_index,
)
from qubit_sim.grid.reference import RUNPP_OPTIONS, PowerFlowResult, runpp_reference

__all__ = [
    "PROFILE_CLOCK_UTC_OFFSET_H",
    "PROFILE_STEP_S",
    "PROFILE_YEAR",
    "RUNPP_OPTIONS",
    "BackgroundProfiles",
    "FastPowerFlow",
    "PowerFlowResult",
    "background_profiles",
    "known_specs",
    "load_network",
    "network_buses",
    "profile_row_index",
    "resolve_bus",
    "runpp_reference",
]
