"""Chargers with their plugged-in EVs, as struct-of-arrays over all chargers of a site."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from qubit_sim.physics.ev import ev_charge_step, ev_max_power_kw

__all__ = ["ChargerFleet", "assign_chargers"]


class ChargerFleet:
    """All chargers of a site (one connector each) and the EVs plugged into them.

    Per charger: rated grid-side power ``rated_kw`` [kW], ``efficiency`` [-], ``is_dc``. Per plugged
    EV: ``soc``, ``e_needed_kwh`` (EV side), ``capacity_kwh``, ``ev_max_kw`` (vehicle limit for this
    charger kind), ``knee_soc``, ``departure_s``, and the index of its session.
    """

    def __init__(
        self,
        ids: Sequence[str],
        rated_kw: np.ndarray,
        efficiency: np.ndarray,
        is_dc: np.ndarray,
    ) -> None:
        n = len(ids)
        self.ids = tuple(ids)
        self.n = n
        self.rated_kw = np.asarray(rated_kw, dtype=float)
        self.efficiency = np.asarray(efficiency, dtype=float)
        self.is_dc = np.asarray(is_dc, dtype=bool)
        self.connected = np.zeros(n, dtype=bool)
        self.session = np.full(n, -1, dtype=np.int64)
        self.soc = np.zeros(n)
        self.e_needed_kwh = np.zeros(n)
        self.capacity_kwh = np.ones(n)
        self.ev_max_kw = np.zeros(n)
        self.knee_soc = np.full(n, 0.8)
        self.departure_s = np.full(n, -1, dtype=np.int64)
        self.p_grid_kw = np.zeros(n)
        self.p_ev_kw = np.zeros(n)
        self.p_grid_total_kw = 0.0
        self.n_connected = 0
        self.e_register_kwh = np.zeros(n)  # grid-side energy meter of each charger
        self.e_session_kwh = np.zeros(n)  # energy into the plugged EV since it plugged in
        self._zeros = np.zeros(n)
        self._rated_ev_kw = self.rated_kw * self.efficiency

    def free_charger(self, preferred: int = -1) -> int:
        """Index of a free charger (``preferred`` first), or -1 when all are occupied."""
        if 0 <= preferred < self.n and not self.connected[preferred]:
            return preferred
        free = np.flatnonzero(~self.connected)
        return int(free[0]) if len(free) else -1

    def plug(
        self,
        i: int,
        session: int,
        soc: float,
        e_needed_kwh: float,
        capacity_kwh: float,
        max_ac_kw: float,
        max_dc_kw: float,
        knee_soc: float,
        departure_s: int,
    ) -> None:
        self.connected[i] = True
        self.n_connected += 1
        self.session[i] = session
        self.e_session_kwh[i] = 0.0
        self.soc[i] = soc
        self.e_needed_kwh[i] = e_needed_kwh
        self.capacity_kwh[i] = capacity_kwh
        self.ev_max_kw[i] = max_dc_kw if self.is_dc[i] else max_ac_kw
        self.knee_soc[i] = knee_soc
        self.departure_s[i] = departure_s

    def unplug(self, i: int) -> None:
        # Zero need and vehicle limit make an empty charger draw exactly nothing in step().
        self.n_connected -= int(self.connected[i])
        self.connected[i] = False
        self.session[i] = -1
        self.e_needed_kwh[i] = 0.0
        self.ev_max_kw[i] = 0.0
        self.departure_s[i] = -1
        self.p_grid_kw[i] = 0.0
        self.p_ev_kw[i] = 0.0

    def max_grid_kw(self, dt_s: float) -> np.ndarray:
        """Grid-side power each charger would draw this step with no limit [kW]."""
        taper = ev_max_power_kw(self.soc, self.ev_max_kw, self.knee_soc)
        need = self.e_needed_kwh * 3600.0 / dt_s
        p_ev = np.minimum(np.minimum(taper, need), self._rated_ev_kw)
        return p_ev / self.efficiency

    def step(self, limit_kw: np.ndarray, dt_s: float) -> np.ndarray:
        """Advance every plugged EV by ``dt_s`` under grid-side limits ``limit_kw`` (NaN = none).

        Returns:
            Energy delivered into each EV battery this step [kWh].
        """
        if self.n_connected == 0:
            if self.p_grid_total_kw:
                self.p_grid_kw = self._zeros.copy()
                self.p_ev_kw = self._zeros.copy()
                self.p_grid_total_kw = 0.0
            return self._zeros
        # fmin treats NaN as "no limit": the charger rating applies.
        grid_limit = np.maximum(np.fmin(limit_kw, self.rated_kw), 0.0)
        result = ev_charge_step(
            self.soc,
            self.e_needed_kwh,
            self.capacity_kwh,
            grid_limit * self.efficiency,
            self.ev_max_kw,
            self.knee_soc,
            dt_s,
        )
        self.soc = result.soc
        self.e_needed_kwh = result.e_needed_kwh
        e_kwh = result.e_kwh
        self.p_ev_kw = result.p_kw
        self.p_grid_kw = result.p_kw / self.efficiency
        self.p_grid_total_kw = float(self.p_grid_kw.sum())
        self.e_session_kwh += e_kwh
        self.e_register_kwh += self.p_grid_kw * (dt_s / 3600.0)
        return e_kwh


def assign_chargers(
    arrive_s: np.ndarray, depart_s: np.ndarray, home_charger: np.ndarray, n_chargers: int
) -> np.ndarray:
    """Which charger each session gets, or -1 when it is turned away.

    Sessions are taken in arrival order (ties in table order); at one instant, departures free
    their chargers before arrivals take one. A session takes its ``home_charger`` when that is
    free, else the free charger with the lowest index. Sessions with ``depart_s <= arrive_s`` get
    -1. The simulation applies exactly this rule, so controllers that plan ahead (the offline
    optimum) can know the assignment in advance: it does not depend on control.

    Args:
        arrive_s / depart_s: Step-aligned plug-in and leave times [s].
        home_charger: Preferred charger per session (-1: none).
        n_chargers: Number of chargers.
    """
    import heapq

    n = len(arrive_s)
    charger = np.full(n, -1, dtype=np.int64)
    busy_until: list[tuple[int, int]] = []  # (leave time, charger)
    free = np.ones(n_chargers, dtype=bool)
    for s in np.argsort(arrive_s, kind="stable"):
        t = int(arrive_s[s])
        while busy_until and busy_until[0][0] <= t:
            free[heapq.heappop(busy_until)[1]] = True
        if depart_s[s] <= t or n_chargers == 0:
            continue
        preferred = int(home_charger[s])
        if 0 <= preferred < n_chargers and free[preferred]:
            chosen = preferred
        else:
            candidates = np.flatnonzero(free)
            if not len(candidates):
                continue
            chosen = int(candidates[0])
        free[chosen] = False
        charger[s] = chosen
        heapq.heappush(busy_until, (int(depart_s[s]), chosen))
    return charger
