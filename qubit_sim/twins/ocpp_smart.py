"""Smart charging on the charge point: reading profiles off the wire and keeping them installed.

:func:`profile_from_v16` and :func:`profile_from_v201` turn a received ``csChargingProfiles`` /
``chargingProfile`` (snake_case keys, as the ``ocpp`` library hands them over) into a
:class:`~qubit_sim.twins.ocpp_profiles.ChargingProfile` in simulation time. :class:`ProfileStore`
applies the installation rules (replacement, limits on stack level and periods, TxProfile only
during a transaction).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from qubit_sim.protocols.ocpp_common import iso_to_sim
from qubit_sim.twins.ocpp_profiles import (
    ChargingProfile,
    ProfileError,
    ProfileKind,
    ProfilePurpose,
    RateUnit,
    Recurrency,
    SchedulePeriod,
    TxContext,
)

__all__ = [
    "PURPOSE_NAMES",
    "ProfileStore",
    "profile_from_v16",
    "profile_from_v201",
]

#: Wire names of each purpose per version.
PURPOSE_NAMES: dict[str, dict[ProfilePurpose, str]] = {
    "1.6": {
        ProfilePurpose.STATION_MAX: "ChargePointMaxProfile",
        ProfilePurpose.TX_DEFAULT: "TxDefaultProfile",
        ProfilePurpose.TX: "TxProfile",
    },
    "2.0.1": {
        ProfilePurpose.STATION_MAX: "ChargingStationMaxProfile",
        ProfilePurpose.STATION_EXTERNAL: "ChargingStationExternalConstraints",
        ProfilePurpose.TX_DEFAULT: "TxDefaultProfile",
        ProfilePurpose.TX: "TxProfile",
    },
}


def _purpose(name: str, version: str) -> ProfilePurpose:
    for purpose, wire in PURPOSE_NAMES[version].items():
        if wire == name:
            return purpose
    raise ProfileError(f"chargingProfilePurpose {name!r} is not an OCPP {version} purpose")


def _time(value: Any, start_utc: datetime, field: str) -> float | None:
    if value is None:
        return None
    try:
        return iso_to_sim(start_utc, value)
    except ValueError as exc:
        raise ProfileError(f"{field}: {exc}") from None


def _periods(raw: Any) -> tuple[SchedulePeriod, ...]:
    periods = []
    for item in raw or []:
        phases = item.get("number_phases")
        periods.append(
            SchedulePeriod(
                start_s=int(item["start_period"]),
                limit=float(item["limit"]),
                number_phases=None if phases is None else int(phases),
            )
        )
    return tuple(periods)


def _build(
    data: Mapping[str, Any],
    schedule: Mapping[str, Any],
    *,
    profile_id: int,
    version: str,
    connector: int,
    now_s: float,
    start_utc: datetime,
) -> ChargingProfile:
    kind = ProfileKind(data["charging_profile_kind"])
    purpose = _purpose(data["charging_profile_purpose"], version)
    start_s = _time(schedule.get("start_schedule"), start_utc, "startSchedule")
    if kind is ProfileKind.RELATIVE and purpose in (
        ProfilePurpose.STATION_MAX,
        ProfilePurpose.STATION_EXTERNAL,
    ):
        # Nothing to be relative to at station level: the schedule starts on arrival.
        kind, start_s = ProfileKind.ABSOLUTE, now_s
    if start_s is None and kind is ProfileKind.ABSOLUTE:
        # An Absolute schedule without a start runs from the moment it is received.
        start_s = now_s
    recurrency = data.get("recurrency_kind")
    tx_id = data.get("transaction_id")
    min_rate = schedule.get("min_charging_rate")
    duration = schedule.get("duration")
    return ChargingProfile(
        profile_id=profile_id,
        stack_level=int(data["stack_level"]),
        purpose=purpose,
        unit=RateUnit(schedule["charging_rate_unit"]),
        periods=_periods(schedule.get("charging_schedule_period")),
        connector=connector,
        kind=kind,
        start_s=start_s,
        duration_s=None if duration is None else float(duration),
        recurrency=None if recurrency is None else Recurrency(recurrency),
        valid_from_s=_time(data.get("valid_from"), start_utc, "validFrom"),
        valid_to_s=_time(data.get("valid_to"), start_utc, "validTo"),
        transaction_id=None if tx_id is None else str(tx_id),
        min_rate=None if min_rate is None else float(min_rate),
    )


def profile_from_v16(
    data: Mapping[str, Any], connector: int, *, now_s: float, start_utc: datetime
) -> ChargingProfile:
    """A 1.6 ``csChargingProfiles`` object (snake_case keys) in simulation time.

    Raises:
        ProfileError: when the profile is inconsistent.
    """
    try:
        return _build(
            data,
            data["charging_schedule"],
            profile_id=int(data["charging_profile_id"]),
            version="1.6",
            connector=connector,
            now_s=now_s,
            start_utc=start_utc,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ProfileError(f"charging profile cannot be read: {exc!r}") from None


def profile_from_v201(
    data: Mapping[str, Any], evse_id: int, *, now_s: float, start_utc: datetime
) -> ChargingProfile:
    """A 2.0.1 ``chargingProfile`` object (snake_case keys) in simulation time.

    Only the first ``chargingSchedule`` is used (the others exist for ISO 15118 negotiation).

    Raises:
        ProfileError: when the profile is inconsistent.
    """
    try:
        schedules = data["charging_schedule"]
        return _build(
            data,
            schedules[0],
            profile_id=int(data["id"]),
            version="2.0.1",
            connector=evse_id,
            now_s=now_s,
            start_utc=start_utc,
        )
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise ProfileError(f"charging profile cannot be read: {exc!r}") from None


class ProfileStore:
    """The profiles installed on a charge point.

    Args:
        n_connectors: Connectors of the charge point (profiles go on 0..n).
        max_stack_level: Highest stack level accepted.
        max_periods: Most periods accepted in one schedule.
        max_profiles: Most profiles installed at once.
    """

    def __init__(
        self,
        n_connectors: int,
        max_stack_level: int = 8,
        max_periods: int = 48,
        max_profiles: int = 32,
    ) -> None:
        self._n = n_connectors
        self.max_stack_level = max_stack_level
        self.max_periods = max_periods
        self.max_profiles = max_profiles
        self._profiles: dict[int, ChargingProfile] = {}

    @property
    def profiles(self) -> tuple[ChargingProfile, ...]:
        """Installed profiles, by id."""
        return tuple(self._profiles[k] for k in sorted(self._profiles))

    def install(
        self, profile: ChargingProfile, transactions: Mapping[int, TxContext]
    ) -> tuple[bool, str]:
        """Install ``profile`` if the rules allow it.

        Args:
            profile: The profile.
            transactions: Running transaction per connector.

        Returns:
            ``(accepted, reason)``; ``reason`` explains a rejection.
        """
        if not 0 <= profile.connector <= self._n:
            return False, f"connector {profile.connector} does not exist (0..{self._n})"
        if profile.stack_level > self.max_stack_level:
            return False, f"stackLevel {profile.stack_level} above {self.max_stack_level}"
        if len(profile.periods) > self.max_periods:
            return False, f"{len(profile.periods)} periods, at most {self.max_periods}"
        if profile.purpose is ProfilePurpose.TX:
            tx = transactions.get(profile.connector)
            if tx is None:
                return False, f"no transaction on connector {profile.connector} for a TxProfile"
            if profile.transaction_id not in (None, tx.transaction_id):
                return False, (
                    f"transactionId {profile.transaction_id} is not the running transaction "
                    f"{tx.transaction_id}"
                )
        replaced = [
            pid
            for pid, other in self._profiles.items()
            if pid == profile.profile_id
            or (
                other.connector == profile.connector
                and other.purpose is profile.purpose
                and other.stack_level == profile.stack_level
            )
        ]
        if len(self._profiles) - len(replaced) >= self.max_profiles:
            return False, f"already {len(self._profiles)} profiles installed"
        for pid in replaced:
            del self._profiles[pid]
        self._profiles[profile.profile_id] = profile
        return True, ""

    def clear(
        self,
        *,
        profile_id: int | None = None,
        connector: int | None = None,
        purpose: ProfilePurpose | None = None,
        stack_level: int | None = None,
    ) -> int:
        """Remove matching profiles (an id match ignores the other criteria); returns how many."""
        if profile_id is not None:
            return 1 if self._profiles.pop(profile_id, None) is not None else 0
        doomed = [
            pid
            for pid, p in self._profiles.items()
            if (connector is None or p.connector == connector)
            and (purpose is None or p.purpose is purpose)
            and (stack_level is None or p.stack_level == stack_level)
        ]
        for pid in doomed:
            del self._profiles[pid]
        return len(doomed)

    def end_transaction(self, connector: int) -> None:
        """Drop the TxProfiles of ``connector`` (they live as long as the transaction)."""
        self.clear(connector=connector, purpose=ProfilePurpose.TX)
