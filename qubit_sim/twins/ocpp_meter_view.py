"""What a fleet charger's meter reads at the instant its OCPP twin samples it.

The physics advances the chargers a whole step at a time: step ``k`` runs at ``t = k * step_s``
and fixes the power held over ``[t, t + step_s)``. A twin may be sampled at ``t`` itself before
that step has run: in ``wire`` mode every tick at a step start comes before the physics, and in
real time the pacer may pause the engine exactly there. The fleet arrays then still hold step
``k - 1``, so a meter value stamped ``t`` would report the power of the interval that just ended
(or 0 kW before the first step), not what the charger draws from ``t`` on.

:class:`StepMeteredCharger` reads the charger as the :class:`ChargerDevice` protocol promises:
``p_kw`` is the power drawn from this instant on. While the step of the instant is still to run,
that power is the one the physics will apply — computed from the same state (plugged EV, SOC,
remaining need) and the same held limit with the same function, so it equals the step's recorded
power to the bit. The energy register is the fleet's: at a step start it is the energy delivered
up to that instant, and it grows by ``p_kw × step_s`` over the step. Everything else is
:class:`~qubit_sim.twins.fleet_devices.FleetCharger`'s.
"""

from __future__ import annotations

import math
from typing import Protocol

from qubit_sim.twins.fleet_devices import FleetCharger, SiteDevices

__all__ = ["StepCounter", "StepMeteredCharger"]


class StepCounter(Protocol):
    """How far the physics has run: :class:`qubit_sim.core.engine.Engine` is one."""

    @property
    def steps_done(self) -> int:
        """Physics steps run so far."""
        ...


class StepMeteredCharger(FleetCharger):
    """Charger ``i`` of a site, read at the instant of the simulated clock.

    Args:
        devices: The site's device-held state.
        i: Charger index in the fleet.
        engine: Counts the physics steps run (the simulation's engine).
        n_steps: Steps of the run; the instant after the last one has no step to run.
    """

    def __init__(
        self, devices: SiteDevices, i: int, engine: StepCounter, n_steps: int | None = None
    ) -> None:
        super().__init__(devices, i)
        self._engine = engine
        self._n_steps = len(devices.pv_available_kw) if n_steps is None else int(n_steps)

    def _pending_step(self) -> int | None:
        """The step that starts at this very instant and has not run yet, else ``None``."""
        d = self._d
        now = d.now_s()
        k = self._engine.steps_done
        return k if now == k * d.step_s and k < self._n_steps else None

    def p_kw(self, connector: int) -> float:
        """Grid-side power drawn from this instant on [kW] (a frozen meter: its held value)."""
        p_kw = super().p_kw(connector)  # checks the connector
        if not math.isnan(self._d.charger_frozen[self.i, 0]) or self._pending_step() is None:
            return p_kw
        d = self._d
        return self._fleet.grid_kw_next_step(self.i, float(d.charger_limit_kw[self.i]), d.step_s)
