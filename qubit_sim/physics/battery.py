"""Stationary battery: one vectorised step of an energy-reservoir model.

The battery is a lossy energy store seen from its AC terminals. ``p_kw`` follows the load convention
of the site bus: ``p_kw > 0`` charges (draws from the grid), ``p_kw < 0`` discharges (injects).

Model, per device and step of ``dt_s`` seconds (``dt_h = dt_s / 3600``):

1. Self-discharge removes ``self_discharge_per_h * dt_h`` of the stored energy at the start of
   the step, but never takes the store below ``soc_min``: the floor stands for the battery
   management system holding the pack there, so the reported SOC never leaves the window.
2. The AC setpoint is clipped to the power limits and to what the SOC window allows after
   self-discharge (:func:`battery_limits_kw`).
3. One-way efficiencies: charging stores ``p * dt_h * eta_charge``; discharging removes
   ``|p| * dt_h / eta_discharge``.

Energy balance, exact up to floating-point rounding::

    (soc_new - soc) * capacity_kwh == p_kw * dt_h - loss_kwh

``loss_kwh`` is conversion loss plus self-discharge; ``throughput_kwh = |p_kw| * dt_h`` (AC side).

All arguments broadcast against each other (arrays over devices, or scalars). Setpoints must be
finite and ``soc`` should start inside ``[soc_min, soc_max]``; a SOC outside the window is only
ever moved towards it.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["BatteryStep", "battery_limits_kw", "battery_step"]

_S_PER_H = 3600.0


class BatteryStep(NamedTuple):
    """Result of :func:`battery_step`, one array per quantity over devices.

    Attributes:
        p_kw: Actual AC power after clipping [kW]; > 0 charging, < 0 discharging.
        soc: State of charge at the end of the step [0..1].
        loss_kwh: Conversion losses plus self-discharge during the step [kWh].
        throughput_kwh: AC energy through the terminals, ``|p_kw| * dt`` [kWh].
    """

    p_kw: np.ndarray
    soc: np.ndarray
    loss_kwh: np.ndarray
    throughput_kwh: np.ndarray


def _limits(
    soc: ArrayLike,
    dt_h: float,
    capacity_kwh: ArrayLike,
    p_charge_max_kw: ArrayLike,
    p_discharge_max_kw: ArrayLike,
    eta_charge: ArrayLike,
    eta_discharge: ArrayLike,
    soc_min: ArrayLike,
    soc_max: ArrayLike,
    self_discharge_per_h: ArrayLike,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Self-discharge [kWh], stored energy after it [kWh], and the AC power range [kW]."""
    e_kwh = np.multiply(soc, capacity_kwh)
    e_min_kwh = np.multiply(soc_min, capacity_kwh)
    above_floor = np.maximum(e_kwh - e_min_kwh, 0.0)
    # Clamped at the floor so self-discharge alone can never push the SOC below soc_min.
    sd_kwh = np.minimum(np.multiply(self_discharge_per_h, dt_h) * e_kwh, above_floor)
    e_kwh = e_kwh - sd_kwh
    room_up = np.maximum(np.multiply(soc_max, capacity_kwh) - e_kwh, 0.0)
    room_down = above_floor - sd_kwh
    p_max = np.minimum(p_charge_max_kw, room_up / np.multiply(eta_charge, dt_h))
    p_min = -np.minimum(p_discharge_max_kw, room_down * np.divide(eta_discharge, dt_h))
    return sd_kwh, e_kwh, p_min, p_max


