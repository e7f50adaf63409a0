"""Units and the one sign convention of qubit-sim.

* Power in kW, energy in kWh, state of charge as a fraction 0..1, money in the scenario's currency,
  carbon intensity in gCO2/kWh, emissions in kg CO2.
* **Load convention at the site bus**: ``p_kw > 0`` draws from the grid, ``p_kw < 0`` injects.
  PV is negative, a charging battery positive, a discharging battery negative.
* Simulation time is an integer number of seconds since the scenario start. Wall-clock timestamps
  are UTC and derived from the scenario start; no model reads the wall clock.
"""

from __future__ import annotations

__all__ = [
    "SECONDS_PER_HOUR",
    "kw_to_mw",
    "kwh",
    "mw_to_kw",
    "w_to_kw",
    "kw_to_w",
]

SECONDS_PER_HOUR = 3600.0


def kwh(p_kw: float, dt_s: float) -> float:
    """Energy [kWh] of a constant power ``p_kw`` [kW] held for ``dt_s`` [s]."""
    return p_kw * dt_s / SECONDS_PER_HOUR


def kw_to_mw(p_kw: float) -> float:
    """kW -> MW."""
    return p_kw * 1e-3


def mw_to_kw(p_mw: float) -> float:
    """MW -> kW."""
    return p_mw * 1e3


def w_to_kw(p_w: float) -> float:
    """W -> kW."""
    return p_w * 1e-3


def kw_to_w(p_kw: float) -> float:
    """kW -> W."""
    return p_kw * 1e3
