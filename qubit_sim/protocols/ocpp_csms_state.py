"""What the CSMS knows: charge points, connectors, transactions and their meter values.

Pure bookkeeping without I/O, shared by the 1.6 and 2.0.1 sessions. Transaction messages are
applied idempotently: a charge point re-sends a message whose answer it lost, and the repeat
must neither open a second transaction nor count energy twice.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from qubit_sim.protocols.ocpp_common import parse_iso
from qubit_sim.protocols.ocpp_device_report import DeviceReport
from qubit_sim.protocols.ocpp_meter import MeterSample

__all__ = [
    "ChargePointRecord",
    "ChargerReading",
    "CommandResult",
    "CompositeSchedule",
    "ConnectorRecord",
    "CsmsState",
    "TransactionRecord",
]

_IN_TX_201 = {
    "Charging": "Charging",
    "SuspendedEV": "SuspendedEV",
    "SuspendedEVSE": "SuspendedEVSE",
    "EVConnected": "SuspendedEV",
    "Idle": "Preparing",
}
_CHARGING = ("Charging", "SuspendedEV", "SuspendedEVSE")


@dataclass(frozen=True)
class CommandResult:
    """Outcome of a CSMS request.

    Attributes:
        accepted: Whether the charge point accepted (``Scheduled`` counts as accepted).
        status: Status word of the answer (``Accepted``, ``Rejected``, ``Scheduled``, ...).
        detail: Extra information (e.g. the transaction concerned).
    """

    accepted: bool
    status: str
    detail: str = ""


@dataclass(frozen=True)
class CompositeSchedule:
    """A composite schedule reported by a charge point.

    Attributes:
        connector: Connector (EVSE) it applies to; 0 = the station.
        start: ISO 8601 start.
        duration_s: Length [s].
        unit: ``"A"`` or ``"W"``.
        periods: ``(start_offset_s, limit)`` steps, limit in ``unit``.
    """

    connector: int
    start: str
    duration_s: int
    unit: str
    periods: tuple[tuple[int, float], ...]


@dataclass(frozen=True)
class ChargerReading:
    """Latest known state of one connector, as the CSMS sees it.

    Attributes:
        cp_id: Charge point identity.
        connector: Connector (EVSE) number.
        online: Whether the charge point is connected now.
        status: OCPP 1.6 connector status name (2.0.1 states are mapped onto it).
        p_kw: Active power [kW] from the last meter value; 0 outside a charging state.
        e_register_kwh: Energy register [kWh] from the last meter value.
        ev_soc: EV state of charge [fraction 0..1], when reported.
        current_a: Current per phase [A].
        voltage_v: Voltage per phase [V].
        transaction_id: Running transaction, if any.
        timestamp: Time of the last meter value.
        limit_kw: Power limit last accepted through :meth:`set_power_limit` [kW].
    """

    cp_id: str
    connector: int
    online: bool
    status: str | None
    p_kw: float
    e_register_kwh: float | None
    ev_soc: float | None
    current_a: tuple[float, ...]
    voltage_v: tuple[float, ...]
    transaction_id: str | None
    timestamp: str | None
    limit_kw: float | None


@dataclass
class TransactionRecord:
    """One transaction at the CSMS.

    Attributes:
        cp_id: Charge point identity.
        transaction_id: Transaction id (1.6 ids are integers, kept as text).
        connector: Connector (EVSE).
        id_tag: Token.
        start_time: ISO start.
        meter_start_wh: Register at the start [Wh].
        stop_time: ISO end, once ended.
        meter_stop_wh: Register at the end [Wh].
        stop_reason: Reason given by the charge point.
        samples: Meter values by timestamp, in arrival order.
        seq_nos: 2.0.1 sequence numbers seen.
        offline_messages: 2.0.1 events flagged as generated offline.
    """

    cp_id: str
    transaction_id: str
    connector: int
    id_tag: str
    start_time: str
    meter_start_wh: float | None
    stop_time: str | None = None
    meter_stop_wh: float | None = None
    stop_reason: str | None = None
    samples: dict[str, MeterSample] = field(default_factory=dict)
    seq_nos: set[int] = field(default_factory=set)
    offline_messages: int = 0

    @property
    def active(self) -> bool:
        """Whether the transaction is still running."""
        return self.stop_time is None

    @property
    def energy_wh(self) -> float | None:
        """Energy of the transaction so far [Wh] (register difference)."""
        if self.meter_start_wh is None:
            return None
        if self.meter_stop_wh is not None:
            return self.meter_stop_wh - self.meter_start_wh
        registers = [s.energy_wh for s in self.samples.values() if s.energy_wh is not None]
        return (max(registers) - self.meter_start_wh) if registers else 0.0

    def add_sample(self, sample: MeterSample) -> None:
        """Record a meter value (a repeat with the same timestamp replaces the first)."""
        self.samples[sample.timestamp] = sample


@dataclass
class ConnectorRecord:
    """What the CSMS knows about one connector."""

    status: str | None = None
    error_code: str | None = None
    last_sample: MeterSample | None = None
    transaction_id: str | None = None
    limit_kw: float | None = None
    after_transaction: bool = False
    connector_status: str | None = None


@dataclass
class ChargePointRecord:
    """What the CSMS knows about one charge point."""

    cp_id: str
    version: str
    online: bool = False
    vendor: str | None = None
    model: str | None = None
    boots: int = 0
    connects: int = 0
    last_heartbeat: str | None = None
    connectors: dict[int, ConnectorRecord] = field(default_factory=dict)
    #: 2.0.1 device model reports by requestId (GetBaseReport -> NotifyReport).
    reports: dict[int, DeviceReport] = field(default_factory=dict)


def _later_or_same(new: str, old: str) -> bool:
    try:
        return parse_iso(new) >= parse_iso(old)
    except ValueError:
        return True


class CsmsState:
    """All charge points and transactions seen by one CSMS.

    Args:
        journal_size: How many transaction messages :attr:`journal` keeps.
    """

    def __init__(self, journal_size: int = 100_000) -> None:
        #: The latest transaction messages in arrival order, repeats included:
        #: ``(cp_id, action, transaction id, timestamp)``.
        self.journal: deque[tuple[str, str, str | None, str]] = deque(maxlen=journal_size)
        self.charge_points: dict[str, ChargePointRecord] = {}
        self.transactions: dict[tuple[str, str], TransactionRecord] = {}
        self._next_tx_id = 1
        self._start_keys: dict[tuple[str, int, str, int, str], str] = {}

    def charge_point(self, cp_id: str, version: str | None = None) -> ChargePointRecord:
        """Record of ``cp_id`` (created on first sight)."""
        record = self.charge_points.get(cp_id)
        if record is None:
            record = ChargePointRecord(cp_id=cp_id, version=version or "?")
            self.charge_points[cp_id] = record
        elif version is not None:
            record.version = version
        return record

    def connector(self, cp_id: str, connector: int) -> ConnectorRecord:
        """Record of one connector (created on first sight)."""
        return self.charge_point(cp_id).connectors.setdefault(connector, ConnectorRecord())

    # -- messages from charge points -------------------------------------------------------

    def boot(self, cp_id: str, vendor: str, model: str) -> None:
        """A BootNotification."""
        record = self.charge_point(cp_id)
        record.vendor, record.model = vendor, model
        record.boots += 1

    def notify_report(
        self,
        cp_id: str,
        request_id: int,
        seq_no: int,
        generated_at: str,
        tbc: bool,
        report_data: list[dict[str, Any]] | None,
    ) -> DeviceReport:
        """A 2.0.1 NotifyReport; returns the report it belongs to."""
        reports = self.charge_point(cp_id).reports
        report = reports.setdefault(request_id, DeviceReport(request_id))
        report.add(seq_no, generated_at, tbc, report_data)
        return report

    def status_16(self, cp_id: str, connector: int, status: str, error_code: str) -> None:
        """A 1.6 StatusNotification."""
        conn = self.connector(cp_id, connector)
        conn.status, conn.error_code = status, error_code

    def status_201(self, cp_id: str, evse_id: int, connector_status: str) -> None:
        """A 2.0.1 StatusNotification; the 1.6-style status is derived."""
        conn = self.connector(cp_id, evse_id)
        conn.connector_status = connector_status
        if connector_status == "Available":
            conn.after_transaction = False
        if connector_status != "Occupied":
            conn.status = connector_status
        elif conn.transaction_id is None:
            conn.status = "Finishing" if conn.after_transaction else "Preparing"

    def start_16(
        self, cp_id: str, connector: int, id_tag: str, meter_start: int, timestamp: str
    ) -> str:
        """A 1.6 StartTransaction; a repeat gets the id given the first time."""
        key = (cp_id, connector, id_tag, int(meter_start), timestamp)
        existing = self._start_keys.get(key)
        self.journal.append((cp_id, "StartTransaction", existing, timestamp))
        if existing is not None:
            return existing
        tx_id = str(self._next_tx_id)
        self._next_tx_id += 1
        self._start_keys[key] = tx_id
        self._open(cp_id, tx_id, connector, id_tag, timestamp, float(meter_start))
        return tx_id

    def _open(
        self,
        cp_id: str,
        tx_id: str,
        connector: int,
        id_tag: str,
        timestamp: str,
        meter_start_wh: float | None,
    ) -> TransactionRecord:
        record = TransactionRecord(cp_id, tx_id, connector, id_tag, timestamp, meter_start_wh)
        self.transactions[(cp_id, tx_id)] = record
        conn = self.connector(cp_id, connector)
        conn.transaction_id = tx_id
        return record

    def _close(
        self,
        record: TransactionRecord,
        timestamp: str,
        meter_stop_wh: float | None,
        reason: str | None,
    ) -> None:
        record.stop_time = timestamp
        record.meter_stop_wh = meter_stop_wh
        record.stop_reason = reason
        conn = self.connector(record.cp_id, record.connector)
        if conn.transaction_id == record.transaction_id:
            conn.transaction_id = None
            conn.after_transaction = True

    def stop_16(
        self,
        cp_id: str,
        tx_id: str,
        meter_stop: int,
        timestamp: str,
        reason: str | None,
        samples: list[MeterSample],
    ) -> bool:
        """A 1.6 StopTransaction; whether the transaction was known. Repeats change nothing."""
        self.journal.append((cp_id, "StopTransaction", tx_id, timestamp))
        record = self.transactions.get((cp_id, tx_id))
        if record is None:
            return False
        self.meter_values(cp_id, record.connector, tx_id, samples)
        if record.active:
            self._close(record, timestamp, float(meter_stop), reason)
        return True

    def meter_values(
        self, cp_id: str, connector: int, tx_id: str | None, samples: list[MeterSample]
    ) -> None:
        """MeterValues (1.6 or 2.0.1), or the meter values inside a 2.0.1 TransactionEvent."""
        record = None if tx_id is None else self.transactions.get((cp_id, tx_id))
        conn = self.connector(cp_id, connector)
        for sample in samples:
            if record is not None:
                record.add_sample(sample)
            last = conn.last_sample
            if last is None or _later_or_same(sample.timestamp, last.timestamp):
                conn.last_sample = sample

    def transaction_event(
        self,
        cp_id: str,
        *,
        event_type: str,
        seq_no: int,
        tx_id: str,
        evse_id: int | None,
        id_token: str | None,
        timestamp: str,
        charging_state: str | None,
        stopped_reason: str | None,
        offline: bool,
        samples: list[MeterSample],
    ) -> TransactionRecord:
        """A 2.0.1 TransactionEvent; a repeated ``seq_no`` changes nothing."""
        self.journal.append((cp_id, f"TransactionEvent.{event_type}", tx_id, timestamp))
        record = self.transactions.get((cp_id, tx_id))
        if record is None:
            connector = evse_id if evse_id is not None else 0
            begin = [s.energy_wh for s in samples if s.energy_wh is not None]
            record = self._open(
                cp_id, tx_id, connector, id_token or "", timestamp, begin[0] if begin else None
            )
        if seq_no in record.seq_nos:
            return record
        record.seq_nos.add(seq_no)
        record.offline_messages += int(offline)
        if record.meter_start_wh is None:
            begin = [s.energy_wh for s in samples if s.energy_wh is not None]
            record.meter_start_wh = begin[0] if begin else None
        self.meter_values(cp_id, record.connector, tx_id, samples)
        conn = self.connector(cp_id, record.connector)
        if event_type == "Ended":
            if record.active:
                ends = [s.energy_wh for s in samples if s.energy_wh is not None]
                end_wh = (
                    ends[-1]
                    if ends
                    else (
                        None
                        if record.energy_wh is None or record.meter_start_wh is None
                        else record.meter_start_wh + record.energy_wh
                    )
                )
                self._close(record, timestamp, end_wh, stopped_reason)
                if conn.connector_status in (None, "Occupied"):
                    conn.status = "Finishing"
        elif charging_state is not None and record.active:
            conn.status = _IN_TX_201.get(charging_state, conn.status)
        return record

    # -- queries ---------------------------------------------------------------------------

    def active_transaction(self, cp_id: str, connector: int) -> TransactionRecord | None:
        """Running transaction on a connector."""
        conn = self.charge_point(cp_id).connectors.get(connector)
        if conn is None or conn.transaction_id is None:
            return None
        return self.transactions.get((cp_id, conn.transaction_id))

    def transactions_of(self, cp_id: str) -> list[TransactionRecord]:
        """Transactions of a charge point, oldest first."""
        return [t for (cp, _), t in self.transactions.items() if cp == cp_id]

    def read(self, cp_id: str, connector: int) -> ChargerReading:
        """Latest known state of a connector."""
        record = self.charge_point(cp_id)
        conn = record.connectors.get(connector, ConnectorRecord())
        sample = conn.last_sample
        charging = conn.status in _CHARGING and conn.transaction_id is not None
        p_kw = 0.0
        if charging and sample is not None and sample.power_w is not None:
            p_kw = sample.power_w / 1000.0
        return ChargerReading(
            cp_id=cp_id,
            connector=connector,
            online=record.online,
            status=conn.status,
            p_kw=p_kw,
            e_register_kwh=None
            if sample is None or sample.energy_wh is None
            else sample.energy_wh / 1000.0,
            ev_soc=None if sample is None else sample.soc,
            current_a=() if sample is None else sample.current_a,
            voltage_v=() if sample is None else sample.voltage_v,
            transaction_id=conn.transaction_id,
            timestamp=None if sample is None else sample.timestamp,
            limit_kw=conn.limit_kw,
        )
