"""The billing-period import peak reached so far, estimated from what a controller observes.

Demand charges are paid on the highest 15-min average import of a billing period. An MPC must know
the peak already reached, or it would plan as if every cycle started a new period. The observation
is a snapshot at each control call, so the mean import of the slot just finished is rebuilt from
the change of state between two calls:

* EV energy: the drop of each plugged EV's remaining need (grid side = EV side / efficiency); an
  EV that left at the slot boundary is assumed to have drawn its setpoint (capped by its need);
* battery energy: the change of stored energy, through the charge or discharge efficiency;
* building load and PV: the per-step values of the finished slot. They are *past* measurements (a
  site meter's reading), read from the oracle only up to the current time.

EV and battery powers are taken as constant over the slot (their setpoints are), load and PV per
step, and the import of each step is the positive part of the site power, as the KPI counts it.
"""

from __future__ import annotations

import numpy as np

from qubit_sim.control.base import Observation, Oracle, Setpoints
from qubit_sim.control.stack_site import StackSite

__all__ = ["PeakMeter"]


class PeakMeter:
    """Mean import of each finished slot and the peak of each billing period [kW].

    Call :meth:`close_slot` at the start of each slot (before planning), then :meth:`record` with
    the setpoints applied for that slot.
    """

    def __init__(self, site: StackSite, oracle: Oracle) -> None:
        self.site = site
        self._load = np.asarray(oracle.load_kw, dtype=float)
        self._pv = np.asarray(oracle.pv_available_kw, dtype=float).reshape(len(self._load), -1)
        self.peaks: dict[int, float] = {}
        self.slot_import_kw: dict[int, float] = {}
        self._snapshot: tuple[int, int, np.ndarray, np.ndarray, np.ndarray, Setpoints] | None = None

    def record(self, obs: Observation, slot: int, setpoints: Setpoints) -> None:
        """Remember the state at the start of ``slot`` and the setpoints held over it."""
        self._snapshot = (
            obs.t_s,
            slot,
            np.array(obs.charger_session, copy=True),
            np.array(obs.charger_e_needed_kwh, dtype=float, copy=True),
            np.array(obs.battery_soc, dtype=float, copy=True),
            Setpoints(
                np.array(setpoints.charger_kw, copy=True),
                np.array(setpoints.battery_kw, copy=True),
                np.array(setpoints.pv_limit_kw, copy=True),
            ),
        )

    def close_slot(self, obs: Observation) -> float | None:
        """Estimate the mean import since :meth:`record` and update the billing peak; returns it
        (``None`` when nothing was recorded)."""
        if self._snapshot is None:
            return None
        t0, slot, session0, need0, soc0, held = self._snapshot
        self._snapshot = None
        elapsed_s = obs.t_s - t0
        if elapsed_s <= 0:
            return None
        site = self.site
        hours = elapsed_s / 3600.0
        eff = site.charger_efficiency
        session1 = np.asarray(obs.charger_session)
        stayed = (session0 >= 0) & (session0 == session1)
        left = (session0 >= 0) & ~stayed
        ev_kwh = np.where(stayed, need0 - np.asarray(obs.charger_e_needed_kwh), 0.0)
        ev_kwh = np.where(left, np.minimum(held.charger_kw * eff * hours, need0), ev_kwh)
        ev_kw = float((np.maximum(ev_kwh, 0.0) / eff).sum()) / hours
        battery_kw = 0.0
        if len(soc0):
            stored = (np.asarray(obs.battery_soc) - soc0) * site.battery_capacity_kwh
            grid = np.where(
                stored > 0, stored / site.battery_eta_charge, stored * site.battery_eta_discharge
            )
            battery_kw = float(grid.sum()) / hours
        first, stop = t0 // site.step_s, min(obs.t_s // site.step_s, len(self._load))
        pv = self._pv[first:stop]
        limit = held.pv_limit_kw
        if len(limit) and not np.isnan(limit).all():
            pv = np.fmin(pv, np.maximum(limit, 0.0))
        site_kw = self._load[first:stop] + ev_kw + battery_kw - pv.sum(axis=1)
        mean_import = float(np.maximum(site_kw, 0.0).mean()) if len(site_kw) else 0.0
        self.slot_import_kw[slot] = mean_import
        label = int(site.billing_label[min(slot, site.n_slots - 1)])
        self.peaks[label] = max(self.peaks.get(label, 0.0), mean_import)
        return mean_import

    def peak_so_far_kw(self, slot: int) -> float:
        """Peak of the billing period of ``slot`` reached in earlier slots [kW]."""
        label = int(self.site.billing_label[min(slot, self.site.n_slots - 1)])
        return self.peaks.get(label, 0.0)
