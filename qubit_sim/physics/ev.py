"""EV charging: a CC-CV curve with a taper linear in SOC, and the charger's conversion loss.

Up to the knee SOC the battery accepts its full power (constant current); above it the
acceptance falls linearly to zero at SOC 1 (the constant-voltage phase, linearised so that an LP
can model it as ``p <= p_max * (1 - soc) / (1 - knee_soc)``)::

    p_accept(soc) = p_max_kw                                    soc <= knee_soc
                  = p_max_kw * (1 - soc) / (1 - knee_soc)       knee_soc < soc <= 1
                  = 0                                           soc >= 1

Powers on the EV side are into the battery and never negative; the charger draws
``p_ev / efficiency`` from the grid (load convention: positive).

All arguments broadcast against each other (arrays over charging points, or scalars).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["EvStep", "charger_grid_power_kw", "ev_charge_step", "ev_max_power_kw"]

_S_PER_H = 3600.0


class EvStep(NamedTuple):
    """Result of :func:`ev_charge_step`, one array per quantity over EVs.

    Attributes:
        p_kw: Power into the EV battery during the step, >= 0 [kW].
        soc: State of charge at the end of the step [0..1].
        e_needed_kwh: Energy still wanted after the step, >= 0 [kWh].
        e_kwh: Energy delivered into the battery during the step, ``p_kw * dt`` [kWh].
    """

    p_kw: np.ndarray
    soc: np.ndarray
    e_needed_kwh: np.ndarray
    e_kwh: np.ndarray


def ev_max_power_kw(soc: ArrayLike, p_max_kw: ArrayLike, knee_soc: ArrayLike) -> np.ndarray:
    """Power the EV battery accepts at ``soc`` [kW]: flat to the knee, then linear to 0 at SOC 1.

    Args:
        soc: State of charge [0..1].
        p_max_kw: Maximum charging power of the vehicle (CC phase) [kW].
        knee_soc: SOC where the taper starts, in [0, 1).

    Returns:
        Accepted power [kW], in ``[0, p_max_kw]``, non-increasing in ``soc``.
    """
    fraction = np.minimum(np.maximum(np.subtract(1.0, soc), 0.0) / np.subtract(1.0, knee_soc), 1.0)
    return np.multiply(p_max_kw, fraction)


def ev_charge_step(
    soc: ArrayLike,
    e_needed_kwh: ArrayLike,
    capacity_kwh: ArrayLike,
    p_limit_kw: ArrayLike,
    p_max_kw: ArrayLike,
    knee_soc: ArrayLike,
    dt_s: float,
) -> EvStep:
    """Charge EVs for one step of ``dt_s`` seconds.

    The power held over the step is the smallest of: the charger/controller limit, the taper at
    the start-of-step SOC, the power that would exactly deliver the remaining need, and the power
    that would exactly fill the battery. So an EV never receives more than it needs and never
    exceeds SOC 1.

    Args:
        soc: State of charge at the start of the step [0..1].
        e_needed_kwh: Energy still wanted [kWh]; negative values count as 0.
        capacity_kwh: Battery capacity [kWh].
        p_limit_kw: Charger or controller limit [kW]; NaN or inf mean no limit; negative counts
            as 0.
        p_max_kw: Maximum charging power of the vehicle (CC phase) [kW].
        knee_soc: SOC where the taper starts, in [0, 1).
        dt_s: Step length [s], > 0.

    Returns:
        :class:`EvStep` with power, new SOC, remaining need and delivered energy.
    """
    dt_h = dt_s / _S_PER_H
    room_kwh = np.maximum(np.subtract(1.0, soc), 0.0) * capacity_kwh
    want_kwh = np.minimum(np.maximum(e_needed_kwh, 0.0), room_kwh)
    # fmin ignores NaN, so an unset limit (NaN) falls through to the physical limits.
    p_kw = np.fmin(p_limit_kw, ev_max_power_kw(soc, p_max_kw, knee_soc))
    p_kw = np.maximum(np.minimum(p_kw, want_kwh / dt_h), 0.0)
    e_kwh = p_kw * dt_h
    # Rounding guards: a full battery lands on exactly 1, a met need on exactly 0.
    soc_new = np.minimum(soc + e_kwh / capacity_kwh, np.maximum(soc, 1.0))
    e_left = np.maximum(np.subtract(e_needed_kwh, e_kwh), 0.0)
    return EvStep(p_kw, soc_new, e_left, e_kwh)


def charger_grid_power_kw(p_ev_kw: ArrayLike, efficiency: ArrayLike) -> np.ndarray:
    """Grid-side power of a charger delivering ``p_ev_kw`` into the EV [kW].

    Args:
        p_ev_kw: Power into the EV battery [kW].
        efficiency: Charger conversion efficiency (0, 1]; AC chargers ~0.95-0.99, DC ~0.93-0.96.

    Returns:
        Power drawn from the grid [kW], load convention (> 0).
    """
    return np.divide(p_ev_kw, efficiency)
