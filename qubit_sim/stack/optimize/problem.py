"""Inputs of the L3 optimisers: one site, one horizon, plain numpy arrays.

A :class:`SiteProblem` holds everything the greedy scheduler, the peak-shaving controller, the MPC
and the offline optimum need, and nothing that ties it to a scenario format. Arrays are indexed by
slot ``t = 0 .. T-1`` (slot length ``slot_s`` seconds) and, for EVs, by session ``i = 0 .. N-1``.

Sign convention (load convention at the site bus): site power ``> 0`` imports from the grid,
``< 0`` exports. ``pv_kw`` is the *magnitude* of available generation (>= 0); it enters the site
balance with a minus sign.

Physics every optimiser plans against (and the simulator applies):

* EV ``i``: energy into the vehicle battery per slot = ``p_ev * dt`` [kWh]; grid-side power =
  ``p_ev / charger_efficiency``. Charging happens only in available slots
  ``[max(arrival_slot, 0), min(departure_slot, T))``. CC-CV taper, linear in SOC:
  ``p_ev <= p_max_kw`` and ``p_ev <= p_max_kw * (1 - soc) / (1 - knee_soc)``, with ``soc`` taken at
  the *end* of the slot so that a constant setpoint is deliverable over the whole slot.
* Battery: stored energy ``+= p_ch * dt * eta_charge - p_dis * dt / eta_discharge``, kept in
  ``[soc_min, soc_max] * capacity`` (widened to include the initial energy when it starts outside).
* Site power = ``load + sum(p_ev / eff) + p_ch - p_dis - pv_used``.

With :class:`IntraSlot` steps (perfect foresight of each step inside a slot), the setpoints are
still constant over a slot, and the site power at step ``j`` of slot ``t`` is the slot's power plus
the known deviation ``d[t, j]`` of load minus PV from their slot means. Import and export are then
priced step by step, the connection limits hold at every step, and the demand peak is the slot's
mean *import* (the tariff's 15-min average of step imports), which is exact where the site power
changes sign inside a slot.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from qubit_sim.errors import ControllerError
from qubit_sim.units import SECONDS_PER_HOUR

__all__ = [
    "BatteryParams",
    "EvSessions",
    "IntraSlot",
    "LinearGridConstraint",
    "ObjectiveWeights",
    "OptimizationError",
    "SiteProblem",
]


class OptimizationError(ControllerError):
    """An L3 problem is malformed, or no solver could solve it."""


def _vector(name: str, value: Any, length: int | None, dtype: type = float) -> np.ndarray:
    array: np.ndarray = np.array(value, dtype=dtype, copy=True).reshape(-1)
    if length is not None and array.shape[0] != length:
        raise OptimizationError(f"{name} has {array.shape[0]} entries; expected {length}")
    if dtype is float and not np.all(np.isfinite(array)):
        bad = int(np.flatnonzero(~np.isfinite(array))[0])
        raise OptimizationError(f"{name}[{bad}] = {array[bad]} is not finite")
    array.setflags(write=False)
    return array


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise OptimizationError(message)


def _first_bad(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


@dataclass(frozen=True)
class EvSessions:
    """EV charging sessions as a struct of arrays over ``N`` sessions.

    Attributes:
        ev_ids: Vehicle id per session; schedule columns are ``ev_{id}_kw``.
        arrival_slot: First available slot (may be negative: already plugged in).
        departure_slot: First slot after departure; available slots are ``[arrival, departure)``.
        e_needed_kwh: Energy the vehicle still asks for, into its battery [kWh].
        soc0: Vehicle state of charge at the start of the horizon [0..1].
        capacity_kwh: Vehicle battery capacity [kWh].
        p_max_kw: Maximum charging power, min of charger and vehicle [kW].
        knee_soc: SOC where the linear CC-CV taper starts [0..1]; 1 disables the taper.
        charger_efficiency: Vehicle-side over grid-side power (0..1].
        priority: 1 normal, 2 high, 3 urgent. The greedy serves higher first; the LP scales the
            unmet-energy penalty by it.
    """

    ev_ids: tuple[str, ...]
    arrival_slot: np.ndarray
    departure_slot: np.ndarray
    e_needed_kwh: np.ndarray
    soc0: np.ndarray
    capacity_kwh: np.ndarray
    p_max_kw: np.ndarray
    knee_soc: np.ndarray
    charger_efficiency: np.ndarray
    priority: np.ndarray

    def __post_init__(self) -> None:
        ids = tuple(str(v) for v in self.ev_ids)
        n = len(ids)
        _require(len(set(ids)) == n, f"ev_ids must be unique; duplicates in {ids}")
        object.__setattr__(self, "ev_ids", ids)
        for name in ("arrival_slot", "departure_slot", "priority"):
            object.__setattr__(self, name, _vector(name, getattr(self, name), n, np.int64))
        for name in (
            "e_needed_kwh",
            "soc0",
            "capacity_kwh",
            "p_max_kw",
            "knee_soc",
            "charger_efficiency",
        ):
            object.__setattr__(self, name, _vector(name, getattr(self, name), n))
        checks = (
            (self.e_needed_kwh < 0, "e_needed_kwh", ">= 0"),
            ((self.soc0 < 0) | (self.soc0 > 1), "soc0", "in [0, 1]"),
            (self.capacity_kwh <= 0, "capacity_kwh", "> 0"),
            (self.p_max_kw < 0, "p_max_kw", ">= 0"),
            ((self.knee_soc < 0) | (self.knee_soc > 1), "knee_soc", "in [0, 1]"),
            (
                (self.charger_efficiency <= 0) | (self.charger_efficiency > 1),
                "charger_efficiency",
                "in (0, 1]",
            ),
            (self.priority < 1, "priority", ">= 1 (1 normal, 2 high, 3 urgent)"),
            (self.departure_slot < self.arrival_slot, "departure_slot", ">= arrival_slot"),
        )
        for bad, name, rule in checks:
            if np.any(bad):
                i = _first_bad(bad)
                value = getattr(self, name)[i]
                raise OptimizationError(f"EV {ids[i]!r}: {name} = {value} must be {rule}")

    @property
    def n(self) -> int:
        """Number of sessions."""
        return len(self.ev_ids)

    @classmethod
    def empty(cls) -> EvSessions:
        """No EV sessions."""
        zeros = np.zeros(0)
        return cls((), zeros, zeros, zeros, zeros, zeros, zeros, zeros, zeros, zeros)

    def availability(self, n_slots: int) -> np.ndarray:
        """Boolean matrix ``(N, n_slots)``: session present during the slot."""
        slots = np.arange(n_slots)
        return (slots[None, :] >= self.arrival_slot[:, None]) & (
            slots[None, :] < self.departure_slot[:, None]
        )


@dataclass(frozen=True)
class BatteryParams:
    """Stationary battery.

    Attributes:
        capacity_kwh: Usable capacity [kWh].
        p_charge_max_kw: Maximum charging power, grid side [kW].
        p_discharge_max_kw: Maximum discharging power, grid side [kW].
        eta_charge: One-way charging efficiency (0..1].
        eta_discharge: One-way discharging efficiency (0..1].
        soc_min: Lower SOC bound [0..1].
        soc_max: Upper SOC bound [0..1].
        soc0: SOC at the start of the horizon [0..1].
        degradation_cost_per_kwh: Cost per kWh of throughput, charge plus discharge, grid side.
    """

    capacity_kwh: float
    p_charge_max_kw: float
    p_discharge_max_kw: float
    eta_charge: float = 0.95
    eta_discharge: float = 0.95
    soc_min: float = 0.1
    soc_max: float = 0.9
    soc0: float = 0.5
    degradation_cost_per_kwh: float = 0.0

    def __post_init__(self) -> None:
        _require(self.capacity_kwh > 0, f"battery capacity_kwh = {self.capacity_kwh} must be > 0")
        for name in ("p_charge_max_kw", "p_discharge_max_kw", "degradation_cost_per_kwh"):
            value = getattr(self, name)
            _require(value >= 0, f"battery {name} = {value} must be >= 0")
        for name in ("eta_charge", "eta_discharge"):
            value = getattr(self, name)
            _require(0 < value <= 1, f"battery {name} = {value} must be in (0, 1]")
        _require(
            0 <= self.soc_min <= self.soc_max <= 1,
            f"battery SOC window [{self.soc_min}, {self.soc_max}] must satisfy 0 <= min <= max <= 1",
        )
        _require(0 <= self.soc0 <= 1, f"battery soc0 = {self.soc0} must be in [0, 1]")

    @property
    def e0_kwh(self) -> float:
        """Stored energy at the start [kWh]."""
        return self.soc0 * self.capacity_kwh

    @property
    def e_bounds_kwh(self) -> tuple[float, float]:
        """Stored-energy window [kWh], widened to contain the initial energy.

        A battery that starts outside its SOC window (self-discharge, a previous override) may stay
        where it is but may not move further out; this keeps every plan feasible.
        """
        e0 = self.e0_kwh
        return (
            min(self.soc_min * self.capacity_kwh, e0),
            max(self.soc_max * self.capacity_kwh, e0),
        )


@dataclass(frozen=True)
class ObjectiveWeights:
    """Weights of the one objective every controller is scored with.

    Attributes:
        cost_weight: Multiplies energy cost minus export revenue [-].
        carbon_weight: Carbon price [currency per gCO2] on imported energy.
        demand_charge_per_kw: Charge on the import peak of each billing period the horizon
            touches, above ``peak_so_far_kw`` in the first one [currency per kW].
        unmet_penalty_per_kwh: Penalty per kWh of EV energy not delivered, times the session
            priority [currency per kWh].
        terminal_value_per_kwh: Value of energy stored in the battery at the end of the horizon
            relative to the start [currency per kWh stored]. ``None`` applies the rule
            ``eta_discharge * (cost_weight * mean(price) + carbon_weight * mean(carbon))``: a kWh
            left in storage later displaces ``eta_discharge`` kWh of import at the horizon's average
            price and intensity.
        limit_penalty_per_kwh: Penalty per kWh beyond the import/export limits (and per kW-slot-hour
            beyond a grid constraint); large so that limits are only exceeded when unavoidable.
    """

    cost_weight: float = 1.0
    carbon_weight: float = 0.0
    demand_charge_per_kw: float = 0.0
    unmet_penalty_per_kwh: float = 10.0
    terminal_value_per_kwh: float | None = None
    limit_penalty_per_kwh: float = 1.0e4

    def __post_init__(self) -> None:
        for name in (
            "cost_weight",
            "carbon_weight",
            "demand_charge_per_kw",
            "unmet_penalty_per_kwh",
            "limit_penalty_per_kwh",
        ):
            value = getattr(self, name)
            _require(np.isfinite(value) and value >= 0, f"{name} = {value} must be finite, >= 0")
        if self.terminal_value_per_kwh is not None:
            _require(
                bool(np.isfinite(self.terminal_value_per_kwh)),
                f"terminal_value_per_kwh = {self.terminal_value_per_kwh} must be finite or None",
            )


@dataclass(frozen=True)
class IntraSlot:
    """What is known about each of the ``S`` steps inside every slot, as ``(T, S)`` arrays.

    Attributes:
        deviation_kw: Site power at the step minus the slot's site power, for setpoints held
            constant over the slot: (load - PV) at the step minus its slot mean [kW]. Each row
            averages to zero.
        price_per_kwh: Import price per step [currency/kWh].
        export_price_per_kwh: Export remuneration per step [currency/kWh], not above the import
            price of the step.
        carbon_g_per_kwh: Grid carbon intensity per step [gCO2/kWh], >= 0.
    """

    deviation_kw: np.ndarray
    price_per_kwh: np.ndarray
    export_price_per_kwh: np.ndarray
    carbon_g_per_kwh: np.ndarray

    def __post_init__(self) -> None:
        shape: tuple[int, ...] | None = None
        for name in ("deviation_kw", "price_per_kwh", "export_price_per_kwh", "carbon_g_per_kwh"):
            array = np.array(getattr(self, name), dtype=float, ndmin=2, copy=True)
            if shape is None:
                shape = array.shape
            _require(array.ndim == 2, f"intra-slot {name} must be (slots, steps); got {shape}")
            _require(
                array.shape == shape,
                f"intra-slot {name} has shape {array.shape}; deviation_kw has {shape}",
            )
            _require(bool(np.all(np.isfinite(array))), f"intra-slot {name} has non-finite values")
            array.setflags(write=False)
            object.__setattr__(self, name, array)
        mean = np.abs(self.deviation_kw.mean(axis=1))
        scale = 1e-9 * (1.0 + np.abs(self.deviation_kw).max(axis=1))
        if np.any(mean > scale):
            t = _first_bad(mean > scale)
            raise OptimizationError(
                f"intra-slot deviation_kw row {t} averages {mean[t]:.6g} kW; subtract the slot "
                "mean so that each row averages to zero"
            )
        if np.any(self.carbon_g_per_kwh < 0):
            raise OptimizationError("intra-slot carbon_g_per_kwh must be >= 0")
        above = self.export_price_per_kwh > self.price_per_kwh
        if np.any(above):
            t, j = np.argwhere(above)[0]
            raise OptimizationError(
                f"intra-slot export_price_per_kwh[{t}, {j}] = {self.export_price_per_kwh[t, j]} "
                f"exceeds price_per_kwh[{t}, {j}] = {self.price_per_kwh[t, j]}; cap it at the "
                "import price"
            )

    @property
    def n_steps(self) -> int:
        """Steps per slot ``S``."""
        return int(self.deviation_kw.shape[1])


@dataclass(frozen=True)
class SiteProblem:
    """One site over one horizon of ``T`` slots.

    Attributes:
        slot_s: Slot length [s].
        times_utc: Slot starts, tz-aware UTC, length ``T``.
        price_per_kwh: Import price per slot [currency/kWh].
        export_price_per_kwh: Export remuneration per slot [currency/kWh]; must not exceed the
            import price (otherwise importing and exporting at once would earn money).
        carbon_g_per_kwh: Grid carbon intensity per slot [gCO2/kWh], >= 0.
        load_kw: Forecast background load [kW], >= 0.
        pv_kw: Available PV generation [kW], magnitude >= 0.
        import_max_kw: Site import limit [kW].
        export_max_kw: Site export limit [kW], magnitude.
        evs: EV sessions.
        battery: Stationary battery, or ``None``.
        weights: Objective weights.
        peak_so_far_kw: Import peak already reached in the billing period of the first slot [kW];
            later billing periods start from zero.
        pv_curtailment_allowed: Whether plans may use less PV than available.
        billing_period: Billing-period label per slot (non-decreasing integers, e.g. from
            :func:`qubit_sim.core.tariff.billing_periods`): each period has its own demand peak.
            ``None``: the whole horizon is one billing period.
        intra_slot: Steps inside each slot (:class:`IntraSlot`); ``None``: slot means only.
    """

    slot_s: int
    times_utc: pd.DatetimeIndex
    price_per_kwh: np.ndarray
    export_price_per_kwh: np.ndarray
    carbon_g_per_kwh: np.ndarray
    load_kw: np.ndarray
    pv_kw: np.ndarray
    import_max_kw: float
    export_max_kw: float
    evs: EvSessions = field(default_factory=EvSessions.empty)
    battery: BatteryParams | None = None
    weights: ObjectiveWeights = field(default_factory=ObjectiveWeights)
    peak_so_far_kw: float = 0.0
    pv_curtailment_allowed: bool = True
    billing_period: np.ndarray | None = None
    intra_slot: IntraSlot | None = None

    def __post_init__(self) -> None:
        _require(int(self.slot_s) > 0, f"slot_s = {self.slot_s} must be a positive integer")
        object.__setattr__(self, "slot_s", int(self.slot_s))
        times = pd.DatetimeIndex(self.times_utc)
        _require(
            times.tz is not None and str(times.tz) == "UTC",
            f"times_utc must be tz-aware UTC, got tz={times.tz}; use .tz_convert('UTC')",
        )
        object.__setattr__(self, "times_utc", times)
        n = len(times)
        _require(n > 0, "times_utc is empty; a horizon needs at least one slot")
        for name in (
            "price_per_kwh",
            "export_price_per_kwh",
            "carbon_g_per_kwh",
            "load_kw",
            "pv_kw",
        ):
            object.__setattr__(self, name, _vector(name, getattr(self, name), n))
        for name in ("load_kw", "pv_kw", "carbon_g_per_kwh"):
            values = getattr(self, name)
            if np.any(values < 0):
                t = _first_bad(values < 0)
                raise OptimizationError(f"{name}[{t}] = {values[t]} must be >= 0")
        above = self.export_price_per_kwh > self.price_per_kwh
        if np.any(above):
            t = _first_bad(above)
            raise OptimizationError(
                f"export_price_per_kwh[{t}] = {self.export_price_per_kwh[t]} exceeds "
                f"price_per_kwh[{t}] = {self.price_per_kwh[t]}; cap the export price at the import "
                "price (simultaneous import and export would otherwise be profitable)"
            )
        for name in ("import_max_kw", "export_max_kw", "peak_so_far_kw"):
            value = float(getattr(self, name))
            _require(np.isfinite(value) and value >= 0, f"{name} = {value} must be finite, >= 0")
            object.__setattr__(self, name, value)
        if self.billing_period is not None:
            labels = _vector("billing_period", self.billing_period, n, np.int64)
            if np.any(np.diff(labels) < 0):
                t = _first_bad(np.diff(labels) < 0) + 1
                raise OptimizationError(
                    f"billing_period[{t}] = {labels[t]} is below billing_period[{t - 1}] = "
                    f"{labels[t - 1]}; labels must not decrease (each period is one run of slots)"
                )
            object.__setattr__(self, "billing_period", labels)
        if self.intra_slot is not None:
            rows = self.intra_slot.deviation_kw.shape[0]
            _require(rows == n, f"intra_slot covers {rows} slots; the problem has {n}")

    @property
    def n_slots(self) -> int:
        """Number of slots ``T``."""
        return len(self.times_utc)

    @property
    def dt_h(self) -> float:
        """Slot length [h]."""
        return self.slot_s / SECONDS_PER_HOUR

    def step_power_kw(self, site_kw: np.ndarray) -> np.ndarray:
        """Site power per step ``(T, S)`` for slot powers ``site_kw`` ``(T,)`` [kW] (one step per
        slot, ``(T, 1)``, without :class:`IntraSlot`)."""
        site = np.asarray(site_kw, dtype=float)[:, None]
        if self.intra_slot is None:
            return site
        return site + self.intra_slot.deviation_kw

    def effective_cost_per_kwh(self) -> np.ndarray:
        """``cost_weight * price + carbon_weight * carbon`` per slot [objective units/kWh]."""
        w = self.weights
        return w.cost_weight * self.price_per_kwh + w.carbon_weight * self.carbon_g_per_kwh

    def terminal_value_per_kwh(self) -> float:
        """Value of one kWh stored at the horizon end [objective units/kWh]; see
        :class:`ObjectiveWeights`."""
        if self.weights.terminal_value_per_kwh is not None:
            return float(self.weights.terminal_value_per_kwh)
        if self.battery is None:
            return 0.0
        return float(self.battery.eta_discharge * np.mean(self.effective_cost_per_kwh()))

    def period_index(self) -> np.ndarray:
        """Billing period of each slot as ``0 .. P-1`` in time order (all 0 without labels)."""
        if self.billing_period is None:
            return np.zeros(self.n_slots, dtype=np.int64)
        starts = np.concatenate([[False], np.diff(self.billing_period) != 0])
        return np.cumsum(starts).astype(np.int64)

    @property
    def n_periods(self) -> int:
        """Number of billing periods the horizon touches."""
        return int(self.period_index()[-1]) + 1

    def peak_floor_kw(self) -> np.ndarray:
        """Import peak already reached per billing period ``(P,)`` [kW]: ``peak_so_far_kw`` for
        the first, zero for the later ones."""
        floor = np.zeros(self.n_periods)
        floor[0] = self.peak_so_far_kw
        return floor

    def availability(self) -> np.ndarray:
        """EV availability ``(N, T)``."""
        return self.evs.availability(self.n_slots)


@dataclass(frozen=True)
class LinearGridConstraint:
    """Feeder limits linearised around an operating point: ``y = base + sensitivity * p_site``.

    ``y`` are ``M`` monitored quantities (bus voltages [pu], line loadings [%], ...) per slot;
    ``p_site`` is the site power [kW] (load convention). Plans keep ``lower <= y <= upper``, softly:
    a violation is paid at ``limit_penalty_per_kwh`` per unit-hour and reported, never infeasible.

    Attributes:
        base: ``(M, T)`` value of each quantity with the site at 0 kW [unit].
        sensitivity_per_kw: ``(M,)`` change per kW of site import [unit/kW].
        lower: ``(M,)`` lower bound [unit].
        upper: ``(M,)`` upper bound [unit].
    """

    base: np.ndarray
    sensitivity_per_kw: np.ndarray
    lower: np.ndarray
    upper: np.ndarray

    def __post_init__(self) -> None:
        base = np.array(self.base, dtype=float, ndmin=2)
        _require(bool(np.all(np.isfinite(base))), "grid constraint base has non-finite values")
        m = base.shape[0]
        object.__setattr__(self, "base", base)
        for name in ("sensitivity_per_kw", "lower", "upper"):
            object.__setattr__(self, name, _vector(name, getattr(self, name), m))
        if np.any(self.lower > self.upper):
            j = _first_bad(self.lower > self.upper)
            raise OptimizationError(
                f"grid constraint {j}: lower {self.lower[j]} exceeds upper {self.upper[j]}"
            )

    @property
    def n_constraints(self) -> int:
        """Number of monitored quantities ``M``."""
        return int(self.base.shape[0])

    def check_slots(self, n_slots: int) -> None:
        """Raise unless ``base`` covers exactly ``n_slots`` slots."""
        _require(
            self.base.shape[1] == n_slots,
            f"grid constraint base has {self.base.shape[1]} slots; the problem has {n_slots}",
        )

    def violation(self, p_site_kw: np.ndarray) -> np.ndarray:
        """``(M, T)`` amount by which each quantity leaves its bounds [unit], >= 0."""
        y = self.base + self.sensitivity_per_kw[:, None] * np.asarray(p_site_kw)[None, :]
        return np.maximum(y - self.upper[:, None], 0.0) + np.maximum(self.lower[:, None] - y, 0.0)
