"""The site simulation: one physics step, EV arrivals/departures and the control cycle on the engine.

Per step ``k`` (time ``t = k * step``), in this order:

1. EV arrivals and departures at ``t`` (simpy device events, before anything else at ``t``);
2. the control cycle, every ``controller.period`` — the controller sees the state at ``t``;
3. physics over ``[t, t + step)``: chargers/EVs, batteries, PV (with curtailment), loads;
4. the site meter (load convention) and, when enabled, an AC power flow of the whole feeder;
5. one recorded row.

EV sessions are aligned to the step grid: an EV plugs in at the first step start at or after its
arrival and leaves at the last step start at or before its departure.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import fields, replace
from functools import partial
from math import isfinite
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from qubit_sim.assets import assign_chargers
from qubit_sim.control.base import Controller, Observation, Oracle, Setpoints, SiteInfo
from qubit_sim.control.checks import controller_label, is_package_controller, user_location
from qubit_sim.core.engine import PRIORITY_DEPARTURE, Engine
from qubit_sim.core.recorder import Recorder
from qubit_sim.errors import ControllerError, QubitSimError, SimulationError
from qubit_sim.scenario.build import SiteModel
from qubit_sim.scenario.coordination import Coordinator, LinkWrapper, site_id_for
from qubit_sim.scenario.devices import held_setpoints, site_devices
from qubit_sim.stack.coordinate import CoordinatorConfig
from qubit_sim.twins.links import SetpointRouter

__all__ = ["Simulation"]

SCALAR_COLUMNS = [
    "site_p_kw",
    "grid_import_kw",
    "grid_export_kw",
    "load_kw",
    "pv_kw",
    "pv_available_kw",
    "ev_p_kw",
    "ev_connected",
    "battery_p_kw",
    "battery_soc",
    "price_per_kwh",
    "export_price_per_kwh",
    "carbon_g_per_kwh",
]
GRID_COLUMNS = [
    "grid_vm_min_pu",
    "grid_vm_max_pu",
    "grid_vm_site_pu",
    "grid_line_loading_max_pct",
    "grid_trafo_loading_max_pct",
    "grid_losses_kw",
    "grid_ext_p_kw",
]
#: The feeder's own net draw per step (its loads minus its generation as the power flow saw them,
#: everything that is not the site) [kW, load convention]; recorded after :data:`GRID_COLUMNS`, so
#: that the external grid's energy can be reconciled with site + feeder + losses.
GRID_BACKGROUND_COLUMN = "grid_background_kw"

#: The Observation's per-device arrays: read-only views for controllers not of the package.
OBSERVATION_ARRAYS = (
    "pv_available_kw",
    "charger_connected",
    "charger_ev_max_kw",
    "charger_e_needed_kwh",
    "charger_departure_s",
    "charger_session",
    "charger_soc",
    "charger_capacity_kwh",
    "charger_vehicle_max_kw",
    "charger_knee_soc",
    "battery_soc",
    "battery_p_min_kw",
    "battery_p_max_kw",
)
_FLOAT64 = np.dtype(np.float64)
_DTYPE_KINDS = {
    "U": "text",
    "S": "bytes",
    "b": "booleans",
    "O": "Python objects",
    "c": "complex numbers",
    "M": "dates",
    "m": "durations",
}


class Simulation:
    """Runs a :class:`~qubit_sim.scenario.build.SiteModel` on the engine.

    Args:
        site: The built site.
        timeseries_path: Parquet file to stream rows to (``None``: memory only).
        events_path: JSON-lines file for events (``None``: keep in memory).
        progress: Called with steps done.
        coordination: Route setpoints through Qubit L4 coordination
            (:mod:`qubit_sim.scenario.coordination`); ``None`` follows the controller's
            ``uses_coordination``. The coordinator built here reaches the devices through the
            in-process links; a subclass with links of its own (``mode: wire``) sets
            :attr:`in_process_coordination` to ``False`` and builds its coordinator itself.
        link_wrapper: ``(asset_id, link) -> link`` wrapping each device's L4 link (fault
            injection).
        coordinator_config: L4 settings (default: Qubit defaults).

    Attributes:
        coordinator: The L4 :class:`~qubit_sim.scenario.coordination.Coordinator`, or ``None``
            when setpoints go straight to the devices.
    """

    #: Whether a coordinated run's L4 commands go through the in-process links built here.
    in_process_coordination: ClassVar[bool] = True

    def __init__(
        self,
        site: SiteModel,
        timeseries_path: Path | None = None,
        events_path: Path | None = None,
        progress: Callable[[int], None] | None = None,
        *,
        coordination: bool | None = None,
        link_wrapper: LinkWrapper | None = None,
        coordinator_config: CoordinatorConfig | None = None,
    ) -> None:
        self.site = site
        clock = site.clock
        self.dt = clock.step_s
        self.fleet = site.fleet
        self.bank = site.batteries
        self.controller = site.controller
        info = site.site_info
        self.control_every = max(1, info.period_s // self.dt)
        self.events: list[dict[str, Any]] = []
        self._events_file = None
        if events_path is not None:
            events_path.parent.mkdir(parents=True, exist_ok=True)
            self._events_file = events_path.open("w", encoding="utf-8")

        self.columns = self._columns()
        self.recorder = Recorder(
            self.columns,
            clock.start,
            self.dt,
            path=timeseries_path,
            n_rows_hint=clock.n_steps,
        )
        self.engine = Engine(clock, self._step, progress=progress)
        n_sessions = len(site.sessions)
        self.session_charger = np.full(n_sessions, -1, dtype=np.int64)
        self.session_delivered_kwh = np.zeros(n_sessions)
        self.session_plugged_s = np.full(n_sessions, -1, dtype=np.int64)
        self.session_unplugged_s = np.full(n_sessions, -1, dtype=np.int64)
        self.session_rejected = np.zeros(n_sessions, dtype=bool)
        # Charger meter readings at plug-in and unplug, in whole Wh as an OCPP 1.6 meter reports.
        self.session_meter_start_wh = np.full(n_sessions, -1, dtype=np.int64)
        self.session_meter_stop_wh = np.full(n_sessions, -1, dtype=np.int64)
        self._hours = self.dt / 3600.0
        self._meter_kwh = 0.0
        self._pv_kwh = 0.0
        self._load_total = site.load_kw.sum(axis=1)
        self._pv_available_total = site.pv_available_kw.sum(axis=1)
        self._stored_start_kwh = self.bank.stored_kwh()
        self._curtailing = False
        self._expected_setpoints: tuple[tuple[str, tuple[int]], ...] | None = None
        self._plug_changes = 0  # EVs plugged in or out so far
        self._iso_cache: dict[int, str] = {}
        self._ev_max: tuple[int, int, np.ndarray] | None = None
        grid_spec = site.scenario.spec.grid
        self._power_flow_on = (
            site.grid is not None and grid_spec is not None and grid_spec.power_flow
        )
        if self._power_flow_on:
            self._pf_setup()
        # Setpoints reach the devices through links; the physics applies what the devices hold
        # (no charger or PV cap and 0 kW batteries until the first control cycle).
        self.devices = site_devices(site, lambda: self.engine.now_s)
        self.router = SetpointRouter(self.devices)
        self._held = held_setpoints(self.devices)
        self.setpoints = self._held
        self.coordinator: Coordinator | None = None
        if coordination is None:
            coordination = bool(getattr(self.controller, "uses_coordination", False))
        if coordination and self.in_process_coordination:
            self.coordinator = Coordinator(
                self.router,
                self.engine,
                clock.to_utc(0),
                clock.duration_s,
                self._write_record,
                site_id=site_id_for(site.scenario.name),
                config=coordinator_config,
                link_wrapper=link_wrapper,
            )
        self._schedule_sessions()
        # The controller whose act() gets the simulator's arrays directly (the package's own),
        # and the one last classified; the controller may be wrapped after this (telemetry).
        self._trusted: Controller | None = None
        self._classified: Controller | None = None
        self._views: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._reset_controller(replace(info, oracle=self._oracle()))
        self._obs = self._make_observation()
        self._site_v = float("nan")

    # ------------------------------------------------------------------ setup
    def _columns(self) -> list[str]:
        site = self.site
        columns = list(SCALAR_COLUMNS)
        for cid in site.fleet.ids:
            columns += [f"charger_{cid}_p_kw", f"charger_{cid}_connected"]
        for bid in site.batteries.ids:
            columns += [f"battery_{bid}_p_kw", f"battery_{bid}_soc"]
        columns += [f"pv_{pid}_p_kw" for pid in site.pv_ids]
        columns += [f"load_{lid}_p_kw" for lid in site.load_ids]
        grid_spec = site.scenario.spec.grid
        if site.grid is not None and grid_spec is not None and grid_spec.power_flow:
            columns += [*GRID_COLUMNS, GRID_BACKGROUND_COLUMN]
            if site.grid.record_bus_voltages:
                columns += [f"bus_{int(b)}_vm_pu" for b in site.grid.bus_index]
        return columns

    def _oracle(self) -> Oracle:
        site = self.site
        return Oracle(
            times_utc=site.clock.index(),
            load_kw=self._load_total,
            pv_available_kw=site.pv_available_kw,
            price_per_kwh=site.price_per_kwh,
            export_price_per_kwh=site.export_price_per_kwh,
            carbon_g_per_kwh=site.carbon_g_per_kwh,
            sessions=site.sessions,
            session_arrive_s=self.session_arrive_s,
            session_depart_s=self.session_depart_s,
            session_charger=self.session_plan,
        )

    def _reset_controller(self, info: SiteInfo) -> None:
        """Reset the controller; one not of the package sees the oracle through read-only
        views, and an exception from its code is named with the line that raised it."""
        controller = self.controller
        rng = self.site.rng.generator("controller")
        if is_package_controller(controller):
            controller.reset(info, rng)
            return
        oracle = info.oracle
        if oracle is not None:
            views = {
                f.name: _read_only(value)
                for f in fields(oracle)
                if isinstance(value := getattr(oracle, f.name), np.ndarray)
            }
            info = replace(info, oracle=replace(oracle, **views))
        try:
            controller.reset(info, rng)
        except QubitSimError:
            raise
        except Exception as exc:
            raise _user_error(controller, "reset", exc) from exc

    def _make_observation(self) -> Observation:
        n_pv = len(self.site.pv_ids)
        return Observation(
            t_s=0,
            k=0,
            price_per_kwh=0.0,
            export_price_per_kwh=0.0,
            carbon_g_per_kwh=0.0,
            load_kw=0.0,
            pv_available_kw=np.zeros(n_pv),
            charger_connected=self.fleet.connected,
            charger_ev_max_kw=np.zeros(self.fleet.n),
            charger_e_needed_kwh=self.fleet.e_needed_kwh,
            charger_departure_s=self.fleet.departure_s,
            battery_soc=self.bank.soc,
            battery_p_min_kw=np.zeros(self.bank.n),
            battery_p_max_kw=np.zeros(self.bank.n),
        )

    def _schedule_sessions(self) -> None:
        sessions = self.site.sessions
        dt = self.dt
        horizon = self.site.clock.duration_s
        arrive = -(-np.asarray(sessions.arrival_s, dtype=np.int64) // dt) * dt
        depart = (np.asarray(sessions.departure_s, dtype=np.int64) // dt) * dt
        self.session_arrive_s = arrive
        self.session_depart_s = depart
        # Assignment does not depend on control, so it is fixed before the run.
        self.session_plan = assign_chargers(
            arrive, depart, np.asarray(sessions.home_charger), self.fleet.n
        )
        # What an arrival reads of its session, as Python values once: the same floats, without
        # a numpy scalar read per value and arrival.
        self._session_values = list(
            zip(
                [str(v) for v in sessions.vehicle_id],
                np.asarray(sessions.arrival_soc, dtype=float).tolist(),
                np.asarray(sessions.e_needed_kwh, dtype=float).tolist(),
                np.asarray(sessions.capacity_kwh, dtype=float).tolist(),
                np.asarray(sessions.max_ac_kw, dtype=float).tolist(),
                np.asarray(sessions.max_dc_kw, dtype=float).tolist(),
                np.asarray(sessions.knee_soc, dtype=float).tolist(),
                depart.tolist(),
                self.session_plan.tolist(),
                strict=True,
            )
        )
        at = self.engine.at
        for s in np.flatnonzero(arrive < horizon).tolist():
            at(int(arrive[s]), partial(self._arrive, s))

    # ----------------------------------------------------------------- events
    def _iso(self, t_s: int) -> str:
        """:meth:`SimClock.iso <qubit_sim.core.clock.SimClock.iso>`, formatted once per instant
        (events share their few instants; formatting a timestamp costs microseconds)."""
        text = self._iso_cache.get(t_s)
        if text is None:
            moment = self.site.clock.to_utc(t_s)
            # isoformat writes the same digits as strftime("%Y-%m-%dT%H:%M:%S") in less time,
            # for four-digit years.
            if moment.year >= 1000:
                text = moment.isoformat(timespec="seconds")[:19] + "Z"
            else:
                text = self.site.clock.iso(t_s)
            self._iso_cache[t_s] = text
        return text

    def _event(self, kind: str, **data: Any) -> None:
        now = self.engine.now_s
        record = {"t_s": now, "time": self._iso(now)}
        record["type"] = kind
        record.update(data)
        self._write_record(record)

    def _write_record(self, record: dict[str, Any]) -> None:
        """Append one event record (JSON line) to the run's events."""
        if self._events_file is not None:
            self._events_file.write(json.dumps(record) + "\n")
        else:
            self.events.append(record)

    def _arrive(self, s: int) -> None:
        fleet = self.fleet
        now = self.engine.now_s
        vehicle, soc, e_needed, capacity, max_ac, max_dc, knee, depart, charger = (
            self._session_values[s]
        )
        if charger < 0:
            self.session_rejected[s] = True
            reason = "stay shorter than a step" if depart <= now else "no free charger"
            self._event("ev_rejected", session=s, vehicle_id=vehicle, reason=reason)
            return
        if fleet.connected[charger]:
            raise SimulationError(
                f"session {s} was assigned charger {fleet.ids[charger]}, which is occupied", now
            )
        self._plug_changes += 1
        fleet.plug(
            charger,
            s,
            soc=soc,
            e_needed_kwh=e_needed,
            capacity_kwh=capacity,
            max_ac_kw=max_ac,
            max_dc_kw=max_dc,
            knee_soc=knee,
            departure_s=depart,
        )
        self.session_charger[s] = charger
        self.session_plugged_s[s] = now
        self.session_meter_start_wh[s] = self._meter_wh(charger)
        self._event(
            "ev_plugged",
            session=s,
            vehicle_id=vehicle,
            charger_id=fleet.ids[charger],
            soc=round(soc, 6),
            e_needed_kwh=round(e_needed, 6),
            departure=self._iso(depart),
        )
        if self.coordinator is not None:
            self.coordinator.plugged(charger)
        if depart < self.site.clock.duration_s:
            self.engine.at(depart, lambda: self._depart(charger, s), PRIORITY_DEPARTURE)

    def ev_max_kw(self, k: int) -> np.ndarray:
        """Grid-side power each charger's EV can take at step ``k``'s start [kW] (read-only).

        The fleet's :meth:`~qubit_sim.assets.ChargerFleet.max_grid_kw`, computed once per
        instant: an environment observing the state at a control instant and the control cycle
        that follows share it. The EVs change only by plugging in or out before the step runs,
        so the value is recomputed when that happened since.
        """
        cached = self._ev_max
        if cached is not None and cached[0] == k and cached[1] == self._plug_changes:
            return cached[2]
        value = self.fleet.max_grid_kw(self.dt)
        self._ev_max = (k, self._plug_changes, value)
        return value

    def _meter_wh(self, charger: int) -> int:
        """The charger's energy register [Wh], rounded down as a whole-Wh meter reads it."""
        return math.floor(self.fleet.e_register_kwh[charger] * 1000.0 + 1e-6)

    def _depart(self, charger: int, s: int) -> None:
        fleet = self.fleet
        if fleet.session[charger] != s:  # already gone
            return
        self.session_unplugged_s[s] = self.engine.now_s
        self.session_meter_stop_wh[s] = self._meter_wh(charger)
        self.session_delivered_kwh[s] = fleet.e_session_kwh[charger]
        self._event(
            "ev_unplugged",
            session=s,
            vehicle_id=self._session_values[s][0],
            charger_id=fleet.ids[charger],
            soc=round(float(fleet.soc[charger]), 6),
            e_delivered_kwh=round(float(self.session_delivered_kwh[s]), 6),
            e_unmet_kwh=round(float(fleet.e_needed_kwh[charger]), 6),
            meter_start_wh=int(self.session_meter_start_wh[s]),
            meter_stop_wh=int(self.session_meter_stop_wh[s]),
        )
        self._plug_changes += 1
        fleet.unplug(charger)
        if self.coordinator is not None:
            self.coordinator.unplugged(charger)

    # ------------------------------------------------------------------- step
    def _control(self, k: int) -> None:
        site = self.site
        obs = self._obs
        obs.t_s = k * self.dt
        obs.k = k
        obs.price_per_kwh = float(site.price_per_kwh[k])
        obs.export_price_per_kwh = float(site.export_price_per_kwh[k])
        obs.carbon_g_per_kwh = float(site.carbon_g_per_kwh[k])
        obs.load_kw = float(self._load_total[k])
        obs.pv_available_kw = site.pv_available_kw[k]
        obs.charger_connected = self.fleet.connected
        obs.charger_ev_max_kw = self.ev_max_kw(k)
        obs.charger_e_needed_kwh = self.fleet.e_needed_kwh
        obs.charger_departure_s = self.fleet.departure_s
        obs.charger_session = self.fleet.session
        obs.charger_soc = self.fleet.soc
        obs.charger_capacity_kwh = self.fleet.capacity_kwh
        obs.charger_vehicle_max_kw = self.fleet.ev_max_kw
        obs.charger_knee_soc = self.fleet.knee_soc
        obs.battery_soc = self.bank.soc
        obs.battery_p_min_kw, obs.battery_p_max_kw = self.bank.limits(self.dt)
        obs.site_voltage_pu = self._site_v
        controller = self.controller
        if controller is self._trusted:
            setpoints = controller.act(obs)
        else:
            setpoints = self._act_guarded(controller, obs)
        self._check_setpoints(setpoints)
        self.setpoints = self._apply_setpoints(setpoints)
        self._curtailing = self.devices.curtailing()

    def _act_guarded(self, controller: Controller, obs: Observation) -> Setpoints:
        """``controller.act(obs)`` for a controller not (yet) known to be the package's own.

        Someone else's controller gets read-only views of the observation's arrays, so that an
        in-place operation cannot change the devices; its exceptions become a
        :class:`ControllerError` naming it and the line of its code that raised.
        """
        if controller is not self._classified:
            self._classified = controller
            if is_package_controller(controller):
                self._trusted = controller
                return controller.act(obs)
        # Most arrays are the same objects from call to call: their views are made once.
        views = self._views
        for name in OBSERVATION_ARRAYS:
            source = getattr(obs, name)
            made = views.get(name)
            if made is None or made[0] is not source:
                made = views[name] = (source, _read_only(source))
            setattr(obs, name, made[1])
        try:
            return controller.act(obs)
        except QubitSimError:
            raise
        except Exception as exc:
            raise _user_error(controller, "act", exc) from exc

    def _apply_setpoints(self, setpoints: Setpoints) -> Setpoints:
        """Deliver ``setpoints`` to the devices and return the limits they now hold.

        Here through in-process links that round as the wire does (``mode: fast``); a subclass
        sends them over real protocols instead. Only changed values are delivered. With
        coordination, the changes become L4 commands (PV caps stay direct).
        """
        if self.coordinator is None:
            self.router.apply_direct(
                setpoints.charger_kw, setpoints.battery_kw, setpoints.pv_limit_kw
            )
        else:
            self.coordinator.apply(
                self.router.changes(
                    setpoints.charger_kw, setpoints.battery_kw, setpoints.pv_limit_kw
                )
            )
        return self._held

    def _check_setpoints(self, setpoints: Setpoints) -> None:
        if type(setpoints) is not Setpoints and not isinstance(setpoints, Setpoints):
            raise ControllerError(
                f"controller {controller_label(self.controller)}: `act` returned "
                f"{type(setpoints).__name__}; it must return a Setpoints "
                "(qubit_sim.control.Setpoints(charger_kw=..., battery_kw=..., pv_limit_kw=...))"
            )
        expected = self._expected_setpoints
        if expected is None:
            self._expected_setpoints = expected = (
                ("charger_kw", (self.fleet.n,)),
                ("battery_kw", (self.bank.n,)),
                ("pv_limit_kw", (len(self.site.pv_ids),)),
            )
        for name, shape in expected:
            value: Any = getattr(setpoints, name)
            if type(value) is np.ndarray and value.shape == shape and value.dtype is _FLOAT64:
                continue
            self._check_field(name, value, shape)
        # A sum is finite only if every term is; only then is the element-wise test skipped.
        battery_kw = setpoints.battery_kw
        if type(battery_kw) is not np.ndarray:
            total = np.sum(np.asarray(battery_kw, dtype=float))
        elif len(battery_kw) == 1:
            total = battery_kw[0]
        else:
            total = np.add.reduce(battery_kw)
        if not isfinite(total):
            bad = np.asarray(battery_kw, dtype=float)
            bad = bad[~np.isfinite(bad)]
            if len(bad):
                word = "NaN" if math.isnan(bad[0]) else str(bad[0])
                raise ControllerError(
                    f"controller {controller_label(self.controller)} returned {word} battery_kw "
                    "for a battery; a battery setpoint must be a finite power [kW] "
                    "(0 = idle; values beyond the limits are clipped to them)"
                )

    def _check_field(self, name: str, value: Any, shape: tuple[int]) -> None:
        """The slow path of :meth:`_check_setpoints` for one field: a list, another dtype, or
        something wrong, said with what was expected."""
        label = controller_label(self.controller)
        devices = {"charger_kw": "charger", "battery_kw": "battery", "pv_limit_kw": "PV plant"}
        per = f"one value per {devices[name]}"
        if np.shape(value) != shape:
            kind = type(value).__name__
            raise ControllerError(
                f"controller {label} returned {name} of shape {np.shape(value)}; expected "
                f"({shape[0]},): {per}, as a numpy array or a list (got {_article(kind)})"
            )
        dtype = np.asarray(value).dtype
        if dtype.kind not in "fiu":
            what = _DTYPE_KINDS.get(dtype.kind, "not numbers")
            raise ControllerError(
                f"controller {label} returned {name} of dtype {dtype} ({what}); expected "
                f"numbers [kW] ({per}, floats or integers; NaN where allowed)"
            )

    def _step(self, k: int) -> None:
        site = self.site
        dt = self.dt
        if k % self.control_every == 0:
            self._control(k)
        sp = self.setpoints
        fleet = self.fleet
        bank = self.bank

        fleet.step(sp.charger_kw, dt)
        if bank.n:
            bank.step(sp.battery_kw, dt)
        self._after_physics(k)
        ev_total = fleet.p_grid_total_kw
        battery_total = bank.p_total_kw
        available = site.pv_available_kw[k]
        if self._curtailing:
            pv_p = -np.fmin(available, np.maximum(sp.pv_limit_kw, 0.0))
            pv_total = float(pv_p.sum())
        else:
            pv_p = -available
            pv_total = -float(self._pv_available_total[k])
        load_total = float(self._load_total[k])
        site_p = load_total + ev_total + battery_total + pv_total
        self._meter_kwh += site_p * self._hours
        self._pv_kwh += pv_total * self._hours

        row = self.recorder.row()
        row[0] = site_p
        row[1] = site_p if site_p > 0 else 0.0
        row[2] = -site_p if site_p < 0 else 0.0
        row[3] = load_total
        row[4] = pv_total
        row[5] = self._pv_available_total[k]
        row[6] = ev_total
        row[7] = fleet.n_connected
        row[8] = battery_total
        nb = bank.n
        # One battery: the mean is its SOC (x / 1 is x, the reduction of one value is that value).
        row[9] = bank.soc[0] if nb == 1 else np.add.reduce(bank.soc) / nb if nb else np.nan
        row[10] = site.price_per_kwh[k]
        row[11] = site.export_price_per_kwh[k]
        row[12] = site.carbon_g_per_kwh[k]
        col = len(SCALAR_COLUMNS)
        n = fleet.n
        if n:
            row[col : col + 2 * n : 2] = fleet.p_grid_kw
            row[col + 1 : col + 2 * n : 2] = fleet.connected
            col += 2 * n
        if nb:
            row[col : col + 2 * nb : 2] = bank.p_kw
            row[col + 1 : col + 2 * nb : 2] = bank.soc
            col += 2 * nb
        npv = len(pv_p)
        row[col : col + npv] = pv_p
        col += npv
        load_p = site.load_kw[k]
        nl = len(load_p)
        row[col : col + nl] = load_p
        col += nl
        if self._power_flow_on:
            self._power_flow(k, fleet.p_grid_kw, bank.p_kw, pv_p, load_p, row, col)
        self.recorder.commit()

    def _after_physics(self, k: int) -> None:
        """Between the device physics of step ``k`` and all that reads it (meter, time series,
        power flow); a subclass may overwrite the fleet's ``p_grid_kw`` or the bank's
        ``p_kw``/``soc`` and their totals here (``mode: hil`` puts measured power in)."""

    def _pf_setup(self) -> None:
        """Everything :meth:`_power_flow` can decide once instead of every step."""
        grid = self.site.grid
        assert grid is not None
        self._pf_flow = grid.powerflow
        n_site = len(grid.site_buses)
        site = self.site
        self._pf_device_bus = np.concatenate(
            [site.charger_site_bus, site.battery_site_bus, site.pv_site_bus, site.load_site_bus]
        )
        # With one site bus every device sits on it: the injection is the site meter, which the
        # step has already summed into the row.
        self._pf_meter_col = SCALAR_COLUMNS.index("site_p_kw") if n_site == 1 else -1
        self._pf_site_p = np.zeros(n_site)
        self._pf_n_bus = len(grid.bus_index)
        self._pf_n_grid_columns = len(GRID_COLUMNS) + 1
        self._pf_kw_per_pu = self._pf_flow.base_mva * 1e3
        self._pf_record = grid.record_bus_voltages
        self._pf_vm = np.empty(self._pf_n_bus)
        self._pf_site_index = grid.site_bus_index_in_results
        # Injections of the feeder's own loads and PV [p.u.], one row per step, computed a block
        # of steps at a time (1024 steps of a 100-bus feeder: 1.6 MB).
        self._pf_block_steps = 1024
        self._pf_block_start = 0
        if grid.background is None:
            base = self._pf_flow.injections()
            self._pf_block_len = self.site.clock.n_steps
            self._pf_block = np.broadcast_to(base, (self._pf_block_len, base.size))
            self._pf_background_kw = np.full(self._pf_block_len, self._background_kw(base))
        else:
            self._pf_block_len = 0
            self._pf_block = np.empty((0, 0), dtype=np.complex128)
            self._pf_background_kw = np.empty(0)

    def _background_kw(self, injections: np.ndarray) -> np.ndarray:
        """Feeder draw [kW, load convention] of injection rows [p.u., generation positive]."""
        return -injections.real.sum(axis=-1) * self._pf_kw_per_pu

    def _pf_load_block(self, k: int) -> int:
        """Load the background injections of the steps from ``k`` on; ``k``'s row in the block."""
        background = self.site.grid.background  # type: ignore[union-attr]
        stop = min(k + self._pf_block_steps, len(background.load_p_mw))
        self._pf_block = self._pf_flow.injections(
            None,
            None,
            background.load_p_mw[k:stop],
            background.load_q_mvar[k:stop],
            background.sgen_p_mw[k:stop],
        )
        self._pf_background_kw = self._background_kw(self._pf_block)
        self._pf_block_start = k
        self._pf_block_len = stop - k
        return 0

    def _power_flow(
        self,
        k: int,
        ev_p: np.ndarray,
        battery_p: np.ndarray,
        pv_p: np.ndarray,
        load_p: np.ndarray,
        row: np.ndarray,
        col: int,
    ) -> None:
        # FastPowerFlow.step is the unchecked path: the background was checked per block by
        # injections(), the site powers come from the physics just computed.
        offset = k - self._pf_block_start
        if not 0 <= offset < self._pf_block_len:
            offset = self._pf_load_block(k)
        site_p = self._pf_site_p
        if self._pf_meter_col >= 0:
            site_p[0] = row[self._pf_meter_col]
        else:
            powers = np.concatenate((ev_p, battery_p, pv_p, load_p))
            site_p[:] = np.bincount(self._pf_device_bus, powers, minlength=len(site_p))
        first = col + self._pf_n_grid_columns
        vm = row[first : first + self._pf_n_bus] if self._pf_record else self._pf_vm
        summary = self._pf_flow.step(self._pf_block[offset], site_p, vm)
        self._site_v = site_v = float(vm[self._pf_site_index])
        row[col] = summary.vm_min_pu
        row[col + 1] = summary.vm_max_pu
        row[col + 2] = site_v
        row[col + 3] = summary.line_loading_max_pct
        row[col + 4] = summary.trafo_loading_max_pct
        row[col + 5] = summary.losses_kw
        row[col + 6] = summary.ext_grid_p_kw
        row[col + 7] = self._pf_background_kw[offset]

    # -------------------------------------------------------------------- run
    #: Set by simulations that can be stopped before the end (real-time serving, Ctrl-C).
    stopped_early: bool = False
    stopped_by: str = ""

    def report(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """Extra KPIs and manifest entries of this kind of simulation (none here)."""
        return {}, {}

    def run(self) -> None:
        """Run to the end; on error the recorder and events file are closed before raising."""
        try:
            self.engine.run()
        finally:
            plugged = self.fleet.session >= 0
            self.session_delivered_kwh[self.fleet.session[plugged]] = self.fleet.e_session_kwh[
                plugged
            ]
            for charger in np.flatnonzero(plugged):
                self.session_meter_stop_wh[self.fleet.session[charger]] = self._meter_wh(
                    int(charger)
                )
            self.recorder.close()
            if self._events_file is not None:
                self._events_file.close()

    def energy_balance(self) -> dict[str, float]:
        """Site-meter energy vs the sum of what every device drew [kWh]."""
        steps = self.engine.steps_done
        load_kwh = float(self._load_total[:steps].sum()) * self._hours
        ev_kwh = float(self.fleet.e_register_kwh.sum())
        battery_kwh = (self.bank.stored_kwh() - self._stored_start_kwh) + self.bank.loss_kwh
        parts = load_kwh + ev_kwh + battery_kwh + self._pv_kwh
        return {
            "meter_kwh": self._meter_kwh,
            "devices_kwh": parts,
            "error_kwh": self._meter_kwh - parts,
            "battery_stored_start_kwh": self._stored_start_kwh,
            "battery_stored_end_kwh": self.bank.stored_kwh(),
        }


def _article(name: str) -> str:
    return f"an {name}" if name[:1] in "aeiou" else f"a {name}"


def _read_only(array: np.ndarray) -> np.ndarray:
    """A view of ``array`` that refuses writes (the array itself stays writeable)."""
    view = array.view()
    view.flags.writeable = False
    return view


def _user_error(controller: Controller, method: str, exc: Exception) -> ControllerError:
    """A :class:`ControllerError` for an exception raised by a controller's ``method``, naming
    the controller and the line of user code that raised it."""
    label = controller_label(controller)
    where = user_location(exc)
    at = f" at {where}" if where else ""
    text = str(exc)
    if isinstance(exc, ValueError) and "read-only" in text:
        return ControllerError(
            f"controller {label} wrote into an array of its observation in {method}(){at} "
            f"({text}): observations (and site.oracle) are read-only; copy an array before "
            "changing it, e.g. soc = obs.battery_soc.copy()"
        )
    return ControllerError(
        f"controller {label} raised {type(exc).__name__} in {method}(){at}: {text}"
    )
