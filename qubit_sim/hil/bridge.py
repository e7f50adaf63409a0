"""The link the simulation writes through to a physical device, with its safety envelope.

A :class:`DeviceBridge` offers the link interface of a twin (``set_power_limit``, ``start``,
``stop``, ``set_availability``, ``read``), so the stack cannot tell the device from a twin.
Every command passes the :class:`~qubit_sim.hil.envelope.Envelope` first; only what it lets
through is written, and every write expires by itself on the device (a revert timer or a
profile's validity). The bridge re-sends the value it holds every ``refresh_s`` wall seconds,
which renews the expiry and lets a ramp-clamped command climb towards what was asked.

After :meth:`DeviceBridge.lock` (watchdog expiry, a crash, the end of the run) nothing but the
safe state is written any more. In a dry run nothing is written at all; commands are judged
and logged only.

:class:`TeeLink` drives a twin's link and a bridge with the same commands (shadow mode).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from qubit_sim.errors import ProtocolError
from qubit_sim.hil.devices import DeviceReading, PhysicalDevice
from qubit_sim.hil.envelope import Decision, Envelope
from qubit_sim.protocols.ocpp_csms_state import CommandResult

__all__ = ["CommandRecord", "DeviceBridge", "TeeLink"]

LOGGER = logging.getLogger("qubit_sim.hil.bridge")


@dataclass(frozen=True)
class CommandRecord:
    """A command that reached the device.

    Attributes:
        wall_s: Monotonic wall time of the write [s].
        requested_kw: What the stack asked for [kW] (``None``: no cap / release).
        sent_kw: What was written [kW].
        action: The envelope's verdict (``passed`` or ``clamped``), or ``safe``.
    """

    wall_s: float
    requested_kw: float | None
    sent_kw: float
    action: str


class DeviceBridge:
    """A physical device behind its envelope.

    Args:
        device: The device.
        envelope: Its safety envelope.
        refresh_s: Longest wall time between writes of the held value [s]; keep it well below
            the device's expiry (revert timeout / profile duration).
        dry_run: Judge and log commands, never write.
        clock: Monotonic wall clock [s].
    """

    def __init__(
        self,
        device: PhysicalDevice,
        envelope: Envelope,
        *,
        refresh_s: float,
        dry_run: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.device = device
        self.spec = device.spec
        self.envelope = envelope
        self.refresh_s = float(refresh_s)
        self.dry_run = dry_run
        self.clock = clock
        self.locked = False
        self.wanted_kw: float | None = None
        self.sent_kw: float | None = None
        self.reading: DeviceReading | None = None
        self.commands: list[CommandRecord] = []
        self.errors: list[str] = []
        self._last_write = -float("inf")
        self._climbing = False
        self._lock = asyncio.Lock()

    @property
    def id(self) -> str:
        """Bench device id."""
        return self.spec.id

    # -- the link interface --------------------------------------------------------------------

    async def set_power_limit(self, p_kw: float | None) -> CommandResult:
        """Battery setpoint / charger cap [kW] through the envelope; returns what happened."""
        self.wanted_kw = p_kw
        decision = await self._apply()
        if decision is None:
            return CommandResult(False, "Locked", "the bench is in its safe state")
        status = {"passed": "Accepted", "clamped": "Clamped", "refused": "Refused"}
        accepted = decision.action != "refused"
        return CommandResult(accepted, status[decision.action], decision.reason)

    async def start(self) -> CommandResult:
        """Start a charging session (only when allowed by the bench): OCPP RemoteStart-
        Transaction (1.6) / RequestStartTransaction (2.0.1); the charger's answer is returned."""
        return await self._start_stop("start")

    async def stop(self) -> CommandResult:
        """Stop the charging session (only when allowed by the bench): OCPP RemoteStop-
        Transaction (1.6) / RequestStopTransaction (2.0.1)."""
        return await self._start_stop("stop")

    async def set_availability(self, available: bool) -> CommandResult:
        """Availability (only when allowed by the bench)."""
        result = await self._command("set_availability")
        if result.accepted and not self.dry_run:
            await self.device.set_availability(available)
        return result

    async def read(self) -> DeviceReading:
        """Measure the device now; the reading is kept in :attr:`reading`."""
        self.reading = await self.device.read()
        return self.reading

    # -- bridge duties -------------------------------------------------------------------------

    async def refresh(self) -> None:
        """Re-send the held value when ``refresh_s`` has passed (renews its expiry), and at once
        while a ramp still holds it below what was asked."""
        if self.wanted_kw is None and self.sent_kw is None:
            return
        if self._climbing or self.clock() - self._last_write >= self.refresh_s:
            await self._apply()

    def lock(self) -> None:
        """Write nothing but the safe state from now on."""
        self.locked = True

    async def safe_state(self) -> None:
        """Put the device in its safe state (the bench's ``safe_state``) and lock the bridge."""
        self.lock()
        if self.dry_run:
            return
        safe = self.spec.safe_state
        safe_kw = self.spec.safe_kw
        async with self._lock:
            await self.device.write_power(safe_kw)
            self.sent_kw = safe_kw
            self.commands.append(CommandRecord(self.clock(), None, safe_kw, "safe"))
        if safe.available is not None:
            await self.device.set_availability(safe.available)
        LOGGER.warning("%s: safe state (%g kW) written", self.id, safe_kw)

    async def _command(self, command: str) -> CommandResult:
        decision = self.envelope.check_command(command)
        if self.locked:
            return CommandResult(False, "Locked", "the bench is in its safe state")
        if decision.action == "refused":
            return CommandResult(False, "Refused", f"{command} is not in allowed_commands")
        return CommandResult(True, "Accepted")

    async def _start_stop(self, command: str) -> CommandResult:
        verdict = await self._command(command)
        if not verdict.accepted or self.dry_run:
            return verdict
        operation = getattr(self.device, command, None)
        if operation is None:
            return CommandResult(False, "NotSupported", f"{command} on a {self.spec.kind}")
        try:
            result: CommandResult = await operation()
        except ProtocolError as exc:
            self.errors.append(str(exc))
            return CommandResult(False, "Failed", str(exc))
        if not result.accepted:
            LOGGER.warning("%s: %s answered %s %s", self.id, command, result.status, result.detail)
        return result

    async def _apply(self) -> Decision | None:
        async with self._lock:
            if self.locked:
                return None
            soc = None
            if self.spec.kind == "battery" and self.reading is not None:
                soc = self.reading.soc
            decision = self.envelope.check_power(self.wanted_kw, soc)
            self._climbing = decision.action == "clamped" and "ramp" in decision.reason
            if decision.sent_kw is None:
                return decision
            self._last_write = self.clock()
            if self.dry_run:
                return decision
            try:
                await self.device.write_power(decision.sent_kw)
            except ProtocolError as exc:
                # The previous write expires on the device by itself; the next refresh retries.
                self.errors.append(str(exc))
                LOGGER.error("%s: write failed: %s", self.id, exc)
                return decision
            if decision.sent_kw != self.sent_kw or decision.action != "passed":
                self.commands.append(
                    CommandRecord(
                        self._last_write, decision.requested_kw, decision.sent_kw, decision.action
                    )
                )
            self.sent_kw = decision.sent_kw
            return decision


