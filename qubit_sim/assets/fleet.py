"""Chargers with their plugged-in EVs, as struct-of-arrays over all chargers of a site."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from qubit_sim.physics.ev import ev_charge_step

__all__ = ["ChargerFleet", "assign_chargers"]


class ChargerFleet:
    """All chargers of a site (one connector each) and the EVs plugged into them.

    Per charger: rated grid-side power ``rated_kw`` [kW], ``efficiency`` [-], ``is_dc``. Per plugged
    EV: ``soc``, ``e_needed_kwh`` (EV side), ``capacity_kwh``, ``ev_max_kw`` (vehicle limit for this
    charger kind), ``knee_soc``, ``departure_s``, and the index of its session.

    The per-EV arrays change only through :meth:`plug`, :meth:`unplug` and :meth:`step` (the
    fleet keeps values derived from them between those calls); read them, do not write them.
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
        self._one_minus_knee = np.subtract(1.0, self.knee_soc)
        # Scratch vectors for the step's intermediate values, written in place.
        self._head = np.empty(n)
        self._taper = np.empty(n)
        self._scratch = (np.empty(n), np.empty(n), np.empty(n))
        # The taper of the present state, valid until an EV plugs in or out or a step runs:
        # the control cycle's max_grid_kw and the step that follows share it.
        self._taper_fresh = False
        self._max_grid: tuple[float, np.ndarray] = (-1.0, self._zeros)
        # Constant operands as arrays: numpy converts a Python scalar operand on every call.
        self._zero = np.zeros(n)
        self._one = np.ones(n)
        self._per_dt: tuple[float, np.ndarray, np.ndarray, np.ndarray] = (
            -1.0,
            self._one,
            self._one,
            self._one,
        )

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
        self._one_minus_knee[i] = 1.0 - knee_soc
        self.departure_s[i] = departure_s
        self._taper_fresh = False

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
        self._taper_fresh = False

    def _headroom_and_taper(self) -> tuple[np.ndarray, np.ndarray]:
        """``max(1 - soc, 0)`` and the power each EV accepts at its SOC [kW] (scratch arrays).

        The operations of :func:`~qubit_sim.physics.ev.ev_max_power_kw`, in its order, with
        ``1 - knee_soc`` kept from plug-in: the same values bit for bit.
        """
        head, taper = self._head, self._taper
        if not self._taper_fresh:
            np.subtract(self._one, self.soc, head)
            np.maximum(head, self._zero, out=head)
            np.divide(head, self._one_minus_knee, taper)
            np.minimum(taper, self._one, out=taper)
            np.multiply(self.ev_max_kw, taper, taper)
            self._taper_fresh = True
        return head, taper

    def _dt_vectors(self, dt_s: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``dt_s / 3600``, 3600 and ``dt_s`` as vectors (operands without a scalar's cost)."""
        cached = self._per_dt
        if cached[0] != dt_s:
            n = self.n
            cached = (dt_s, np.full(n, dt_s / 3600.0), np.full(n, 3600.0), np.full(n, float(dt_s)))
            self._per_dt = cached
        return cached[1], cached[2], cached[3]

    def max_grid_kw(self, dt_s: float) -> np.ndarray:
        """Grid-side power each charger would draw this step with no limit [kW]."""
        fresh = self._taper_fresh
        _, taper = self._headroom_and_taper()
        if fresh and self._max_grid[0] == dt_s:
            # Nothing changed since the last call (no EV plugged in or out, no step that
            # charged): a fleet with nobody plugged in sits here between its sessions.
            return self._max_grid[1].copy()
        _, s_per_h, dt = self._dt_vectors(dt_s)
        need = self._scratch[0]
        np.multiply(self.e_needed_kwh, s_per_h, need)
        np.divide(need, dt, need)
        np.minimum(taper, need, out=need)
        np.minimum(need, self._rated_ev_kw, out=need)
        value = need / self.efficiency
        self._max_grid = (dt_s, value.copy())
        return value

    def grid_kw_next_step(self, i: int, limit_kw: float, dt_s: float) -> float:
        """Grid-side power [kW] charger ``i`` will draw over the next step of ``dt_s`` under
        ``limit_kw`` (NaN = none), from its present state — what :meth:`step` applies, to the bit.
        """
        if not self.connected[i]:
            return 0.0
        s = slice(i, i + 1)
        limit = np.maximum(np.fmin(np.array([limit_kw]), self.rated_kw[s]), 0.0)
        result = ev_charge_step(
            self.soc[s],
            self.e_needed_kwh[s],
            self.capacity_kwh[s],
            limit * self.efficiency[s],
            self.ev_max_kw[s],
            self.knee_soc[s],
            dt_s,
        )
        return float((result.p_kw / self.efficiency[s])[0])

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
        # The operations of ev_charge_step in its order (the same values bit for bit), fused:
        # scratch outputs, and the taper computed once per state.
        p_kw, want, tmp = self._scratch
        # fmin treats NaN as "no limit": the charger rating applies.
        np.fmin(limit_kw, self.rated_kw, p_kw)
        np.maximum(p_kw, self._zero, out=p_kw)
        np.multiply(p_kw, self.efficiency, p_kw)
        dt_h, _, _ = self._dt_vectors(dt_s)
        head, taper = self._headroom_and_taper()
        soc = self.soc
        e_needed = self.e_needed_kwh
        capacity = self.capacity_kwh
        np.multiply(head, capacity, tmp)
        np.maximum(e_needed, self._zero, out=want)
        np.minimum(want, tmp, out=want)
        np.fmin(p_kw, taper, p_kw)
        np.divide(want, dt_h, want)
        np.minimum(p_kw, want, out=p_kw)
        p_ev = np.maximum(p_kw, self._zero)
        e_kwh = p_ev * dt_h
        # Rounding guards: a full battery lands on exactly 1, a met need on exactly 0.
        np.divide(e_kwh, capacity, tmp)
        np.add(soc, tmp, tmp)
        np.maximum(soc, self._one, out=want)
        self.soc = np.minimum(tmp, want)
        np.subtract(e_needed, e_kwh, tmp)
        self.e_needed_kwh = np.maximum(tmp, self._zero)
        self._taper_fresh = False
        self.p_ev_kw = p_ev
        self.p_grid_kw = p_grid = p_ev / self.efficiency
        self.p_grid_total_kw = float(np.add.reduce(p_grid))
        self.e_session_kwh += e_kwh
        self.e_register_kwh += np.multiply(p_grid, dt_h, tmp)
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
    charger = [-1] * n
    # Python lists: the loop reads one value at a time, which numpy scalars make slow.
    arrive = np.asarray(arrive_s).astype(np.int64).tolist()
    depart = np.asarray(depart_s).tolist()
    depart_int = np.asarray(depart_s).astype(np.int64).tolist()
    home = np.asarray(home_charger).astype(np.int64).tolist()
    busy_until: list[tuple[int, int]] = []  # (leave time, charger)
    free = [True] * n_chargers
    for s in np.argsort(arrive_s, kind="stable").tolist():
        t = arrive[s]
        while busy_until and busy_until[0][0] <= t:
            free[heapq.heappop(busy_until)[1]] = True
        if depart[s] <= t or n_chargers == 0:
            continue
        preferred = home[s]
        if 0 <= preferred < n_chargers and free[preferred]:
            chosen = preferred
        elif True in free:
            chosen = free.index(True)
        else:
            continue
        free[chosen] = False
        charger[s] = chosen
        heapq.heappush(busy_until, (depart_int[s], chosen))
    return np.array(charger, dtype=np.int64)
