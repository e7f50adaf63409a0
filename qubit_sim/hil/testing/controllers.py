"""A scripted controller for bench tests: fixed setpoints, and an optional stall.

Use it from a scenario as ``controller: {name: "qubit_sim.hil.testing.controllers:Scripted"}``.
"""

from __future__ import annotations

import time

import numpy as np

from qubit_sim.control.base import Controller, Observation, Setpoints, SiteInfo

__all__ = ["Scripted"]


class Scripted(Controller):
    """Commands every battery ``battery_kw``, caps every charger at ``charger_kw`` and every PV
    plant at ``pv_limit_kw``.

    Args:
        battery_kw: Setpoint of every battery [kW, + charge].
        charger_kw: Cap of every charger [kW] (``None``: no cap).
        stall_at_s: Simulated time at which the controller blocks (a hung control cycle) [s].
        stall_for_s: How long it blocks [s, wall clock].
        pv_limit_kw: Output cap of every PV plant [kW] (``None``: no cap).
    """

    name = "scripted"

    def __init__(
        self,
        battery_kw: float = 0.0,
        charger_kw: float | None = None,
        stall_at_s: int | None = None,
        stall_for_s: float = 0.0,
        pv_limit_kw: float | None = None,
    ) -> None:
        self.battery_kw = float(battery_kw)
        self.charger_kw = np.nan if charger_kw is None else float(charger_kw)
        self.stall_at_s = stall_at_s
        self.stall_for_s = float(stall_for_s)
        self._stalled = False
        self.pv_limit_kw = np.nan if pv_limit_kw is None else float(pv_limit_kw)

    def reset(self, site: SiteInfo, rng: np.random.Generator) -> None:
        """Remember the device counts."""
        self._site = site
        self._stalled = False

    def act(self, obs: Observation) -> Setpoints:
        """The fixed setpoints; blocks once at ``stall_at_s``."""
        if self.stall_at_s is not None and obs.t_s >= self.stall_at_s and not self._stalled:
            self._stalled = True
            time.sleep(self.stall_for_s)
        site = self._site
        return Setpoints(
            charger_kw=np.full(len(site.charger_ids), self.charger_kw),
            battery_kw=np.full(len(site.battery_ids), self.battery_kw),
            pv_limit_kw=np.full(len(site.pv_ids), self.pv_limit_kw),
        )
