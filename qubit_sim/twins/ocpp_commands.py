"""What the charge point twin does when the CSMS asks it something (version-neutral).

The per-version sessions (:mod:`ocpp_cp16`, :mod:`ocpp_cp201`) decode a request, call one of these
``cmd_*`` methods and encode the answer. The methods act on the device at once and only queue
messages; nothing here waits for the network (a handler must never await a call of its own).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from qubit_sim.protocols.ocpp_common import quantize_limit, sim_to_iso
from qubit_sim.twins.charger_device import ConnectorStatus
from qubit_sim.twins.ocpp_profiles import (
    ChargingProfile,
    ProfileError,
    ProfilePurpose,
    RateUnit,
    composite_schedule,
    from_kw,
)
from qubit_sim.twins.ocpp_transactions import TwinTransactions
from qubit_sim.twins.ocpp_tx import StopReason

__all__ = ["MAX_COMPOSITE_S", "CompositeResult", "TwinCommands"]

LOGGER = logging.getLogger("qubit_sim.twins.ocpp")

_BLOCKED = (ConnectorStatus.UNAVAILABLE, ConnectorStatus.FAULTED)

#: Longest composite schedule the twin computes [s]; longer requests are rejected.
MAX_COMPOSITE_S = 31 * 86400

#: ``(scheduleStart ISO, unit, [(startPeriod_s, limit)])`` of a composite schedule.
CompositeResult = tuple[str, RateUnit, list[tuple[int, float]]]


class TwinCommands(TwinTransactions):
    """CSMS-initiated operations of :class:`~qubit_sim.twins.ocpp_cp.OcppChargePointTwin`."""

    _pending_reset: tuple[StopReason, bool] | None = None

    # -- smart charging --------------------------------------------------------------------

    def cmd_set_profile(self, profile: ChargingProfile) -> str:
        """Install a profile and apply it; ``"Accepted"`` or ``"Rejected"``."""
        running = {c: ctx for c in self._tx if (ctx := self.tx_context(c)) is not None}
        accepted, reason = self.profiles.install(profile, running)
        if not accepted:
            LOGGER.info("%s: profile %s rejected: %s", self.identity, profile.profile_id, reason)
            return "Rejected"
        self.apply_limits(self.now())
        self._wake.set()
        return "Accepted"

    def cmd_clear_profiles(
        self,
        *,
        profile_id: int | None = None,
        connector: int | None = None,
        purpose: ProfilePurpose | None = None,
        stack_level: int | None = None,
    ) -> bool:
        """Remove matching profiles; whether any was removed."""
        removed = self.profiles.clear(
            profile_id=profile_id, connector=connector, purpose=purpose, stack_level=stack_level
        )
        self.apply_limits(self.now())
        self._wake.set()
        return removed > 0

    def cmd_composite(
        self, connector: int, duration_s: int, unit: RateUnit | None
    ) -> CompositeResult | None:
        """Composite schedule of ``connector`` from now; ``None`` for a bad connector or a
        duration outside (0, MAX_COMPOSITE_S]."""
        if not 0 <= connector <= len(self.connectors) or not 0 < duration_s <= MAX_COMPOSITE_S:
            return None
        now = self.now()
        unit = unit or RateUnit.W
        station = self.station_electrical()
        if connector == 0:
            electrical = station
            default_kw = sum(self.device.max_power_kw(c) for c in self.connectors)
        else:
            electrical = self.electrical(connector)
            default_kw = self.device.max_power_kw(connector)
        steps = composite_schedule(
            self.profiles.profiles,
            connector,
            now,
            duration_s,
            tx=self.tx_context(connector) if connector else None,
            electrical=electrical,
            default_kw=default_kw,
            station_electrical=station,
        )
        periods: list[tuple[int, float]] = []
        for offset, p_kw in steps:
            limit = quantize_limit(from_kw(p_kw, unit, electrical))
            if not periods or periods[-1][1] != limit:
                periods.append((offset, limit))
        return sim_to_iso(self.start_utc, now), unit, periods

    # -- transactions ----------------------------------------------------------------------

    def _pick_connector(self) -> int | None:
        free = [
            c
            for c in self.connectors
            if c not in self._tx and self.device.status(c) not in _BLOCKED
        ]
        plugged = [c for c in free if self.device.ev_connected(c)]
        candidates = plugged or free
        return candidates[0] if candidates else None

    def cmd_remote_start(
        self,
        connector: int | None,
        id_tag: str,
        *,
        remote_start_id: int | None = None,
        profile_for: Callable[[int], ChargingProfile] | None = None,
    ) -> bool:
        """Start a transaction now (EV plugged in) or when an EV arrives in time.

        Args:
            connector: Connector, or ``None``/0 to let the charge point choose.
            id_tag: Token of the transaction.
            remote_start_id: 2.0.1 remoteStartId.
            profile_for: Builds the TxProfile sent along, once the connector is known.
        """
        if not connector:
            connector = self._pick_connector()
        if connector not in self.connectors or connector in self._tx:
            return False
        if self.device.status(connector) in _BLOCKED:
            return False
        profile = None
        if profile_for is not None:
            try:
                profile = profile_for(connector)
            except ProfileError as exc:
                LOGGER.info("%s: remote start profile rejected: %s", self.identity, exc)
                return False
            if profile.purpose is not ProfilePurpose.TX:
                return False
        now = self.now()
        if self.device.ev_connected(connector) and not self.config["authorize_remote_start"]:
            tx = self.begin_transaction(
                connector, id_tag, now, remote_start_id=remote_start_id, profile=profile
            )
            self._wake.set()
            return tx is not None
        deadline = now + self.config["connection_timeout_s"]
        self._pending_remote[connector] = (id_tag, remote_start_id, profile, deadline)
        self._wake.set()
        return True

    def cmd_unlock(self, connector: int, *, end_transaction: bool) -> str:
        """Unlock ``connector``: ``"Unlocked"``, ``"Ongoing"`` (a transaction runs and is kept)
        or ``"Unknown"`` (no such connector).

        The twin has no lock actuator, so unlocking always succeeds; the EV stays plugged in
        until it leaves. With ``end_transaction`` (OCPP 1.6 §5.18) a running transaction ends
        first, with reason ``UnlockCommand``; without (2.0.1 F05) it is kept.
        """
        if connector not in self.connectors:
            return "Unknown"
        if connector in self._tx:
            if not end_transaction:
                return "Ongoing"
            self.end_transaction(connector, StopReason.UNLOCK_COMMAND, self.now())
            self._wake.set()
        return "Unlocked"

    def queue_messages(self, builders: Sequence[Callable[[], Any]]) -> None:
        """Send the messages ``builders`` build, in order, from the next tick on (each is built
        when it first goes out; one built as ``None`` is skipped).

        They are kept like transaction messages (queued until sent): a CSMS may ask for a
        report before the twin has processed the boot answer, when state messages are dropped.
        """
        for build in builders:
            self._enqueue(build, tx_related=True)
        self._wake.set()

    def cmd_remote_stop(self, transaction_id: str) -> bool:
        """Stop the transaction with wire id ``transaction_id``."""
        for c, tx in list(self._tx.items()):
            if tx.ocpp_id == str(transaction_id):
                self.end_transaction(c, StopReason.REMOTE, self.now())
                self._wake.set()
                return True
        return False

    # -- availability, reset, triggers -----------------------------------------------------

    def cmd_availability(self, connector: int, operative: bool) -> str:
        """Change availability; ``Accepted``, ``Scheduled`` (after the transaction) or
        ``Rejected``."""
        if not 0 <= connector <= len(self.connectors):
            return "Rejected"
        targets = self.connectors if connector == 0 else (connector,)
        scheduled = False
        for c in targets:
            if c in self._tx and not operative:
                self._pending_availability[c] = False
                scheduled = True
                continue
            self._pending_availability.pop(c, None)
            self.device.set_available(c, operative)
            if not operative:
                self._pending_remote.pop(c, None)
        self._wake.set()
        return "Scheduled" if scheduled else "Accepted"

    def cmd_reset(self, reason: StopReason, *, on_idle: bool = False) -> str:
        """Reboot: transactions end with ``reason``, then the twin reconnects and boots."""
        if on_idle and self._tx:
            self._pending_reset = (reason, True)
            return "Scheduled"
        self._pending_reset = (reason, False)
        self._wake.set()
        return "Accepted"

    def cmd_trigger(self, message: str, connector: int | None) -> str:
        """Queue a triggered message for the next tick."""
        supported = {"BootNotification", "Heartbeat", "StatusNotification", "MeterValues"}
        if self.version == "2.0.1":
            supported.add("TransactionEvent")
        if message not in supported:
            return "NotImplemented"
        if connector is not None and not 0 <= connector <= len(self.connectors):
            return "Rejected"
        self._triggers.append((message, connector))
        self._wake.set()
        return "Accepted"