class TeeLink:
    """Sends every command to a twin's link and to a bridge (shadow mode); reads the twin.

    Args:
        twin: The twin's own link (:class:`~qubit_sim.protocols.csms.OcppLink` or
            :class:`~qubit_sim.protocols.modbus_link.ModbusLink`).
        bridge: The physical device's bridge.
    """

    def __init__(self, twin: Any, bridge: DeviceBridge) -> None:
        self.twin = twin
        self.bridge = bridge

    async def set_power_limit(self, p_kw: float | None) -> Any:
        """Both get the command; the twin's answer is returned."""
        result, _ = await asyncio.gather(
            self.twin.set_power_limit(p_kw), self.bridge.set_power_limit(p_kw)
        )
        return result

    async def start(self) -> Any:
        """Both get it (the device only when the bench allows it); the twin's answer."""
        result, _ = await asyncio.gather(self.twin.start(), self.bridge.start())
        return result

    async def stop(self) -> Any:
        """Both get it (the device only when the bench allows it); the twin's answer."""
        result, _ = await asyncio.gather(self.twin.stop(), self.bridge.stop())
        return result

    async def set_availability(self, available: bool) -> Any:
        """Both get it."""
        result, _ = await asyncio.gather(
            self.twin.set_availability(available), self.bridge.set_availability(available)
        )
        return result

    async def read(self) -> Any:
        """The twin's reading."""
        return await self.twin.read()
