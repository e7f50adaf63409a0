"""OCPP 1.6J session of the CSMS: answers a charge point, and sends it the CSMS's requests."""

from __future__ import annotations

from typing import Any

from ocpp.exceptions import FormationViolationError
from ocpp.routing import on
from ocpp.v16 import ChargePoint, call, call_result
from ocpp.v16.enums import Action

from qubit_sim.errors import ProtocolError
from qubit_sim.protocols.ocpp_csms_session import CsmsSession, schedule_periods
from qubit_sim.protocols.ocpp_csms_state import CommandResult, CompositeSchedule

__all__ = ["Csms16Session"]


class Csms16Session(CsmsSession, ChargePoint):
    """One connected 1.6 charge point, seen from the CSMS."""

    format_error = FormationViolationError
    limit_profile_id_key = "chargingProfileId"

    # -- requests from the charge point ----------------------------------------------------

    @on(Action.boot_notification)
    def on_boot_notification(
        self, charge_point_vendor: str, charge_point_model: str, **kwargs: Any
    ) -> Any:
        return call_result.BootNotification(**self._boot(charge_point_vendor, charge_point_model))

    @on(Action.heartbeat)
    def on_heartbeat(self, **kwargs: Any) -> Any:
        return call_result.Heartbeat(current_time=self._heartbeat())

    @on(Action.status_notification)
    def on_status_notification(
        self, connector_id: int, error_code: str, status: str, **kwargs: Any
    ) -> Any:
        self.server.state.status_16(self.id, connector_id, status, error_code)
        return call_result.StatusNotification()

    @on(Action.authorize)
    def on_authorize(self, id_tag: str, **kwargs: Any) -> Any:
        return call_result.Authorize(id_tag_info={"status": self.server.authorize(id_tag)})

    @on(Action.start_transaction)
    def on_start_transaction(
        self, connector_id: int, id_tag: str, meter_start: int, timestamp: str, **kwargs: Any
    ) -> Any:
        self._check_time(timestamp)
        tx_id = self.server.state.start_16(self.id, connector_id, id_tag, meter_start, timestamp)
        return call_result.StartTransaction(
            transaction_id=int(tx_id), id_tag_info={"status": self.server.authorize(id_tag)}
        )

    @on(Action.stop_transaction)
    def on_stop_transaction(
        self,
        meter_stop: int,
        timestamp: str,
        transaction_id: int,
        reason: str | None = None,
        transaction_data: list[dict[str, Any]] | None = None,
        **kwargs: Any,
    ) -> Any:
        self._check_time(timestamp)
        self.server.state.stop_16(
            self.id,
            str(transaction_id),
            meter_stop,
            timestamp,
            reason,
            self._samples(transaction_data),
        )
        return call_result.StopTransaction(id_tag_info={"status": "Accepted"})

    @on(Action.meter_values)
    def on_meter_values(
        self,
        connector_id: int,
        meter_value: list[dict[str, Any]],
        transaction_id: int | None = None,
        **kwargs: Any,
    ) -> Any:
        tx_id = None if transaction_id is None else str(transaction_id)
        samples = self._samples(meter_value)
        for sample in samples:
            self.server.state.journal.append((self.id, "MeterValues", tx_id, sample.timestamp))
        self.server.state.meter_values(self.id, connector_id, tx_id, samples)
        return call_result.MeterValues()

    @on(Action.data_transfer)
    def on_data_transfer(self, vendor_id: str, **kwargs: Any) -> Any:
        return call_result.DataTransfer(status="UnknownVendorId")

    # -- requests to the charge point -------------------------------------------------------

    def _clear_limit_call(self, profile_id: int) -> Any:
        return call.ClearChargingProfile(id=profile_id)

    def _limit_schedule(self, profile_id: int, schedule: dict[str, Any]) -> Any:
        return schedule

    async def op_set_profile(self, connector: int, profile: dict[str, Any]) -> CommandResult:
        """SetChargingProfile with a 1.6 ``csChargingProfiles`` object (camelCase)."""
        return await self._command(
            call.SetChargingProfile(connector_id=connector, cs_charging_profiles=profile)
        )

    async def op_clear_profiles(
        self,
        profile_id: int | None,
        connector: int | None,
        purpose: str | None,
        stack_level: int | None,
    ) -> CommandResult:
        """ClearChargingProfile."""
        return await self._command(
            call.ClearChargingProfile(
                id=profile_id,
                connector_id=connector,
                charging_profile_purpose=purpose,
                stack_level=stack_level,
            )
        )

    async def op_composite(
        self, connector: int, duration_s: int, unit: str | None
    ) -> CompositeSchedule | None:
        """GetCompositeSchedule; ``None`` when rejected."""
        result = await self.request(
            call.GetCompositeSchedule(
                connector_id=connector, duration=duration_s, charging_rate_unit=unit
            )
        )
        if result.status != "Accepted" or result.charging_schedule is None:
            return None
        schedule = result.charging_schedule
        return CompositeSchedule(
            connector=connector,
            start=result.schedule_start or schedule.get("start_schedule", ""),
            duration_s=int(schedule.get("duration", duration_s)),
            unit=str(schedule["charging_rate_unit"]),
            periods=schedule_periods(schedule),
        )

    async def op_remote_start(self, connector: int | None, id_tag: str) -> CommandResult:
        """RemoteStartTransaction."""
        return await self._command(
            call.RemoteStartTransaction(id_tag=id_tag, connector_id=connector)
        )

    async def op_remote_stop(self, transaction_id: str) -> CommandResult:
        """RemoteStopTransaction."""
        return await self._command(
            call.RemoteStopTransaction(transaction_id=int(transaction_id)),
            detail=transaction_id,
        )

    async def op_availability(self, connector: int, operative: bool) -> CommandResult:
        """ChangeAvailability (``Scheduled`` counts as accepted)."""
        return await self._command(
            call.ChangeAvailability(
                connector_id=connector, type="Operative" if operative else "Inoperative"
            ),
            accepted=("Accepted", "Scheduled"),
        )

    async def op_base_report(self, report_base: str) -> CommandResult:
        """1.6 has no device model reports."""
        raise ProtocolError(
            f"charge point {self.id!r} speaks OCPP 1.6, which has no GetBaseReport; "
            "read its configuration with get_configuration instead"
        )

    async def op_reset(self, hard: bool) -> CommandResult:
        """Reset."""
        return await self._command(call.Reset(type="Hard" if hard else "Soft"))

    async def op_trigger(self, message: str, connector: int | None) -> CommandResult:
        """TriggerMessage."""
        return await self._command(
            call.TriggerMessage(requested_message=message, connector_id=connector)
        )

    async def op_get_config(self, keys: list[str] | None) -> dict[str, str | None]:
        """GetConfiguration: ``{key: value}`` (unknown keys map to ``None``)."""
        result = await self.request(call.GetConfiguration(key=keys))
        values: dict[str, str | None] = {
            item["key"]: item.get("value") for item in result.configuration_key or []
        }
        values.update(dict.fromkeys(result.unknown_key or []))
        return values

    async def op_set_config(self, key: str, value: str) -> CommandResult:
        """ChangeConfiguration."""
        return await self._command(call.ChangeConfiguration(key=key, value=value))
