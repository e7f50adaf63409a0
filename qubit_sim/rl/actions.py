"""Agent actions in [-1, 1] turned into feasible setpoints, without a solver.

Two action layouts (``kind``):

* ``"site_dispatch"`` — ``[battery, ev_level]``;
* ``"charger_fleet"`` — ``[battery, charger_1, ..., charger_n]``.

**Battery** (one aggregate for all batteries): ``a >= 0`` asks for ``a`` times the summed charge
limit, ``a < 0`` for ``|a|`` times the summed discharge limit [kW]. The request is clipped to the
feasible range of this step (the sum of :meth:`~qubit_sim.assets.BatteryBank.limits`) and shared
among the batteries in proportion to each one's room in that direction.

**EV level** (site dispatch): ``f = (a + 1) / 2`` asks for ``f`` times the summed rating of the
occupied chargers [kW], shared among the plugged EVs in proportion to the power each can take now
(charger rating, vehicle limit, taper, remaining need); capped at what they can take together.

**Charger limits** (charger fleet): ``f_i = (a_i + 1) / 2`` asks for ``f_i`` times charger ``i``'s
rating [kW], capped at what its EV can take now.

An empty charger gets a 0 kW limit: an EV that plugs in between control instants (when the
physics step is shorter than the control period) waits for the next one. Actions outside
[-1, 1] are clipped first.

Every function takes arrays with a leading batch axis (sites), so the single environment (one
site) and the batched one share them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from qubit_sim.control.base import Controller, Observation, Setpoints, SiteInfo
from qubit_sim.errors import ControllerError

__all__ = [
    "ACTION_KINDS",
    "ActionController",
    "ActionReplay",
    "action_size",
    "battery_projection",
    "charger_projection",
    "ev_level_projection",
]

ACTION_KINDS = ("site_dispatch", "charger_fleet")


def action_size(kind: str, n_chargers: int) -> int:
    """Length of the action vector of ``kind``."""
    if kind == "site_dispatch":
        return 2
    if kind == "charger_fleet":
        return 1 + n_chargers
    raise ControllerError(f"unknown action kind {kind!r}; use one of {list(ACTION_KINDS)}")


def battery_projection(
    action: np.ndarray,
    p_min_kw: np.ndarray,
    p_max_kw: np.ndarray,
    charge_max_total_kw: float,
    discharge_max_total_kw: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Battery setpoints from the battery action.

    Args:
        action: Battery action per site, shape ``(N,)``, in [-1, 1].
        p_min_kw / p_max_kw: Feasible range per battery this step, shape ``(N, B)`` [kW].
        charge_max_total_kw / discharge_max_total_kw: Summed power limits [kW].

    Returns:
        ``(requested_kw, applied_kw, per_battery_kw)``: requested and applied total per site
        ``(N,)`` and the setpoint of each battery ``(N, B)`` [kW], load convention.
    """
    a = np.minimum(np.maximum(action, -1.0), 1.0)
    requested = a * np.where(a >= 0.0, charge_max_total_kw, discharge_max_total_kw)
    if p_min_kw.shape[-1] == 1:
        # One battery takes the whole applied power (no sharing arithmetic to round).
        applied = np.minimum(np.maximum(requested, p_min_kw[:, 0]), p_max_kw[:, 0])
        return requested, applied, applied[:, None]
    applied = np.minimum(np.maximum(requested, p_min_kw.sum(axis=-1)), p_max_kw.sum(axis=-1))
    charging = (applied >= 0.0)[:, None]
    room = np.where(charging, np.maximum(p_max_kw, 0.0), np.maximum(-p_min_kw, 0.0))
    total = room.sum(axis=-1)
    share = np.divide(np.abs(applied), total, out=np.zeros_like(total), where=total > 0.0)
    per_battery = np.where(charging, room, -room) * share[:, None]
    return requested, applied, per_battery


