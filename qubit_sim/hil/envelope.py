"""The safety envelope: every command to a physical device passes here first.

A power command [kW, load convention: + draws from the grid] is checked against, in order, the
device's rating window ``[-max_discharge_kw, max_charge_kw]``, its SOC window (no discharge at or
below ``soc_min``, no charge at or above ``soc_max``) and its ramp limit (the change since the last
command sent may be at most ``max_ramp_kw_per_s`` times the wall seconds since then). With
``on_violation: clamp`` the nearest allowed value goes out; with ``refuse`` nothing does and the
device keeps its previous command until that expires by itself. Commands not in
``allowed_commands`` are always refused. Every clamp and refusal is logged and kept in
:attr:`Envelope.log`.

For a PV inverter the command is an output cap [kW, >= 0] (``curtail``): its window is
``[rating * (1 - max_curtailment_pct / 100), rating]`` with the rating ``max_discharge_kw``, and
"no cap" is the rating itself (no curtailment).

The ramp is judged on the wall clock (the device is physical); the clock is injected for tests.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from qubit_sim.hil.bench import Limits

__all__ = ["Decision", "Envelope"]

LOGGER = logging.getLogger("qubit_sim.hil.envelope")
_LOG_SIZE = 10_000


@dataclass(frozen=True)
class Decision:
    """What the envelope made of one command.

    Attributes:
        t_s: Wall time of the decision (the envelope's clock) [s].
        device_id: The bench device.
        command: ``set_power_limit``, ``start``, ``stop`` or ``set_availability``.
        requested_kw: The value asked for [kW] (``None``: no cap / release).
        sent_kw: The value let through [kW]; ``None`` when refused or not a power command.
        action: ``"passed"``, ``"clamped"`` or ``"refused"``.
        reason: Why it was clamped or refused (empty when passed).
    """

    t_s: float
    device_id: str
    command: str
    requested_kw: float | None
    sent_kw: float | None
    action: Literal["passed", "clamped", "refused"]
    reason: str = ""


class Envelope:
    """Clamps or refuses commands to one device; remembers the last value sent for the ramp.

    Args:
        device_id: Bench device id (for logs).
        limits: The device's limits from the bench file.
        kind: ``"battery"``, ``"charger"`` or ``"pv"``; a charger's "no cap" becomes
            ``max_charge_kw``, a PV inverter's its rating.
        initial_kw: The value the device is assumed to hold at start (its safe state) [kW].
        clock: Wall clock [s] (monotonic).
    """

    def __init__(
        self,
        device_id: str,
        limits: Limits,
        kind: str = "battery",
        *,
        initial_kw: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.device_id = device_id
        self.limits = limits
        self.kind = kind
        self.clock = clock
        self.last_kw = float(initial_kw)
        self.command = "curtail" if kind == "pv" else "set_power_limit"
        self._last_t = clock()
        self.log: deque[Decision] = deque(maxlen=_LOG_SIZE)
        self.counts = {"passed": 0, "clamped": 0, "refused": 0}
        self._last_logged: tuple[str, str] = ("passed", "")

    def bounds(self, soc: float | None = None) -> tuple[float, float]:
        """The allowed power range now [kW]: rating, SOC window and ramp together."""
        limits = self.limits
        low, high = self._window()
        if soc is not None and math.isfinite(soc) and self.kind != "pv":
            if soc <= limits.soc_min:
                low = max(low, 0.0)
            if soc >= limits.soc_max:
                high = min(high, 0.0)
        if limits.max_ramp_kw_per_s is not None:
            step = limits.max_ramp_kw_per_s * max(0.0, self.clock() - self._last_t)
            low = max(low, self.last_kw - step)
            high = min(high, self.last_kw + step)
        # A ramp from outside a narrowed SOC window may leave no overlap: stay where we are.
        if low > high:
            floor, ceiling = self._window()
            low = high = min(max(self.last_kw, floor), ceiling)
        return low, high

    def _window(self) -> tuple[float, float]:
        limits = self.limits
        if self.kind == "pv":
            rating = limits.max_discharge_kw
            return rating * (1.0 - limits.max_curtailment_pct / 100.0), rating
        return -limits.max_discharge_kw, limits.max_charge_kw

    def check_power(self, p_kw: float | None, soc: float | None = None) -> Decision:
        """Judge a power command [kW]; a passed or clamped value counts as sent (ramp state).

        Args:
            p_kw: Battery setpoint or charger cap [kW]; ``None``: a charger's "no cap" (becomes
                ``max_charge_kw``) or a battery's release (becomes 0 kW).
            soc: The device's SOC [fraction], when known.
        """
        now = self.clock()
        command = self.command
        if command not in self.limits.allowed_commands:
            return self._decide(now, command, p_kw, None, "refused", "not allowed")
        wanted = p_kw
        if wanted is None or not math.isfinite(wanted):
            no_cap = {"charger": self.limits.max_charge_kw, "pv": self._window()[1]}
            wanted = no_cap.get(self.kind, 0.0)
        low, high = self.bounds(soc)
        if low <= wanted <= high:
            decision = self._decide(now, command, p_kw, wanted, "passed")
        else:
            reason = self._why(wanted, soc)
            if self.limits.on_violation == "refuse":
                return self._decide(now, command, p_kw, None, "refused", reason)
            clamped = min(max(wanted, low), high)
            decision = self._decide(now, command, p_kw, clamped, "clamped", reason)
        assert decision.sent_kw is not None
        self.last_kw = decision.sent_kw
        self._last_t = now
        return decision

    def check_command(self, command: str) -> Decision:
        """Judge ``start``, ``stop`` or ``set_availability`` against ``allowed_commands``."""
        now = self.clock()
        if command in self.limits.allowed_commands:
            return self._decide(now, command, None, None, "passed")
        return self._decide(now, command, None, None, "refused", "not allowed")

    def _why(self, wanted: float, soc: float | None) -> str:
        limits = self.limits
        reasons = []
        if self.kind == "pv":
            floor, rating = self._window()
            if wanted < floor:
                reasons.append(
                    f"cap below {floor:g} kW: deeper than max_curtailment_pct "
                    f"{limits.max_curtailment_pct:g}"
                )
            if wanted > rating:
                reasons.append(f"cap above the rating max_discharge_kw {rating:g}")
        elif wanted > limits.max_charge_kw:
            reasons.append(f"above max_charge_kw {limits.max_charge_kw:g}")
        if wanted < -limits.max_discharge_kw:
            reasons.append(f"below -max_discharge_kw {limits.max_discharge_kw:g}")
        if soc is not None and soc <= limits.soc_min and wanted < 0:
            reasons.append(f"discharge at SOC {soc:.3f} <= soc_min {limits.soc_min:g}")
        if soc is not None and soc >= limits.soc_max and wanted > 0:
            reasons.append(f"charge at SOC {soc:.3f} >= soc_max {limits.soc_max:g}")
        ramp = limits.max_ramp_kw_per_s
        if ramp is not None:
            step = ramp * max(0.0, self.clock() - self._last_t)
            if abs(wanted - self.last_kw) > step:
                reasons.append(f"faster than max_ramp_kw_per_s {ramp:g}")
        return "; ".join(reasons)

    def _decide(
        self,
        now: float,
        command: str,
        requested: float | None,
        sent: float | None,
        action: Literal["passed", "clamped", "refused"],
        reason: str = "",
    ) -> Decision:
        decision = Decision(now, self.device_id, command, requested, sent, action, reason)
        self.counts[action] += 1
        if action != "passed":
            self.log.append(decision)
        # A command clamped step after step (a ramp, a refresh) is logged once, not every step.
        if action != "passed" and (action, reason) != self._last_logged:
            LOGGER.warning(
                "%s: %s %s (requested %s kW, sent %s kW): %s",
                self.device_id,
                command,
                action,
                _kw(requested),
                _kw(sent),
                reason,
            )
        self._last_logged = (action, reason)
        return decision


def _kw(value: float | None) -> str:
    """A power for a log line: to the watt, as devices take it (``none`` for no value)."""
    return "none" if value is None else f"{value:.3f}"
