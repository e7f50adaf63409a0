"""What the CSMS's 1.6 and 2.0.1 sessions do alike, with small per-version hooks.

The ``ocpp`` library routes by decorated method, so each version keeps its own ``@on`` handlers;
they decode the version's field names and call the shared logic here.
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

from ocpp.exceptions import OCPPError

from qubit_sim.protocols.ocpp_common import parse_iso
from qubit_sim.protocols.ocpp_csms_base import CsmsContext, CsmsSessionBase, limit_profile_id
from qubit_sim.protocols.ocpp_csms_state import CommandResult
from qubit_sim.protocols.ocpp_meter import MeterSample, decode_sampled_values

__all__ = ["CsmsSession", "schedule_periods"]


def schedule_periods(schedule: dict[str, Any]) -> tuple[tuple[int, float], ...]:
    """``((startPeriod [s], limit), ...)`` of a decoded (snake_case) charging schedule."""
    return tuple(
        (int(p["start_period"]), float(p["limit"])) for p in schedule["charging_schedule_period"]
    )


class CsmsSession(CsmsSessionBase):
    """Shared half of a CSMS session; a version subclass adds ``ChargePoint`` and the hooks.

    Class attributes (per version):
        format_error: The CALLERROR class of a malformed payload in that version.
        limit_profile_id_key: Field that carries a charging profile's id.
    """

    format_error: ClassVar[type[OCPPError]]
    limit_profile_id_key: ClassVar[str]

    def __init__(self, cp_id: str, connection: Any, server: CsmsContext) -> None:
        # The next class in the MRO is the version's ``ChargePoint``.
        super().__init__(cp_id, connection, response_timeout=server.response_timeout_s)  # type: ignore[call-arg]
        self.server = server
        self.ws = connection
        self.closed = asyncio.Event()

    # -- decoding requests from the charge point -------------------------------------------

    def _samples(self, meter_value: list[dict[str, Any]] | None) -> list[MeterSample]:
        samples = []
        for item in meter_value or []:
            try:
                parse_iso(item["timestamp"])
                samples.append(decode_sampled_values(item["timestamp"], item["sampled_value"]))
            except (KeyError, TypeError, ValueError) as exc:
                raise self.format_error(details={"cause": f"bad meter value: {exc}"}) from None
        return samples

    def _check_time(self, timestamp: str) -> str:
        try:
            parse_iso(timestamp)
        except ValueError as exc:
            raise self.format_error(details={"cause": str(exc)}) from None
        return timestamp

    def _boot(self, vendor: str, model: str) -> dict[str, Any]:
        """Record the boot; the BootNotification answer's fields."""
        self.server.state.boot(self.id, vendor, model)
        return {
            "current_time": self.server.now_iso(),
            "interval": self.server.heartbeat_interval_s,
            "status": "Accepted",
        }

    def _heartbeat(self) -> str:
        """Record the heartbeat; the current time to answer with."""
        now = self.server.now_iso()
        self.server.state.charge_point(self.id).last_heartbeat = now
        return now

    # -- requests to the charge point -------------------------------------------------------

    async def _command(
        self, payload: Any, accepted: tuple[str, ...] = ("Accepted",), detail: str = ""
    ) -> CommandResult:
        """Send ``payload``; the answer's ``status`` decides acceptance."""
        result = await self.request(payload)
        return CommandResult(result.status in accepted, str(result.status), detail)

    def _clear_limit_call(self, profile_id: int) -> Any:
        """ClearChargingProfile of the limit profile ``profile_id`` (per version)."""
        raise NotImplementedError

    def _limit_schedule(self, profile_id: int, schedule: dict[str, Any]) -> Any:
        """The ``chargingSchedule`` field that carries ``schedule`` (per version)."""
        raise NotImplementedError

    async def op_set_profile(self, connector: int, profile: dict[str, Any]) -> CommandResult:
        """SetChargingProfile with the version's charging profile object (per version)."""
        raise NotImplementedError

    async def op_set_limit(self, connector: int, p_w: float | None) -> CommandResult:
        """Install (or clear, ``p_w=None``) the CSMS's TxDefaultProfile on ``connector`` [W]."""
        pid = limit_profile_id(connector)
        if p_w is None:
            cleared = await self.request(self._clear_limit_call(pid))
            return CommandResult(True, str(cleared.status))
        schedule = {
            "chargingRateUnit": "W",
            "chargingSchedulePeriod": [{"startPeriod": 0, "limit": p_w}],
        }
        profile = {
            self.limit_profile_id_key: pid,
            "stackLevel": self.server.limit_stack_level,
            "chargingProfilePurpose": "TxDefaultProfile",
            # Relative with one open-ended period: in force at once, whatever the clocks say.
            "chargingProfileKind": "Relative",
            "chargingSchedule": self._limit_schedule(pid, schedule),
        }
        return await self.op_set_profile(connector, profile)
