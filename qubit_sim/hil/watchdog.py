"""The watchdog: a timer thread that puts every device in its safe state when steps stop coming.

The simulation feeds the watchdog at every step and says when the next step is due. When that
step is more than ``timeout_s`` wall seconds late (a hung controller, a stalled power flow, a dead event loop), the watchdog calls
``on_expire`` from its own thread — which must therefore not depend on the simulation's event
loop — and stays expired; the simulation stops at its next step.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

__all__ = ["Watchdog"]

LOGGER = logging.getLogger("qubit_sim.hil.watchdog")


class Watchdog:
    """Calls ``on_expire(reason)`` once when a step is ``timeout_s`` later than it was due.

    Args:
        timeout_s: Longest wall-clock gap between feeds [s].
        on_expire: Called once, from the watchdog thread, with the reason.
        clock: Monotonic wall clock [s].
    """

    def __init__(
        self,
        timeout_s: float,
        on_expire: Callable[[str], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not timeout_s > 0:
            raise ValueError(f"watchdog timeout {timeout_s!r} s must be positive")
        self.timeout_s = float(timeout_s)
        self.on_expire = on_expire
        self.clock = clock
        self.expired = False
        self.expired_at: float | None = None
        self.reason = ""
        self.max_gap_s = 0.0
        self._last = clock()
        self._deadline = self._last + self.timeout_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start watching (the first feed is due ``timeout_s`` from now)."""
        self._last = self.clock()
        self._deadline = self._last + self.timeout_s
        if self._thread is None:
            self._thread = threading.Thread(target=self._watch, name="qubit-sim-watchdog")
            self._thread.daemon = True
            self._thread.start()

    def feed(self, next_due_in_s: float = 0.0) -> None:
        """A step happened; the next one is due in ``next_due_in_s`` wall seconds."""
        now = self.clock()
        self.max_gap_s = max(self.max_gap_s, now - self._last)
        self._last = now
        self._deadline = now + max(0.0, next_due_in_s) + self.timeout_s

    def stop(self) -> None:
        """Stop watching (the end of the run)."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=self.timeout_s + 5.0)

    def _watch(self) -> None:
        period = min(0.05, self.timeout_s / 10)
        while not self._stop.wait(period):
            now = self.clock()
            if now > self._deadline:
                overdue = now - self._deadline + self.timeout_s
                self.expired = True
                self.expired_at = now
                self.reason = f"watchdog expired: the next simulation step is {overdue:.2f} s "
                self.reason += f"overdue (timeout {self.timeout_s:g} s)"
                LOGGER.error("%s; putting every device in its safe state", self.reason)
                try:
                    self.on_expire(self.reason)
                except Exception:  # the thread must report, not die silently
                    LOGGER.exception("safe state after watchdog expiry failed")
                return

    def to_dict(self) -> dict[str, object]:
        """Figures for the manifest."""
        return {
            "timeout_s": self.timeout_s,
            "expired": self.expired,
            "reason": self.reason,
            "max_gap_s": round(self.max_gap_s, 6),
        }
