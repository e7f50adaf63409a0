"""OCPP 2.0.1 side of the charge point twin: message builders and the request handlers.

Each connector of the device is one EVSE with a single connector (``evse.id == connector``,
``connectorId == 1``).
"""

from __future__ import annotations

from functools import partial
from typing import Any

from ocpp.routing import after, on
from ocpp.v201 import ChargePoint, call, call_result
from ocpp.v201.enums import Action

from qubit_sim.protocols.ocpp_common import sim_to_iso
from qubit_sim.protocols.ocpp_meter import MeterSample
from qubit_sim.twins.charger_device import ConnectorStatus
from qubit_sim.twins.ocpp_cp_common import CodecBase, TwinSession, accepted_or_rejected
from qubit_sim.twins.ocpp_smart import profile_from_v201
from qubit_sim.twins.ocpp_tx import StopReason, Transaction

__all__ = ["REPORT_ITEMS_PER_MESSAGE", "V201Codec", "V201Session"]

_CONNECTOR_STATUS = {
    ConnectorStatus.AVAILABLE: "Available",
    ConnectorStatus.UNAVAILABLE: "Unavailable",
    ConnectorStatus.FAULTED: "Faulted",
}

_CHARGING_STATE = {
    ConnectorStatus.CHARGING: "Charging",
    ConnectorStatus.SUSPENDED_EV: "SuspendedEV",
    ConnectorStatus.SUSPENDED_EVSE: "SuspendedEVSE",
    ConnectorStatus.PREPARING: "EVConnected",
    ConnectorStatus.FINISHING: "EVConnected",
}

# (triggerReason, stoppedReason) of each way a transaction ends.
_ENDINGS = {
    StopReason.EV_DISCONNECTED: ("EVCommunicationLost", "EVDisconnected"),
    StopReason.REMOTE: ("RemoteStop", "Remote"),
    StopReason.LOCAL: ("StopAuthorized", "Local"),
    StopReason.SOFT_RESET: ("ResetCommand", "ImmediateReset"),
    StopReason.HARD_RESET: ("ResetCommand", "ImmediateReset"),
    StopReason.DEAUTHORIZED: ("Deauthorized", "DeAuthorized"),
    # 2.0.1 keeps a transaction on UnlockConnector (F05); the reason list has no such entry.
    StopReason.UNLOCK_COMMAND: ("UnlockCommand", "Other"),
    StopReason.OTHER: ("AbnormalCondition", "Other"),
}

#: ReportData entries per NotifyReport message of a base report.
REPORT_ITEMS_PER_MESSAGE = 20

_UNLOCK = {
    "Unlocked": "Unlocked",
    "Ongoing": "OngoingAuthorizedTransaction",
    "Unknown": "UnknownConnector",
}


