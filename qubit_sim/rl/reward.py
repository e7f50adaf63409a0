"""The environments' reward: minus the cost of a control period, term by term.

Per control period (money in the scenario currency)::

    cost_energy = sum(import_kw * price - export_kw * export_price) * dt_h
    cost_demand = (billing-period peak after the period - peak before) * demand_charge_per_kw
    cost_carbon = sum(import_kw * carbon_g_per_kwh) * dt_h / 1000 * carbon_price_per_kg
    cost_unmet  = unmet EV energy of the EVs that left [kWh] * unmet_penalty_per_kwh
    cost_grid   = sum(voltage_violation_pu * voltage_penalty_per_pu_h
                      + overload_pct * overload_penalty_per_pct_h) * dt_h
    cost_battery = degradation cost of the period's battery throughput
                   + battery_value_per_kwh * (stored energy at its start - at its end)
    reward      = -reward_scale * (cost_energy + cost_demand + cost_carbon + cost_unmet + cost_grid
                                   + cost_battery)

``battery_value_per_kwh`` is ``objective_cost``'s terminal value of a stored kWh: the episode's
mean import price times the capacity-weighted discharge efficiency. Summed over an episode,
``cost_battery`` is ``objective_cost``'s battery terms (degradation, minus the change of stored
energy at that value), so a policy cannot earn reward by emptying the battery it was handed.

The demand peak is the tariff's: the highest mean import over a demand window (15 min by default)
aligned to the local clock, per billing period; an episode starts with no peak recorded. A
window's mean is known when its last step in the episode has run, so its increment is charged in
that period. Summed over an episode, ``cost_demand`` is the demand charge of the episode's own
KPIs and ``cost_energy`` their energy cost minus export credit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "REWARD_TERMS",
    "BatchDemandTracker",
    "DemandTracker",
    "RewardWeights",
    "battery_value_per_kwh",
    "degradation_cost_per_kwh",
]

REWARD_TERMS = (
    "cost_energy",
    "cost_demand",
    "cost_carbon",
    "cost_unmet",
    "cost_grid",
    "cost_battery",
)


@dataclass(frozen=True)
class RewardWeights:
    """Prices and penalties of the reward.

    Attributes:
        demand_charge_per_kw: Per kW of billing-period peak [currency/kW].
        unmet_penalty_per_kwh: Per kWh an EV still needed when it left [currency/kWh].
        carbon_price_per_kg: Per kg CO2 of imported energy [currency/kg].
        voltage_penalty_per_pu_h: Per p.u. outside the voltage band, per hour [currency/(p.u. h)].
        overload_penalty_per_pct_h: Per % of line/transformer loading above the limit, per hour
            [currency/(% h)].
        reward_scale: Reward = -reward_scale x total cost [1/currency].
    """

    demand_charge_per_kw: float
    unmet_penalty_per_kwh: float
    carbon_price_per_kg: float = 0.0
    voltage_penalty_per_pu_h: float = 1000.0
    overload_penalty_per_pct_h: float = 1.0
    reward_scale: float = 1.0

    @classmethod
    def from_scenario(
        cls,
        loaded: Any,
        *,
        demand_charge_per_kw: float | None = None,
        unmet_penalty_per_kwh: float | None = None,
        carbon_price_per_kg: float = 0.0,
        voltage_penalty_per_pu_h: float = 1000.0,
        overload_penalty_per_pct_h: float = 1.0,
        reward_scale: float = 1.0,
    ) -> RewardWeights:
        """Weights from the scenario's ``tariff`` section; arguments given here win."""
        tariff = loaded.spec.tariff
        weights = cls(
            demand_charge_per_kw=float(
                tariff.demand_charge_per_kw
                if demand_charge_per_kw is None
                else demand_charge_per_kw
            ),
            unmet_penalty_per_kwh=float(
                tariff.unmet_energy_penalty_per_kwh
                if unmet_penalty_per_kwh is None
                else unmet_penalty_per_kwh
            ),
            carbon_price_per_kg=float(carbon_price_per_kg),
            voltage_penalty_per_pu_h=float(voltage_penalty_per_pu_h),
            overload_penalty_per_pct_h=float(overload_penalty_per_pct_h),
            reward_scale=float(reward_scale),
        )
        for name in (
            "demand_charge_per_kw",
            "unmet_penalty_per_kwh",
            "carbon_price_per_kg",
            "voltage_penalty_per_pu_h",
            "overload_penalty_per_pct_h",
        ):
            value = getattr(weights, name)
            if not np.isfinite(value) or value < 0:
                from qubit_sim.errors import ConfigIssue, ScenarioError

                raise ScenarioError([ConfigIssue(name, f"must be finite and >= 0, found {value}")])
        return weights


