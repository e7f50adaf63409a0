"""Transactions of the charge point twin and the interface of its per-version message codecs."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from qubit_sim.protocols.ocpp_meter import MeterSample
from qubit_sim.twins.charger_device import ConnectorStatus

__all__ = ["Codec", "StopReason", "Transaction"]


class StopReason(StrEnum):
    """Why a transaction ended (version-neutral)."""

    EV_DISCONNECTED = "EVDisconnected"
    REMOTE = "Remote"
    LOCAL = "Local"
    SOFT_RESET = "SoftReset"
    HARD_RESET = "HardReset"
    DEAUTHORIZED = "DeAuthorized"
    UNLOCK_COMMAND = "UnlockCommand"
    OTHER = "Other"


@dataclass
class Transaction:
    """A charging transaction as the charge point keeps it.

    Attributes:
        local_id: Number the twin gives the transaction (1, 2, ...).
        connector: Connector (EVSE) it runs on.
        id_tag: Token that authorised it.
        start_s: Start [s].
        meter_start_wh: Energy register at the start [Wh].
        ocpp_id: Transaction id on the wire: assigned by the CSMS in 1.6 (known once the
            StartTransaction is answered), by the charge point in 2.0.1.
        remote_start_id: 2.0.1 remoteStartId when the CSMS started it.
        started_offline: Whether the start happened while the CSMS was unreachable.
        stop_s: End [s], once stopped.
        meter_stop_wh: Energy register at the end [Wh].
        stop_reason: Why it ended.
        next_sample_s: When the next periodic meter value is due [s].
        charging_state: Last charging state reported (2.0.1).
        seq_no: Next 2.0.1 TransactionEvent sequence number.
    """

    local_id: int
    connector: int
    id_tag: str
    start_s: float
    meter_start_wh: float
    ocpp_id: str | None = None
    remote_start_id: int | None = None
    started_offline: bool = False
    stop_s: float | None = None
    meter_stop_wh: float | None = None
    stop_reason: StopReason | None = None
    next_sample_s: float = 0.0
    charging_state: str | None = None
    seq_no: int = 0

    @property
    def active(self) -> bool:
        """Whether the transaction is still running."""
        return self.stop_s is None

    @property
    def energy_wh(self) -> float | None:
        """Energy of a finished transaction [Wh] (register difference)."""
        if self.meter_stop_wh is None:
            return None
        return self.meter_stop_wh - self.meter_start_wh

    def take_seq_no(self) -> int:
        """Return the next 2.0.1 sequence number and advance it."""
        value = self.seq_no
        self.seq_no += 1
        return value


class Codec(Protocol):
    """Builds one OCPP version's charge-point-initiated messages (``ocpp`` call dataclasses).

    Builders that depend on an answer still outstanding (a 1.6 transaction id) are called at
    send time; they return ``None`` when the message has become pointless.
    """

    version: str

    def boot(self, reason: str) -> Any:
        """BootNotification."""
        ...

    def boot_result(self, result: Any) -> tuple[str, int]:
        """``(status, interval_s)`` of a BootNotification answer."""
        ...

    def heartbeat(self) -> Any:
        """Heartbeat."""
        ...

    def status_value(self, status: ConnectorStatus) -> str:
        """Status as this version reports it (2.0.1 folds several into Occupied)."""
        ...

    def status(self, connector: int, status: ConnectorStatus, timestamp: str) -> Any:
        """StatusNotification."""
        ...

    def authorize(self, id_tag: str) -> Any:
        """Authorize."""
        ...

    def authorized(self, result: Any) -> bool:
        """Whether an Authorize answer accepts the token."""
        ...

    def tx_started(self, tx: Transaction, sample: MeterSample) -> Any:
        """StartTransaction / TransactionEvent(Started)."""
        ...

    def tx_start_result(self, tx: Transaction, result: Any) -> bool:
        """Read the answer to a start (1.6: the transaction id); whether the token is accepted."""
        ...

    def tx_sample(self, tx: Transaction, sample: MeterSample, context: str) -> Any | None:
        """Periodic or triggered meter values of a transaction."""
        ...

    def tx_state(self, tx: Transaction, state: str, timestamp: str) -> Any | None:
        """A charging-state change inside a transaction (2.0.1 only; 1.6 returns None)."""
        ...

    def charging_state(self, status: ConnectorStatus) -> str:
        """2.0.1 chargingState of a connector status."""
        ...

    def tx_ended(self, tx: Transaction, sample: MeterSample) -> Any | None:
        """StopTransaction / TransactionEvent(Ended)."""
        ...

    def meter_values(self, connector: int, sample: MeterSample, tx: Transaction | None) -> Any:
        """MeterValues outside the transaction flow (triggered)."""
        ...
