"""The charge point's configuration: one set of entries, two addressing schemes.

OCPP 1.6 reads and writes configuration *keys* (GetConfiguration / ChangeConfiguration); 2.0.1
addresses *variables* of *components* (GetVariables / SetVariables). Both map onto the same
:class:`TwinConfig` entries here, so the twin's behaviour does not depend on the version.
"""

from __future__ import annotations

from collections.abc import Iterable
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
    """

    name: str
    v16_key: str
    v201: tuple[str, str] | None
    kind: type
    value: Any
    readonly: bool = False
    minimum: int = 0

    def text(self) -> str:
        """Value as sent on the wire."""
        if self.kind is bool:
            return "true" if self.value else "false"
        return str(self.value)

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


def _entries(n_connectors: int, heartbeat_s: int, meter_interval_s: int) -> list[ConfigEntry]:
    return [
        ConfigEntry(
            "heartbeat_interval_s",
            "HeartbeatInterval",
            ("OCPPCommCtrlr", "HeartbeatInterval"),
            int,
            heartbeat_s,
            minimum=1,
        ),
        ConfigEntry(
            "meter_interval_s",
            "MeterValueSampleInterval",
            ("SampledDataCtrlr", "TxUpdatedInterval"),
            int,
            meter_interval_s,
        ),
        ConfigEntry(
            "measurands",
            "MeterValuesSampledData",
            ("SampledDataCtrlr", "TxUpdatedMeasurands"),
            str,
            _MEASURANDS,
        ),
        ConfigEntry(
            "connection_timeout_s",
            "ConnectionTimeOut",
            ("TxCtrlr", "EVConnectionTimeOut"),
            int,
            120,
            minimum=1,
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
        ),
        ConfigEntry(
            "feature_profiles",
            "SupportedFeatureProfiles",
            None,
            str,
            "Core,SmartCharging,RemoteTrigger",
            readonly=True,
        ),
    ]


class TwinConfig:
    """Configuration of one charge point twin.

    Args:
        n_connectors: Number of connectors (read-only entry).
        heartbeat_s: Initial heartbeat interval [s] (the CSMS's boot answer overrides it).
        meter_interval_s: Interval of meter values during a transaction [s]; 0 disables them.
    """

    def __init__(self, n_connectors: int, heartbeat_s: int = 300, meter_interval_s: int = 60):
        self._entries = {e.name: e for e in _entries(n_connectors, heartbeat_s, meter_interval_s)}
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
        return (status, None) if entry is None else ("Accepted", entry.text())

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
