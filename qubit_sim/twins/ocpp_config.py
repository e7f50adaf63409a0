"""The charge point's configuration: one set of entries, two addressing schemes.

OCPP 1.6 reads and writes configuration *keys* (GetConfiguration / ChangeConfiguration); 2.0.1
addresses *variables* of *components* (GetVariables / SetVariables). Both map onto the same
:class:`TwinConfig` entries here, so the twin's behaviour does not depend on the version.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["ConfigEntry", "TwinConfig"]


@dataclass
class ConfigEntry:
    """One configuration entry.

    Attributes:
        name: Canonical name used by the twin (``heartbeat_interval_s``).
        v16_key: OCPP 1.6 key (``HeartbeatInterval``).
        v201: OCPP 2.0.1 ``(component, variable)`` or ``None`` when 2.0.1 has no equivalent.
        kind: ``int``, ``bool`` or ``str``.
        value: Current value.
        readonly: Whether the CSMS may change it.
        minimum: Smallest value accepted for an ``int`` entry.
        member_list: For a comma-separated ``str`` entry: the values it may hold (a 2.0.1
            ``MemberList``), else ``None``.
        unit: Unit of the value in the 2.0.1 device model (``"s"``), or ``None``.
        v201_value: Value as 2.0.1 spells it, when it differs from the 1.6 spelling.
    """

    name: str
    v16_key: str
    v201: tuple[str, str] | None
    kind: type
    value: Any
    readonly: bool = False
    minimum: int = 0
    member_list: str | None = None
    unit: str | None = None
    v201_value: str | None = None

    def text(self) -> str:
        """Value as sent on the wire."""
        if self.kind is bool:
            return "true" if self.value else "false"
        return str(self.value)

    def text_v201(self) -> str:
        """Value as a 2.0.1 variable reports it."""
        return self.text() if self.v201_value is None else self.v201_value

    @property
    def data_type(self) -> str:
        """2.0.1 ``DataEnumType`` of the value."""
        if self.kind is bool:
            return "boolean"
        if self.kind is int:
            return "integer"
        return "string" if self.member_list is None else "MemberList"

    def parse(self, text: str) -> Any:
        """Parse a wire value; raises :class:`ValueError` when it does not fit."""
        if self.kind is bool:
            lowered = text.strip().lower()
            if lowered not in ("true", "false"):
                raise ValueError(f"{self.v16_key}: {text!r} is not true/false")
            return lowered == "true"
        if self.kind is int:
            value = int(text.strip())
            if value < self.minimum:
                raise ValueError(f"{self.v16_key}: {value} is below {self.minimum}")
            return value
        return text


_MEASURANDS = "Energy.Active.Import.Register,Power.Active.Import,Current.Import,Voltage,SoC"
# What a transaction's end message carries (StopTransaction transactionData, 2.0.1 Ended event).
_TX_END_MEASURANDS = "Energy.Active.Import.Register"


def _phase_rotation(phases: Sequence[int]) -> str:
    # The twin reports L1..L3 in order on a grid connection with standard rotation; a
    # single-phase connector has none (OCPP 1.6 §9.1, ConnectorPhaseRotation).
    connectors = [f"{c}.{'RST' if p == 3 else 'NotApplicable'}" for c, p in enumerate(phases, 1)]
    return ",".join(["0.RST", *connectors])


def _entries(
    n_connectors: int, heartbeat_s: int, meter_interval_s: int, phases: Sequence[int]
) -> list[ConfigEntry]:
    return [
        ConfigEntry(
            "heartbeat_interval_s",
            "HeartbeatInterval",
            ("OCPPCommCtrlr", "HeartbeatInterval"),
            int,
            heartbeat_s,
            minimum=1,
            unit="s",
        ),
        ConfigEntry(
            "meter_interval_s",
            "MeterValueSampleInterval",
            ("SampledDataCtrlr", "TxUpdatedInterval"),
            int,
            meter_interval_s,
            unit="s",
        ),
        ConfigEntry(
            "measurands",
            "MeterValuesSampledData",
            ("SampledDataCtrlr", "TxUpdatedMeasurands"),
            str,
            _MEASURANDS,
            member_list=_MEASURANDS,
        ),
        ConfigEntry(
            "connection_timeout_s",
            "ConnectionTimeOut",
            ("TxCtrlr", "EVConnectionTimeOut"),
            int,
            120,
            minimum=1,
            unit="s",
        ),
        ConfigEntry(
            "authorize_remote_start",
            "AuthorizeRemoteTxRequests",
            ("AuthCtrlr", "AuthorizeRemoteStart"),
            bool,
            False,
        ),
        ConfigEntry(
            "local_authorize_offline",
            "LocalAuthorizeOffline",
            ("AuthCtrlr", "LocalAuthorizeOffline"),
            bool,
            True,
        ),
        ConfigEntry(
            "stop_on_ev_disconnect",
            "StopTransactionOnEVSideDisconnect",
            ("TxCtrlr", "StopTxOnEVSideDisconnect"),
            bool,
            True,
            readonly=True,
        ),
        ConfigEntry(
            "number_of_connectors", "NumberOfConnectors", None, int, n_connectors, readonly=True
        ),
        ConfigEntry(
            "max_stack_level",
            "ChargeProfileMaxStackLevel",
            ("SmartChargingCtrlr", "ProfileStackLevel"),
            int,
            8,
            readonly=True,
        ),
        ConfigEntry(
            "max_periods",
            "ChargingScheduleMaxPeriods",
            ("SmartChargingCtrlr", "PeriodsPerSchedule"),
            int,
            48,
            readonly=True,
        ),
        ConfigEntry(
            "max_profiles",
            "MaxChargingProfilesInstalled",
            ("SmartChargingCtrlr", "Entries"),
            int,
            32,
            readonly=True,
        ),
        ConfigEntry(
            "rate_units",
            "ChargingScheduleAllowedChargingRateUnit",
            ("SmartChargingCtrlr", "RateUnit"),
            str,
            "Current,Power",
            readonly=True,
            member_list="A,W",
            v201_value="A,W",
        ),
        ConfigEntry(
            "feature_profiles",
            "SupportedFeatureProfiles",
            None,
            str,
            "Core,SmartCharging,RemoteTrigger",
            readonly=True,
        ),
        *_core_entries(phases),
    ]


def _core_entries(phases: Sequence[int]) -> list[ConfigEntry]:
    """The other keys OCPP 1.6 §9.1 requires of Core. Each is read-only and says what the twin
    does; the twin has no setting to act on a change of any of them."""
    return [
        # No clock-aligned meter values are sent (an interval of 0 disables them) ...
        ConfigEntry(
            "aligned_interval_s",
            "ClockAlignedDataInterval",
            ("AlignedDataCtrlr", "Interval"),
            int,
            0,
            readonly=True,
            unit="s",
        ),
        # ... so no measurands are aligned, during a transaction or at its end.
        ConfigEntry(
            "aligned_measurands",
            "MeterValuesAlignedData",
            ("AlignedDataCtrlr", "Measurands"),
            str,
            "",
            readonly=True,
            member_list=_MEASURANDS,
        ),
        ConfigEntry(
            "tx_end_aligned_measurands",
            "StopTxnAlignedData",
            ("AlignedDataCtrlr", "TxEndedMeasurands"),
            str,
            "",
            readonly=True,
            member_list=_MEASURANDS,
        ),
        ConfigEntry(
            "tx_end_measurands",
            "StopTxnSampledData",
            ("SampledDataCtrlr", "TxEndedMeasurands"),
            str,
            _TX_END_MEASURANDS,
            readonly=True,
            member_list=_MEASURANDS,
        ),
        ConfigEntry(
            "phase_rotation",
            "ConnectorPhaseRotation",
            None,
            str,
            _phase_rotation(phases),
            readonly=True,
        ),
        # GetConfiguration answers any number of keys; this many covers every key there is.
        ConfigEntry(
            "get_configuration_max_keys", "GetConfigurationMaxKeys", None, int, 0, readonly=True
        ),
        # A token is always authorised online (or offline, per LocalAuthorizeOffline) before
        # a transaction starts; there is no authorization cache to start from.
        ConfigEntry(
            "local_pre_authorize",
            "LocalPreAuthorize",
            ("AuthCtrlr", "LocalPreAuthorize"),
            bool,
            False,
            readonly=True,
        ),
        # A reset always succeeds at once, so it is never retried.
        ConfigEntry(
            "reset_retries",
            "ResetRetries",
            ("OCPPCommCtrlr", "ResetRetries"),
            int,
            0,
            readonly=True,
        ),
        # A start the CSMS answers with a token that is not Accepted ends the transaction.
        ConfigEntry(
            "stop_on_invalid_id",
            "StopTransactionOnInvalidId",
            ("TxCtrlr", "StopTxOnInvalidId"),
            bool,
            True,
            readonly=True,
        ),
        # Transaction messages stay queued across outages and are sent again when an answer
        # is lost; one the CSMS answers with a CALLERROR is not sent again.
        ConfigEntry(
            "tx_message_attempts", "TransactionMessageAttempts", None, int, 1, readonly=True
        ),
        ConfigEntry(
            "tx_message_retry_interval_s",
            "TransactionMessageRetryInterval",
            None,
            int,
            0,
            readonly=True,
        ),
        # The twin has no connector lock: nothing holds the cable once the EV side lets go.
        ConfigEntry(
            "unlock_on_ev_disconnect",
            "UnlockConnectorOnEVSideDisconnect",
            None,
            bool,
            True,
            readonly=True,
        ),
    ]


class TwinConfig:
    """Configuration of one charge point twin.

    Args:
        n_connectors: Number of connectors (read-only entry).
        heartbeat_s: Initial heartbeat interval [s] (the CSMS's boot answer overrides it).
        meter_interval_s: Interval of meter values during a transaction [s]; 0 disables them.
        phases: Phases per connector (1 or 3; default 3 each), for ConnectorPhaseRotation.
    """

    def __init__(
        self,
        n_connectors: int,
        heartbeat_s: int = 300,
        meter_interval_s: int = 60,
        phases: Sequence[int] | None = None,
    ) -> None:
        phases = [3] * n_connectors if phases is None else list(phases)
        if len(phases) != n_connectors:
            raise ValueError(f"phases has {len(phases)} entries for {n_connectors} connectors")
        entries = _entries(n_connectors, heartbeat_s, meter_interval_s, phases)
        self._entries = {e.name: e for e in entries}
        self._entries["get_configuration_max_keys"].value = len(entries)
        self._by_key = {e.v16_key.lower(): e for e in self._entries.values()}
        self._by_var = {
            (e.v201[0].lower(), e.v201[1].lower()): e for e in self._entries.values() if e.v201
        }

    def __getitem__(self, name: str) -> Any:
        return self._entries[name].value

    def put(self, name: str, value: Any) -> None:
        """Set an entry by canonical name (from the twin itself, read-only or not)."""
        self._entries[name].value = value

    def measurands(self) -> set[str]:
        """Measurands to report in meter values."""
        return {m.strip() for m in str(self["measurands"]).split(",") if m.strip()}

    # -- OCPP 1.6 --------------------------------------------------------------------------

    def get_v16(self, keys: Iterable[str] | None) -> tuple[list[dict[str, Any]], list[str]]:
        """``(configurationKey, unknownKey)`` lists for GetConfiguration (camelCase)."""
        chosen: list[ConfigEntry] = []
        unknown: list[str] = []
        if not keys:
            chosen = list(self._entries.values())
        else:
            for key in keys:
                entry = self._by_key.get(str(key).lower())
                if entry is None:
                    unknown.append(str(key))
                else:
                    chosen.append(entry)
        found = [{"key": e.v16_key, "readonly": e.readonly, "value": e.text()} for e in chosen]
        return found, unknown

    def change_v16(self, key: str, value: str) -> str:
        """Apply ChangeConfiguration; returns Accepted, Rejected or NotSupported."""
        entry = self._by_key.get(key.lower())
        if entry is None:
            return "NotSupported"
        if entry.readonly:
            return "Rejected"
        try:
            entry.value = entry.parse(value)
        except ValueError:
            return "Rejected"
        return "Accepted"

    # -- OCPP 2.0.1 ------------------------------------------------------------------------

    def _lookup(self, component: str, variable: str) -> tuple[ConfigEntry | None, str]:
        entry = self._by_var.get((component.lower(), variable.lower()))
        if entry is not None:
            return entry, "Accepted"
        known = any(c == component.lower() for c, _ in self._by_var)
        return None, "UnknownVariable" if known else "UnknownComponent"

    def get_v201(self, component: str, variable: str) -> tuple[str, str | None]:
        """``(attributeStatus, attributeValue)`` for one GetVariables entry."""
        entry, status = self._lookup(component, variable)
        return (status, None) if entry is None else ("Accepted", entry.text_v201())

    def v201_entries(self) -> list[ConfigEntry]:
        """The entries 2.0.1 addresses as variables, in definition order."""
        return [e for e in self._entries.values() if e.v201 is not None]

    def set_v201(self, component: str, variable: str, value: str) -> str:
        """attributeStatus for one SetVariables entry."""
        entry, status = self._lookup(component, variable)
        if entry is None:
            return status
        if entry.readonly:
            return "Rejected"
        try:
            entry.value = entry.parse(value)
        except ValueError:
            return "Rejected"
        return "Accepted"
