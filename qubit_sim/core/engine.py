"""The simulation kernel: a simpy environment with an ordered step loop.

simpy orders every event. At one instant, events run by priority: device events (EV arrivals and
departures, faults) first, then the control cycle, then the physics step with its power flow, so a
step always sees the plugged-in EVs and the setpoints of its own instant.
"""

from __future__ import annotations

import math
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
        self._stop_s: float = math.inf  # where the running `run_until` stops

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
        env = self.env
        queue = env._queue
        step = self._step
        progress = self._progress
        every = self._progress_every
        k = 0
        while k < n_steps:
            step(k)
            k += 1
            self.steps_done = k
            if progress is not None and k % every == 0:
                progress(k)
            # When nothing at all is scheduled up to and including the next step's instant (no
            # device event, no `run_until` stop), simpy would only pop this process's own
            # timeout: advancing the clock here runs the same events in the same order, without
            # an event object per step.
            t_next = env._now + step_s
            if k < n_steps and t_next < self._stop_s and (not queue or queue[0][0] > t_next):
                env._now = t_next
                continue
            yield env.timeout(step_s)

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
            try:
                self._run_to(min(t_s, self.clock.duration_s))
            except SimulationError:
                raise
            except Exception as exc:
                raise self._failure(exc) from exc

    def _run_to(self, t_s: int) -> None:
        """``env.run(until=t_s)``, without creating and firing simpy's stop event.

        simpy would schedule that event at ``t_s`` with urgent priority, taking the next event
        id: everything ordered before it runs, in order. The same key is compared here, and the
        id is consumed as simpy would, so every later event keeps its id and place.
        """
        env = self.env
        queue = env._queue
        stop = (t_s, URGENT, next(env._eid))
        self._stop_s = t_s
        try:
            while queue and queue[0] < stop:  # ids are unique: the event is never compared
                env.step()
        finally:
            self._stop_s = math.inf
        env._now = t_s

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
            raise self._failure(exc) from exc

    def _failure(self, exc: Exception) -> SimulationError:
        t_s = self.now_s
        return SimulationError(
            f"simulation stopped at t={t_s} s ({self.clock.iso(t_s)}), step {self.steps_done}: "
            f"{type(exc).__name__}: {exc}",
            t_s,
        )
