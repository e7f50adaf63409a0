"""OCPP 1.6J session of the CSMS: answers a charge point, and sends it the CSMS's requests."""

from __future__ import annotations

import asyncio
from typing import Any

from ocpp.exceptions import FormationViolationError
from ocpp.routing import on
from ocpp.v16 import ChargePoint, call, call_result
from ocpp.v16.enums import Action

from qubit_sim.protocols.ocpp_common import parse_iso
from qubit_sim.protocols.ocpp_csms_base import CsmsContext, CsmsSessionBase, limit_profile_id
from qubit_sim.protocols.ocpp_csms_state import CommandResult, CompositeSchedule
from qubit_sim.protocols.ocpp_meter import MeterSample, decode_sampled_values

__all__ = ["Csms16Session"]


def _samples(meter_value: list[dict[str, Any]] | None) -> list[MeterSample]:
    samples = []
    for item in meter_value or []:
        try:
            parse_iso(item["timestamp"])
            samples.append(decode_sampled_values(item["timestamp"], item["sampled_value"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise FormationViolationError(details={"cause": f"bad meter value: {exc}"}) from None
    return samples


def _check_time(timestamp: str) -> str:
    try:
        parse_iso(timestamp)
    except ValueError as exc:
        raise FormationViolationError(details={"cause": str(exc)}) from None
    return timestamp


class Csms16Session(CsmsSessionBase, ChargePoint):
    """One connected 1.6 charge point, seen from the CSMS."""

    def __init__(self, cp_id: str, connection: Any, server: CsmsContext) -> None:
        super().__init__(cp_id, connection, response_timeout=server.response_timeout_s)
        self.server = server
        self.ws = connection
        self.closed = asyncio.Event()

    # -- requests from the charge point ----------------------------------------------------

    @on(Action.boot_notification)
    def on_boot_notification(
        self, charge_point_vendor: str, charge_point_model: str, **kwargs: Any
    ) -> Any:
        self.server.state.boot(self.id, charge_point_vendor, charge_point_model)
        return call_result.BootNotification(
            current_time=self.server.now_iso(),
            interval=self.server.heartbeat_interval_s,
            status="Accepted",
        )

    @on(Action.heartbeat)
    def on_heartbeat(self, **kwargs: Any) -> Any:
        now = self.server.now_iso()
        self.server.state.charge_point(self.id).last_heartbeat = now
        return call_result.Heartbeat(current_time=now)

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
        _check_time(timestamp)
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
        _check_time(timestamp)
        self.server.state.stop_16(
            self.id,
            str(transaction_id),
            meter_stop,
            timestamp,
            reason,
            _samples(transaction_data),
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
        samples = _samples(meter_value)
        for sample in samples:
            self.server.state.journal.append((self.id, "MeterValues", tx_id, sample.timestamp))
        self.server.state.meter_values(self.id, connector_id, tx_id, samples)
        return call_result.MeterValues()

    @on(Action.data_transfer)
    def on_data_transfer(self, vendor_id: str, **kwargs: Any) -> Any:
        return call_result.DataTransfer(status="UnknownVendorId")

    # -- requests to the charge point -------------------------------------------------------

    async def op_set_limit(self, connector: int, p_w: float | None) -> CommandResult:
        """Install (or clear, ``p_w=None``) the CSMS's TxDefaultProfile on ``connector`` [W]."""
        pid = limit_profile_id(connector)
        if p_w is None:
            cleared = await self.request(call.ClearChargingProfile(id=pid))
            return CommandResult(True, str(cleared.status))
        profile = {
            "chargingProfileId": pid,
            "stackLevel": self.server.limit_stack_level,
            "chargingProfilePurpose": "TxDefaultProfile",
            # Relative with one open-ended period: in force at once, whatever the clocks say.
            "chargingProfileKind": "Relative",
            "chargingSchedule": {
                "chargingRateUnit": "W",
                "chargingSchedulePeriod": [{"startPeriod": 0, "limit": p_w}],
            },
        }
        return await self.op_set_profile(connector, profile)

    async def op_set_profile(self, connector: int, profile: dict[str, Any]) -> CommandResult:
        """SetChargingProfile with a 1.6 ``csChargingProfiles`` object (camelCase)."""
        result = await self.request(
            call.SetChargingProfile(connector_id=connector, cs_charging_profiles=profile)
        )
        return CommandResult(result.status == "Accepted", str(result.status))

    async def op_clear_profiles(
        self,
        profile_id: int | None,
        connector: int | None,
        purpose: str | None,
        stack_level: int | None,
    ) -> CommandResult:
        """ClearChargingProfile."""
        result = await self.request(
            call.ClearChargingProfile(
                id=profile_id,
                connector_id=connector,
                charging_profile_purpose=purpose,
                stack_level=stack_level,
            )
        )
        return CommandResult(result.status == "Accepted", str(result.status))

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
        periods = tuple(
            (int(p["start_period"]), float(p["limit"]))
            for p in schedule["charging_schedule_period"]
        )
        return CompositeSchedule(
            connector=connector,
            start=result.schedule_start or schedule.get("start_schedule", ""),
            duration_s=int(schedule.get("duration", duration_s)),
            unit=str(schedule["charging_rate_unit"]),
            periods=periods,
        )

    async def op_remote_start(self, connector: int | None, id_tag: str) -> CommandResult:
        """RemoteStartTransaction."""
        result = await self.request(
            call.RemoteStartTransaction(id_tag=id_tag, connector_id=connector)
        )
        return CommandResult(result.status == "Accepted", str(result.status))

    async def op_remote_stop(self, transaction_id: str) -> CommandResult:
        """RemoteStopTransaction."""
        result = await self.request(call.RemoteStopTransaction(transaction_id=int(transaction_id)))
        return CommandResult(result.status == "Accepted", str(result.status), transaction_id)

    async def op_availability(self, connector: int, operative: bool) -> CommandResult:
        """ChangeAvailability (``Scheduled`` counts as accepted)."""
        result = await self.request(
            call.ChangeAvailability(
                connector_id=connector, type="Operative" if operative else "Inoperative"
            )
        )
        return CommandResult(result.status in ("Accepted", "Scheduled"), str(result.status))

    async def op_reset(self, hard: bool) -> CommandResult:
        """Reset."""
        result = await self.request(call.Reset(type="Hard" if hard else "Soft"))
        return CommandResult(result.status == "Accepted", str(result.status))

    async def op_trigger(self, message: str, connector: int | None) -> CommandResult:
        """TriggerMessage."""
        result = await self.request(
            call.TriggerMessage(requested_message=message, connector_id=connector)
        )
        return CommandResult(result.status == "Accepted", str(result.status))

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
        result = await self.request(call.ChangeConfiguration(key=key, value=value))
        return CommandResult(result.status == "Accepted", str(result.status))
