"""Observation vector of the environments: names, bounds and the state features.

An observation is ``[exogenous | state | per charger]``:

* exogenous features (time, price, carbon, load and PV with their look-ahead) come precomputed
  per step from :class:`~qubit_sim.rl.horizon.Horizon`;
* state features (battery, EVs, site meter, feeder voltage) are computed here from the device
  arrays, for ``N`` sites at once (the single environment passes ``N = 1``);
* the charger-fleet environment appends four blocks of one value per charger.

Every value is clipped to the bounds of its feature (see :meth:`ObservationLayout.bounds`).

Prices, carbon intensity and powers are normalised by scales of the horizon
(:attr:`~qubit_sim.rl.horizon.Horizon.scales`). A trained policy must see its features normalised
as during training, also on another scenario: :meth:`ObservationLayout.use_scales` switches a
layout to the scales stored in a model card, and the environments
(:meth:`~qubit_sim.rl.envs.SiteEnv.set_feature_scales`) and the ``rl_policy`` controller both go
through it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from qubit_sim.errors import ConfigIssue, ScenarioError

__all__ = ["CHARGER_FEATURES", "SCALE_KEYS", "STATE_FEATURES", "ObservationLayout"]

DAY_S = 86400.0

#: State features, in order.
STATE_FEATURES = (
    "episode_progress",
    "battery_soc",
    "ev_occupancy",
    "ev_need",
    "ev_power_available",
    "ev_time_left",
    "ev_power_required",
    "site_power_prev",
    "peak_so_far",
    "site_voltage",
)
#: Per-charger feature blocks of the charger-fleet environment, in order.
CHARGER_FEATURES = ("occupied", "need", "time_left", "power_available")
#: Keys of a set of feature scales (a model card's ``scales``): the maximum import price
#: [currency/kWh], the maximum carbon intensity [gCO2/kWh] and the power normaliser ``P`` [kW].
SCALE_KEYS = ("price", "carbon", "power_kw")

_STATE_BOUNDS = {
    "episode_progress": (0.0, 1.0),
    "battery_soc": (0.0, 1.0),
    "ev_occupancy": (0.0, 1.0),
    "ev_need": (0.0, 10.0),
    "ev_power_available": (0.0, 1.0),
    "ev_time_left": (0.0, 30.0),
    "ev_power_required": (0.0, 10.0),
    "site_power_prev": (-10.0, 10.0),
    "peak_so_far": (0.0, 10.0),
    "site_voltage": (-10.0, 10.0),
}
_CHARGER_BOUNDS = {
    "occupied": (0.0, 1.0),
    "need": (0.0, 10.0),
    "time_left": (0.0, 30.0),
    "power_available": (0.0, 1.0),
}


def _exo_bounds(name: str) -> tuple[float, float]:
    if name.startswith(("hour", "weekday", "price", "carbon")):
        return -1.0, 1.0
    return -10.0, 10.0


class ObservationLayout:
    """Names, bounds and state features of one environment's observation.

    Args:
        horizon: The :class:`~qubit_sim.rl.horizon.Horizon`.
        per_charger: Append the per-charger blocks.
    """

    def __init__(self, horizon: Any, per_charger: bool) -> None:
        site = horizon.site
        self.per_charger = per_charger
        self.n_exo = len(horizon.exo_names)
        self.n_chargers = site.fleet.n
        names = list(horizon.exo_names) + list(STATE_FEATURES)
        bounds = [_exo_bounds(name) for name in horizon.exo_names]
        bounds += [_STATE_BOUNDS[name] for name in STATE_FEATURES]
        if per_charger:
            for feature in CHARGER_FEATURES:
                names += [f"{feature}_{cid}" for cid in site.fleet.ids]
                bounds += [_CHARGER_BOUNDS[feature]] * self.n_chargers
        self.names = names
        self.low = np.array([b[0] for b in bounds])
        self.high = np.array([b[1] for b in bounds])
        self.size = len(names)
        self.dt_h = horizon.dt / 3600.0
        self.episode_steps = horizon.episode_steps
        self.rated_kw = site.fleet.rated_kw.copy()
        self._rated_day = np.maximum(self.rated_kw, 1e-9) * 24.0
        self._rated_safe = np.maximum(self.rated_kw, 1e-9)
        self._rated_total = max(float(self.rated_kw.sum()), 1e-9)
        self.capacity_kwh = site.batteries.capacity_kwh.copy()
        self._capacity_total = float(self.capacity_kwh.sum())
        # Rows per charger: need [kWh], hours left [h], available [kW] (the order of the
        # per-charger blocks), required [kW].
        self._rows = np.empty((4, self.n_chargers))
        self._row_views = tuple(self._rows)
        # The occupied chargers change only when an EV plugs in or out: their count and summed
        # rating [kW] are kept for the ``connected`` values they were computed from.
        self._occupied_kw = np.empty(self.n_chargers)
        self._connected_key: bytes | None = None
        self._occupied = (0, 0.0)
        # Divisors of the need, time-left and power-available blocks, one row each.
        self._block_divisors = np.stack(
            [self._rated_day, np.full(self.n_chargers, 24.0), self._rated_safe]
        )
        #: ``(ev_max_kw, occupied rating sum [kW], available sum [kW])`` of the last
        #: :meth:`fill_state_one`: the array observed and two of its sums.
        self.ev_sums: tuple[np.ndarray, float, float] | None = None
        self.power_scale_kw = horizon.power_scale_kw
        #: Factor per exogenous feature applied by :meth:`fill_exo` (``None``: the horizon's own
        #: scales, nothing to apply).
        self.exo_factor: np.ndarray | None = None
        self._exo_names = list(horizon.exo_names)

    def use_scales(self, horizon: Any, scales: Mapping[str, float] | None) -> None:
        """Normalise features by ``scales`` instead of ``horizon``'s own scales.

        ``horizon``'s exogenous rows were divided by its own scales when it was built;
        :meth:`fill_exo` multiplies them by the ratio of the two, and the state power features
        are divided by ``scales["power_kw"]``. Scales equal to the horizon's leave every value
        unchanged (the ratios are exactly 1).

        Args:
            horizon: The horizon the exogenous rows come from.
            scales: ``{"price", "carbon", "power_kw"}`` (:data:`SCALE_KEYS`), e.g. a model card's
                ``scales``; ``None`` goes back to the horizon's own.

        Raises:
            ScenarioError: a scale is missing, not a number or not positive.
        """
        if scales is None:
            self.exo_factor = None
            self.power_scale_kw = horizon.power_scale_kw
            return
        issues = []
        for key in SCALE_KEYS:
            value = scales.get(key)
            if not isinstance(value, int | float) or not value > 0:
                issues.append(
                    ConfigIssue(
                        f"scales.{key}",
                        f"must be a positive number, found {value!r}; use the scales of the "
                        "model card the policy was trained with",
                    )
                )
        if issues:
            raise ScenarioError(issues)
        ratio = {
            "price": horizon.price_scale / scales["price"],
            "carbon": horizon.carbon_scale / scales["carbon"],
            "power": horizon.power_scale_kw / scales["power_kw"],
        }
        self.exo_factor = np.array(
            [
                ratio["price"]
                if name.startswith("price")
                else ratio["carbon"]
                if name.startswith("carbon")
                else ratio["power"]
                if name.startswith(("load", "pv"))
                else 1.0
                for name in self._exo_names
            ]
        )
        self.power_scale_kw = float(scales["power_kw"])

    def fill_exo(self, out: np.ndarray, exo: np.ndarray) -> None:
        """Write exogenous rows ``exo`` (from :meth:`Horizon.exo_rows`) into ``out``, rescaled
        by :meth:`use_scales` when scales were set."""
        if self.exo_factor is None:
            out[...] = exo
        else:
            np.multiply(exo, self.exo_factor, out=out)

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """``(low, high)`` of every feature, float32."""
        return self.low.astype(np.float32), self.high.astype(np.float32)

    def fill_state(
        self,
        out: np.ndarray,
        k: int,
        t_s: np.ndarray,
        battery_soc: np.ndarray,
        connected: np.ndarray,
        e_needed_kwh: np.ndarray,
        departure_s: np.ndarray,
        ev_max_kw: np.ndarray,
        site_prev_kw: np.ndarray,
        peak_kw: np.ndarray,
        voltage_pu: np.ndarray,
    ) -> None:
        """Write the state (and per-charger) features of ``N`` sites into ``out``.

        Args:
            out: ``(N, size - n_exo)`` slice of the observation rows.
            k: Episode step (the same for every site).
            t_s: Time since the episode start per site ``(N,)`` [s].
            battery_soc: ``(N, B)`` [-].
            connected / e_needed_kwh / departure_s / ev_max_kw: Charger arrays ``(N, C)``
                (EV-side need [kWh], departure [s] or -1, grid-side max power [kW]).
            site_prev_kw: Mean site power over the last control period ``(N,)`` [kW].
            peak_kw: Billing-period peak so far ``(N,)`` [kW].
            voltage_pu: Site-bus voltage of the last power flow ``(N,)`` [p.u.]; 1.0 without one
                (the feature is then 0).
        """
        total = np.add.reduce
        inv_scale = 1.0 / self.power_scale_kw
        out[:, 0] = k / self.episode_steps
        if self._capacity_total > 0:
            out[:, 1] = total(battery_soc * self.capacity_kwh, -1) / self._capacity_total
        else:
            out[:, 1] = 0.0
        n_connected = total(connected, -1)
        out[:, 2] = n_connected / max(self.n_chargers, 1)
        out[:, 3] = total(e_needed_kwh, -1) / (self._rated_total * 24.0)
        out[:, 4] = total(ev_max_kw, -1) / self._rated_total
        # Empty chargers hold departure -1 and no need: masked here, zero in the sums.
        hours_left = (departure_s - t_s[:, None]) * connected / 3600.0
        out[:, 5] = total(hours_left, -1) / (np.maximum(n_connected, 1) * 24.0)
        out[:, 6] = total(e_needed_kwh / np.maximum(hours_left, self.dt_h), -1) / self._rated_total
        out[:, 7] = site_prev_kw * inv_scale
        out[:, 8] = peak_kw * inv_scale
        out[:, 9] = (voltage_pu - 1.0) / 0.05
        if self.per_charger:
            n = self.n_chargers
            base = len(STATE_FEATURES)
            out[:, base : base + n] = connected
            out[:, base + n : base + 2 * n] = e_needed_kwh / self._rated_day
            out[:, base + 2 * n : base + 3 * n] = hours_left / 24.0
            out[:, base + 3 * n : base + 4 * n] = ev_max_kw / self._rated_safe

    def fill_state_one(
        self,
        out: np.ndarray,
        k: int,
        t_s: float,
        battery_soc: np.ndarray,
        connected: np.ndarray,
        e_needed_kwh: np.ndarray,
        departure_s: np.ndarray,
        ev_max_kw: np.ndarray,
        site_prev_kw: float,
        peak_kw: float,
        voltage_pu: float,
    ) -> None:
        """:meth:`fill_state` of one site, bit for bit, without the site axis.

        Args:
            out: ``(size - n_exo,)`` slice of the observation row.
            k: Episode step.
            t_s: Time since the episode start [s].
            battery_soc: ``(B,)`` [-].
            connected / e_needed_kwh / departure_s / ev_max_kw: Charger arrays ``(C,)``
                (``connected`` bool).
            site_prev_kw: Mean site power over the last control period [kW].
            peak_kw: Billing-period peak so far [kW].
            voltage_pu: Site-bus voltage of the last power flow [p.u.]; 1.0 without one.
        """
        # The charger sums come from one reduction over the rows of a scratch matrix: each
        # row is contiguous, so numpy sums it in the same order as fill_state's rows.
        rows = self._rows
        need, hours_left, available, required = self._row_views
        np.copyto(need, e_needed_kwh)
        np.copyto(available, ev_max_kw)
        np.subtract(departure_s, t_s, out=hours_left)
        hours_left *= connected
        hours_left /= 3600.0
        np.maximum(hours_left, self.dt_h, out=required)
        np.divide(need, required, out=required)
        sum_need, sum_hours, sum_available, sum_required = np.add.reduce(rows, -1).tolist()
        key = connected.tobytes()
        if key != self._connected_key:
            np.multiply(connected, self.rated_kw, out=self._occupied_kw)
            self._occupied = (
                int(np.count_nonzero(connected)),
                float(np.add.reduce(self._occupied_kw)),
            )
            self._connected_key = key
        n_connected, sum_occupied = self._occupied
        # The EV-level projection at the next control instant needs two of these sums again.
        self.ev_sums = (ev_max_kw, sum_occupied, sum_available)
        capacity = self.capacity_kwh
        capacity_total = self._capacity_total
        if capacity_total > 0 and len(capacity) == 1:
            # The sum of one product is that product.
            soc = float(battery_soc[0]) * float(capacity[0]) / capacity_total
        elif capacity_total > 0:
            soc = float(np.add.reduce(battery_soc * capacity)) / capacity_total
        else:
            soc = 0.0
        inv_scale = 1.0 / self.power_scale_kw
        rated_total = self._rated_total
        out[:10] = [
            k / self.episode_steps,
            soc,
            n_connected / max(self.n_chargers, 1),
            sum_need / (rated_total * 24.0),
            sum_available / rated_total,
            sum_hours / (max(n_connected, 1) * 24.0),
            sum_required / rated_total,
            site_prev_kw * inv_scale,
            peak_kw * inv_scale,
            (voltage_pu - 1.0) / 0.05,
        ]
        if self.per_charger:
            n = self.n_chargers
            base = len(STATE_FEATURES)
            out[base : base + n] = connected
            # One division for three blocks (x / 24.0 is the same whether 24.0 is an array's);
            # setting the shape, unlike reshape, never silently writes into a copy.
            blocks = out[base + n : base + 4 * n]
            blocks.shape = (3, n)
            np.divide(self._rows[:3], self._block_divisors, out=blocks)

    def finish(self, raw: np.ndarray) -> np.ndarray:
        """Clip ``raw`` rows to the bounds (in place) and return them as a new float32 array."""
        np.minimum(np.maximum(raw, self.low, out=raw), self.high, out=raw)
        return raw.astype(np.float32)
