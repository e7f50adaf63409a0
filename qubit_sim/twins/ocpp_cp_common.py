"""What the charge point twin's 1.6 and 2.0.1 sides do alike, with small per-version hooks.

The ``ocpp`` library routes by decorated method, so each version keeps its own ``@on`` handlers;
they decode the version's field names and call the shared logic here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from types import ModuleType
from typing import TYPE_CHECKING, Any, ClassVar

from qubit_sim.protocols.ocpp_common import RobustRouting
from qubit_sim.protocols.ocpp_meter import MeterSample, encode_sampled_values
from qubit_sim.twins.ocpp_profiles import ChargingProfile, ProfileError, RateUnit
from qubit_sim.twins.ocpp_smart import PURPOSE_NAMES

if TYPE_CHECKING:
    from qubit_sim.twins.ocpp_cp import OcppChargePointTwin

__all__ = ["CodecBase", "TwinSession", "accepted_or_rejected"]

LOGGER = logging.getLogger("qubit_sim.twins.ocpp")

# Per version: the wire name of a profile purpose -> the purpose.
_PURPOSES = {
    version: {name: purpose for purpose, name in names.items()}
    for version, names in PURPOSE_NAMES.items()
}


def accepted_or_rejected(accepted: bool) -> str:
    """``"Accepted"`` or ``"Rejected"``."""
    return "Accepted" if accepted else "Rejected"


class CodecBase:
    """Shared part of the per-version message builders.

    Class attributes (per version):
        version: ``"1.6"`` or ``"2.0.1"``.
        calls: The version's ``ocpp`` ``call`` module.
    """

    version: ClassVar[str]
    calls: ClassVar[ModuleType]

    def __init__(self, vendor: str, model: str) -> None:
        self.vendor = vendor
        self.model = model

    def boot_result(self, result: Any) -> tuple[str, int]:
        """``(status, interval_s)``."""
        return str(result.status), int(result.interval)

    def heartbeat(self) -> Any:
        """Heartbeat."""
        return self.calls.Heartbeat()

    def _meter_value(self, sample: MeterSample, context: str) -> dict[str, Any]:
        return {
            "timestamp": sample.timestamp,
            "sampledValue": encode_sampled_values(sample, self.version, context),
        }


class TwinSession(RobustRouting):
    """Shared half of a twin's websocket session; a version subclass adds ``ChargePoint``.

    Class attributes (per version):
        version: ``"1.6"`` or ``"2.0.1"``.
        profile_decoder: Turns the version's charging profile object into a
            :class:`ChargingProfile` (``staticmethod(profile_from_v16)`` / ``..._v201``).
    """

    version: ClassVar[str]
    profile_decoder: Callable[..., ChargingProfile]
    id: str

    def __init__(self, twin: OcppChargePointTwin, connection: Any, timeout_s: float) -> None:
        # The next class in the MRO is the version's ``ChargePoint``.
        super().__init__(twin.identity, connection, response_timeout=timeout_s)  # type: ignore[call-arg]
        self.twin = twin

    def _profile(self, data: dict[str, Any], connector: int) -> ChargingProfile:
        return self.profile_decoder(
            data, connector, now_s=self.twin.now(), start_utc=self.twin.start_utc
        )

    def _set_profile(self, data: dict[str, Any], connector: int) -> str:
        """Install a profile; the SetChargingProfile status."""
        try:
            profile = self._profile(data, connector)
        except ProfileError as exc:
            LOGGER.info("%s: SetChargingProfile rejected: %s", self.id, exc)
            return "Rejected"
        return self.twin.cmd_set_profile(profile)

    def _clear_profiles(
        self,
        profile_id: int | None,
        connector: int | None,
        purpose: str | None,
        stack_level: int | None,
    ) -> str:
        """Remove matching profiles (``purpose`` as the version spells it); the status."""
        removed = self.twin.cmd_clear_profiles(
            profile_id=profile_id,
            connector=connector,
            purpose=None if purpose is None else _PURPOSES[self.version][purpose],
            stack_level=stack_level,
        )
        return "Accepted" if removed else "Unknown"

    def _composite(
        self, connector: int, duration: int, charging_rate_unit: str | None
    ) -> tuple[str, str, list[dict[str, Any]]] | None:
        """``(start, unit, chargingSchedulePeriod)`` of the composite schedule, or ``None``."""
        unit = None if charging_rate_unit is None else RateUnit(charging_rate_unit)
        result = self.twin.cmd_composite(connector, duration, unit)
        if result is None:
            return None
        start, rate_unit, periods = result
        return (
            start,
            str(rate_unit),
            [{"startPeriod": offset, "limit": limit} for offset, limit in periods],
        )

    def _profile_for(
        self, charging_profile: dict[str, Any] | None
    ) -> Callable[[int], ChargingProfile] | None:
        """Decoder of a remote start's profile for the connector it lands on."""
        if charging_profile is None:
            return None
        data = charging_profile

        def profile_for(connector: int) -> ChargingProfile:
            return self._profile(data, connector)

        return profile_for
