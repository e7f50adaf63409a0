"""OCPP 2.0.1 session of the CSMS: answers a charging station, and sends it the CSMS's requests.

EVSE ids play the role of 1.6 connector ids in the CSMS's API.
"""

from __future__ import annotations

from typing import Any

from ocpp.exceptions import FormatViolationError
from ocpp.routing import on
from ocpp.v201 import ChargePoint, call, call_result
from ocpp.v201.enums import Action

from qubit_sim.protocols.ocpp_csms_session import CsmsSession, schedule_periods
from qubit_sim.protocols.ocpp_csms_state import CommandResult, CompositeSchedule

__all__ = ["Csms201Session"]


class Csms201Session(CsmsSession, ChargePoint):
    """One connected 2.0.1 charging station, seen from the CSMS."""

    format_error = FormatViolationError
    limit_profile_id_key = "id"

    # -- requests from the charging station ------------------------------------------------

    @on(Action.boot_notification)
    def on_boot_notification(
        self, charging_station: dict[str, Any], reason: str, **kwargs: Any
    ) -> Any:
        return call_result.BootNotification(
            **self._boot(charging_station.get("vendor_name", ""), charging_station.get("model", ""))
        )

    @on(Action.heartbeat)
    def on_heartbeat(self, **kwargs: Any) -> Any:
        return call_result.Heartbeat(current_time=self._heartbeat())

    @on(Action.status_notification)
    def on_status_notification(
        self,
        timestamp: str,
        connector_status: str,
        evse_id: int,
        connector_id: int,
        **kwargs: Any,
    ) -> Any:
        self.server.state.status_201(self.id, evse_id, connector_status)
        return call_result.StatusNotification()

    @on(Action.authorize)
    def on_authorize(self, id_token: dict[str, Any], **kwargs: Any) -> Any:
        status = self.server.authorize(str(id_token["id_token"]))
        return call_result.Authorize(id_token_info={"status": status})

    @on(Action.transaction_event)
    def on_transaction_event(
        self,
        event_type: str,
        timestamp: str,
        trigger_reason: str,
        seq_no: int,
        transaction_info: dict[str, Any],
        meter_value: list[dict[str, Any]] | None = None,
        offline: bool = False,
        evse: dict[str, Any] | None = None,
        id_token: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> Any:
        self._check_time(timestamp)
        token = None if id_token is None else str(id_token["id_token"])
        self.server.state.transaction_event(
            self.id,
            event_type=event_type,
            seq_no=seq_no,
            tx_id=str(transaction_info["transaction_id"]),
            evse_id=None if evse is None else int(evse["id"]),
            id_token=token,
            timestamp=timestamp,
            charging_state=transaction_info.get("charging_state"),
            stopped_reason=transaction_info.get("stopped_reason"),
            offline=bool(offline),
            samples=self._samples(meter_value),
        )
        if token is None:
            return call_result.TransactionEvent()
        return call_result.TransactionEvent(id_token_info={"status": self.server.authorize(token)})

    @on(Action.meter_values)
    def on_meter_values(
        self, evse_id: int, meter_value: list[dict[str, Any]], **kwargs: Any
    ) -> Any:
        record = self.server.state.active_transaction(self.id, evse_id)
        tx_id = None if record is None else record.transaction_id
        self.server.state.meter_values(self.id, evse_id, tx_id, self._samples(meter_value))
        return call_result.MeterValues()

    @on(Action.notify_report)
    def on_notify_report(
        self,
        request_id: int,
        generated_at: str,
        seq_no: int,
        report_data: list[dict[str, Any]] | None = None,
        tbc: bool = False,
        **kwargs: Any,
    ) -> Any:
        self._check_time(generated_at)
        self.server.state.notify_report(
            self.id, request_id, seq_no, generated_at, bool(tbc), report_data
        )
        return call_result.NotifyReport()

    @on(Action.data_transfer)
    def on_data_transfer(self, vendor_id: str, **kwargs: Any) -> Any:
        # The CSMS knows no vendor extensions: the vendor id is unknown to it.
        return call_result.DataTransfer(status="UnknownVendorId")

    # -- requests to the charging station ---------------------------------------------------

    def _clear_limit_call(self, profile_id: int) -> Any:
        return call.ClearChargingProfile(charging_profile_id=profile_id)

    def _limit_schedule(self, profile_id: int, schedule: dict[str, Any]) -> Any:
        return [{"id": profile_id, **schedule}]

    async def op_set_profile(self, connector: int, profile: dict[str, Any]) -> CommandResult:
        """SetChargingProfile with a 2.0.1 ``chargingProfile`` object (camelCase)."""
        return await self._command(
            call.SetChargingProfile(evse_id=connector, charging_profile=profile)
        )

    async def op_clear_profiles(
        self,
        profile_id: int | None,
        connector: int | None,
        purpose: str | None,
        stack_level: int | None,
    ) -> CommandResult:
        """ClearChargingProfile."""
        criteria = {
            k: v
            for k, v in (
                ("evseId", connector),
                ("chargingProfilePurpose", purpose),
                ("stackLevel", stack_level),
            )
            if v is not None
        }
        return await self._command(
            call.ClearChargingProfile(
                charging_profile_id=profile_id, charging_profile_criteria=criteria or None
            )
        )

    async def op_composite(
        self, connector: int, duration_s: int, unit: str | None
    ) -> CompositeSchedule | None:
        """GetCompositeSchedule; ``None`` when rejected."""
        result = await self.request(
            call.GetCompositeSchedule(
                duration=duration_s, evse_id=connector, charging_rate_unit=unit
            )
        )
        if result.status != "Accepted" or result.schedule is None:
            return None
        schedule = result.schedule
        return CompositeSchedule(
            connector=int(schedule["evse_id"]),
            start=str(schedule["schedule_start"]),
            duration_s=int(schedule["duration"]),
            unit=str(schedule["charging_rate_unit"]),
            periods=schedule_periods(schedule),
        )

    async def op_remote_start(self, connector: int | None, id_tag: str) -> CommandResult:
        """RequestStartTransaction."""
        return await self._command(
            call.RequestStartTransaction(
                id_token={"idToken": id_tag, "type": "Central"},
                remote_start_id=self.server.next_remote_start_id(),
                evse_id=connector,
            )
        )

    async def op_remote_stop(self, transaction_id: str) -> CommandResult:
        """RequestStopTransaction."""
        return await self._command(
            call.RequestStopTransaction(transaction_id=transaction_id), detail=transaction_id
        )

    async def op_availability(self, connector: int, operative: bool) -> CommandResult:
        """ChangeAvailability (``Scheduled`` counts as accepted)."""
        return await self._command(
            call.ChangeAvailability(
                operational_status="Operative" if operative else "Inoperative",
                evse={"id": connector} if connector else None,
            ),
            accepted=("Accepted", "Scheduled"),
        )

    async def op_base_report(self, report_base: str) -> CommandResult:
        """GetBaseReport with a fresh requestId (the result's ``detail``); the report itself
        arrives in NotifyReport messages, in ``state.charge_points[id].reports``."""
        request_id = self.server.next_request_id()
        return await self._command(
            call.GetBaseReport(request_id=request_id, report_base=report_base),
            detail=str(request_id),
        )

    async def op_reset(self, hard: bool) -> CommandResult:
        """Reset (2.0.1 knows Immediate and OnIdle; both kinds map to Immediate)."""
        return await self._command(call.Reset(type="Immediate"))

    async def op_trigger(self, message: str, connector: int | None) -> CommandResult:
        """TriggerMessage."""
        return await self._command(
            call.TriggerMessage(
                requested_message=message, evse={"id": connector} if connector else None
            )
        )

    @staticmethod
    def _split(key: str) -> tuple[str, str]:
        component, _, variable = key.partition(".")
        if not variable:
            raise ValueError(f"2.0.1 variable {key!r} must be written 'Component.Variable'")
        return component, variable

    async def op_get_config(self, keys: list[str] | None) -> dict[str, str | None]:
        """GetVariables for ``"Component.Variable"`` keys (all known ones need naming)."""
        if not keys:
            raise ValueError(
                "OCPP 2.0.1 GetVariables needs the variables to read, "
                "e.g. ['OCPPCommCtrlr.HeartbeatInterval']"
            )
        data = [
            {"component": {"name": c}, "variable": {"name": v}}
            for c, v in (self._split(k) for k in keys)
        ]
        result = await self.request(call.GetVariables(get_variable_data=data))
        return {
            f"{r['component']['name']}.{r['variable']['name']}": (
                r.get("attribute_value") if r["attribute_status"] == "Accepted" else None
            )
            for r in result.get_variable_result
        }

    async def op_set_config(self, key: str, value: str) -> CommandResult:
        """SetVariables for one ``"Component.Variable"``."""
        component, variable = self._split(key)
        result = await self.request(
            call.SetVariables(
                set_variable_data=[
                    {
                        "attributeValue": value,
                        "component": {"name": component},
                        "variable": {"name": variable},
                    }
                ]
            )
        )
        status = str(result.set_variable_result[0]["attribute_status"])
        return CommandResult(status == "Accepted", status)