def battery_limits_kw(
    soc: ArrayLike,
    dt_s: float,
    capacity_kwh: ArrayLike,
    p_charge_max_kw: ArrayLike,
    p_discharge_max_kw: ArrayLike,
    eta_charge: ArrayLike,
    eta_discharge: ArrayLike,
    soc_min: ArrayLike,
    soc_max: ArrayLike,
    self_discharge_per_h: ArrayLike = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Feasible AC power range of each battery for the coming step.

    Any setpoint in ``[p_min_kw, p_max_kw]`` is executed by :func:`battery_step` unchanged.

    Args:
        soc: State of charge at the start of the step [0..1].
        dt_s: Step length [s].
        capacity_kwh: Usable energy capacity at SOC 1 [kWh].
        p_charge_max_kw: Charge power limit, AC side, >= 0 [kW].
        p_discharge_max_kw: Discharge power limit, AC side, as a magnitude >= 0 [kW].
        eta_charge: One-way charging efficiency (0, 1].
        eta_discharge: One-way discharging efficiency (0, 1].
        soc_min: Lower bound of the SOC window [0..1].
        soc_max: Upper bound of the SOC window [0..1].
        self_discharge_per_h: Fraction of stored energy lost per hour [1/h].

    Returns:
        ``(p_min_kw, p_max_kw)``: most negative (discharge) and most positive (charge) AC power
        [kW]; ``p_min_kw <= 0 <= p_max_kw``.
    """
    _, _, p_min, p_max = _limits(
        soc,
        dt_s / _S_PER_H,
        capacity_kwh,
        p_charge_max_kw,
        p_discharge_max_kw,
        eta_charge,
        eta_discharge,
        soc_min,
        soc_max,
        self_discharge_per_h,
    )
    return p_min, p_max


def battery_step(
    soc: ArrayLike,
    p_set_kw: ArrayLike,
    dt_s: float,
    capacity_kwh: ArrayLike,
    p_charge_max_kw: ArrayLike,
    p_discharge_max_kw: ArrayLike,
    eta_charge: ArrayLike,
    eta_discharge: ArrayLike,
    soc_min: ArrayLike,
    soc_max: ArrayLike,
    self_discharge_per_h: ArrayLike,
) -> BatteryStep:
    """Advance batteries by one step of ``dt_s`` seconds at AC setpoint ``p_set_kw``.

    Args:
        soc: State of charge at the start of the step [0..1].
        p_set_kw: Requested AC power [kW], load convention (> 0 charge, < 0 discharge). Clipped to
            the feasible range of :func:`battery_limits_kw`.
        dt_s: Step length [s].
        capacity_kwh: Usable energy capacity at SOC 1 [kWh].
        p_charge_max_kw: Charge power limit, AC side, >= 0 [kW].
        p_discharge_max_kw: Discharge power limit, AC side, as a magnitude >= 0 [kW].
        eta_charge: One-way charging efficiency (0, 1].
        eta_discharge: One-way discharging efficiency (0, 1].
        soc_min: Lower bound of the SOC window [0..1].
        soc_max: Upper bound of the SOC window [0..1].
        self_discharge_per_h: Fraction of stored energy lost per hour [1/h].

    Returns:
        :class:`BatteryStep` with the executed power, new SOC, losses and throughput.
    """
    dt_h = dt_s / _S_PER_H
    sd_kwh, e_kwh, p_min, p_max = _limits(
        soc,
        dt_h,
        capacity_kwh,
        p_charge_max_kw,
        p_discharge_max_kw,
        eta_charge,
        eta_discharge,
        soc_min,
        soc_max,
        self_discharge_per_h,
    )
    p_kw = np.minimum(np.maximum(p_set_kw, p_min), p_max)

    ac_kwh = p_kw * dt_h
    # min() picks ac*eta_c when charging (ac > 0) and ac/eta_d when discharging (ac < 0): one
    # branch-free expression for both directions.
    stored_kwh = np.minimum(ac_kwh * eta_charge, ac_kwh / eta_discharge)
    soc_new = (e_kwh + stored_kwh) / capacity_kwh
    # Only absorbs rounding at the window edges (~1e-16); the bounds include the start SOC so a
    # battery starting outside the window is never moved by it.
    soc_new = np.minimum(np.maximum(soc_new, np.minimum(soc_min, soc)), np.maximum(soc_max, soc))
    loss_kwh = (ac_kwh - stored_kwh) + sd_kwh
    return BatteryStep(p_kw, soc_new, loss_kwh, np.abs(ac_kwh))
