"""Device logic of the charge point twin: statuses, transactions, meter values, limits.

:class:`TwinTransactions` watches the :class:`ChargerDevice` at each tick and turns what it sees
into messages (StatusNotification, transaction start/stop, periodic meter values), and applies
the composite schedule of the installed charging profiles to the device.
"""

from __future__ import annotations

import math
from datetime import datetime
from functools import partial
from typing import Any

from ocpp.exceptions import OCPPError

from qubit_sim.protocols.ocpp_common import sim_to_iso
from qubit_sim.protocols.ocpp_meter import MeterSample, floor_wh
from qubit_sim.twins.charger_device import ChargerDevice, ConnectorStatus
from qubit_sim.twins.ocpp_connection import ChargePointConnection, Offline
from qubit_sim.twins.ocpp_profiles import (
    ChargingProfile,
    Electrical,
    TxContext,
    connector_limit_kw,
    share_station_limit,
    station_limit_kw,
)
from qubit_sim.twins.ocpp_smart import ProfileStore
from qubit_sim.twins.ocpp_tx import StopReason, Transaction

__all__ = ["TwinTransactions"]

_IN_TX = (ConnectorStatus.CHARGING, ConnectorStatus.SUSPENDED_EV, ConnectorStatus.SUSPENDED_EVSE)


