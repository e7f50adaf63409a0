"""Stationary batteries as struct-of-arrays."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from qubit_sim.physics.battery import battery_limits_kw, battery_step

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
        """Feasible power range this step (min, max) [kW]."""
        return battery_limits_kw(
            self.soc,
            dt_s,
            self.capacity_kwh,
            self.p_charge_max_kw,
            self.p_discharge_max_kw,
            self.eta_charge,
            self.eta_discharge,
            self.soc_min,
            self.soc_max,
        )

    def step(self, p_set_kw: np.ndarray, dt_s: float) -> np.ndarray:
        """Apply setpoints for ``dt_s``; returns the actual power [kW]."""
        result = battery_step(
            self.soc,
            p_set_kw,
            dt_s,
            self.capacity_kwh,
            self.p_charge_max_kw,
            self.p_discharge_max_kw,
            self.eta_charge,
            self.eta_discharge,
            self.soc_min,
            self.soc_max,
            self.self_discharge_per_h,
        )
        self.soc = result.soc
        self.p_kw = result.p_kw
        self.p_total_kw = float(result.p_kw.sum())
        energy = result.p_kw * (dt_s / 3600.0)
        self.e_charged_kwh += np.maximum(energy, 0.0)
        self.e_discharged_kwh -= np.minimum(energy, 0.0)
        self._loss_kwh += result.loss_kwh
        self._throughput_kwh += result.throughput_kwh
        return self.p_kw
