"""OCPP 1.6J side of the charge point twin: message builders and the request handlers."""

from __future__ import annotations

import math
from typing import Any

from ocpp.routing import on
from ocpp.v16 import ChargePoint, call, call_result
from ocpp.v16.enums import Action

from qubit_sim.protocols.ocpp_meter import MeterSample
from qubit_sim.twins.charger_device import ConnectorStatus
from qubit_sim.twins.ocpp_cp_common import CodecBase, TwinSession, accepted_or_rejected
from qubit_sim.twins.ocpp_smart import profile_from_v16
from qubit_sim.twins.ocpp_tx import StopReason, Transaction

__all__ = ["V16Codec", "V16Session"]


class V16Codec(CodecBase):
    """Builds the OCPP 1.6J messages a charge point sends."""

    version = "1.6"
    calls = call

    def boot(self, reason: str) -> Any:
        """BootNotification (1.6 carries no reason)."""
        return call.BootNotification(charge_point_model=self.model, charge_point_vendor=self.vendor)

    def status_value(self, status: ConnectorStatus) -> str:
        """1.6 reports the status as is."""
        return str(status)

    def status(self, connector: int, status: ConnectorStatus, timestamp: str) -> Any:
        """StatusNotification."""
        error = "OtherError" if status is ConnectorStatus.FAULTED else "NoError"
        return call.StatusNotification(
            connector_id=connector, error_code=error, status=str(status), timestamp=timestamp
        )

    def authorize(self, id_tag: str) -> Any:
        """Authorize."""
        return call.Authorize(id_tag=id_tag[:20])

    def authorized(self, result: Any) -> bool:
        """Whether the idTagInfo status is Accepted."""
        return result.id_tag_info.get("status") == "Accepted"

    def tx_started(self, tx: Transaction, sample: MeterSample) -> Any:
        """StartTransaction; meterStart is whole Wh (rounded down)."""
        return call.StartTransaction(
            connector_id=tx.connector,
            id_tag=tx.id_tag[:20],
            meter_start=int(math.floor(tx.meter_start_wh)),
            timestamp=sample.timestamp,
        )

    def tx_start_result(self, tx: Transaction, result: Any) -> bool:
        """Keep the CSMS's transaction id; whether the token is accepted."""
        tx.ocpp_id = str(result.transaction_id)
        return result.id_tag_info.get("status") == "Accepted"

    def tx_sample(self, tx: Transaction, sample: MeterSample, context: str) -> Any:
        """MeterValues of the transaction."""
        return call.MeterValues(
            connector_id=tx.connector,
            transaction_id=None if tx.ocpp_id is None else int(tx.ocpp_id),
            meter_value=[self._meter_value(sample, context)],
        )

    def tx_state(self, tx: Transaction, state: str, timestamp: str) -> Any:
        """1.6 reports charging-state changes by StatusNotification only."""
        return None

    def charging_state(self, status: ConnectorStatus) -> str:
        """The 1.6 status stands for the charging state."""
        return str(status)

    def tx_ended(self, tx: Transaction, sample: MeterSample) -> Any:
        """StopTransaction (``None`` if the CSMS never gave the transaction an id)."""
        if tx.ocpp_id is None or tx.meter_stop_wh is None:
            return None
        reason = tx.stop_reason or StopReason.OTHER
        end = MeterSample(timestamp=sample.timestamp, energy_wh=sample.energy_wh)
        return call.StopTransaction(
            meter_stop=int(math.floor(tx.meter_stop_wh)),
            timestamp=sample.timestamp,
            transaction_id=int(tx.ocpp_id),
            reason=str(reason),
            id_tag=tx.id_tag[:20],
            transaction_data=[self._meter_value(end, "Transaction.End")],
        )

    def meter_values(self, connector: int, sample: MeterSample, tx: Transaction | None) -> Any:
        """Triggered MeterValues."""
        tx_id = None if tx is None or tx.ocpp_id is None else int(tx.ocpp_id)
        return call.MeterValues(
            connector_id=connector,
            transaction_id=tx_id,
            meter_value=[self._meter_value(sample, "Trigger")],
        )


