"""The simulation kernel: a simpy environment with an ordered step loop.

simpy orders every event. At one instant, events run by priority: device events (EV arrivals and
departures, faults) first, then the control cycle, then the physics step with its power flow, so a
step always sees the plugged-in EVs and the setpoints of its own instant.
"""

from __future__ import annotations

from collections.abc import Callable, Generator

import simpy
from simpy.core import NORMAL, URGENT

from qubit_sim.core.clock import SimClock
from qubit_sim.errors import SimulationError

__all__ = ["Engine", "PRIORITY_DEPARTURE", "PRIORITY_DEVICE", "PRIORITY_STEP"]

PRIORITY_DEPARTURE = URGENT - 1  # leaving frees a charger before anyone arrives at that instant
PRIORITY_DEVICE = URGENT
PRIORITY_STEP = NORMAL


class Engine:
    """Runs a step callback every ``clock.step_s`` and one-off device events at given times.

    Args:
        clock: The scenario clock.
        step: Called with the step number ``k`` at ``t = k * step_s``.
        progress: Optional, called with the number of steps done, at most every ``progress_every``.
    """

    def __init__(
        self,
        clock: SimClock,
        step: Callable[[int], None],
        progress: Callable[[int], None] | None = None,
        progress_every: int = 500,
    ) -> None:
        self.clock = clock
        self.env = simpy.Environment()
        self._step = step
        self._progress = progress
        self._progress_every = max(1, progress_every)
        self.steps_done = 0
        self._started = False

    @property
    def now_s(self) -> int:
        """Current simulation time [s]."""
        return int(self.env.now)

    def at(self, t_s: int, callback: Callable[[], None], priority: int = PRIORITY_DEVICE) -> None:
        """Run ``callback`` at time ``t_s`` before that instant's control and physics step.

        Events at one instant run by ``priority`` (lower first), then in scheduling order.
        """
        if t_s < self.env.now:
            raise SimulationError(f"cannot schedule an event in the past (t={t_s} s)", self.now_s)
        event = self.env.event()
        event.callbacks.append(lambda _event: callback())
        event._ok = True
        event._value = None
        self.env.schedule(event, priority, t_s - self.env.now)  # type: ignore[arg-type]

    def _loop(self, n_steps: int) -> Generator[simpy.Event, None, None]:
        step_s = self.clock.step_s
        for k in range(n_steps):
            self._step(k)
            self.steps_done = k + 1
            if self._progress is not None and (k + 1) % self._progress_every == 0:
                self._progress(k + 1)
            yield self.env.timeout(step_s)

    def run(self, n_steps: int | None = None) -> None:
        """Run ``n_steps`` physics steps (default: the whole scenario).

        Raises:
            SimulationError: wrapping any error, with the simulation time where it happened.
        """
        n = self.clock.n_steps if n_steps is None else n_steps
        self.env.process(self._loop(n))
        self._guarded(None)
        if self._progress is not None:
            self._progress(self.steps_done)

    def run_until(self, t_s: int) -> None:
        """Advance to simulation time ``t_s``.

        Every event before ``t_s`` runs, and so do the device events already scheduled *at*
        ``t_s`` (EV arrivals and departures, which come first at an instant); the control cycle and
        physics step of ``t_s`` do not. So after the call the state is what the controller of
        ``t_s`` would observe.

        Call it repeatedly with increasing times to step a run from outside (an RL environment,
        a real-time pacer); the first call starts the step loop over the whole scenario.
        """
        if not self._started:
            self.env.process(self._loop(self.clock.n_steps))
            self._started = True
        if t_s > self.env.now:
            self._guarded(min(t_s, self.clock.duration_s))

    @property
    def finished(self) -> bool:
        """True once every step of the scenario has run."""
        return self.steps_done >= self.clock.n_steps

    def _guarded(self, until: int | None) -> None:
        try:
            self.env.run(until=until)
        except SimulationError:
            raise
        except Exception as exc:
            t_s = self.now_s
            raise SimulationError(
                f"simulation stopped at t={t_s} s ({self.clock.iso(t_s)}), step {self.steps_done}: "
                f"{type(exc).__name__}: {exc}",
                t_s,
            ) from exc