class V201Codec(CodecBase):
    """Builds the OCPP 2.0.1 messages a charging station sends."""

    version = "2.0.1"
    calls = call

    def boot(self, reason: str) -> Any:
        """BootNotification."""
        return call.BootNotification(
            charging_station={"model": self.model, "vendorName": self.vendor}, reason=reason
        )

    def status_value(self, status: ConnectorStatus) -> str:
        """2.0.1 connectorStatus: the transaction states fold into Occupied."""
        return _CONNECTOR_STATUS.get(status, "Occupied")

    def status(self, connector: int, status: ConnectorStatus, timestamp: str) -> Any:
        """StatusNotification (connector 0 is not reported in 2.0.1)."""
        if connector == 0:
            return None
        return call.StatusNotification(
            timestamp=timestamp,
            connector_status=self.status_value(status),
            evse_id=connector,
            connector_id=1,
        )

    @staticmethod
    def _token(id_tag: str, remote: bool = False) -> dict[str, str]:
        return {"idToken": id_tag[:36], "type": "Central" if remote else "ISO14443"}

    def authorize(self, id_tag: str) -> Any:
        """Authorize."""
        return call.Authorize(id_token=self._token(id_tag))

    def authorized(self, result: Any) -> bool:
        """Whether idTokenInfo.status is Accepted."""
        return result.id_token_info.get("status") == "Accepted"

    def charging_state(self, status: ConnectorStatus) -> str:
        """chargingState of a connector status."""
        return _CHARGING_STATE.get(status, "Idle")

    def _meter_values(self, sample: MeterSample, context: str) -> list[dict[str, Any]]:
        return [self._meter_value(sample, context)]

    def _event(
        self,
        tx: Transaction,
        event_type: str,
        trigger: str,
        timestamp: str,
        info: dict[str, Any],
        **extra: Any,
    ) -> Any:
        return call.TransactionEvent(
            event_type=event_type,
            timestamp=timestamp,
            trigger_reason=trigger,
            seq_no=tx.take_seq_no(),
            transaction_info={"transactionId": tx.ocpp_id, **info},
            **extra,
        )

    def tx_started(self, tx: Transaction, sample: MeterSample) -> Any:
        """TransactionEvent(Started)."""
        remote = tx.remote_start_id is not None
        info: dict[str, Any] = {"chargingState": tx.charging_state or "EVConnected"}
        if remote:
            info["remoteStartId"] = tx.remote_start_id
        return self._event(
            tx,
            "Started",
            "RemoteStart" if remote else "Authorized",
            sample.timestamp,
            info,
            id_token=self._token(tx.id_tag, remote),
            evse={"id": tx.connector, "connectorId": 1},
            meter_value=self._meter_values(sample, "Transaction.Begin"),
        )

    def tx_start_result(self, tx: Transaction, result: Any) -> bool:
        """Whether the token is accepted (no idTokenInfo means accepted)."""
        info = result.id_token_info
        return info is None or info.get("status") == "Accepted"

    def tx_sample(self, tx: Transaction, sample: MeterSample, context: str) -> Any:
        """TransactionEvent(Updated) with meter values."""
        trigger = "Trigger" if context == "Trigger" else "MeterValuePeriodic"
        return self._event(
            tx,
            "Updated",
            trigger,
            sample.timestamp,
            {},
            meter_value=self._meter_values(sample, context),
        )

    def tx_state(self, tx: Transaction, state: str, timestamp: str) -> Any:
        """TransactionEvent(Updated) for a charging-state change."""
        return self._event(
            tx, "Updated", "ChargingStateChanged", timestamp, {"chargingState": state}
        )

    def tx_ended(self, tx: Transaction, sample: MeterSample) -> Any:
        """TransactionEvent(Ended) with the final register."""
        trigger, stopped = _ENDINGS[tx.stop_reason or StopReason.OTHER]
        end = MeterSample(timestamp=sample.timestamp, energy_wh=tx.meter_stop_wh)
        return self._event(
            tx,
            "Ended",
            trigger,
            sample.timestamp,
            {"stoppedReason": stopped, "chargingState": "Idle"},
            meter_value=self._meter_values(end, "Transaction.End"),
        )

    def meter_values(self, connector: int, sample: MeterSample, tx: Transaction | None) -> Any:
        """Triggered MeterValues."""
        return call.MeterValues(
            evse_id=connector, meter_value=self._meter_values(sample, "Trigger")
        )

    def notify_reports(
        self, request_id: int, entries: list[dict[str, Any]], timestamp: str
    ) -> list[Any]:
        """The NotifyReport messages of one report: ``seqNo`` from 0, ``tbc`` on all but the
        last, :data:`REPORT_ITEMS_PER_MESSAGE` entries each."""
        size = REPORT_ITEMS_PER_MESSAGE
        chunks = [entries[i : i + size] for i in range(0, len(entries), size)] or [[]]
        return [
            call.NotifyReport(
                request_id=request_id,
                generated_at=timestamp,
                seq_no=seq_no,
                report_data=chunk or None,
                tbc=seq_no < len(chunks) - 1,
            )
            for seq_no, chunk in enumerate(chunks)
        ]