class DemandTracker:
    """Billing-period peak of window-mean import over one episode, for one site.

    Args:
        window_id: Demand-window number of each horizon step, plus one padding entry.
        period_label: Billing-period label of each horizon step.
    """

    def __init__(self, window_id: np.ndarray, period_label: np.ndarray) -> None:
        self._window_id = window_id
        self._period_label = period_label

    def reset(self, first_step: int, n_steps: int) -> None:
        """Start an episode of ``n_steps`` steps at horizon step ``first_step``."""
        window = self._window_id[first_step : first_step + n_steps + 1]
        closes = window[1:] != window[:-1]
        closes[-1] = True
        self._closes = closes.tolist()
        self._label = self._period_label[first_step : first_step + n_steps].tolist()
        self._sum = 0.0
        self._count = 0
        self._current_label: int | None = None
        self.peak_kw = 0.0

    def add(self, k: int, import_kw: float) -> float:
        """Take episode step ``k``'s import [kW]; returns the peak increase it completes [kW]."""
        self._sum += import_kw
        self._count += 1
        if not self._closes[k]:
            return 0.0
        mean = self._sum / self._count
        self._sum = 0.0
        self._count = 0
        label = self._label[k]
        if label != self._current_label:
            self._current_label = label
            self.peak_kw = 0.0
        if mean <= self.peak_kw:
            return 0.0
        increase = mean - self.peak_kw
        self.peak_kw = mean
        return increase


class BatchDemandTracker:
    """:class:`DemandTracker` for ``N`` sites stepping together, each in its own window."""

    def __init__(self, window_id: np.ndarray, period_label: np.ndarray) -> None:
        self._window_id = window_id
        self._period_label = np.asarray(period_label, dtype=np.int64)

    def reset(self, first_steps: np.ndarray, n_steps: int, sites: np.ndarray | None = None) -> None:
        """Start episodes of ``n_steps`` steps at horizon steps ``first_steps`` (one per site).

        With ``sites`` (indices), only those sites restart; ``first_steps`` is then per listed site.
        """
        steps = np.asarray(first_steps)[:, None] + np.arange(n_steps + 1)[None, :]
        window = self._window_id[steps]
        closes = window[:, 1:] != window[:, :-1]
        closes[:, -1] = True
        label = self._period_label[steps[:, :-1]]
        if sites is None or not hasattr(self, "peak_kw"):
            n = len(first_steps)
            self._closes = closes
            self._label = label
            self._sum = np.zeros(n)
            self._count = np.zeros(n)
            self._current_label = np.full(n, -1, dtype=np.int64)
            self.peak_kw = np.zeros(n)
            return
        self._closes[sites] = closes
        self._label[sites] = label
        self._sum[sites] = 0.0
        self._count[sites] = 0.0
        self._current_label[sites] = -1
        self.peak_kw[sites] = 0.0

    def add(self, k: int, import_kw: np.ndarray) -> np.ndarray:
        """Take episode step ``k``'s import per site [kW]; returns the peak increases [kW]."""
        self._sum += import_kw
        self._count += 1.0
        closes = self._closes[:, k]
        if not closes.any():
            return np.zeros_like(self._sum)
        mean = np.divide(self._sum, self._count, out=np.zeros_like(self._sum), where=closes)
        label = self._label[:, k]
        new_period = closes & (label != self._current_label)
        self._current_label = np.where(new_period, label, self._current_label)
        peak = np.where(new_period, 0.0, self.peak_kw)
        rise = closes & (mean > peak)
        increase = np.where(rise, mean - peak, 0.0)
        self.peak_kw = np.where(rise, mean, peak)
        self._sum = np.where(closes, 0.0, self._sum)
        self._count = np.where(closes, 0.0, self._count)
        return increase


def degradation_cost_per_kwh(loaded: Any) -> np.ndarray:
    """Each battery's throughput cost [currency/kWh], from the scenario (bank order)."""
    return np.array(
        [float(spec.degradation_cost_per_kwh) for spec in loaded.spec.assets.batteries],
        dtype=float,
    )


def battery_value_per_kwh(prices: np.ndarray, bank: Any) -> float:
    """``objective_cost``'s value of a stored kWh over an episode with import ``prices``: their
    mean times the capacity-weighted discharge efficiency [currency/kWh] (0 without a battery)."""
    if not bank.n or not len(prices):
        return 0.0
    eta = float((bank.capacity_kwh / bank.capacity_kwh.sum()) @ bank.eta_discharge)
    return float(np.asarray(prices, dtype=float).mean()) * eta
