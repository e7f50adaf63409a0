"""Batched site environments: ``N`` sites in one process, numpy over (sites x chargers).

:class:`SiteDispatchVectorEnv` and :class:`ChargerFleetVectorEnv` follow gymnasium's
:class:`~gymnasium.vector.VectorEnv` API for fast training. Each site runs its own episode window
of one scenario's horizon. The physics is the simulator's own: the same vectorised functions of
:mod:`qubit_sim.physics` (EV charging, battery, their limits) broadcast over (sites, chargers),
the same session events, the same action projection, observation and reward code as the single
environments, so a batch reproduces ``N`` single environments fed the same actions (to float
rounding; a test checks 1e-9).

Differences from the single environments:

* **no power flow** — the feeder is not solved (``site_voltage`` is 0 and ``cost_grid`` 0); compare
  with single environments made with ``power_flow=False``;
* all sites step in lock-step: episodes have one length, so every site truncates at the same step
  and, with ``autoreset_mode`` ``NEXT_STEP``, the next ``step`` call starts new episodes for all
  (it ignores its actions and returns zero rewards);
* ``info`` holds one array per key (a value per site), without ``_key`` masks;
* no results folder, events or recorded time series.

Setpoints reach the physics rounded as the simulator's in-process links round them (the wire's
0.1 W charger limits and 1 W SunSpec battery setpoints, :mod:`qubit_sim.twins.quantize`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from qubit_sim.errors import SimulationError
from qubit_sim.physics.battery import battery_limits_kw, battery_step
from qubit_sim.physics.ev import ev_charge_step, ev_max_power_kw
from qubit_sim.rl.actions import (
    action_size,
    battery_projection,
    charger_projection,
    ev_level_projection,
)
from qubit_sim.rl.arguments import (
    check_argument_values,
    horizon_and_weights,
    refuse_unknown_arguments,
)
from qubit_sim.rl.features import ObservationLayout
from qubit_sim.rl.horizon import Horizon
from qubit_sim.rl.reward import (
    REWARD_TERMS,
    BatchDemandTracker,
    battery_value_per_kwh,
    degradation_cost_per_kwh,
)
from qubit_sim.twins.quantize import BatteryWire, charger_limits_kw

__all__ = ["ChargerFleetVectorEnv", "SiteDispatchVectorEnv", "SiteVectorEnv"]


def _events(plans: list[Any], step_of: str, n_steps: int) -> tuple[np.ndarray, ...]:
    """Concatenate per-site events sorted by step: (site, index in plan, boundaries per step)."""
    sites, rows, steps = [], [], []
    for index, plan in enumerate(plans):
        plan_steps = getattr(plan, step_of)
        keep = np.flatnonzero(plan_steps >= 0)
        sites.append(np.full(len(keep), index, dtype=np.int64))
        rows.append(keep)
        steps.append(plan_steps[keep])
    site = np.concatenate(sites)
    row = np.concatenate(rows)
    step = np.concatenate(steps)
    order = np.argsort(step, kind="stable")
    bounds = np.searchsorted(step[order], np.arange(n_steps + 2))
    return site[order], row[order], bounds


class SiteVectorEnv(VectorEnv):
    """``num_envs`` sites of one scenario stepping together; use a subclass.

    Args:
        scenario: Scenario YAML path (or pass a built ``horizon=``).
        num_envs: Number of sites.
        horizon: A built :class:`~qubit_sim.rl.horizon.Horizon` to share.
        Other arguments as :class:`~qubit_sim.rl.envs.SiteDispatchEnv` (``power_flow`` is always
        off here).
    """

    metadata: dict[str, Any] = {"render_modes": [], "autoreset_mode": AutoresetMode.NEXT_STEP}
    kind = ""

    def __init__(
        self,
        scenario: str | Path | None = None,
        num_envs: int = 1,
        *,
        horizon: Horizon | None = None,
        episode_length: str | int = "1d",
        split: str = "train",
        test_fraction: float = 0.2,
        split_seed: int = 0,
        start_offset: str | int = 0,
        forecast: str = "oracle",
        lookahead_h: int = 6,
        scenario_seed: int | None = None,
        overrides: dict[str, Any] | None = None,
        carbon_price_per_kg: float = 0.0,
        demand_charge_per_kw: float | None = None,
        unmet_penalty_per_kwh: float | None = None,
        voltage_penalty_per_pu_h: float = 1000.0,
        overload_penalty_per_pct_h: float = 1.0,
        reward_scale: float = 1.0,
        power_flow: bool | None = False,
        render_mode: str | None = None,
        **unknown: Any,
    ) -> None:
        refuse_unknown_arguments(type(self), unknown)
        check_argument_values(type(self).__name__, locals())
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        if power_flow:
            raise ValueError(
                "the batched environments run without power flow; use power_flow=False"
            )
        # Always without the power flow (refused above when asked for).
        horizon, weights = horizon_and_weights(type(self), {**locals(), "power_flow": False})
        self.horizon = horizon
        self.split = split
        self.num_envs = int(num_envs)
        self.render_mode = render_mode
        self.weights = weights
        self.layout = ObservationLayout(horizon, per_charger=self.kind == "charger_fleet")
        low, high = self.layout.bounds()
        self.single_observation_space = spaces.Box(low, high, dtype=np.float32)
        site = horizon.site
        size = action_size(self.kind, site.fleet.n)
        self.single_action_space = spaces.Box(-1.0, 1.0, shape=(size,), dtype=np.float32)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        fleet, bank = site.fleet, site.batteries
        self._rated = fleet.rated_kw.copy()
        self._eff = fleet.efficiency.copy()
        self._rated_eff = self._rated * self._eff
        self._bank = bank
        self._degradation = degradation_cost_per_kwh(horizon.loaded)
        self._battery_wire = BatteryWire(bank.p_charge_max_kw, bank.p_discharge_max_kw)
        self._charge_total = float(bank.p_charge_max_kw.sum())
        self._discharge_total = float(bank.p_discharge_max_kw.sum())
        self._dt = horizon.dt
        self._dt_h = horizon.dt / 3600.0
        self._demand = BatchDemandTracker(horizon.window_id, horizon.period_label)
        # Per horizon step: price, export price, carbon, building load, available PV.
        self._series = np.column_stack(
            [
                site.price_per_kwh,
                site.export_price_per_kwh,
                site.carbon_g_per_kwh,
                horizon.load_total_kw,
                horizon.pv_total_kw,
            ]
        )
        self._autoreset = False
        self._k = 0
        self.blocks = np.zeros(self.num_envs, dtype=np.int64)

    # ----------------------------------------------------------------- reset
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start new episodes at every site.

        Options:
            split: ``"train"``, ``"test"`` or ``"all"`` (default: the env's ``split``).
            episode: Index into the split's blocks, one per site (or one for all).
            block: Block numbers of the horizon, one per site (overrides ``split``/``episode``).
        """
        super().reset(seed=seed)
        options = options or {}
        n = self.num_envs
        horizon = self.horizon
        if "block" in options:
            blocks = np.broadcast_to(np.asarray(options["block"], dtype=np.int64), (n,)).copy()
            if ((blocks < 0) | (blocks >= len(horizon.block_offset_step))).any():
                raise SimulationError(
                    f"blocks {blocks.tolist()} outside 0..{len(horizon.block_offset_step) - 1}"
                )
        else:
            choices = horizon.blocks(str(options.get("split", self.split)))
            if "episode" in options:
                episode = np.broadcast_to(np.asarray(options["episode"], dtype=np.int64), (n,))
                if ((episode < 0) | (episode >= len(choices))).any():
                    raise SimulationError(
                        f"episodes {episode.tolist()} outside the split's 0..{len(choices) - 1}"
                    )
            else:
                episode = self.np_random.integers(len(choices), size=n)
            blocks = choices[episode]
        self._start(blocks)
        return self._observe(), {"block": self.blocks.copy(), "t_s": np.zeros(n, dtype=np.int64)}

    def _start(self, blocks: np.ndarray) -> None:
        horizon = self.horizon
        n, c, b = self.num_envs, len(self._rated), self._bank.n
        self.blocks = blocks
        self.plans = plans = [horizon.plan(int(block)) for block in blocks]
        self._first = np.array([plan.offset_step for plan in plans], dtype=np.int64)
        self._arrivals = _events(plans, "arrive_step", horizon.episode_steps)
        self._departures = _events(plans, "depart_step", horizon.episode_steps)
        self._plan_columns = {
            name: [getattr(plan, name) for plan in plans]
            for name in (
                "charger",
                "e_needed_kwh",
                "arrival_soc",
                "capacity_kwh",
                "ev_max_kw",
                "knee_soc",
                "departure_s",
            )
        }
        self._flat = {name: np.concatenate(values) for name, values in self._plan_columns.items()}
        offsets = np.cumsum([0] + [len(plan.charger) for plan in plans])
        self._plan_offset = offsets[:-1]
        self.connected = np.zeros((n, c), dtype=bool)
        self.soc = np.zeros((n, c))
        self.e_needed_kwh = np.zeros((n, c))
        self.capacity_kwh = np.ones((n, c))
        self.ev_max_kw = np.zeros((n, c))
        self.knee_soc = np.full((n, c), 0.8)
        self.departure_s = np.full((n, c), -1, dtype=np.int64)
        self.e_session_kwh = np.zeros((n, c))
        self.need_at_plug_kwh = np.zeros((n, c))
        self.battery_soc = np.broadcast_to(horizon.battery_soc_initial, (n, b)).copy()
        # Battery wear and stored energy per site, charged per period (see reward.py).
        prices = horizon.site.price_per_kwh
        steps = horizon.episode_steps
        self._battery_value = np.array(
            [battery_value_per_kwh(prices[f : f + steps], self._bank) for f in self._first]
        )
        self._e_through_kwh = np.zeros((n, b))
        self._wear = np.zeros(n)
        self._stored_kwh = (self.battery_soc * self._bank.capacity_kwh).sum(axis=-1)
        self._charger_kw = np.full((n, c), np.nan)
        self._battery_kw = np.zeros((n, b))
        self._site_prev_kw = np.zeros(n)
        self._unmet = np.zeros(n)
        self._k = 0
        self._autoreset = False
        self._demand.reset(self._first, horizon.episode_steps)
        self._events_at(0)

    # ---------------------------------------------------------------- events
    def _events_at(self, k: int) -> None:
        """Departures, then arrivals, at episode step ``k`` (the simulator's order)."""
        site, row, bounds = self._departures
        lo, hi = bounds[k], bounds[k + 1]
        if hi > lo:
            sites = site[lo:hi]
            chargers = self._flat["charger"][self._plan_offset[sites] + row[lo:hi]]
            left = np.maximum(
                self.need_at_plug_kwh[sites, chargers] - self.e_session_kwh[sites, chargers], 0.0
            )
            np.add.at(self._unmet, sites, left)
            self.connected[sites, chargers] = False
            self.e_needed_kwh[sites, chargers] = 0.0
            self.ev_max_kw[sites, chargers] = 0.0
            self.departure_s[sites, chargers] = -1
        site, row, bounds = self._arrivals
        lo, hi = bounds[k], bounds[k + 1]
        if hi > lo:
            sites = site[lo:hi]
            flat = self._plan_offset[sites] + row[lo:hi]
            chargers = self._flat["charger"][flat]
            self.connected[sites, chargers] = True
            self.e_session_kwh[sites, chargers] = 0.0
            self.soc[sites, chargers] = self._flat["arrival_soc"][flat]
            self.e_needed_kwh[sites, chargers] = self._flat["e_needed_kwh"][flat]
            self.need_at_plug_kwh[sites, chargers] = self._flat["e_needed_kwh"][flat]
            self.capacity_kwh[sites, chargers] = self._flat["capacity_kwh"][flat]
            self.ev_max_kw[sites, chargers] = self._flat["ev_max_kw"][flat]
            self.knee_soc[sites, chargers] = self._flat["knee_soc"][flat]
            self.departure_s[sites, chargers] = self._flat["departure_s"][flat]

    # --------------------------------------------------------------- physics
    def _ev_max_grid_kw(self) -> np.ndarray:
        """:meth:`~qubit_sim.assets.ChargerFleet.max_grid_kw` for every site."""
        taper = ev_max_power_kw(self.soc, self.ev_max_kw, self.knee_soc)
        need = self.e_needed_kwh * 3600.0 / self._dt
        return np.minimum(np.minimum(taper, need), self._rated_eff) / self._eff

    def _battery_limits(self) -> tuple[np.ndarray, np.ndarray]:
        bank = self._bank
        return battery_limits_kw(
            self.battery_soc,
            self._dt,
            bank.capacity_kwh,
            bank.p_charge_max_kw,
            bank.p_discharge_max_kw,
            bank.eta_charge,
            bank.eta_discharge,
            bank.soc_min,
            bank.soc_max,
        )

    def _control(self, actions: np.ndarray) -> dict[str, np.ndarray]:
        p_min, p_max = self._battery_limits()
        b_req, b_applied, per_battery = battery_projection(
            actions[:, 0], p_min, p_max, self._charge_total, self._discharge_total
        )
        # Setpoints reach the devices rounded as on the wire, as in the simulator's links.
        wire = self._battery_wire
        self._battery_kw = wire.setpoints_kw(wire.clip_kw(per_battery))
        ev_max = self._ev_max  # computed by the observation of this same instant
        out = {"battery_kw_requested": b_req, "battery_kw_applied": b_applied}
        if self.kind == "site_dispatch":
            ev_req, ev_applied, limit = ev_level_projection(
                actions[:, 1], self.connected, ev_max, self._rated
            )
            out.update(ev_kw_requested=ev_req, ev_kw_applied=ev_applied)
        else:
            ev_req, limit = charger_projection(actions[:, 1:], ev_max, self._rated)
            out.update(charger_kw_requested=ev_req, charger_kw_applied=limit)
        self._charger_kw = charger_limits_kw(limit)
        return out

    def _physics(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """One simulator step for every site.

        Returns:
            The site power [kW] (load convention) and the step's exogenous series per site.
        """
        grid_limit = np.maximum(np.fmin(self._charger_kw, self._rated), 0.0)
        result = ev_charge_step(
            self.soc,
            self.e_needed_kwh,
            self.capacity_kwh,
            grid_limit * self._eff,
            self.ev_max_kw,
            self.knee_soc,
            self._dt,
        )
        self.soc = result.soc
        self.e_needed_kwh = result.e_needed_kwh
        self.e_session_kwh += result.e_kwh
        ev_total = (result.p_kw / self._eff).sum(axis=-1)
        bank = self._bank
        if bank.n:
            battery = battery_step(
                self.battery_soc,
                self._battery_kw,
                self._dt,
                bank.capacity_kwh,
                bank.p_charge_max_kw,
                bank.p_discharge_max_kw,
                bank.eta_charge,
                bank.eta_discharge,
                bank.soc_min,
                bank.soc_max,
                bank.self_discharge_per_h,
            )
            self.battery_soc = battery.soc
            self._e_through_kwh += np.abs(battery.p_kw * (self._dt / 3600.0))
            battery_total = battery.p_kw.sum(axis=-1)
        else:
            battery_total = np.zeros(self.num_envs)
        series = self._series[self._first + k]
        return series[:, 3] + ev_total + battery_total - series[:, 4], series

    # ------------------------------------------------------------------ step
    def step(
        self, actions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        n = self.num_envs
        if self._autoreset:
            choices = self.horizon.blocks(self.split)
            self._start(choices[self.np_random.integers(len(choices), size=n)])
            started = {"block": self.blocks.copy(), "t_s": np.zeros(n, dtype=np.int64)}
            false = np.zeros(n, dtype=bool)
            return self._observe(), np.zeros(n), false, false.copy(), started
        actions = np.asarray(actions, dtype=float).reshape(n, -1)
        horizon = self.horizon
        every = horizon.control_every
        energy = np.zeros(n)
        carbon_g = np.zeros(n)
        import_kw = np.zeros(n)
        export_kw = np.zeros(n)
        site_sum = np.zeros(n)
        peak_rise = np.zeros(n)
        self._unmet = np.zeros(n)
        info: dict[str, Any] = {}
        for j in range(every):
            k = self._k
            if j == 0:
                info = self._control(actions)
            site_p, series = self._physics(k)
            imp = np.maximum(site_p, 0.0)
            exp = np.maximum(-site_p, 0.0)
            energy += imp * series[:, 0] - exp * series[:, 1]
            carbon_g += imp * series[:, 2]
            import_kw += imp
            export_kw += exp
            site_sum += site_p
            peak_rise += self._demand.add(k, imp)
            self._k = k + 1
            self._events_at(self._k)
        self._site_prev_kw = site_sum / every
        unmet = self._unmet
        truncated = self._k >= horizon.episode_steps
        if truncated:
            left = np.where(self.connected, self.need_at_plug_kwh - self.e_session_kwh, 0.0)
            unmet = unmet + np.maximum(left, 0.0).sum(axis=-1)
            self._autoreset = True
        weights = self.weights
        dt_h = self._dt_h
        co2_kg = carbon_g * dt_h / 1000.0
        battery_cost = np.zeros(n)
        if self._bank.n:
            stored = (self.battery_soc * self._bank.capacity_kwh).sum(axis=-1)
            wear = self._e_through_kwh @ self._degradation
            battery_cost = (wear - self._wear) + self._battery_value * (self._stored_kwh - stored)
            self._stored_kwh, self._wear = stored, wear
        costs = (
            energy * dt_h,
            peak_rise * weights.demand_charge_per_kw,
            co2_kg * weights.carbon_price_per_kg,
            unmet * weights.unmet_penalty_per_kwh,
            np.zeros(n),
            battery_cost,
        )
        reward = -weights.reward_scale * (
            costs[0] + costs[1] + costs[2] + costs[3] + costs[4] + costs[5]
        )
        out: dict[str, Any] = dict(zip(REWARD_TERMS, costs, strict=True))
        out.update(
            t_s=np.full(n, self._k * self._dt, dtype=np.int64),
            import_kwh=import_kw * dt_h,
            export_kwh=export_kw * dt_h,
            co2_kg=co2_kg,
            unmet_kwh=unmet,
            peak_kw=self._demand.peak_kw.copy(),
        )
        out.update(info)
        terminated = np.zeros(n, dtype=bool)
        return self._observe(), reward, terminated, np.full(n, truncated), out

    # ----------------------------------------------------------- observation
    def _observe(self) -> np.ndarray:
        layout = self.layout
        n = self.num_envs
        raw = np.empty((n, layout.size))
        raw[:, : layout.n_exo] = self.horizon.exo_rows(self._first + self._k)
        self._ev_max = self._ev_max_grid_kw()
        layout.fill_state(
            raw[:, layout.n_exo :],
            self._k,
            np.full(n, float(self._k * self._dt)),
            self.battery_soc,
            self.connected,
            self.e_needed_kwh,
            self.departure_s,
            self._ev_max,
            self._site_prev_kw,
            self._demand.peak_kw,
            np.ones(n),
        )
        return layout.finish(raw)

    @property
    def observation_names(self) -> list[str]:
        """Name of every observation feature, in order."""
        return list(self.layout.names)


class SiteDispatchVectorEnv(SiteVectorEnv):
    """Batched :class:`~qubit_sim.rl.envs.SiteDispatchEnv` (see :class:`SiteVectorEnv`)."""

    kind = "site_dispatch"


class ChargerFleetVectorEnv(SiteVectorEnv):
    """Batched :class:`~qubit_sim.rl.envs.ChargerFleetEnv` (see :class:`SiteVectorEnv`)."""

    kind = "charger_fleet"