class V201Session(TwinSession, ChargePoint):
    """The 2.0.1 websocket session of a twin: answers the CSMS's requests."""

    version = "2.0.1"
    profile_decoder = staticmethod(profile_from_v201)

    @on(Action.set_charging_profile)
    def on_set_charging_profile(
        self, evse_id: int, charging_profile: dict[str, Any], **kwargs: Any
    ) -> Any:
        status = self._set_profile(charging_profile, evse_id)
        return call_result.SetChargingProfile(status=status)

    @on(Action.clear_charging_profile)
    def on_clear_charging_profile(
        self,
        charging_profile_id: int | None = None,
        charging_profile_criteria: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> Any:
        criteria = charging_profile_criteria or {}
        status = self._clear_profiles(
            charging_profile_id,
            criteria.get("evse_id"),
            criteria.get("charging_profile_purpose"),
            criteria.get("stack_level"),
        )
        return call_result.ClearChargingProfile(status=status)

    @on(Action.get_composite_schedule)
    def on_get_composite_schedule(
        self, duration: int, evse_id: int, charging_rate_unit: str | None = None, **kwargs: Any
    ) -> Any:
        result = self._composite(evse_id, duration, charging_rate_unit)
        if result is None:
            return call_result.GetCompositeSchedule(status="Rejected")
        start, unit, periods = result
        return call_result.GetCompositeSchedule(
            status="Accepted",
            schedule={
                "evseId": evse_id,
                "duration": duration,
                "scheduleStart": start,
                "chargingRateUnit": unit,
                "chargingSchedulePeriod": periods,
            },
        )

    @on(Action.request_start_transaction)
    def on_request_start_transaction(
        self,
        id_token: dict[str, Any],
        remote_start_id: int,
        evse_id: int | None = None,
        charging_profile: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> Any:
        accepted = self.twin.cmd_remote_start(
            evse_id,
            str(id_token["id_token"]),
            remote_start_id=remote_start_id,
            profile_for=self._profile_for(charging_profile),
        )
        return call_result.RequestStartTransaction(status=accepted_or_rejected(accepted))

    @on(Action.request_stop_transaction)
    def on_request_stop_transaction(self, transaction_id: str, **kwargs: Any) -> Any:
        accepted = self.twin.cmd_remote_stop(transaction_id)
        return call_result.RequestStopTransaction(status=accepted_or_rejected(accepted))

    @on(Action.change_availability)
    def on_change_availability(
        self, operational_status: str, evse: dict[str, Any] | None = None, **kwargs: Any
    ) -> Any:
        connector = 0 if evse is None else int(evse["id"])
        status = self.twin.cmd_availability(connector, operational_status == "Operative")
        return call_result.ChangeAvailability(status=status)

    @on(Action.reset)
    def on_reset(self, type: str, evse_id: int | None = None, **kwargs: Any) -> Any:  # noqa: A002
        if evse_id is not None:
            return call_result.Reset(status="Rejected")
        status = self.twin.cmd_reset(StopReason.SOFT_RESET, on_idle=type == "OnIdle")
        return call_result.Reset(status=status)

    @on(Action.trigger_message)
    def on_trigger_message(
        self, requested_message: str, evse: dict[str, Any] | None = None, **kwargs: Any
    ) -> Any:
        connector = None if evse is None else int(evse["id"])
        return call_result.TriggerMessage(
            status=self.twin.cmd_trigger(requested_message, connector)
        )

    @on(Action.get_variables)
    def on_get_variables(self, get_variable_data: list[dict[str, Any]], **kwargs: Any) -> Any:
        results = []
        for item in get_variable_data:
            component, variable = item["component"], item["variable"]
            status, value = self.twin.device_model.get(component, variable["name"])
            entry: dict[str, Any] = {
                "attributeStatus": status,
                "component": _component(component),
                "variable": {"name": variable["name"]},
            }
            if value is not None:
                entry["attributeValue"] = value
            results.append(entry)
        return call_result.GetVariables(get_variable_result=results)

    @on(Action.set_variables)
    def on_set_variables(self, set_variable_data: list[dict[str, Any]], **kwargs: Any) -> Any:
        results = []
        changed = False
        for item in set_variable_data:
            component, variable = item["component"], item["variable"]
            status = self.twin.device_model.set(
                component, variable["name"], str(item["attribute_value"])
            )
            changed |= status == "Accepted"
            results.append(
                {
                    "attributeStatus": status,
                    "component": _component(component),
                    "variable": {"name": variable["name"]},
                }
            )
        if changed:
            self.twin.config_changed()
        return call_result.SetVariables(set_variable_result=results)

    @on(Action.get_base_report)
    def on_get_base_report(self, request_id: int, report_base: str, **kwargs: Any) -> Any:
        entries = self.twin.device_model.report(report_base)
        if entries is None:
            return call_result.GetBaseReport(status="NotSupported")
        return call_result.GetBaseReport(status="Accepted" if entries else "EmptyResultSet")

    @after(Action.get_base_report)
    def after_get_base_report(self, request_id: int, report_base: str, **kwargs: Any) -> None:
        # After the answer has gone out (B07: the report follows the accepted request).
        entries = self.twin.device_model.report(report_base)
        if entries:
            report = _Report(self.twin, request_id, report_base)
            n_messages = -(-len(entries) // REPORT_ITEMS_PER_MESSAGE)
            self.twin.queue_messages([partial(report.message, i) for i in range(n_messages)])

    @on(Action.unlock_connector)
    def on_unlock_connector(self, evse_id: int, connector_id: int, **kwargs: Any) -> Any:
        outcome = (
            self.twin.cmd_unlock(evse_id, end_transaction=False) if connector_id == 1 else "Unknown"
        )
        return call_result.UnlockConnector(status=_UNLOCK[outcome])

    @on(Action.data_transfer)
    def on_data_transfer(self, vendor_id: str, **kwargs: Any) -> Any:
        # The twin knows no vendor extensions: the vendor id is unknown to it (use case P02).
        return call_result.DataTransfer(status="UnknownVendorId")


class _Report:
    """The NotifyReports of one request, read from the device model when the first one goes out
    (the tick after the request: a request that came in with the boot answer then reports what
    that answer set), so that all of them show one instant."""

    def __init__(self, twin: Any, request_id: int, report_base: str) -> None:
        self.twin = twin
        self.request_id = request_id
        self.report_base = report_base
        self.messages: list[Any] | None = None

    def message(self, seq_no: int) -> Any:
        """NotifyReport ``seq_no``, ``None`` past the last (the model cannot grow, but a gap is
        better than a crash)."""
        if self.messages is None:
            twin = self.twin
            entries = twin.device_model.report(self.report_base) or []
            stamp = sim_to_iso(twin.start_utc, twin.now())
            self.messages = twin.codec.notify_reports(self.request_id, entries, stamp)
        return self.messages[seq_no] if seq_no < len(self.messages) else None


def _component(component: dict[str, Any]) -> dict[str, Any]:
    """A component as the library handed it over (snake_case), for an answer (camelCase)."""
    out: dict[str, Any] = {"name": component["name"]}
    if component.get("instance") is not None:
        out["instance"] = component["instance"]
    evse = component.get("evse")
    if evse is not None:
        out["evse"] = {"id": evse["id"]}
        if evse.get("connector_id") is not None:
            out["evse"]["connectorId"] = evse["connector_id"]
    return out