def ev_level_projection(
    action: np.ndarray,
    connected: np.ndarray,
    ev_max_kw: np.ndarray,
    rated_kw: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Charger limits from one EV power level per site.

    Args:
        action: EV level per site ``(N,)`` in [-1, 1].
        connected: EV plugged in ``(N, C)``.
        ev_max_kw: Grid-side power each EV can take now ``(N, C)`` [kW] (0 when empty).
        rated_kw: Charger ratings ``(C,)`` [kW].

    Returns:
        ``(requested_kw, applied_kw, limit_kw)``: requested and applied total EV power per site
        ``(N,)`` and the limit of each charger ``(N, C)`` [kW].
    """
    fraction = (np.minimum(np.maximum(action, -1.0), 1.0) + 1.0) * 0.5
    requested = fraction * np.add.reduce(connected * rated_kw, -1)
    available = np.add.reduce(ev_max_kw, -1)
    # Where nothing can be taken every ev_max is 0, so any finite ratio gives 0 kW.
    ratio = np.minimum(requested / np.maximum(available, 1e-12), 1.0)
    limit = ev_max_kw * ratio[:, None]
    return requested, np.add.reduce(limit, -1), limit


def charger_projection(
    action: np.ndarray,
    ev_max_kw: np.ndarray,
    rated_kw: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Charger limits from one action per charger.

    Args:
        action: Charger actions ``(N, C)`` in [-1, 1].
        ev_max_kw: Grid-side power each EV can take now ``(N, C)`` [kW].
        rated_kw: Charger ratings ``(C,)`` [kW].

    Returns:
        ``(requested_kw, limit_kw)``, both ``(N, C)`` [kW]; the limit is capped at what the
        charger's EV can take (0 when empty).
    """
    requested = (np.minimum(np.maximum(action, -1.0), 1.0) + 1.0) * 0.5 * rated_kw
    return requested, np.minimum(requested, ev_max_kw)


class ActionController(Controller):
    """The agent seen from the simulator: returns the pending action as feasible setpoints.

    Set :attr:`pending` before each control instant. After each call, :attr:`requested` and
    :attr:`applied` hold what the action asked for and what was applied [kW] (see the module
    docstring), e.g. ``{"battery_kw": ..., "ev_kw": ...}``.

    Args:
        kind: ``"site_dispatch"`` or ``"charger_fleet"``.
    """

    name = "rl_agent"

    def __init__(self, kind: str) -> None:
        action_size(kind, 0)
        self.kind = kind
        self.pending: np.ndarray | None = None
        #: ``(ev_max_kw, occupied rating sum [kW], available sum [kW])`` an observation of this
        #: instant already computed (:attr:`~qubit_sim.rl.features.ObservationLayout.ev_sums`);
        #: used while ``ev_max_kw`` is the very array the simulation hands over.
        self.ev_sums: tuple[np.ndarray, float, float] | None = None
        self.requested: dict[str, np.ndarray | float] = {}
        self.applied: dict[str, np.ndarray | float] = {}

    def reset(self, site: SiteInfo, rng: np.random.Generator) -> None:
        super().reset(site, rng)
        n, nb, npv = len(site.charger_ids), len(site.battery_ids), len(site.pv_ids)
        self.size = action_size(self.kind, n)
        self._rated = np.asarray(site.charger_max_kw, dtype=float)
        self._charge_total = float(np.sum(site.battery_charge_max_kw))
        self._discharge_total = float(np.sum(site.battery_discharge_max_kw))
        self._setpoints = Setpoints.unlimited(n, nb, npv)

    def next_action(self) -> np.ndarray:
        """The action for this control instant."""
        if self.pending is None:
            raise ControllerError("no action pending: set ActionController.pending first")
        return self.pending

    def act(self, obs: Observation) -> Setpoints:
        action = np.asarray(self.next_action(), dtype=float)
        if action.shape != (self.size,):
            raise ControllerError(
                f"{self.kind} action of shape {action.shape}; expected ({self.size},)"
            )
        sp = self._setpoints
        battery_action = float(action[0])
        if len(obs.battery_p_min_kw) == 1 and battery_action == battery_action:
            battery_req, battery_applied = self._one_battery(
                battery_action, float(obs.battery_p_min_kw[0]), float(obs.battery_p_max_kw[0])
            )
            sp.battery_kw = np.array([battery_applied])
        else:
            requested, applied, per_battery = battery_projection(
                action[:1],
                obs.battery_p_min_kw[None, :],
                obs.battery_p_max_kw[None, :],
                self._charge_total,
                self._discharge_total,
            )
            battery_req, battery_applied = float(requested[0]), float(applied[0])
            sp.battery_kw = per_battery[0]
        connected = obs.charger_connected
        ev_max = obs.charger_ev_max_kw
        if self.kind == "site_dispatch":
            level = float(action[1])
            if level == level:
                ev_req_kw, ev_applied_kw, limit = self._one_ev_level(level, connected, ev_max)
            else:
                ev_req, ev_applied, limits = ev_level_projection(
                    action[1:2], connected[None, :], ev_max[None, :], self._rated
                )
                ev_req_kw, ev_applied_kw, limit = float(ev_req[0]), float(ev_applied[0]), limits[0]
            self.requested = {"battery_kw": battery_req, "ev_kw": ev_req_kw}
            self.applied = {"battery_kw": battery_applied, "ev_kw": ev_applied_kw}
        else:
            # charger_projection is element-wise: one site needs no site axis.
            ev_req_per_charger, limit = charger_projection(action[1:], ev_max, self._rated)
            self.requested = {"battery_kw": battery_req, "charger_kw": ev_req_per_charger}
            self.applied = {"battery_kw": battery_applied, "charger_kw": limit}
        sp.charger_kw = limit
        return sp

    def _one_ev_level(
        self, action: float, connected: np.ndarray, ev_max_kw: np.ndarray
    ) -> tuple[float, float, np.ndarray]:
        """:func:`ev_level_projection` of one site and a non-NaN action, bit for bit.

        The per-site scalars are floats (the same IEEE operations; ``a if a > b else b`` is
        numpy's maximum of non-NaN values); the reductions run over the same contiguous values.
        """
        total = np.add.reduce
        a = action if action > -1.0 else -1.0
        a = a if a < 1.0 else 1.0
        sums = self.ev_sums
        # The simulation hands over a new array whenever an EV plugged in or out, so the same
        # array means the same EVs and the same sums.
        if sums is not None and sums[0] is ev_max_kw:
            occupied_kw, available = sums[1], sums[2]
        else:
            occupied_kw = float(total(connected * self._rated))
            available = float(total(ev_max_kw))
        requested = (a + 1.0) * 0.5 * occupied_kw
        ratio = requested / (available if available > 1e-12 else 1e-12)
        ratio = ratio if ratio < 1.0 else 1.0
        limit = ev_max_kw * ratio
        return requested, float(total(limit)), limit

    def _one_battery(self, action: float, p_min_kw: float, p_max_kw: float) -> tuple[float, float]:
        """:func:`battery_projection` of one site with one battery, on floats (the common case).

        The same IEEE operations in the same order, so bit for bit the same results;
        ``a if a > b else b`` is numpy's maximum for non-NaN values, including which of two
        equal signed zeros it returns (the second), and likewise for the minimum.
        """
        a = action if action > -1.0 else -1.0
        a = a if a < 1.0 else 1.0
        requested = a * (self._charge_total if a >= 0.0 else self._discharge_total)
        applied = requested if requested > p_min_kw else p_min_kw
        applied = applied if applied < p_max_kw else p_max_kw
        return requested, applied


class ActionReplay(ActionController):
    """Replays recorded agent actions, one per control instant, through the same projection.

    Use it to re-run an episode with :func:`qubit_sim.run`; after the last recorded action it
    repeats the last one.

    Args:
        kind: ``"site_dispatch"`` or ``"charger_fleet"``.
        actions: One action per control instant.
    """

    name = "rl_replay"

    def __init__(self, kind: str, actions: Iterable[Sequence[float] | np.ndarray]) -> None:
        super().__init__(kind)
        self.actions = [np.asarray(a, dtype=float) for a in actions]
        if not self.actions:
            raise ControllerError("ActionReplay needs at least one action")
        self._next = 0

    def reset(self, site: SiteInfo, rng: np.random.Generator) -> None:
        super().reset(site, rng)
        self._next = 0

    def next_action(self) -> np.ndarray:
        index = min(self._next, len(self.actions) - 1)
        self._next += 1
        return self.actions[index]