class TwinTransactions(ChargePointConnection):
    """Charge point logic over a device (constructed by the twin).

    Args:
        device: The charger.
        start_utc: UTC instant of simulated second 0.
        id_tag: Token of locally started transactions.
        auto_start: Start a transaction when an EV is plugged in.
        **connection: Arguments of :class:`ChargePointConnection`.
    """

    def __init__(
        self,
        device: ChargerDevice,
        *,
        start_utc: datetime,
        id_tag: str,
        auto_start: bool,
        **connection: Any,
    ) -> None:
        super().__init__(**connection)
        self.device = device
        self.start_utc = start_utc
        self.id_tag = id_tag
        self.auto_start = auto_start
        self.connectors = tuple(range(1, device.n_connectors + 1))
        self.profiles = ProfileStore(
            device.n_connectors,
            max_stack_level=self.config["max_stack_level"],
            max_periods=self.config["max_periods"],
            max_profiles=self.config["max_profiles"],
        )
        #: Finished transactions, oldest first.
        self.finished: list[Transaction] = []
        self._tx: dict[int, Transaction] = {}
        self._tx_counter = 0
        self._reported: dict[int, str] = {}
        self._plug_used = dict.fromkeys(self.connectors, False)
        self._pending_remote: dict[int, tuple[str, int | None, ChargingProfile | None, float]] = {}
        self._pending_availability: dict[int, bool] = {}
        self._triggers: list[tuple[str, int | None]] = []
        self._applied: dict[int, float | None] = {}

    # -- connection hooks ------------------------------------------------------------------

    def _on_booted(self, now: float) -> None:
        self._reported.clear()
        self._sync_status(now)

    def _on_lost(self) -> None:
        self._reported.clear()

    # -- observation -----------------------------------------------------------------------

    def electrical(self, connector: int) -> Electrical:
        """Phases and mean phase voltage of ``connector`` (for A <-> kW)."""
        phases = self.device.phases(connector)
        volts = [v for v in self.device.voltage_v(connector)[:phases] if v > 0]
        return Electrical(phases=phases, voltage_v=sum(volts) / len(volts) if volts else 230.0)

    def station_electrical(self) -> Electrical:
        """Electrical data of the station as a whole (three phases, mean voltage)."""
        volts = [self.electrical(c).voltage_v for c in self.connectors]
        return Electrical(phases=3, voltage_v=sum(volts) / len(volts))

    def sample(self, connector: int, now: float, *, context: str = "") -> MeterSample:
        """Snapshot of ``connector``'s meter with the configured measurands.

        The energy register is always included; transaction begin/end samples carry the
        register, power and SOC only.
        """
        device = self.device
        wanted = self.config.measurands()
        boundary = context.startswith("Transaction")
        phases = device.phases(connector)
        soc = device.ev_soc(connector)
        per_phase = not boundary
        return MeterSample(
            timestamp=sim_to_iso(self.start_utc, now),
            energy_wh=device.e_register_wh(connector),
            power_w=device.p_kw(connector) * 1000.0
            if boundary or "Power.Active.Import" in wanted
            else None,
            current_a=tuple(device.current_a(connector)[:phases])
            if per_phase and "Current.Import" in wanted
            else (),
            voltage_v=tuple(device.voltage_v(connector)[:phases])
            if per_phase and "Voltage" in wanted
            else (),
            soc=soc if boundary or "SoC" in wanted else None,
        )

    def tx_context(self, connector: int) -> TxContext | None:
        """The running transaction of ``connector`` as the profiles see it."""
        tx = self._tx.get(connector)
        if tx is None:
            return None
        return TxContext(tx.ocpp_id or f"local-{tx.local_id}", tx.start_s)

    def apply_limits(self, now: float) -> None:
        """Compute every connector's composite limit at ``now`` and apply it to the device.

        A station limit is shared by water-filling among connectors with a transaction, each
        wanting its own limit (or its rating).
        """
        profiles = self.profiles.profiles
        limits: dict[int, float | None] = {
            c: connector_limit_kw(
                profiles, c, now, tx=self.tx_context(c), electrical=self.electrical(c)
            )
            for c in self.connectors
        }
        station = station_limit_kw(profiles, now, electrical=self.station_electrical())
        if station is not None:
            demands: dict[int, float] = {}
            for c in self._tx:
                rated = self.device.max_power_kw(c)
                own = limits[c]
                demands[c] = rated if own is None else min(rated, own)
            shares = share_station_limit(demands, station)
            for c in self.connectors:
                own = limits[c]
                limits[c] = shares.get(c, station if own is None else min(own, station))
        for c, limit in limits.items():
            if c not in self._applied or self._applied[c] != limit:
                self.device.set_limit_kw(c, limit)
                self._applied[c] = limit

    def _sync_status(self, now: float) -> None:
        if not (self.online and self.booted):
            return
        stamp = sim_to_iso(self.start_utc, now)
        statuses = {c: self.device.status(c) for c in self.connectors}
        if self.version == "1.6":
            idle = all(s is ConnectorStatus.UNAVAILABLE for s in statuses.values())
            station = ConnectorStatus.UNAVAILABLE if idle else ConnectorStatus.AVAILABLE
            statuses = {0: station, **statuses}
        for c, status in statuses.items():
            value = self.codec.status_value(status)
            if self._reported.get(c) != value:
                self._reported[c] = value
                self._enqueue(partial(self.codec.status, c, status, stamp), tx_related=False)

    # -- transactions ----------------------------------------------------------------------

    def _sync_transactions(self, now: float) -> None:
        for c in self.connectors:
            connected = self.device.ev_connected(c)
            if not connected:
                self._plug_used[c] = False
            tx = self._tx.get(c)
            if tx is not None:
                status = self.device.status(c)
                if not connected:
                    self.end_transaction(c, StopReason.EV_DISCONNECTED, now)
                elif status not in _IN_TX and status is not ConnectorStatus.FAULTED:
                    self.end_transaction(c, StopReason.LOCAL, now)
                else:
                    state = self.codec.charging_state(status)
                    if state != tx.charging_state:
                        tx.charging_state = state
                        stamp = sim_to_iso(self.start_utc, now)
                        self._enqueue(
                            partial(self.codec.tx_state, tx, state, stamp), tx_related=True
                        )
            pending = self._pending_remote.get(c)
            if pending is not None and now > pending[3]:
                del self._pending_remote[c]

    async def _start_transactions(self, now: float) -> None:
        for c in self.connectors:
            if c in self._tx or not self.device.ev_connected(c):
                continue
            if self.device.status(c) not in (ConnectorStatus.PREPARING, ConnectorStatus.FINISHING):
                continue
            remote = self._pending_remote.pop(c, None)
            if remote is not None:
                id_tag, remote_id, profile, _ = remote
                if self.config["authorize_remote_start"] and not await self._authorize(id_tag):
                    continue
                self.begin_transaction(c, id_tag, now, remote_start_id=remote_id, profile=profile)
                continue
            if not self.auto_start or self._plug_used[c]:
                continue
            self._plug_used[c] = True
            if await self._authorize(self.id_tag):
                self.begin_transaction(c, self.id_tag, now)

    async def _authorize(self, id_tag: str) -> bool:
        if not (self.online and self.booted):
            return bool(self.config["local_authorize_offline"])
        try:
            result = await self._call(self.codec.authorize(id_tag))
        except Offline:
            return bool(self.config["local_authorize_offline"])
        except OCPPError as exc:
            self.errors.append(f"Authorize: {exc}")
            return False
        return self.codec.authorized(result)

    def begin_transaction(
        self,
        connector: int,
        id_tag: str,
        now: float,
        *,
        remote_start_id: int | None = None,
        profile: ChargingProfile | None = None,
    ) -> Transaction | None:
        """Start a transaction on the device and queue its start message."""
        if not self.device.start_transaction(connector):
            return None
        self._tx_counter += 1
        self._plug_used[connector] = True
        tx = Transaction(
            local_id=self._tx_counter,
            connector=connector,
            id_tag=id_tag,
            start_s=now,
            meter_start_wh=floor_wh(self.device.e_register_wh(connector)),
            remote_start_id=remote_start_id,
            started_offline=not self.online,
        )
        if self.version == "2.0.1":
            tx.ocpp_id = f"{self.identity[:24]}-{self._tx_counter}"
        tx.charging_state = self.codec.charging_state(self.device.status(connector))
        interval = self.config["meter_interval_s"]
        tx.next_sample_s = now + interval if interval > 0 else math.inf
        self._tx[connector] = tx
        message = self.codec.tx_started(
            tx, self.sample(connector, now, context="Transaction.Begin")
        )
        self._enqueue(lambda: message, tx_related=True, on_result=partial(self._started, tx))
        if profile is not None:
            context = self.tx_context(connector)
            assert context is not None
            self.profiles.install(profile, {connector: context})
        self.apply_limits(now)
        return tx

    def _started(self, tx: Transaction, result: Any) -> None:
        if not self.codec.tx_start_result(tx, result) and tx.active:
            self.end_transaction(tx.connector, StopReason.DEAUTHORIZED, self.now())

    def end_transaction(self, connector: int, reason: StopReason, now: float) -> None:
        """Stop ``connector``'s transaction on the device and queue its stop message."""
        tx = self._tx.pop(connector, None)
        if tx is None:
            return
        self.device.stop_transaction(connector)
        tx.stop_s = now
        tx.stop_reason = reason
        tx.meter_stop_wh = floor_wh(self.device.e_register_wh(connector))
        sample = self.sample(connector, now, context="Transaction.End")
        self._enqueue(partial(self.codec.tx_ended, tx, sample), tx_related=True)
        self.finished.append(tx)
        self.profiles.end_transaction(connector)
        pending = self._pending_availability.pop(connector, None)
        if pending is not None:
            self.device.set_available(connector, pending)
        self.apply_limits(now)

    def _sample_meters(self, now: float) -> None:
        interval = self.config["meter_interval_s"]
        for tx in list(self._tx.values()):
            if interval <= 0 or now < tx.next_sample_s:
                continue
            while tx.next_sample_s <= now:
                tx.next_sample_s += interval
            sample = self.sample(tx.connector, now, context="Sample.Periodic")
            self._enqueue(
                partial(self.codec.tx_sample, tx, sample, "Sample.Periodic"), tx_related=True
            )

    def _run_triggers(self, now: float) -> None:
        triggers, self._triggers = self._triggers, []
        for message, connector in triggers:
            targets = self.connectors if connector in (None, 0) else (connector,)
            if message == "Heartbeat":
                self._enqueue(self.codec.heartbeat, tx_related=False)
            elif message == "BootNotification":
                self._enqueue(partial(self.codec.boot, "Triggered"), tx_related=False)
            elif message == "StatusNotification":
                for c in (0, *targets):
                    self._reported.pop(c, None)
                self._sync_status(now)
            elif message == "TransactionEvent":
                for c in targets:
                    tx = self._tx.get(c)
                    if tx is not None:
                        sample = self.sample(c, now, context="Trigger")
                        self._enqueue(
                            partial(self.codec.tx_sample, tx, sample, "Trigger"), tx_related=True
                        )
            elif message == "MeterValues":
                for c in targets:
                    sample = self.sample(c, now, context="Trigger")
                    self._enqueue(
                        partial(self.codec.meter_values, c, sample, self._tx.get(c)),
                        tx_related=False,
                    )
