"""The simulated site as the L3 optimisers see it: slots, limits, batteries and EV sessions.

The stack controllers plan in slots of ``slot_s`` seconds (default 900 s) that start at the scenario
start; the simulator steps in ``step_s`` (e.g. 60 s) and holds the setpoints for the period. So that
a plan is feasible as simulated, the problem models the simulator's physics:

* **EVs** charge only in the slots they are plugged in for entirely, under the simulator's limits
  and taper (:mod:`qubit_sim.control.stack_sessions`).
* **Batteries** are aggregated into one (sum of capacities and power limits, capacity-weighted
  efficiencies, SOC window, degradation cost). That is exact when the batteries share their
  efficiencies, SOC window and C-rate and start at the same SOC; otherwise it is an approximation.
  The aggregate setpoint is split in proportion to each battery's feasible range this step.
  Self-discharge is not in the LP; the lower SOC bound is raised by the most it can take over one
  slot, so a planned discharge never runs into the simulator's SOC floor, and controllers that
  replay a plan track its stored-energy trajectory
  (:func:`~qubit_sim.control.stack_setpoints.tracking_battery_kw`), so the drift is
  made up in the next slot instead of adding up.
* **Objective** = the KPI ``objective_cost``: import cost - export credit + demand charge on the
  billing-period peak + degradation + unmet EV energy x the scenario's unmet penalty - stored
  battery energy x (mean import price of the run x discharge efficiency).
* Unlimited connections get a finite bound no site power can reach.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from qubit_sim.control.base import Observation, Oracle, SiteInfo
from qubit_sim.control.stack_sessions import SessionRows
from qubit_sim.errors import ControllerError
from qubit_sim.stack.optimize import BatteryParams, ObjectiveWeights, SiteProblem

__all__ = ["Exogenous", "StackSite", "check_period", "slot_means"]


def slot_means(per_step: np.ndarray, steps_per_slot: int) -> np.ndarray:
    """Mean of each slot of ``steps_per_slot`` steps along axis 0; a trailing partial slot is the
    mean of the steps it has."""
    values = np.asarray(per_step, dtype=float)
    n = values.shape[0]
    starts = np.arange(0, n, steps_per_slot)
    if not len(starts):
        return np.zeros((0,) + values.shape[1:])
    counts = np.diff(np.append(starts, n)).astype(float)
    sums = np.add.reduceat(values, starts, axis=0)
    return sums / counts.reshape((-1,) + (1,) * (values.ndim - 1))


def check_period(site: SiteInfo, slot_s: int, name: str) -> bool:
    """Check the control period against the slot length; return True when the controller must
    hold its setpoints between slot starts itself.

    The period must equal the slot. A scenario that sets no ``controller.period`` runs the
    controller every step; then the controller re-plans at slot starts only and holds in between,
    which is the same thing.

    Raises:
        ControllerError: the slot is not a whole number of steps, or the scenario's period differs.
    """
    if slot_s % site.step_s:
        raise ControllerError(
            f"controller {name!r}: slot_s = {slot_s} s is not a multiple of the simulation step "
            f"({site.step_s} s); pass slot_s as a multiple of it, e.g. slot_s=900"
        )
    if site.period_s == slot_s:
        return False
    scenario = site.params.get("scenario")
    explicit = scenario is not None and scenario.spec.controller.period is not None
    if not explicit and site.period_s == site.step_s:
        return True
    raise ControllerError(
        f"controller {name!r} plans in slots of {slot_s} s but the scenario's controller.period "
        f"is {site.period_s} s; set `controller: {{period: {slot_s}s}}` in the scenario (or "
        f"remove the period), or pass slot_s={site.period_s} to the controller"
    )


@dataclass(frozen=True)
class Exogenous:
    """Slot means of what no controller decides [kW, currency/kWh, gCO2/kWh]."""

    load_kw: np.ndarray
    pv_kw: np.ndarray
    price_per_kwh: np.ndarray
    export_price_per_kwh: np.ndarray
    carbon_g_per_kwh: np.ndarray

    def window(self, first: int, n: int) -> Exogenous:
        """Slots ``first .. first + n - 1``."""
        cut = slice(first, first + n)
        return Exogenous(
            self.load_kw[cut],
            self.pv_kw[cut],
            self.price_per_kwh[cut],
            self.export_price_per_kwh[cut],
            self.carbon_g_per_kwh[cut],
        )


@dataclass(frozen=True)
class StackSite:
    """Static facts of the simulated site in L3 terms, fixed for the run.

    Attributes:
        slot_s / step_s: Slot and simulation step [s].
        n_steps: Steps in the run.
        times_utc: Slot starts of the run (UTC).
        series: Slot means of the true load, PV, prices and carbon over the run.
        charger_efficiency: Per charger [-].
        charger_ev_max_kw: Rating x efficiency, EV side [kW].
        charger_is_dc: Which vehicle limit applies at each charger.
        battery: The aggregated battery at its initial SOC, or ``None``.
        battery_capacity_kwh / battery_eta_charge / battery_eta_discharge: Per battery.
        battery_self_discharge_kwh_per_h: Most energy all batteries can lose per hour [kWh/h].
        import_max_kw / export_max_kw: Connection limits, finite [kW].
        weights: The objective (see module docstring).
        pv_curtailment_allowed: Curtail only where it can pay: a finite export limit or a
            negative export price.
        billing_label: Billing period of each slot (demand charges restart with each).
    """

    slot_s: int
    step_s: int
    n_steps: int
    times_utc: pd.DatetimeIndex
    series: Exogenous
    charger_efficiency: np.ndarray
    charger_ev_max_kw: np.ndarray
    charger_is_dc: np.ndarray
    battery: BatteryParams | None
    battery_capacity_kwh: np.ndarray
    battery_eta_charge: np.ndarray
    battery_eta_discharge: np.ndarray
    battery_self_discharge_kwh_per_h: float
    import_max_kw: float
    export_max_kw: float
    weights: ObjectiveWeights
    pv_curtailment_allowed: bool
    billing_label: np.ndarray

    @property
    def steps_per_slot(self) -> int:
        """Simulation steps per slot."""
        return self.slot_s // self.step_s

    @property
    def n_slots(self) -> int:
        """Slots in the run."""
        return len(self.times_utc)

    @property
    def dt_h(self) -> float:
        """Slot length [h]."""
        return self.slot_s / 3600.0

    @classmethod
    def from_site_info(cls, site: SiteInfo, slot_s: int, name: str) -> StackSite:
        """Read the site, its scenario (``site.params['scenario']``), tariff and oracle.

        Raises:
            ControllerError: the simulator did not provide the scenario, tariff or oracle.
        """
        oracle = site.oracle
        scenario = site.params.get("scenario")
        tariff = site.params.get("tariff")
        if oracle is None or scenario is None or tariff is None:
            raise ControllerError(
                f"controller {name!r} needs SiteInfo.oracle and SiteInfo.params['scenario'] and "
                "['tariff'], which the simulator provides; run it through qubit_sim.run"
            )
        from qubit_sim.core.tariff import billing_periods

        steps = slot_s // site.step_s
        n_steps = len(oracle.load_kw)
        times = pd.DatetimeIndex(oracle.times_utc)[::steps]
        load = slot_means(oracle.load_kw, steps)
        pv_steps = np.asarray(oracle.pv_available_kw, dtype=float).reshape(n_steps, -1)
        series = Exogenous(
            load_kw=np.maximum(load, 0.0),
            # A negative building load is generation: the LP takes it as extra PV.
            pv_kw=slot_means(pv_steps.sum(axis=1), steps) + np.maximum(-load, 0.0),
            price_per_kwh=slot_means(oracle.price_per_kwh, steps),
            export_price_per_kwh=slot_means(oracle.export_price_per_kwh, steps),
            carbon_g_per_kwh=np.maximum(slot_means(oracle.carbon_g_per_kwh, steps), 0.0),
        )
        spec = scenario.spec
        is_dc = np.concatenate(
            [[c.kind == "dc"] * (c.count * c.connectors) for c in spec.assets.chargers] or [[]]
        ).astype(bool)
        if is_dc.shape[0] != len(site.charger_ids):
            raise ControllerError(
                f"controller {name!r}: the scenario lists {is_dc.shape[0]} charging points but "
                f"the site has {len(site.charger_ids)}"
            )
        specs = spec.assets.batteries
        battery, capacity, eta_c, eta_d = _aggregate_battery(specs, site, name)
        self_discharge = sum(b.self_discharge_per_h * b.soc_max * b.capacity_kwh for b in specs)
        price_mean = float(np.mean(oracle.price_per_kwh)) if n_steps else 0.0
        weights = ObjectiveWeights(
            cost_weight=1.0,
            carbon_weight=0.0,
            demand_charge_per_kw=float(tariff.demand_charge_per_kw),
            unmet_penalty_per_kwh=float(spec.tariff.unmet_energy_penalty_per_kwh),
            terminal_value_per_kwh=price_mean * battery.eta_discharge if battery else 0.0,
        )
        pv_max = float(series.pv_kw.max()) if len(series.pv_kw) else 0.0
        import_max = site.import_limit_kw
        if not np.isfinite(import_max):
            import_max = (
                float(np.max(series.load_kw, initial=0.0))
                + float(site.charger_max_kw.sum())
                + float(site.battery_charge_max_kw.sum())
                + 1.0
            )
        export_max = site.export_limit_kw
        if not np.isfinite(export_max):
            export_max = pv_max + float(site.battery_discharge_max_kw.sum()) + 1.0
        curtail = bool(np.isfinite(site.export_limit_kw)) or bool(
            np.any(series.export_price_per_kwh < 0)
        )
        return cls(
            slot_s=slot_s,
            step_s=site.step_s,
            n_steps=n_steps,
            times_utc=times,
            series=series,
            charger_efficiency=np.asarray(site.charger_efficiency, dtype=float),
            charger_ev_max_kw=np.asarray(site.charger_max_kw * site.charger_efficiency, float),
            charger_is_dc=is_dc,
            battery=battery,
            battery_capacity_kwh=capacity,
            battery_eta_charge=eta_c,
            battery_eta_discharge=eta_d,
            battery_self_discharge_kwh_per_h=float(self_discharge),
            import_max_kw=float(import_max),
            export_max_kw=float(export_max),
            weights=weights,
            pv_curtailment_allowed=curtail,
            billing_label=billing_periods(times, site.tz, tariff.billing_period),
        )

    # ---------------------------------------------------------------- sessions
    def plugged_rows(self, obs: Observation) -> SessionRows:
        """The EVs plugged in at ``obs.t_s``, one row each (arrival slot 0)."""
        chargers = np.flatnonzero(obs.charger_session >= 0)
        if not len(chargers):
            return SessionRows.empty()
        departure = obs.charger_departure_s[chargers]
        return SessionRows.build(
            session=obs.charger_session[chargers],
            charger=chargers,
            arrival_slot=np.zeros(len(chargers), dtype=np.int64),
            departure_slot=(departure - obs.t_s) // self.slot_s,
            e_needed_kwh=obs.charger_e_needed_kwh[chargers],
            soc0=obs.charger_soc[chargers],
            capacity_kwh=obs.charger_capacity_kwh[chargers],
            vehicle_max_kw=obs.charger_vehicle_max_kw[chargers],
            knee_soc=obs.charger_knee_soc[chargers],
            charger_ev_max_kw=self.charger_ev_max_kw,
            charger_efficiency=self.charger_efficiency,
        )

    def oracle_rows(
        self, oracle: Oracle, t_s: int, n_slots: int, *, include_now: bool = False
    ) -> SessionRows:
        """Sessions that plug in after ``t_s`` (at ``t_s`` too with ``include_now``) and before
        the end of ``n_slots`` slots, as the oracle says; slots relative to ``t_s``. Sessions
        turned away, or that cannot stay one whole slot, are left out."""
        arrive = np.asarray(oracle.session_arrive_s, dtype=np.int64)
        depart = np.asarray(oracle.session_depart_s, dtype=np.int64)
        charger = np.asarray(oracle.session_charger, dtype=np.int64)
        after = arrive >= t_s if include_now else arrive > t_s
        arrival_slot = -(-(arrive - t_s) // self.slot_s)
        departure_slot = (depart - t_s) // self.slot_s
        keep = np.flatnonzero(
            (charger >= 0)
            & after
            & (arrive < t_s + n_slots * self.slot_s)
            & (departure_slot > arrival_slot)
        )
        if not len(keep):
            return SessionRows.empty()
        sessions = oracle.sessions
        at = charger[keep]
        vehicle = np.where(
            self.charger_is_dc[at],
            np.asarray(sessions.max_dc_kw)[keep],
            np.asarray(sessions.max_ac_kw)[keep],
        )
        return SessionRows.build(
            session=keep,
            charger=at,
            arrival_slot=arrival_slot[keep],
            departure_slot=departure_slot[keep],
            e_needed_kwh=np.asarray(sessions.e_needed_kwh)[keep],
            soc0=np.asarray(sessions.arrival_soc)[keep],
            capacity_kwh=np.asarray(sessions.capacity_kwh)[keep],
            vehicle_max_kw=vehicle,
            knee_soc=np.asarray(sessions.knee_soc)[keep],
            charger_ev_max_kw=self.charger_ev_max_kw,
            charger_efficiency=self.charger_efficiency,
        )

    # ----------------------------------------------------------------- problem
    def problem(
        self,
        first_slot: int,
        exogenous: Exogenous,
        rows: SessionRows,
        battery_soc: np.ndarray | None = None,
        peak_so_far_kw: float = 0.0,
        open_loop_slots: int = 1,
    ) -> SiteProblem:
        """The L3 problem over ``len(exogenous.load_kw)`` slots from ``first_slot``.

        Args:
            battery_soc: SOC per battery (``None``: the initial SOC).
            peak_so_far_kw: Billing-period import peak already reached [kW].
            open_loop_slots: Slots the battery keeps the self-discharge of in reserve above its
                SOC floor.
        """
        n = len(exogenous.load_kw)
        battery = self.battery
        if battery is not None:
            soc0 = battery.soc0
            if battery_soc is not None:
                stored = float(np.asarray(battery_soc, dtype=float) @ self.battery_capacity_kwh)
                soc0 = float(np.clip(stored / battery.capacity_kwh, 0.0, 1.0))
            reserve = self.battery_self_discharge_kwh_per_h * open_loop_slots * self.dt_h
            soc_min = min(battery.soc_min + reserve / battery.capacity_kwh, battery.soc_max)
            battery = replace(battery, soc0=soc0, soc_min=soc_min)
        price = exogenous.price_per_kwh
        return SiteProblem(
            slot_s=self.slot_s,
            times_utc=self.times_utc[first_slot : first_slot + n],
            price_per_kwh=price,
            # Import and export share one meter: an export price above the import price is capped.
            export_price_per_kwh=np.minimum(exogenous.export_price_per_kwh, price),
            carbon_g_per_kwh=exogenous.carbon_g_per_kwh,
            load_kw=exogenous.load_kw,
            pv_kw=exogenous.pv_kw,
            import_max_kw=self.import_max_kw,
            export_max_kw=self.export_max_kw,
            evs=rows.evs,
            battery=battery,
            weights=self.weights,
            peak_so_far_kw=max(float(peak_so_far_kw), 0.0),
            pv_curtailment_allowed=self.pv_curtailment_allowed,
        )


def _aggregate_battery(
    specs: list[Any], site: SiteInfo, name: str
) -> tuple[BatteryParams | None, np.ndarray, np.ndarray, np.ndarray]:
    if len(specs) != len(site.battery_ids):
        raise ControllerError(
            f"controller {name!r}: the scenario lists {len(specs)} batteries but the site has "
            f"{len(site.battery_ids)}"
        )
    if not specs:
        empty = np.zeros(0)
        return None, empty, empty.copy(), empty.copy()

    def column(attr: str) -> np.ndarray:
        return np.array([float(getattr(spec, attr)) for spec in specs])

    capacity = column("capacity_kwh")
    share = capacity / capacity.sum()
    eta_c, eta_d = column("eta_charge"), column("eta_discharge")
    battery = BatteryParams(
        capacity_kwh=float(capacity.sum()),
        p_charge_max_kw=float(column("p_charge_max_kw").sum()),
        p_discharge_max_kw=float(column("p_discharge_max_kw").sum()),
        eta_charge=float(share @ eta_c),
        eta_discharge=float(share @ eta_d),
        soc_min=float(share @ column("soc_min")),
        soc_max=float(share @ column("soc_max")),
        soc0=float(share @ column("soc_initial")),
        degradation_cost_per_kwh=float(share @ column("degradation_cost_per_kwh")),
    )
    return battery, capacity, eta_c, eta_d
