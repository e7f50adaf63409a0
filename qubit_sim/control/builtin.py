"""Built-in controllers of the spine: ``uncontrolled`` and ``rule_based``."""

from __future__ import annotations

import numpy as np

from qubit_sim.control.base import Controller, Observation, Setpoints, SiteInfo

__all__ = ["RuleBased", "Uncontrolled"]


class Uncontrolled(Controller):
    """Every EV charges at full power from arrival; batteries idle; PV never curtailed."""

    name = "uncontrolled"

    def reset(self, site: SiteInfo, rng: np.random.Generator) -> None:
        super().reset(site, rng)
        self._setpoints = Setpoints.unlimited(
            len(site.charger_ids), len(site.battery_ids), len(site.pv_ids)
        )

    def act(self, obs: Observation) -> Setpoints:
        return self._setpoints


class RuleBased(Controller):
    """Battery peak shaving by a threshold, plus PV self-consumption. EVs charge at full power.

    Each period, with ``net`` the site power without the battery (load + EVs - PV):

    * ``net > threshold_kw``: discharge by the excess (peak shaving);
    * ``net < 0``: charge with the surplus (self-consumption);
    * otherwise, if ``recharge_below_kw`` is set and ``net`` is below it, recharge from the grid
      up to that level (so the battery is ready for the next peak).

    Args:
        threshold_kw: Import level to shave to [kW]. Default: 80 % of the import limit, or
            ``None`` (no shaving) when the site has no limit.
        recharge_below_kw: Grid recharge ceiling [kW]; ``None`` disables grid recharging.
    """

    name = "rule_based"

    def __init__(
        self, threshold_kw: float | None = None, recharge_below_kw: float | None = None
    ) -> None:
        self.threshold_kw = threshold_kw
        self.recharge_below_kw = recharge_below_kw

    def reset(self, site: SiteInfo, rng: np.random.Generator) -> None:
        super().reset(site, rng)
        if self.threshold_kw is None and np.isfinite(site.import_limit_kw):
            self.threshold_kw = 0.8 * site.import_limit_kw
        self._setpoints = Setpoints.unlimited(
            len(site.charger_ids), len(site.battery_ids), len(site.pv_ids)
        )
        self._eff = site.charger_efficiency

    def act(self, obs: Observation) -> Setpoints:
        setpoints = self._setpoints
        n_batteries = len(setpoints.battery_kw)
        if n_batteries == 0:
            return setpoints
        ev_kw = float(obs.charger_ev_max_kw.sum())
        net = obs.load_kw + ev_kw - float(obs.pv_available_kw.sum())
        if self.threshold_kw is not None and net > self.threshold_kw:
            want = -(net - self.threshold_kw)
        elif net < 0:
            want = -net
        elif self.recharge_below_kw is not None and net < self.recharge_below_kw:
            want = self.recharge_below_kw - net
        else:
            want = 0.0
        # Share the request in proportion to each battery's feasible range in that direction.
        if want >= 0:
            room = np.maximum(obs.battery_p_max_kw, 0.0)
        else:
            room = np.maximum(-obs.battery_p_min_kw, 0.0)
        total = float(room.sum())
        if total <= 0:
            setpoints.battery_kw[:] = 0.0
        else:
            share = min(abs(want), total) / total
            setpoints.battery_kw[:] = np.sign(want) * room * share
        return setpoints
