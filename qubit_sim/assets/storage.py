"""Stationary batteries as struct-of-arrays."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["BatteryBank"]


class BatteryBank:
    """All batteries of a site. Power follows the load convention (+ charging) [kW]."""

    def __init__(
        self,
        ids: Sequence[str],
        capacity_kwh: np.ndarray,
        p_charge_max_kw: np.ndarray,
        p_discharge_max_kw: np.ndarray,
        eta_charge: np.ndarray,
        eta_discharge: np.ndarray,
        soc_min: np.ndarray,
        soc_max: np.ndarray,
        soc_initial: np.ndarray,
        self_discharge_per_h: np.ndarray,
    ) -> None:
        self.ids = tuple(ids)
        self.n = len(ids)
        as_float = lambda values: np.asarray(values, dtype=float)  # noqa: E731
        self.capacity_kwh = as_float(capacity_kwh)
        self.p_charge_max_kw = as_float(p_charge_max_kw)
        self.p_discharge_max_kw = as_float(p_discharge_max_kw)
        self.eta_charge = as_float(eta_charge)
        self.eta_discharge = as_float(eta_discharge)
        self.soc_min = as_float(soc_min)
        self.soc_max = as_float(soc_max)
        self.self_discharge_per_h = as_float(self_discharge_per_h)
        self.soc = as_float(soc_initial).copy()
        self.p_kw = np.zeros(self.n)
        self.p_total_kw = 0.0
        self._loss_kwh = np.zeros(self.n)
        self._throughput_kwh = np.zeros(self.n)
        self.e_charged_kwh = np.zeros(self.n)
        self.e_discharged_kwh = np.zeros(self.n)
        self._dt_s = -1.0
        self._const: tuple[np.ndarray, ...] = ()
        self._scalars: tuple[float, ...] = ()

    @property
    def loss_kwh(self) -> float:
        """Conversion and self-discharge losses so far [kWh]."""
        return float(self._loss_kwh.sum())

    @property
    def throughput_kwh(self) -> float:
        """AC energy charged plus discharged so far [kWh]."""
        return float(self._throughput_kwh.sum())

    def stored_kwh(self) -> float:
        return float((self.soc * self.capacity_kwh).sum())

    def limits(self, dt_s: float) -> tuple[np.ndarray, np.ndarray]:
        """Feasible power range this step (min, max) [kW], without self-discharge.

        As :func:`~qubit_sim.physics.battery.battery_limits_kw` with no self-discharge, bit for
        bit: with none, its self-discharge term is an exact zero, left out here.
        """
        e_min_kwh, _, e_max_kwh, eta_c_dt_h, eta_d_per_h = self._constants(dt_s)
        if self.n == 1:
            return self._limits_one()
        e_kwh = self.soc * self.capacity_kwh
        above_floor = np.maximum(e_kwh - e_min_kwh, 0.0)
        room_up = np.maximum(e_max_kwh - e_kwh, 0.0)
        p_max = np.minimum(self.p_charge_max_kw, room_up / eta_c_dt_h)
        p_min = -np.minimum(self.p_discharge_max_kw, above_floor * eta_d_per_h)
        return p_min, p_max

    def _constants(self, dt_s: float) -> tuple[np.ndarray, ...]:
        """Per-step constants of :func:`~qubit_sim.physics.battery.battery_step` for ``dt_s``."""
        if self._dt_s != dt_s:
            dt_h = dt_s / 3600.0
            self._dt_s = dt_s
            self._const = (
                np.multiply(self.soc_min, self.capacity_kwh),
                np.multiply(self.self_discharge_per_h, dt_h),
                np.multiply(self.soc_max, self.capacity_kwh),
                np.multiply(self.eta_charge, dt_h),
                np.divide(self.eta_discharge, dt_h),
            )
            if self.n == 1:
                self._scalars = tuple(
                    float(value[0])
                    for value in (
                        *self._const,
                        self.capacity_kwh,
                        self.p_charge_max_kw,
                        self.p_discharge_max_kw,
                        self.eta_charge,
                        self.eta_discharge,
                        self.soc_min,
                        self.soc_max,
                    )
                )
        return self._const

    # One battery is the common case. numpy spends about a microsecond per operation on a
    # one-element array, Python a few tens of nanoseconds per float operation; IEEE arithmetic is
    # the same in both. `a if a > b else b` is numpy's maximum for non-NaN values, including
    # which zero it returns when a signed zero ties (the second), and likewise for minimum.
    def _limits_one(self) -> tuple[np.ndarray, np.ndarray]:
        e_min, _, e_max, eta_c_dt_h, eta_d_per_h, cap, p_charge, p_discharge = self._scalars[:8]
        e_kwh = float(self.soc[0]) * cap
        above = e_kwh - e_min
        above = above if above > 0.0 else 0.0
        room_up = e_max - e_kwh
        room_up = room_up if room_up > 0.0 else 0.0
        up = room_up / eta_c_dt_h
        down = above * eta_d_per_h
        return (
            np.array([-(p_discharge if p_discharge < down else down)]),
            np.array([p_charge if p_charge < up else up]),
        )

    def _step_one(self, p_set: float, dt_s: float) -> None:
        (e_min, sd_rate, e_max, eta_c_dt_h, eta_d_per_h, cap, p_charge, p_discharge, eta_c, eta_d,
         soc_min, soc_max) = self._scalars  # fmt: skip
        dt_h = dt_s / 3600.0
        soc = float(self.soc[0])
        e_kwh = soc * cap
        above = e_kwh - e_min
        above = above if above > 0.0 else 0.0
        sd_kwh = sd_rate * e_kwh
        sd_kwh = sd_kwh if sd_kwh < above else above
        e_kwh = e_kwh - sd_kwh
        room_up = e_max - e_kwh
        room_up = room_up if room_up > 0.0 else 0.0
        up = room_up / eta_c_dt_h
        p_max = p_charge if p_charge < up else up
        down = (above - sd_kwh) * eta_d_per_h
        p_min = -(p_discharge if p_discharge < down else down)
        p_kw = p_set if p_set > p_min else p_min
        p_kw = p_kw if p_kw < p_max else p_max
        ac_kwh = p_kw * dt_h
        charged = ac_kwh * eta_c
        discharged = ac_kwh / eta_d
        stored_kwh = charged if charged < discharged else discharged
        soc_new = (e_kwh + stored_kwh) / cap
        low = soc_min if soc_min < soc else soc
        high = soc_max if soc_max > soc else soc
        soc_new = soc_new if soc_new > low else low
        soc_new = soc_new if soc_new < high else high
        self.soc = np.array([soc_new])
        self.p_kw = np.array([p_kw])
        self.p_total_kw = p_kw + 0.0  # as numpy sums: from +0.0, so -0.0 becomes 0.0
        # Adding a zero leaves a sum that is not -0.0 as it is, and these sums start at +0.0
        # and never become -0.0: the element updates are skipped when the term is zero.
        if ac_kwh > 0.0:
            self.e_charged_kwh[0] += ac_kwh
            self._throughput_kwh[0] += ac_kwh
        elif ac_kwh < 0.0:
            self.e_discharged_kwh[0] -= ac_kwh
            self._throughput_kwh[0] += -ac_kwh
        elif ac_kwh != ac_kwh:
            self._throughput_kwh[0] += abs(ac_kwh)
        loss_kwh = (ac_kwh - stored_kwh) + sd_kwh
        if loss_kwh:
            self._loss_kwh[0] += loss_kwh

    def step(self, p_set_kw: np.ndarray, dt_s: float) -> np.ndarray:
        """Apply setpoints for ``dt_s``; returns the actual power [kW].

        The same operations as :func:`~qubit_sim.physics.battery.battery_step` in the same order
        (so bit for bit the same results), with the products of parameters that do not change
        between steps computed once.
        """
        e_min_kwh, sd_rate, e_max_kwh, eta_c_dt_h, eta_d_per_h = self._constants(dt_s)
        if self.n == 1:
            p_set = float(p_set_kw[0])
            if p_set == p_set:  # NaN propagates as numpy propagates it: below
                self._step_one(p_set, dt_s)
                return self.p_kw
        dt_h = dt_s / 3600.0
        soc = self.soc
        capacity = self.capacity_kwh
        e_kwh = soc * capacity
        above_floor = np.maximum(e_kwh - e_min_kwh, 0.0)
        sd_kwh = np.minimum(sd_rate * e_kwh, above_floor)
        e_kwh = e_kwh - sd_kwh
        room_up = np.maximum(e_max_kwh - e_kwh, 0.0)
        p_max = np.minimum(self.p_charge_max_kw, room_up / eta_c_dt_h)
        p_min = -np.minimum(self.p_discharge_max_kw, (above_floor - sd_kwh) * eta_d_per_h)
        p_kw = np.minimum(np.maximum(p_set_kw, p_min), p_max)
        ac_kwh = p_kw * dt_h
        stored_kwh = np.minimum(ac_kwh * self.eta_charge, ac_kwh / self.eta_discharge)
        soc_new = (e_kwh + stored_kwh) / capacity
        soc_new = np.minimum(
            np.maximum(soc_new, np.minimum(self.soc_min, soc)), np.maximum(self.soc_max, soc)
        )
        self.soc = soc_new
        self.p_kw = p_kw
        self.p_total_kw = float(p_kw.sum())
        # ac_kwh is p_kw * (dt_s / 3600): the energy of the step.
        self.e_charged_kwh += np.maximum(ac_kwh, 0.0)
        self.e_discharged_kwh -= np.minimum(ac_kwh, 0.0)
        self._loss_kwh += (ac_kwh - stored_kwh) + sd_kwh
        self._throughput_kwh += np.abs(ac_kwh)
        return self.p_kw
