"""The Qubit stack as controllers: the documented greedy baseline, MPC and the offline optimum.

* ``qubit_greedy`` (:class:`QubitGreedy`): every slot, the documented greedy EV scheduler for the
  plugged EVs over the horizon, then the documented two-pass peak shaving of the battery
  (:func:`~qubit_sim.stack.optimize.qubit_baseline_plan`); the first slot is applied.
* ``mpc`` (:class:`Mpc`): the exact site LP (:class:`~qubit_sim.stack.optimize.MpcOptimizer`,
  set up in :meth:`Mpc.reset`) solved every slot over a rolling horizon, with the billing-period
  peak reached so far (:class:`~qubit_sim.control.stack_meter.PeakMeter`). With HiGHS (the
  default) each slot's LP is assembled sparse and handed to HiGHS directly; with another solver
  the cvxpy model is built once and re-solved with new parameters.
* ``offline_optimal`` (:class:`OfflineOptimal`): the same LP over the whole run with perfect
  foresight, solved once in :meth:`OfflineOptimal.reset` and replayed: the lower bound every
  comparison reports.

Both LPs charge demand per billing period of the tariff: a horizon that reaches into the next
period has a second peak, which starts from zero.

How the simulated site maps to the L3 problem and plans map back to setpoints is in
:mod:`qubit_sim.control.stack_site` and :mod:`qubit_sim.control.stack_setpoints`. All three plan in slots of ``slot_s`` (default 900 s) and must
be called once per slot: the scenario's ``controller.period`` must equal ``slot_s`` (or be unset,
then the controller holds its setpoints between slot starts itself).

Every controller reports ``solve_time_mean_s``, ``solve_time_max_s``, ``solve_count`` (planner or
solver time per plan), ``act_time_mean_s``/``act_time_max_s`` (whole control call) and
``limits_relaxed`` (plans that had to exceed an import/export limit) in the run's KPIs.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import numpy as np

from qubit_sim.control.base import Controller, Observation, Oracle, Setpoints, SiteInfo
from qubit_sim.control.stack_feeder import feeder_constraint, feeder_window
from qubit_sim.control.stack_forecast import FORECASTS, ForecastSource, make_forecast
from qubit_sim.control.stack_meter import PeakMeter
from qubit_sim.control.stack_sessions import SessionRows
from qubit_sim.control.stack_setpoints import plan_setpoints, tracking_battery_kw
from qubit_sim.control.stack_site import StackSite, check_period
from qubit_sim.core.clock import parse_duration
from qubit_sim.errors import ControllerError
from qubit_sim.stack.optimize import (
    IntraSlot,
    OptimizationError,
    Plan,
    SiteProblem,
    qubit_baseline_plan,
)
from qubit_sim.stack.optimize.plan import battery_energy_kwh

__all__ = ["Mpc", "OfflineOptimal", "QubitGreedy", "intra_slot_steps"]


def intra_slot_steps(site: StackSite, oracle: Oracle) -> IntraSlot:
    """The simulation steps inside each slot of the run, from the oracle.

    The deviation is the step's load minus PV less its slot mean: with every setpoint held over
    the slot, that is how far the step's site power is from the slot's. A trailing partial slot is
    filled with its last step (the simulation ends inside it, so its plan is approximate anyway).
    """
    steps, n_slots = site.steps_per_slot, site.n_slots
    pv = np.asarray(oracle.pv_available_kw, dtype=float).reshape(site.n_steps, -1).sum(axis=1)
    price = np.asarray(oracle.price_per_kwh, dtype=float)

    def grid(per_step: np.ndarray) -> np.ndarray:
        padded = np.pad(
            np.asarray(per_step, dtype=float), (0, n_slots * steps - site.n_steps), "edge"
        )
        return padded.reshape(n_slots, steps)

    net = grid(np.asarray(oracle.load_kw, dtype=float) - pv)
    return IntraSlot(
        deviation_kw=net - net.mean(axis=1, keepdims=True),
        price_per_kwh=grid(price),
        # Import and export share one meter: an export price above the import price is capped.
        export_price_per_kwh=grid(np.minimum(oracle.export_price_per_kwh, price)),
        carbon_g_per_kwh=grid(np.maximum(oracle.carbon_g_per_kwh, 0.0)),
    )


def _seconds(name: str, key: str, value: Any) -> int:
    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        raise ControllerError(f"controller {name!r}: {key}: {exc}") from None
    if seconds <= 0:
        raise ControllerError(f"controller {name!r}: {key} = {value!r} must be positive, e.g. 900")
    return seconds


def _positive_int(name: str, key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ControllerError(
            f"controller {name!r}: {key} = {value!r} must be a whole number >= 1, e.g. 96"
        )
    return int(value)


class _StackController(Controller):
    """Shared machinery: slot bookkeeping, setpoint holding and timing statistics."""

    uses_coordination = True
    """Setpoints reach the devices as Qubit L4 commands (:mod:`qubit_sim.scenario.coordination`)."""

    def __init__(self, slot_s: int | str = 900) -> None:
        self.slot_s = _seconds(self.name, "slot_s", slot_s)

    def reset(self, site: SiteInfo, rng: np.random.Generator) -> None:
        super().reset(site, rng)
        self._hold = check_period(site, self.slot_s, self.name)
        self.stack_site = StackSite.from_site_info(site, self.slot_s, self.name)
        self._held: Setpoints | None = None
        self._solve_s: list[float] = []
        self._act_s: list[float] = []
        self._relaxed = 0

    def act(self, obs: Observation) -> Setpoints:
        if self._hold and self._held is not None and obs.t_s % self.slot_s:
            return self._held
        start = time.perf_counter()
        setpoints = self._act(obs, obs.t_s // self.slot_s)
        self._act_s.append(time.perf_counter() - start)
        self._held = setpoints
        return setpoints

    def _act(self, obs: Observation, slot: int) -> Setpoints:  # pragma: no cover - interface
        raise NotImplementedError

    def _count_relaxed(self, problem: SiteProblem, plan: Plan) -> None:
        from qubit_sim.stack.optimize import evaluate_plan

        terms = evaluate_plan(problem, plan)
        if terms.import_excess_kwh + terms.export_excess_kwh > 1e-6:
            self._relaxed += 1

    def stats(self) -> dict[str, float]:
        solve = np.array(self._solve_s) if self._solve_s else np.zeros(1)
        act = np.array(self._act_s) if self._act_s else np.zeros(1)
        return {
            "solve_time_mean_s": float(solve.mean()),
            "solve_time_max_s": float(solve.max()),
            "solve_count": len(self._solve_s),
            "act_time_mean_s": float(act.mean()),
            "act_time_max_s": float(act.max()),
            "limits_relaxed": self._relaxed,
        }


class _RollingController(_StackController):
    """A controller that re-plans every slot over a rolling horizon from forecasts."""

    def __init__(
        self, slot_s: int | str = 900, horizon_slots: int = 96, forecast: str = "oracle"
    ) -> None:
        super().__init__(slot_s)
        self.horizon_slots = _positive_int(self.name, "horizon_slots", horizon_slots)
        if forecast not in FORECASTS:
            raise ControllerError(
                f"controller {self.name!r}: forecast = {forecast!r} is not one of "
                f"{list(FORECASTS)}; use forecast='oracle' (perfect foresight) or 'l2'"
            )
        self.forecast = forecast

    def reset(self, site: SiteInfo, rng: np.random.Generator) -> None:
        super().reset(site, rng)
        self.forecaster: ForecastSource = make_forecast(
            self.forecast, self.stack_site, site, self.name
        )

    def _window(self, obs: Observation, slot: int) -> tuple[int, SessionRows]:
        """Horizon length at ``slot`` and the plugged EVs."""
        self.forecaster.observe(obs)
        n = max(min(self.horizon_slots, self.stack_site.n_slots - slot), 1)
        return n, self.stack_site.plugged_rows(obs)


class QubitGreedy(_RollingController):
    """The documented Qubit stack: greedy EV scheduling + two-pass peak shaving, each slot.

    Args:
        slot_s: Slot length [s] (or a duration such as ``"15min"``); equals the control period.
        horizon_slots: Planning horizon [slots]; EV schedules never extend past a departure.
        forecast: ``"oracle"`` or ``"l2"`` (see :mod:`qubit_sim.control.stack_forecast`).
        peak_target_kw: Peak-shaving target [kW]; ``None``: the documented 80th percentile of
            the horizon's net load.
    """

    name = "qubit_greedy"

    def __init__(
        self,
        slot_s: int | str = 900,
        horizon_slots: int = 96,
        forecast: str = "oracle",
        peak_target_kw: float | None = None,
    ) -> None:
        super().__init__(slot_s, horizon_slots, forecast)
        if peak_target_kw is not None and not (np.isfinite(peak_target_kw) and peak_target_kw >= 0):
            raise ControllerError(
                f"controller 'qubit_greedy': peak_target_kw = {peak_target_kw!r} must be a "
                "finite number >= 0 [kW], or None for the 80th-percentile rule"
            )
        self.peak_target_kw = peak_target_kw

    def _act(self, obs: Observation, slot: int) -> Setpoints:
        site = self.stack_site
        n, rows = self._window(obs, slot)
        exogenous = self.forecaster.exogenous(obs, slot, n)
        problem = site.problem(slot, exogenous, rows, obs.battery_soc)
        start = time.perf_counter()
        plan = qubit_baseline_plan(problem, self.peak_target_kw)
        self._solve_s.append(time.perf_counter() - start)
        self._count_relaxed(problem, plan)
        return plan_setpoints(site, plan, 0, rows, obs, float(exogenous.pv_kw[0]))


class Mpc(_RollingController):
    """Model-predictive control with the exact site LP, re-solved each slot.

    Args:
        slot_s: Slot length [s]; equals the control period.
        horizon_slots: Rolling horizon [slots] (shorter near the end of the run).
        forecast: ``"oracle"`` (default) or ``"l2"``.
        solver: cvxpy solver name (HiGHS); ``fallback_solver`` is tried when it fails.
        feeder_limits: Also keep the scenario's feeder within its loading and voltage limits,
            linearised from its own power flow (:mod:`~qubit_sim.control.stack_feeder`).
        feeder_margin: Share of the room to each feeder limit kept free, for the
            linearisation error (0..0.5).
    """

    name = "mpc"

    def __init__(
        self,
        slot_s: int | str = 900,
        horizon_slots: int = 96,
        forecast: str = "oracle",
        solver: str = "HIGHS",
        fallback_solver: str | None = "CLARABEL",
        feeder_limits: bool = False,
        feeder_margin: float = 0.05,
    ) -> None:
        super().__init__(slot_s, horizon_slots, forecast)
        self.solver = str(solver)
        self.fallback_solver = fallback_solver
        self.feeder_limits = bool(feeder_limits)
        self.feeder_margin = float(feeder_margin)

    def reset(self, site: SiteInfo, rng: np.random.Generator) -> None:
        super().reset(site, rng)
        from qubit_sim.stack.optimize import MpcOptimizer

        assert site.oracle is not None  # checked by StackSite
        horizon = min(self.horizon_slots, self.stack_site.n_slots)
        self.max_evs = self.forecaster.max_rows(horizon)
        # The most billing periods any rolling window reaches: each gets a peak in the model.
        period = np.cumsum(np.diff(self.stack_site.billing_label, prepend=0) != 0)
        ends = np.minimum(np.arange(len(period)) + horizon, len(period)) - 1
        self.feeder = _feeder(self, site) if self.feeder_limits else None
        try:
            self.optimizer = MpcOptimizer(
                horizon,
                self.max_evs,
                self.stack_site.battery is not None,
                max_billing_periods=int((period[ends] - period).max()) + 1,
                n_grid_constraints=0 if self.feeder is None else self.feeder.n_constraints,
                solver=self.solver,
                fallback_solver=self.fallback_solver,
            )
        except OptimizationError as exc:
            raise ControllerError(f"controller 'mpc': {exc}") from None
        self.meter = PeakMeter(self.stack_site, site.oracle)
        self._fallbacks = 0
        self._failures = 0
        self._dropped = 0

    def _act(self, obs: Observation, slot: int) -> Setpoints:
        site = self.stack_site
        self.meter.close_slot(obs)
        n, rows = self._window(obs, slot)
        rows = rows + self.forecaster.future_rows(obs.t_s, n)
        if rows.n > self.max_evs:
            self._dropped += rows.n - self.max_evs
            rows = rows.head(self.max_evs)
        exogenous = self.forecaster.exogenous(obs, slot, n)
        problem = site.problem(
            slot, exogenous, rows, obs.battery_soc, self.meter.peak_so_far_kw(slot)
        )
        # Each billing period the horizon reaches has its own demand peak.
        problem = replace(problem, billing_period=site.billing_label[slot : slot + problem.n_slots])
        start = time.perf_counter()
        try:
            grid = (
                None if self.feeder is None else feeder_window(self.feeder, slot, problem.n_slots)
            )
            result = self.optimizer.solve(problem, grid)
        except OptimizationError:
            # Never stop the site for a failed solve: run the documented baseline this slot.
            self._failures += 1
            plan = qubit_baseline_plan(problem)
            self._count_relaxed(problem, plan)
        else:
            plan = result.plan
            self._fallbacks += int(result.fallback_reason is not None)
            self._relaxed += int(result.limits_relaxed)
        self._solve_s.append(time.perf_counter() - start)
        setpoints = plan_setpoints(site, plan, 0, rows, obs, float(exogenous.pv_kw[0]))
        self.meter.record(obs, slot, setpoints)
        return setpoints

    def stats(self) -> dict[str, float]:
        out = super().stats()
        out.update(
            solver_fallbacks=self._fallbacks,
            solve_failures=self._failures,
            ev_rows_dropped=self._dropped,
        )
        return out


class OfflineOptimal(_StackController):
    """The offline optimum: the site LP over the whole run with perfect foresight, replayed.

    Load, PV, prices and every served session (step-aligned arrival and departure, the charger the
    simulator will assign) come from the oracle; sessions turned away are left out. Each call
    applies the plan's slot containing ``obs.t_s``: its EV and PV setpoints, and the battery power
    that ends the slot on the plan's stored energy.

    With ``step_pricing`` (default) the LP also knows every simulation step inside each slot
    (:func:`intra_slot_steps`): setpoints held over a slot meet the step-by-step swings of load and
    PV, so import and export are priced per step, as the KPI prices them, and the demand peak is
    the slot's mean step import. Slot means alone misprice the slots where the site power changes
    sign, and a rolling controller could then beat the "optimum".

    Args:
        slot_s: Slot length [s]; equals the control period.
        solver: cvxpy solver name (HiGHS); ``fallback_solver`` is tried when it fails.
        step_pricing: Price import and export per simulation step (``False``: per slot mean).
        feeder_limits / feeder_margin: As for :class:`Mpc`.
    """

    name = "offline_optimal"

    def __init__(
        self,
        slot_s: int | str = 900,
        solver: str = "HIGHS",
        fallback_solver: str | None = "CLARABEL",
        step_pricing: bool = True,
        feeder_limits: bool = False,
        feeder_margin: float = 0.05,
    ) -> None:
        super().__init__(slot_s)
        self.solver = str(solver)
        self.fallback_solver = fallback_solver
        self.feeder_limits = bool(feeder_limits)
        self.feeder_margin = float(feeder_margin)
        if not isinstance(step_pricing, bool | np.bool_):
            raise ControllerError(
                f"controller 'offline_optimal': step_pricing = {step_pricing!r} must be true or "
                "false"
            )
        self.step_pricing = bool(step_pricing)

    def reset(self, site: SiteInfo, rng: np.random.Generator) -> None:
        super().reset(site, rng)
        from qubit_sim.stack.optimize import offline_optimal

        stack_site = self.stack_site
        assert site.oracle is not None  # checked by StackSite
        self.rows = stack_site.oracle_rows(site.oracle, 0, stack_site.n_slots, include_now=True)
        self.problem = replace(
            stack_site.problem(0, stack_site.series, self.rows),
            billing_period=stack_site.billing_label,
            intra_slot=intra_slot_steps(stack_site, site.oracle) if self.step_pricing else None,
        )
        try:
            self.result = offline_optimal(
                self.problem,
                _feeder(self, site) if self.feeder_limits else None,
                solver=self.solver,
                fallback_solver=self.fallback_solver,
            )
        except OptimizationError as exc:
            raise ControllerError(f"controller 'offline_optimal': {exc}") from None
        self._solve_s.append(self.result.solve_time_s)
        self._relaxed = int(self.result.limits_relaxed)
        end = battery_energy_kwh(self.problem, self.result.plan)
        start = self.problem.battery.e0_kwh if self.problem.battery is not None else 0.0
        self._planned_start_kwh = np.concatenate([[start], end[:-1]])

    def _act(self, obs: Observation, slot: int) -> Setpoints:
        site = self.stack_site
        slot = min(slot, site.n_slots - 1)
        plan = self.result.plan
        # The stored-energy trajectory is replayed, not the battery power, so self-discharge is
        # made up in the next slot instead of accumulating until a planned discharge hits the floor.
        stored = float(np.asarray(obs.battery_soc, dtype=float) @ site.battery_capacity_kwh)
        battery_kw = tracking_battery_kw(site, plan, slot, self._planned_start_kwh[slot], stored)
        return plan_setpoints(
            site, plan, slot, self.rows, obs, float(self.problem.pv_kw[slot]), battery_kw
        )

    def stats(self) -> dict[str, float]:
        out = super().stats()
        out["planned_objective"] = self.result.objective.total
        return out


def _feeder(controller: Any, site: SiteInfo) -> Any:
    """The feeder limits of ``controller``'s slots over the whole run."""
    stack_site = controller.stack_site
    limit = site.import_limit_kw
    return feeder_constraint(
        site.params.get("grid"),
        stack_site.n_slots,
        stack_site.slot_s,
        stack_site.step_s,
        # The plan moves the site between idle and about its connection's import limit.
        float(limit) if np.isfinite(limit) and limit > 0 else 100.0,
        controller.feeder_margin,
        controller.name,
    )
