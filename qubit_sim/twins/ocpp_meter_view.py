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
up to that instant, and it grows by ``p_kw × step_s`` over the step. Everything else is the
wrapped :class:`~qubit_sim.twins.fleet_devices.FleetCharger`'s.
"""

from __future__ import annotations

import math
from typing import Protocol

import numpy as np

from qubit_sim.physics.ev import ev_charge_step
from qubit_sim.twins.charger_device import ConnectorStatus
from qubit_sim.twins.fleet_devices import SiteDevices

__all__ = ["StepCounter", "StepMeteredCharger"]


class StepCounter(Protocol):
    """How far the physics has run: :class:`qubit_sim.core.engine.Engine` is one."""

    @property
    def steps_done(self) -> int:
        """Physics steps run so far."""
        ...


class StepMeteredCharger:
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
        self._d = devices
        self._charger = devices.chargers[i]
        self._engine = engine
        self._n_steps = len(devices.pv_available_kw) if n_steps is None else int(n_steps)
        self.i = i

    def _pending_step(self) -> int | None:
        """The step that starts at this very instant and has not run yet, else ``None``."""
        d = self._d
        now = d.now_s()
        k = self._engine.steps_done
        return k if now == k * d.step_s and k < self._n_steps else None

    def _next_step_kw(self) -> float:
        """Grid-side power the physics will hold over the pending step [kW]."""
        d, i = self._d, self.i
        fleet = d.fleet
        if not fleet.connected[i]:
            return 0.0
        # The same arithmetic as ChargerFleet.step, on one charger.
        limit = np.maximum(np.fmin(d.charger_limit_kw[i : i + 1], fleet.rated_kw[i : i + 1]), 0.0)
        step = ev_charge_step(
            fleet.soc[i : i + 1],
            fleet.e_needed_kwh[i : i + 1],
            fleet.capacity_kwh[i : i + 1],
            limit * fleet.efficiency[i : i + 1],
            fleet.ev_max_kw[i : i + 1],
            fleet.knee_soc[i : i + 1],
            d.step_s,
        )
        return float((step.p_kw / fleet.efficiency[i : i + 1])[0])

    # -- ChargerDevice -------------------------------------------------------------------------

    @property
    def n_connectors(self) -> int:
        """One connector."""
        return 1

    def status(self, connector: int) -> ConnectorStatus:
        """OCPP connector status."""
        return self._charger.status(connector)

    def ev_connected(self, connector: int) -> bool:
        """Whether an EV is plugged in."""
        return self._charger.ev_connected(connector)

    def p_kw(self, connector: int) -> float:
        """Grid-side power drawn from this instant on [kW] (a frozen meter: its held value)."""
        p_kw = self._charger.p_kw(connector)  # checks the connector
        if not math.isnan(self._d.charger_frozen[self.i, 0]) or self._pending_step() is None:
            return p_kw
        return self._next_step_kw()

    def e_register_wh(self, connector: int) -> float:
        """Grid-side energy register [Wh]."""
        return self._charger.e_register_wh(connector)

    def current_a(self, connector: int) -> tuple[float, float, float]:
        """Current per phase [A], coherent with :meth:`p_kw` (``P = sum(V_i * I_i)``)."""
        volts = self.voltage_v(connector)[0]
        phases = self.phases(connector)
        amps = self.p_kw(connector) * 1000.0 / (phases * volts) if volts > 0 else 0.0
        values = [amps if phase < phases else 0.0 for phase in range(3)]
        return (values[0], values[1], values[2])

    def voltage_v(self, connector: int) -> tuple[float, float, float]:
        """Phase-to-neutral voltage [V]."""
        return self._charger.voltage_v(connector)

    def ev_soc(self, connector: int) -> float | None:
        """SOC of the plugged EV [fraction], ``None`` without one."""
        return self._charger.ev_soc(connector)

    def max_power_kw(self, connector: int) -> float:
        """Rated grid-side power [kW]."""
        return self._charger.max_power_kw(connector)

    def phases(self, connector: int) -> int:
        """Phases of the charger."""
        return self._charger.phases(connector)

    def set_limit_kw(self, connector: int, limit_kw: float | None) -> None:
        """Hold a grid-side power cap [kW] (``None``: none); the physics applies it."""
        self._charger.set_limit_kw(connector, limit_kw)

    def limit_kw(self, connector: int) -> float | None:
        """The cap the charger holds now [kW] (``None``: none)."""
        return self._charger.limit_kw(connector)

    def start_transaction(self, connector: int) -> bool:
        """Mark a transaction for the plugged EV."""
        return self._charger.start_transaction(connector)

    def stop_transaction(self, connector: int) -> bool:
        """End the transaction."""
        return self._charger.stop_transaction(connector)

    def set_available(self, connector: int, available: bool) -> None:
        """(Un)make the charger available."""
        self._charger.set_available(connector, available)
