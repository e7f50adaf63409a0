"""A scenario built once for reinforcement learning: its whole horizon, cut into episode windows.

Building a site is the slow part of an environment (feeder, PV through pvlib, the EV population),
so an environment builds the scenario's whole horizon once and every episode is a window of it:

* the horizon is cut into consecutive, non-overlapping **blocks** of one episode length, starting
  ``start_offset`` after the scenario start; each block is one possible episode;
* a block belongs to the **test** split when a SHA-256 uniform of ``(split_seed, block start UTC)``
  is below ``test_fraction`` (if that leaves a split empty, the block with the extreme value moves
  over). Membership depends only on the seed and the block's start instant: it is the same in
  every process and does not change when the scenario horizon is lengthened;
* an episode's site is the horizon's site with its series sliced to the window, fresh chargers and
  batteries (batteries at ``soc_initial``) and the sessions that overlap the window. A session that
  plugged in before the window starts plugs in at the window start with its arrival state.

Everything an observation needs that does not depend on control (time features, prices, carbon,
the load and PV look-ahead) is precomputed per step of the horizon in :attr:`Horizon.exo`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, fields, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np

from qubit_sim.core.clock import SimClock
from qubit_sim.errors import ConfigIssue, ScenarioError

__all__ = ["SPLITS", "EpisodePlan", "Horizon", "exo_feature_names"]

SPLITS = ("train", "test", "all")


def exo_feature_names(lookahead_h: int) -> list[str]:
    """Names of the exogenous features, in the order of :attr:`Horizon.exo`."""
    names = ["hour_sin", "hour_cos", "weekday_sin", "weekday_cos", "price"]
    names += [f"price_h{h}" for h in range(1, lookahead_h + 1)]
    names += ["carbon", "load"]
    names += [f"load_h{h}" for h in range(1, lookahead_h + 1)]
    names += ["pv"]
    names += [f"pv_h{h}" for h in range(1, lookahead_h + 1)]
    return names


@dataclass(frozen=True)
class EpisodePlan:
    """One block of the horizon as an episode: its sessions and their step-aligned events.

    Event arrays describe what the simulation does with :attr:`sessions` (the same rules as
    :class:`~qubit_sim.scenario.simulation.Simulation`): sessions with ``charger >= 0`` plug in at
    step ``arrive_step`` and, when ``depart_step >= 0``, leave at that step.

    Attributes:
        block: Block number in the horizon.
        offset_step: First horizon step of the window.
        sessions: The window's :class:`~qubit_sim.agents.sessions.SessionTable` (times relative
            to the window start [s]).
        arrive_step / depart_step / charger: Per served session [step, step (-1: stays), index].
        departure_s: Per served session, the step-aligned announced departure [s] (may lie
            after the window's end).
        e_needed_kwh / arrival_soc / capacity_kwh / ev_max_kw / knee_soc: Per served session, the
            EV's state on arrival; ``ev_max_kw`` is the vehicle's limit for its charger's kind.
        session_index: Row of each served session in :attr:`sessions`.
    """

    block: int
    offset_step: int
    sessions: Any
    arrive_step: np.ndarray
    depart_step: np.ndarray
    departure_s: np.ndarray
    charger: np.ndarray
    e_needed_kwh: np.ndarray
    arrival_soc: np.ndarray
    capacity_kwh: np.ndarray
    ev_max_kw: np.ndarray
    knee_soc: np.ndarray
    session_index: np.ndarray


def _seconds(value: str | int, what: str) -> int:
    from qubit_sim.core.clock import parse_duration

    try:
        return parse_duration(value)
    except ValueError as exc:
        raise ScenarioError([ConfigIssue(what, str(exc))]) from None


def _block_uniform(split_seed: int, start_iso: str) -> float:
    digest = hashlib.sha256(f"{split_seed}:{start_iso}".encode()).digest()
    return int.from_bytes(digest[:8], "little") / 2.0**64


def _lookahead(series: np.ndarray, bucket: int, n_buckets: int) -> np.ndarray:
    """Mean of ``series`` over the ``n_buckets`` buckets of ``bucket`` steps after each step.

    Beyond the end of the series the last value is held.
    """
    n = len(series)
    padded = np.concatenate([series, np.full(bucket * n_buckets, series[-1] if n else 0.0)])
    cumulative = np.concatenate([[0.0], np.cumsum(padded)])
    starts = np.arange(n)[:, None] + bucket * np.arange(n_buckets)[None, :]
    return (cumulative[starts + bucket] - cumulative[starts]) / bucket


class _EpisodeClock(SimClock):
    """A window's clock, built once per block: its step index is built once too.

    Every reset of an episode on the block hands the simulation's oracle the same (immutable)
    index instead of a new pandas ``date_range``.
    """

    def index(self, n_steps: int | None = None) -> Any:
        if n_steps is not None and n_steps != self.n_steps:
            return super().index(n_steps)
        cached = self.__dict__.get("_index")
        if cached is None:
            cached = super().index()
            object.__setattr__(self, "_index", cached)
        return cached


class Horizon:
    """A scenario's whole horizon, built once, and its episode windows.

    Args:
        scenario: Scenario YAML path or a :class:`~qubit_sim.scenario.loader.LoadedScenario`.
        episode_length: Episode length (``"1d"``, ``"12h"``, seconds); a multiple of the control
            period.
        start_offset: Where the first block starts after the scenario start (``"12h"`` makes
            noon-to-noon episodes).
        test_fraction: Share of blocks in the test split, in [0, 1).
        split_seed: Seed of the train/test split.
        lookahead_h: Hourly look-ahead buckets of price, load and PV in the observation.
        forecast: ``"oracle"`` (true future) or ``"l2"`` (Qubit L2 forecasters for load and PV).
        power_flow: ``None`` keeps the scenario's setting; ``False`` skips the feeder's power flow
            (and its background profiles); ``True`` requires one.
        scenario_seed: Overrides ``site.seed`` (the EV population).
        overrides: Nested values merged over the scenario file.

    Raises:
        ScenarioError: invalid scenario or arguments, each problem named with its fix.
    """

    def __init__(
        self,
        scenario: str | Path | Any,
        *,
        episode_length: str | int = "1d",
        start_offset: str | int = 0,
        test_fraction: float = 0.2,
        split_seed: int = 0,
        lookahead_h: int = 6,
        forecast: str = "oracle",
        power_flow: bool | None = None,
        scenario_seed: int | None = None,
        overrides: dict[str, Any] | None = None,
    ) -> None:
        from qubit_sim.control.builtin import Uncontrolled
        from qubit_sim.scenario.build import build_site
        from qubit_sim.scenario.loader import LoadedScenario, load_scenario

        issues: list[ConfigIssue] = []
        if forecast not in ("oracle", "l2"):
            issues.append(ConfigIssue("forecast", f"must be 'oracle' or 'l2', found {forecast!r}"))
        if not 0.0 <= test_fraction < 1.0:
            issues.append(ConfigIssue("test_fraction", f"must be in [0, 1), found {test_fraction}"))
        if lookahead_h < 0:
            issues.append(ConfigIssue("lookahead_h", f"must be >= 0, found {lookahead_h}"))
        if issues:
            raise ScenarioError(issues)
        if isinstance(scenario, LoadedScenario):
            if overrides:
                raise ScenarioError(
                    [
                        ConfigIssue(
                            "overrides", "give a scenario path, not a loaded one, to override"
                        )
                    ]
                )
            loaded = scenario
        else:
            loaded = load_scenario(Path(scenario), overrides=overrides)
            grid = loaded.spec.grid
            if power_flow is False and grid is not None and (grid.power_flow or grid.background):
                # Without a power flow the feeder's background profiles are never used.
                merged = dict(overrides or {})
                merged["grid"] = {
                    **dict(merged.get("grid") or {}),
                    "power_flow": False,
                    "background": False,
                }
                loaded = load_scenario(Path(scenario), overrides=merged)
        grid_spec = loaded.spec.grid
        self.power_flow = grid_spec is not None and grid_spec.power_flow and power_flow is not False
        if power_flow and not self.power_flow:
            raise ScenarioError(
                [
                    ConfigIssue(
                        "grid.power_flow",
                        "power_flow=True needs a grid section with power_flow: true",
                    )
                ],
                str(loaded.path or loaded.name),
            )
        self.loaded = loaded
        self.site = build_site(loaded, seed=scenario_seed, controller=Uncontrolled())
        site = self.site
        self.dt = site.clock.step_s
        self.period_s = site.site_info.period_s
        self.control_every = max(1, self.period_s // self.dt)
        self.n_steps = site.clock.n_steps
        self.forecast = forecast
        self.lookahead_h = int(lookahead_h)
        self._soc_initial = site.batteries.soc.copy()
        self._powerflow_handed_out = False
        self._clocks: dict[int, Any] = {}

        length = _seconds(episode_length, "episode_length")
        offset = _seconds(start_offset, "start_offset")
        horizon_s = site.clock.duration_s
        problems = []
        if length <= 0 or length % self.period_s:
            problems.append(
                ConfigIssue(
                    "episode_length",
                    f"{length} s must be a positive multiple of the control period "
                    f"({self.period_s} s)",
                )
            )
        if offset % self.period_s:
            problems.append(
                ConfigIssue(
                    "start_offset",
                    f"{offset} s must be a multiple of the control period ({self.period_s} s)",
                )
            )
        if not problems and offset + length > horizon_s:
            problems.append(
                ConfigIssue(
                    "episode_length",
                    f"start_offset + episode_length = {offset + length} s exceeds the scenario "
                    f"horizon ({horizon_s} s); shorten the episode or lengthen site.duration",
                )
            )
        if problems:
            raise ScenarioError(problems, str(loaded.path or loaded.name))
        self.episode_s = length
        self.episode_steps = length // self.dt
        self.episode_controls = length // self.period_s
        n_blocks = (horizon_s - offset) // length
        self.block_offset_step = (offset + np.arange(n_blocks) * length) // self.dt
        self.splits = self._split(test_fraction, split_seed)
        self._plans: dict[int, EpisodePlan] = {}
        self._precompute()

    # ------------------------------------------------------------------ splits
    def _split(self, test_fraction: float, split_seed: int) -> dict[str, np.ndarray]:
        n = len(self.block_offset_step)
        starts = [self.site.clock.iso(int(k) * self.dt) for k in self.block_offset_step]
        u = np.array([_block_uniform(split_seed, start) for start in starts])
        test = u < test_fraction
        if test_fraction > 0 and n >= 2:
            if not test.any():
                test[int(np.argmin(u))] = True
            if test.all():
                test[int(np.argmax(u))] = False
        everything = np.arange(n)
        return {"train": everything[~test], "test": everything[test], "all": everything}

    def blocks(self, split: str) -> np.ndarray:
        """Block numbers of ``split`` (``"train"``, ``"test"`` or ``"all"``), ascending.

        Raises:
            ScenarioError: unknown split, or an empty one.
        """
        if split not in SPLITS:
            raise ScenarioError(
                [ConfigIssue("split", f"unknown split {split!r}; use one of {list(SPLITS)}")]
            )
        chosen = self.splits[split]
        if not len(chosen):
            raise ScenarioError(
                [
                    ConfigIssue(
                        "split",
                        f"the {split!r} split is empty: the horizon holds "
                        f"{len(self.block_offset_step)} episode block(s); lengthen site.duration, "
                        "shorten episode_length or change test_fraction",
                    )
                ],
                str(self.loaded.path or self.loaded.name),
            )
        return chosen

    # ------------------------------------------------------------ precompute
    def _precompute(self) -> None:
        site = self.site
        times = site.clock.index()
        # One extra row: the observation after an episode's last step may lie at the horizon end.
        times_ext = site.clock.index(self.n_steps + 1)
        local = times_ext.tz_convert(site.site_info.tz)
        hour = (
            local.hour.to_numpy()
            + local.minute.to_numpy() / 60.0
            + local.second.to_numpy() / 3600.0
        )
        weekday = local.dayofweek.to_numpy().astype(float)
        self.load_total_kw = site.load_kw.sum(axis=1)
        self.pv_total_kw = site.pv_available_kw.sum(axis=1)

        def held(series: np.ndarray) -> np.ndarray:
            return np.append(series, series[-1] if len(series) else 0.0)

        price = held(np.asarray(site.price_per_kwh, dtype=float))
        carbon = held(np.asarray(site.carbon_g_per_kwh, dtype=float))
        load = held(self.load_total_kw)
        pv = held(self.pv_total_kw)
        self.price_scale = max(float(np.abs(price).max(initial=0.0)), 1e-9)
        self.carbon_scale = max(float(np.abs(carbon).max(initial=0.0)), 1e-9)
        fleet, bank = site.fleet, site.batteries
        self.rated_total_kw = float(fleet.rated_kw.sum())
        self.power_scale_kw = max(
            self.rated_total_kw
            + float(bank.p_charge_max_kw.sum())
            + max(float(load.max(initial=0.0)), 0.0)
            + max(float(pv.max(initial=0.0)), 0.0),
            1.0,
        )
        bucket = max(1, round(3600 / self.dt))
        self.bucket_steps = bucket
        h = self.lookahead_h
        p_scale = self.power_scale_kw
        columns = [
            np.sin(2 * np.pi * hour / 24.0),
            np.cos(2 * np.pi * hour / 24.0),
            np.sin(2 * np.pi * weekday / 7.0),
            np.cos(2 * np.pi * weekday / 7.0),
            price / self.price_scale,
            *(_lookahead(price, bucket, h).T / self.price_scale),
            carbon / self.carbon_scale,
            load / p_scale,
            *(_lookahead(load, bucket, h).T / p_scale),
            pv / p_scale,
            *(_lookahead(pv, bucket, h).T / p_scale),
        ]
        self.exo = np.ascontiguousarray(np.column_stack(columns))
        self.exo_names = exo_feature_names(h)
        self._l2: Any = None
        if self.forecast == "l2":
            from qubit_sim.rl.forecast import L2Lookahead

            self._l2 = L2Lookahead(self, times_ext)
        self._demand_windows(times, local[:-1])

    def _demand_windows(self, times: Any, local: Any) -> None:
        """Demand-window number and billing-period label of every step (one padding step)."""
        from qubit_sim.core.tariff import billing_periods

        tariff = self.site.tariff
        window_s = tariff.demand_window_s
        utc_s = times.as_unit("s").asi8
        if self.dt >= window_s:
            window = np.arange(self.n_steps, dtype=np.int64)
        else:
            # Windows aligned to the local clock, as the KPIs average them.
            offset_s = local.tz_localize(None).as_unit("s").asi8 - utc_s
            wall_s = utc_s + offset_s
            key = wall_s - wall_s % window_s - offset_s
            window = np.unique(key, return_inverse=True)[1].astype(np.int64)
        self.window_id = np.append(window, -1)
        self.period_label = billing_periods(times, self.site.site_info.tz, tariff.billing_period)

    def exo_rows(self, steps: np.ndarray | int) -> np.ndarray:
        """Exogenous feature rows of horizon steps ``steps`` (L2 forecasts filled on first use)."""
        if self._l2 is not None:
            self._l2.fill(np.atleast_1d(steps))
        return self.exo[steps]

    # --------------------------------------------------------------- episodes
    def plan(self, block: int) -> EpisodePlan:
        """The :class:`EpisodePlan` of ``block`` (computed once, then cached)."""
        cached = self._plans.get(block)
        if cached is None:
            cached = self._plans[block] = self._make_plan(block)
        return cached

    def _make_plan(self, block: int) -> EpisodePlan:
        from qubit_sim.agents.sessions import SessionTable
        from qubit_sim.assets import assign_chargers

        site = self.site
        dt = self.dt
        offset_step = int(self.block_offset_step[block])
        low = offset_step * dt
        high = low + self.episode_s
        table = site.sessions
        keep = (np.asarray(table.departure_s) > low) & (np.asarray(table.arrival_s) < high)
        columns = {spec.name: np.asarray(getattr(table, spec.name))[keep] for spec in fields(table)}
        columns["arrival_s"] = np.maximum(columns["arrival_s"] - low, 0)
        columns["departure_s"] = columns["departure_s"] - low
        sessions = SessionTable(**columns)
        # The simulation's own alignment and charger assignment (Simulation._schedule_sessions).
        arrive = -(-columns["arrival_s"] // dt) * dt
        depart = (columns["departure_s"] // dt) * dt
        charger = assign_chargers(arrive, depart, columns["home_charger"], site.fleet.n)
        served = (charger >= 0) & (arrive < self.episode_s)
        index = np.flatnonzero(served)
        is_dc = site.fleet.is_dc[charger[index]]
        return EpisodePlan(
            block=block,
            offset_step=offset_step,
            sessions=sessions,
            arrive_step=arrive[index] // dt,
            depart_step=np.where(depart[index] < self.episode_s, depart[index] // dt, -1),
            departure_s=depart[index].astype(np.int64),
            charger=charger[index],
            e_needed_kwh=columns["e_needed_kwh"][index].astype(float),
            arrival_soc=columns["arrival_soc"][index].astype(float),
            capacity_kwh=columns["capacity_kwh"][index].astype(float),
            ev_max_kw=np.where(is_dc, columns["max_dc_kw"][index], columns["max_ac_kw"][index]),
            knee_soc=columns["knee_soc"][index].astype(float),
            session_index=index,
        )

    def site_for(self, block: int, controller: Any, powerflow: Any = None) -> Any:
        """A fresh :class:`~qubit_sim.scenario.build.SiteModel` of ``block``'s window.

        Args:
            block: Block number.
            controller: The controller the window's simulation calls.
            powerflow: The power flow to use (see :meth:`new_powerflow`); required when the
                horizon has one.
        """
        from qubit_sim.assets import BatteryBank, ChargerFleet

        site = self.site
        plan = self.plan(block)
        first = plan.offset_step
        last = first + self.episode_steps
        clock = self._clocks.get(block)
        if clock is None:
            clock = self._clocks[block] = _EpisodeClock(
                site.clock.start + timedelta(seconds=first * self.dt), self.dt, self.episode_s
            )
        fleet = site.fleet
        bank = site.batteries
        grid = None
        if self.power_flow and site.grid is not None:
            if powerflow is None:
                raise ValueError("site_for needs a powerflow when the horizon has one")
            background = site.grid.background
            if background is not None:
                background = replace(
                    background,
                    times_utc=background.times_utc[first:last],
                    load_p_mw=background.load_p_mw[first:last],
                    load_q_mvar=background.load_q_mvar[first:last],
                    sgen_p_mw=background.sgen_p_mw[first:last],
                )
            grid = replace(site.grid, powerflow=powerflow, background=background)
        return replace(
            site,
            clock=clock,
            fleet=ChargerFleet(fleet.ids, fleet.rated_kw, fleet.efficiency, fleet.is_dc),
            batteries=BatteryBank(
                bank.ids,
                capacity_kwh=bank.capacity_kwh,
                p_charge_max_kw=bank.p_charge_max_kw,
                p_discharge_max_kw=bank.p_discharge_max_kw,
                eta_charge=bank.eta_charge,
                eta_discharge=bank.eta_discharge,
                soc_min=bank.soc_min,
                soc_max=bank.soc_max,
                soc_initial=self._soc_initial,
                self_discharge_per_h=bank.self_discharge_per_h,
            ),
            pv_available_kw=site.pv_available_kw[first:last],
            load_kw=site.load_kw[first:last],
            sessions=plan.sessions,
            price_per_kwh=site.price_per_kwh[first:last],
            export_price_per_kwh=site.export_price_per_kwh[first:last],
            carbon_g_per_kwh=site.carbon_g_per_kwh[first:last],
            controller=controller,
            grid=grid,
        )

    def new_powerflow(self) -> Any:
        """A power flow of the feeder for one environment (``None`` without power flow).

        Each environment needs its own: the power flow warm-starts from its previous solution.
        """
        grid = self.site.grid
        if not self.power_flow or grid is None:
            return None
        if not self._powerflow_handed_out:
            self._powerflow_handed_out = True
            return grid.powerflow
        from qubit_sim.grid import FastPowerFlow

        return FastPowerFlow(grid.net, list(grid.site_buses))

    @property
    def scales(self) -> dict[str, float]:
        """The feature normalisers: ``{"price": max |import price| [currency/kWh], "carbon":
        max |carbon intensity| [gCO2/kWh], "power_kw": P [kW]}`` (a model card's ``scales``)."""
        return {
            "price": float(self.price_scale),
            "carbon": float(self.carbon_scale),
            "power_kw": float(self.power_scale_kw),
        }

    @property
    def battery_soc_initial(self) -> np.ndarray:
        """Battery SOC at every episode start [-]."""
        return self._soc_initial.copy()