class V16Session(TwinSession, ChargePoint):
    """The 1.6 websocket session of a twin: answers the CSMS's requests."""

    version = "1.6"
    profile_decoder = staticmethod(profile_from_v16)

    @on(Action.set_charging_profile)
    def on_set_charging_profile(
        self, connector_id: int, cs_charging_profiles: dict[str, Any], **kwargs: Any
    ) -> Any:
        status = self._set_profile(cs_charging_profiles, connector_id)
        return call_result.SetChargingProfile(status=status)

    @on(Action.clear_charging_profile)
    def on_clear_charging_profile(
        self,
        id: int | None = None,  # noqa: A002 - the 1.6 field name
        connector_id: int | None = None,
        charging_profile_purpose: str | None = None,
        stack_level: int | None = None,
        **kwargs: Any,
    ) -> Any:
        status = self._clear_profiles(id, connector_id, charging_profile_purpose, stack_level)
        return call_result.ClearChargingProfile(status=status)

    @on(Action.get_composite_schedule)
    def on_get_composite_schedule(
        self,
        connector_id: int,
        duration: int,
        charging_rate_unit: str | None = None,
        **kwargs: Any,
    ) -> Any:
        result = self._composite(connector_id, duration, charging_rate_unit)
        if result is None:
            return call_result.GetCompositeSchedule(status="Rejected")
        start, unit, periods = result
        return call_result.GetCompositeSchedule(
            status="Accepted",
            connector_id=connector_id,
            schedule_start=start,
            charging_schedule={
                "duration": duration,
                "startSchedule": start,
                "chargingRateUnit": unit,
                "chargingSchedulePeriod": periods,
            },
        )

    @on(Action.remote_start_transaction)
    def on_remote_start_transaction(
        self,
        id_tag: str,
        connector_id: int | None = None,
        charging_profile: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> Any:
        accepted = self.twin.cmd_remote_start(
            connector_id, id_tag, profile_for=self._profile_for(charging_profile)
        )
        return call_result.RemoteStartTransaction(status=accepted_or_rejected(accepted))

    @on(Action.remote_stop_transaction)
    def on_remote_stop_transaction(self, transaction_id: int, **kwargs: Any) -> Any:
        accepted = self.twin.cmd_remote_stop(str(transaction_id))
        return call_result.RemoteStopTransaction(status=accepted_or_rejected(accepted))

    @on(Action.change_availability)
    def on_change_availability(self, connector_id: int, type: str, **kwargs: Any) -> Any:  # noqa: A002
        status = self.twin.cmd_availability(connector_id, type == "Operative")
        return call_result.ChangeAvailability(status=status)

    @on(Action.reset)
    def on_reset(self, type: str, **kwargs: Any) -> Any:  # noqa: A002
        reason = StopReason.HARD_RESET if type == "Hard" else StopReason.SOFT_RESET
        return call_result.Reset(status=self.twin.cmd_reset(reason))

    @on(Action.trigger_message)
    def on_trigger_message(
        self, requested_message: str, connector_id: int | None = None, **kwargs: Any
    ) -> Any:
        return call_result.TriggerMessage(
            status=self.twin.cmd_trigger(requested_message, connector_id)
        )

    @on(Action.get_configuration)
    def on_get_configuration(self, key: list[str] | None = None, **kwargs: Any) -> Any:
        found, unknown = self.twin.config.get_v16(key)
        return call_result.GetConfiguration(
            configuration_key=found or None, unknown_key=unknown or None
        )

    @on(Action.change_configuration)
    def on_change_configuration(self, key: str, value: str, **kwargs: Any) -> Any:
        status = self.twin.config.change_v16(key, value)
        if status == "Accepted":
            self.twin.config_changed()
        return call_result.ChangeConfiguration(status=status)

    @on(Action.unlock_connector)
    def on_unlock_connector(self, connector_id: int, **kwargs: Any) -> Any:
        outcome = self.twin.cmd_unlock(connector_id, end_transaction=True)
        # 1.6 answers an unknown connector with NotSupported (UnlockStatus has no other fit).
        return call_result.UnlockConnector(
            status="Unlocked" if outcome == "Unlocked" else "NotSupported"
        )

    @on(Action.data_transfer)
    def on_data_transfer(self, vendor_id: str, **kwargs: Any) -> Any:
        # The twin knows no vendor extensions: the vendor id is unknown to it (§5.6).
        return call_result.DataTransfer(status="UnknownVendorId")

    @on(Action.clear_cache)
    def on_clear_cache(self, **kwargs: Any) -> Any:
        # The twin keeps no Authorization Cache (every token is authorised online, see
        # LocalPreAuthorize), so after this request it holds none: the clear succeeded.
        return call_result.ClearCache(status="Accepted")
