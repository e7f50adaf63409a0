"""Gymnasium environments on the site simulation: ``SiteDispatch-v0`` and ``ChargerFleet-v0``.

Both drive the real :class:`~qubit_sim.scenario.simulation.Simulation`: an internal
:class:`~qubit_sim.rl.actions.ActionController` hands the agent's action to the simulation as
setpoints at each control instant, and ``step`` advances the engine to the next one with
:meth:`~qubit_sim.core.engine.Engine.run_until`. Replaying an episode's actions through
:func:`qubit_sim.run` with :class:`~qubit_sim.rl.actions.ActionReplay` gives the same time series
and KPIs.

A wrong keyword argument (``gymnasium.make("qubit_sim/SiteDispatch-v0", forcast="l2")``), a value
of the wrong type or out of range raises :class:`~qubit_sim.errors.ArgumentError` naming the
argument, the value and what is valid; a problem in the scenario file stays
a :class:`~qubit_sim.errors.ScenarioError` naming the file.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from qubit_sim.errors import SimulationError
from qubit_sim.rl.actions import ActionController, action_size
from qubit_sim.rl.arguments import (
    check_argument_values,
    horizon_and_weights,
    refuse_unknown_arguments,
)
from qubit_sim.rl.features import ObservationLayout
from qubit_sim.rl.horizon import Horizon
from qubit_sim.rl.reward import (
    DemandTracker,
    battery_value_per_kwh,
    degradation_cost_per_kwh,
)

__all__ = ["ChargerFleetEnv", "SiteDispatchEnv", "SiteEnv"]


class _ProjectionKeys(dict[str, tuple[str, str]]):
    """The ``info`` keys of each projected quantity, formatted once per name."""

    def __missing__(self, name: str) -> tuple[str, str]:
        keys = self[name] = (f"{name}_requested", f"{name}_applied")
        return keys


class SiteEnv(gym.Env[np.ndarray, np.ndarray]):
    """Common machinery of the site environments; use a subclass.

    Args: see :class:`SiteDispatchEnv`.
    """

    metadata: dict[str, Any] = {"render_modes": []}
    kind = ""

    def __init__(
        self,
        scenario: str | Path | None = None,
        *,
        horizon: Horizon | None = None,
        episode_length: str | int = "1d",
        split: str = "train",
        test_fraction: float = 0.2,
        split_seed: int = 0,
        start_offset: str | int = 0,
        forecast: str = "oracle",
        lookahead_h: int = 6,
        power_flow: bool | None = None,
        scenario_seed: int | None = None,
        overrides: dict[str, Any] | None = None,
        carbon_price_per_kg: float = 0.0,
        demand_charge_per_kw: float | None = None,
        unmet_penalty_per_kwh: float | None = None,
        voltage_penalty_per_pu_h: float = 1000.0,
        overload_penalty_per_pct_h: float = 1.0,
        reward_scale: float = 1.0,
        render_mode: str | None = None,
        **unknown: Any,
    ) -> None:
        owner = type(self).__name__
        refuse_unknown_arguments(type(self), unknown)
        # Every argument is a local here, so this picks them by name without repeating them.
        check_argument_values(owner, locals())
        horizon, weights = horizon_and_weights(type(self), locals())
        self.horizon = horizon
        self.split = split
        self.render_mode = render_mode
        self.weights = weights
        self.layout = ObservationLayout(horizon, per_charger=self.kind == "charger_fleet")
        self._raw = np.empty((1, self.layout.size))
        low, high = self.layout.bounds()
        self.observation_space = spaces.Box(low, high, dtype=np.float32)
        n = action_size(self.kind, horizon.site.fleet.n)
        self.action_space = spaces.Box(-1.0, 1.0, shape=(n,), dtype=np.float32)
        self.controller = ActionController(self.kind)
        self._powerflow = horizon.new_powerflow()
        self._demand = DemandTracker(horizon.window_id, horizon.period_label)
        self.sim: Any = None
        self.block = -1
        self.episode_actions: list[np.ndarray] = []
        self._dt_h = horizon.dt / 3600.0
        self._every = horizon.control_every
        self._dt = horizon.dt
        self._episode_steps = horizon.episode_steps
        self._done = True
        self._projection_keys = _ProjectionKeys()
        self._degradation = degradation_cost_per_kwh(horizon.loaded)
        bank = horizon.site.batteries
        self._capacity_one = float(bank.capacity_kwh[0]) if bank.n == 1 else 0.0
        self._degradation_one = float(self._degradation[0]) if bank.n == 1 else 0.0
        self._feature_scales: dict[str, float] | None = None

    # ------------------------------------------------------------------ info
    @property
    def observation_names(self) -> list[str]:
        """Name of every observation feature, in order."""
        return list(self.layout.names)

    @property
    def power_scale_kw(self) -> float:
        """Power that normalises the power features [kW]."""
        return self.layout.power_scale_kw

    @property
    def feature_scales(self) -> dict[str, float] | None:
        """Scales set by :meth:`set_feature_scales` (``None``: the horizon's own)."""
        return None if self._feature_scales is None else dict(self._feature_scales)

    def set_feature_scales(self, scales: Mapping[str, float] | None) -> None:
        """Normalise observations by ``scales`` instead of the horizon's own scales.

        A policy must see its features normalised as during training: pass its model card's
        ``scales`` (``{"price", "carbon", "power_kw"}``) to run it on another scenario. This is
        the rescaling the ``rl_policy`` controller applies
        (:meth:`~qubit_sim.rl.features.ObservationLayout.use_scales`). ``None`` goes back to the
        horizon's scales. Takes effect from the next observation.

        Raises:
            ScenarioError: a scale is missing or not positive.
        """
        self.layout.use_scales(self.horizon, scales)
        self._feature_scales = None if scales is None else dict(scales)

    # ----------------------------------------------------------------- reset
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start an episode on a block of the split.

        Options:
            split: ``"train"``, ``"test"`` or ``"all"`` (default: the env's ``split``).
            episode: Index into the split's blocks (default: drawn with the env's RNG).
            block: A block number of the horizon (overrides ``split``/``episode``).
        """
        super().reset(seed=seed)
        options = options or {}
        horizon = self.horizon
        if "block" in options:
            block = int(options["block"])
            if not 0 <= block < len(horizon.block_offset_step):
                raise SimulationError(
                    f"block {block} does not exist; the horizon has "
                    f"{len(horizon.block_offset_step)} blocks (0..{len(horizon.block_offset_step) - 1})"
                )
        else:
            blocks = horizon.blocks(str(options.get("split", self.split)))
            if "episode" in options:
                episode = int(options["episode"])
                if not 0 <= episode < len(blocks):
                    raise SimulationError(
                        f"episode {episode} is not in the split, which has {len(blocks)} episodes"
                    )
            else:
                episode = int(self.np_random.integers(len(blocks)))
            block = int(blocks[episode])
        self._start(block)
        return self._observe(), {"block": block, "t_s": 0}

    def _start(self, block: int) -> None:
        from qubit_sim.scenario.simulation import Simulation

        horizon = self.horizon
        if self._powerflow is not None:
            self._powerflow.reset()
        site = horizon.site_for(block, self.controller, self._powerflow)
        sim = Simulation(site)
        # Device events at t=0 (EVs plugging in) run now, so the first observation shows them;
        # the engine's step loop starts with the first run_until.
        engine_env = sim.engine.env
        engine_env.run(until=engine_env.timeout(0))
        self.sim = sim
        self.block = block
        self.plan = plan = horizon.plan(block)
        self._first = plan.offset_step
        self._k = 0
        self._done = False
        self._site_prev_kw = 0.0
        self._voltage = 1.0  # until the first power flow
        self.episode_actions = []
        self._demand.reset(plan.offset_step, horizon.episode_steps)
        leaving = plan.depart_step >= 0
        order = np.argsort(plan.depart_step[leaving], kind="stable")
        self._leave_step = plan.depart_step[leaving][order].tolist()
        self._leave_session = plan.session_index[leaving][order].tolist()
        self._leave_next = 0
        self._needed = np.asarray(plan.sessions.e_needed_kwh, dtype=float)
        # The battery's wear and stored energy, charged per period against objective_cost's
        # terminal value of a stored kWh (see reward.py).
        bank = sim.bank
        self._battery_value = battery_value_per_kwh(site.price_per_kwh, bank)
        self._stored_kwh = bank.stored_kwh() if bank.n else 0.0
        self._wear = 0.0
        index = sim.recorder.index
        self._cols = tuple(
            index[name]
            for name in (
                "site_p_kw",
                "grid_import_kw",
                "grid_export_kw",
                "price_per_kwh",
                "export_price_per_kwh",
                "carbon_g_per_kwh",
            )
        )
        self._grid_cols = None
        if "grid_vm_min_pu" in index:
            grid = site.grid
            self._grid_cols = (
                index["grid_vm_min_pu"],
                index["grid_vm_max_pu"],
                index["grid_vm_site_pu"],
                index["grid_line_loading_max_pct"],
                index["grid_trafo_loading_max_pct"],
            )
            self._v_low, self._v_high = grid.voltage_limits_pu
            self._loading_limit = grid.loading_limit_pct

    # ------------------------------------------------------------------ step
    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self._done:
            raise SimulationError("the episode is over (or never started): call reset() first")
        sim = self.sim
        controller = self.controller
        pending = np.array(action, dtype=float).reshape(-1)
        controller.pending = pending
        self.episode_actions.append(pending)
        k0 = self._k
        k1 = k0 + self._every
        sim.engine.run_until(k1 * self._dt)
        rows = sim.recorder.array()[k0:k1].tolist()
        self._k = k1

        dt_h = self._dt_h
        energy = carbon_g = site_sum = peak_rise = grid_cost = 0.0
        import_kwh = export_kwh = 0.0
        weights = self.weights
        demand = self._demand
        grid_cols = self._grid_cols
        site_col, import_col, export_col, price_col, export_price_col, carbon_col = self._cols
        for j, row in enumerate(rows):
            imp = row[import_col]
            exp = row[export_col]
            energy += imp * row[price_col] - exp * row[export_price_col]
            carbon_g += imp * row[carbon_col]
            import_kwh += imp
            export_kwh += exp
            site_sum += row[site_col]
            peak_rise += demand.add(k0 + j, imp)
            if grid_cols is not None:
                vmin, vmax, vsite, line, trafo = (row[c] for c in grid_cols)
                voltage = max(self._v_low - vmin, vmax - self._v_high, 0.0)
                overload = max(line - self._loading_limit, trafo - self._loading_limit, 0.0)
                grid_cost += (
                    voltage * weights.voltage_penalty_per_pu_h
                    + overload * weights.overload_penalty_per_pct_h
                )
                if vsite == vsite:
                    self._voltage = vsite
        self._site_prev_kw = site_sum / len(rows)
        leaving = self._leave_step
        # Most periods see no departure: skip the call then (its sum would be 0.0).
        if self._leave_next < len(leaving) and leaving[self._leave_next] <= k1:
            unmet_kwh = float(self._unmet_leaving(k1))
        else:
            unmet_kwh = 0.0
        truncated = k1 >= self._episode_steps
        if truncated:
            unmet_kwh += self._unmet_plugged()
            self._done = True
        co2_kg = carbon_g * dt_h / 1000.0
        bank = sim.bank
        battery_cost = 0.0
        if bank.n:
            if bank.n == 1:  # the common single battery, on floats (the same values)
                stored = bank.soc.item() * self._capacity_one
                wear = self._degradation_one * (
                    bank.e_charged_kwh.item() + bank.e_discharged_kwh.item()
                )
            else:
                stored = bank.stored_kwh()
                wear = float(self._degradation @ (bank.e_charged_kwh + bank.e_discharged_kwh))
            battery_cost = (wear - self._wear) + self._battery_value * (self._stored_kwh - stored)
            self._stored_kwh, self._wear = stored, wear
        costs = (
            energy * dt_h,
            peak_rise * weights.demand_charge_per_kw,
            co2_kg * weights.carbon_price_per_kg,
            unmet_kwh * weights.unmet_penalty_per_kwh,
            grid_cost * dt_h,
            battery_cost,
        )
        reward = -weights.reward_scale * sum(costs)
        # One literal in REWARD_TERMS order, then the physical quantities.
        info: dict[str, Any] = {
            "cost_energy": costs[0],
            "cost_demand": costs[1],
            "cost_carbon": costs[2],
            "cost_unmet": costs[3],
            "cost_grid": costs[4],
            "cost_battery": costs[5],
            "t_s": k1 * self._dt,
            "import_kwh": import_kwh * dt_h,
            "export_kwh": export_kwh * dt_h,
            "co2_kg": co2_kg,
            "unmet_kwh": unmet_kwh,
            "peak_kw": demand.peak_kw,
        }
        keys = self._projection_keys
        for name, value in controller.requested.items():
            info[keys[name][0]] = np.array(value) if isinstance(value, np.ndarray) else value
        for name, value in controller.applied.items():
            info[keys[name][1]] = np.array(value) if isinstance(value, np.ndarray) else value
        return self._observe(), float(reward), False, truncated, info

    def _unmet_leaving(self, k: int) -> float:
        """Unmet energy of the EVs that left up to episode step ``k`` (inclusive) [kWh]."""
        unmet = 0.0
        steps = self._leave_step
        delivered = self.sim.session_delivered_kwh
        while self._leave_next < len(steps) and steps[self._leave_next] <= k:
            session = self._leave_session[self._leave_next]
            unmet += max(self._needed[session] - delivered[session], 0.0)
            self._leave_next += 1
        return unmet

    def _unmet_plugged(self) -> float:
        """Unmet energy of the EVs still plugged in at the episode end [kWh]."""
        fleet = self.sim.fleet
        plugged = fleet.session >= 0
        need = self._needed[fleet.session[plugged]]
        return float(np.maximum(need - fleet.e_session_kwh[plugged], 0.0).sum())

    # ----------------------------------------------------------- observation
    def _observe(self) -> np.ndarray:
        layout = self.layout
        sim = self.sim
        fleet = sim.fleet
        # finish() returns a new array, so the row buffer is reused.
        raw = self._raw
        row = raw[0]
        n_exo = layout.n_exo
        layout.fill_exo(row[:n_exo], self.horizon.exo_rows(self._first + self._k))
        layout.fill_state_one(
            row[n_exo:],
            self._k,
            float(self._k * self._dt),
            sim.bank.soc,
            fleet.connected,
            fleet.e_needed_kwh,
            fleet.departure_s,
            sim.ev_max_kw(self._k),
            self._site_prev_kw,
            self._demand.peak_kw,
            self._voltage,
        )
        self.controller.ev_sums = layout.ev_sums
        return layout.finish(raw)[0]

    # ------------------------------------------------------------- episode
    def episode_timeseries(self) -> Any:
        """The episode's recorded time series so far (pandas DataFrame, as a run writes it)."""
        return self.sim.recorder.frame()

    def episode_kpis(self) -> dict[str, Any]:
        """KPIs of the episode so far, computed as :func:`qubit_sim.run` computes a run's."""
        from qubit_sim.core.kpis import compute_kpis

        sim = self.sim
        site = sim.site
        bank = site.batteries
        delivered = sim.session_delivered_kwh.copy()
        plugged = sim.fleet.session >= 0
        delivered[sim.fleet.session[plugged]] = sim.fleet.e_session_kwh[plugged]
        dt = site.clock.step_s
        arrive = -(-np.asarray(site.sessions.arrival_s, dtype=np.int64) // dt) * dt
        within = arrive < site.clock.duration_s
        balance = sim.energy_balance()
        specs = site.scenario.spec.assets.batteries
        degradation = 0.0
        eta = 1.0
        if bank.n:
            cost = np.array([spec.degradation_cost_per_kwh for spec in specs])
            degradation = float((bank.e_charged_kwh + bank.e_discharged_kwh) @ cost)
            eta = float((bank.capacity_kwh / bank.capacity_kwh.sum()) @ bank.eta_discharge)
        grid = site.grid
        kpis = compute_kpis(
            sim.recorder.frame(),
            step_s=dt,
            tariff=site.tariff,
            tz=site.site_info.tz,
            sessions_needed_kwh=np.asarray(site.sessions.e_needed_kwh)[within],
            sessions_delivered_kwh=delivered[within],
            sessions_rejected=sim.session_rejected[within],
            sessions_open_at_end=((sim.session_plugged_s >= 0) & (sim.session_unplugged_s < 0))[
                within
            ],
            battery_throughput_kwh=bank.throughput_kwh,
            battery_energy_change_kwh=balance["battery_stored_end_kwh"]
            - balance["battery_stored_start_kwh"],
            energy_balance_error_kwh=balance["error_kwh"],
            import_limit_kw=site.site_info.import_limit_kw,
            export_limit_kw=site.site_info.export_limit_kw,
            voltage_limits_pu=grid.voltage_limits_pu if grid else (0.95, 1.05),
            loading_limit_pct=grid.loading_limit_pct if grid else 100.0,
            unmet_penalty_per_kwh=site.scenario.spec.tariff.unmet_energy_penalty_per_kwh,
            degradation_cost=degradation,
            battery_eta_discharge=eta,
            extra=self.controller.stats(),
        )
        kpis["currency"] = site.tariff.currency
        return kpis


class SiteDispatchEnv(SiteEnv):
    """Dispatch a site's battery and its EV charging as one aggregate.

    ## Description

    The site of a scenario YAML (chargers with EVs, batteries, PV, building loads, optionally on a
    simulated feeder) runs in the real simulator. At each control instant the agent sets the
    battery power and one EV power level shared among the plugged EVs; the simulator runs to the
    next control instant. Control instants are the scenario's ``controller.period``, or every
    ``site.step`` when it sets none: of the shipped scenarios, ``workplace_pv_battery`` sets
    15 min (96 steps a day); ``depot_overnight`` and ``residential_feeder`` set none and step
    every 60 s, so a one-day episode there is 1,440 steps (pass
    ``overrides={"controller": {"period": "15min"}}`` for 96). An episode is one window
    (``episode_length``, default one day) of the scenario's horizon, built once per environment.

    ## Action Space

    ``Box(-1, 1, (2,), float32)``:

    | Num | Action | Meaning |
    |-----|--------|---------|
    | 0 | battery | ``a >= 0``: charge at ``a`` x summed charge limit; ``a < 0``: discharge at ``|a|`` x summed discharge limit [kW] |
    | 1 | ev_level | ``f = (a + 1) / 2`` of the occupied chargers' summed rating [kW], shared among plugged EVs by what each can take |

    Infeasible requests are projected onto the device limits without a solver (battery range
    from the SOC window and power limits, EV power from ratings, vehicle limits, taper and
    remaining need); ``info`` reports requested and applied power (see
    :mod:`qubit_sim.rl.actions`). The devices receive the applied setpoints rounded as on the
    wire (0.1 W charger limits, 1 W battery setpoints). Setpoints hold until the next control
    instant; an EV that plugs in between two (physics step shorter than the control period)
    waits for the next one.

    ## Observation Space

    ``Box(float32)`` of ``18 + 3 * lookahead_h`` normalised features (36 with the default
    ``lookahead_h=6``). ``P`` = :attr:`power_scale_kw` (summed charger ratings + battery charge
    limits + peak building load + peak PV [kW]); ``R`` = summed charger ratings [kW]; prices and
    carbon are divided by their horizon maximum. :meth:`set_feature_scales` replaces ``P`` and
    the two maxima by a trained policy's (its model card's ``scales``). Times are local (the
    site's time zone).

    | Num | Feature | Value | Range |
    |-----|---------|-------|-------|
    | 0-1 | hour_sin, hour_cos | sin/cos(2 pi hour / 24) [-] | [-1, 1] |
    | 2-3 | weekday_sin, weekday_cos | sin/cos(2 pi weekday / 7), Monday 0 [-] | [-1, 1] |
    | 4 | price | import price now / max price [-] | [-1, 1] |
    | 5..4+H | price_h1..price_hH | mean import price in hour h ahead / max price [-] | [-1, 1] |
    | 5+H | carbon | grid carbon intensity now / max [-] | [-1, 1] |
    | 6+H | load | building load now / P [kW/kW] | [-10, 10] |
    | 7+H..6+2H | load_h1..load_hH | mean load in hour h ahead / P (oracle or L2 forecast) | [-10, 10] |
    | 7+2H | pv | available PV now / P [kW/kW] | [-10, 10] |
    | 8+2H..7+3H | pv_h1..pv_hH | mean available PV in hour h ahead / P (oracle or L2) | [-10, 10] |
    | 8+3H | episode_progress | control instants done / per episode [-] | [0, 1] |
    | 9+3H | battery_soc | capacity-weighted SOC of all batteries [-] (0 without) | [0, 1] |
    | 10+3H | ev_occupancy | occupied chargers / chargers [-] | [0, 1] |
    | 11+3H | ev_need | energy the plugged EVs still need / (R x 24 h) [kWh/kWh] | [0, 10] |
    | 12+3H | ev_power_available | power the plugged EVs can take now / R [kW/kW] | [0, 1] |
    | 13+3H | ev_time_left | mean time to departure of plugged EVs [days] | [0, 30] |
    | 14+3H | ev_power_required | sum of need / time to departure / R [kW/kW] | [0, 10] |
    | 15+3H | site_power_prev | mean site power over the last period / P (load convention) | [-10, 10] |
    | 16+3H | peak_so_far | billing-period peak of window-mean import / P [kW/kW] | [0, 10] |
    | 17+3H | site_voltage | (site-bus voltage of the last power flow - 1 p.u.) / 0.05 p.u.; 0 without a power flow | [-10, 10] |

    (``H = lookahead_h``.) :attr:`observation_names` lists them.

    ## Rewards

    Minus the cost of the period (see :mod:`qubit_sim.rl.reward`): energy cost net of export
    credit, demand-charge increment (billing-period peak increase x demand charge), carbon price x
    emissions, unmet-energy penalty for EVs leaving (and, at the episode end, for those still
    plugged), voltage/overload penalties when a feeder is simulated, and the battery's wear plus
    the stored energy it gave up, valued as ``objective_cost`` values it (so emptying the battery
    earns nothing); each term is in ``info`` (``cost_energy``, ``cost_demand``, ``cost_carbon``,
    ``cost_unmet``, ``cost_grid``, ``cost_battery``), and ``reward == -reward_scale * sum`` of
    them. Prices come from the scenario's ``tariff``; the other weights from the tariff or the
    arguments below.

    ## Starting State

    The episode's window of the horizon: batteries at their ``soc_initial``, EVs present at the
    window start plugged in with their arrival state.

    ## Episode End

    Truncation after ``episode_length`` (never termination). ``reset(seed=...)`` draws the block
    from the split with the env's RNG: the same seed gives the same trajectory for the same
    actions.

    ## Arguments

    | Parameter | Default | Description |
    |-----------|---------|-------------|
    | ``scenario`` | required | scenario YAML path (or pass a built ``horizon=``) |
    | ``episode_length`` | ``"1d"`` | episode length, a multiple of the control period |
    | ``split`` | ``"train"`` | blocks to draw episodes from: ``"train"``, ``"test"``, ``"all"`` (``reset(options={"split": ...})`` too) |
    | ``test_fraction`` / ``split_seed`` | 0.2 / 0 | the fixed train/test split of blocks |
    | ``start_offset`` | 0 | where blocks start after the scenario start (e.g. ``"12h"``) |
    | ``forecast`` | ``"oracle"`` | load/PV look-ahead: true future, or ``"l2"`` forecasters |
    | ``lookahead_h`` | 6 | hourly look-ahead buckets of price, load and PV |
    | ``power_flow`` | ``None`` | ``None`` as in the scenario; ``False`` turns it off |
    | ``scenario_seed`` / ``overrides`` | ``None`` | scenario seed; nested values merged over the YAML |
    | ``carbon_price_per_kg`` | 0.0 | carbon price [currency/kg CO2] |
    | ``demand_charge_per_kw`` / ``unmet_penalty_per_kwh`` | tariff | override the tariff's |
    | ``voltage_penalty_per_pu_h`` / ``overload_penalty_per_pct_h`` | 1000 / 1 | grid penalties |
    | ``reward_scale`` | 1.0 | reward = -reward_scale x cost |

    ```python
    import gymnasium, qubit_sim.rl  # importing qubit_sim.rl registers the ids
    env = gymnasium.make("qubit_sim/SiteDispatch-v0", scenario="scenarios/workplace_pv_battery.yaml")
    obs, info = env.reset(seed=0)
    ```
    """

    kind = "site_dispatch"


class ChargerFleetEnv(SiteEnv):
    """Set one power limit per charger, plus the battery.

    ## Description

    As :class:`SiteDispatchEnv`, but the agent limits every charger separately.

    ## Action Space

    ``Box(-1, 1, (1 + n_chargers,), float32)``: action 0 is the battery (as in
    :class:`SiteDispatchEnv`); action ``1 + i`` gives charger ``i`` the limit
    ``(a + 1) / 2`` x its rating [kW], capped at what its EV can take now (ratings, vehicle limit,
    taper, remaining need). ``info["charger_kw_requested"]`` / ``["charger_kw_applied"]`` report
    the projection per charger.

    ## Observation Space

    The :class:`SiteDispatchEnv` features (``18 + 3 H``), then four blocks of one value per
    charger (``n`` chargers, in ``SiteInfo.charger_ids`` order):

    | Block | Feature | Value | Range |
    |-------|---------|-------|-------|
    | 1 | occupied_<id> | EV plugged in (1) or not (0) [-] | [0, 1] |
    | 2 | need_<id> | energy its EV still needs / (rating x 24 h) [kWh/kWh] | [0, 10] |
    | 3 | time_left_<id> | time to its EV's departure [days]; 0 when empty | [0, 30] |
    | 4 | power_available_<id> | power its EV can take now / rating [kW/kW] | [0, 1] |

    ## Rewards

    As :class:`SiteDispatchEnv`.

    ## Episode End

    As :class:`SiteDispatchEnv`.

    ## Arguments

    As :class:`SiteDispatchEnv`.
    """

    kind = "charger_fleet"
