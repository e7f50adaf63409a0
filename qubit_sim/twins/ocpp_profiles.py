"""Charging profiles and the composite schedule, as pure functions of simulated time.

The rules follow OCPP smart charging (1.6 section 3.13, 2.0.1 K01/K08):

* Within one purpose, the valid profile with the highest ``stack_level`` that has an active
  period at time ``t`` sets the limit; a profile whose schedule has ended (``duration``) lets the
  next stack level through. At equal stack level a connector-specific profile beats one on
  connector 0.
* A ``TxProfile`` (for the connector's running transaction) overrules every ``TxDefaultProfile``.
* Station profiles (``ChargePointMaxProfile`` / ``ChargingStationMaxProfile`` and 2.0.1 external
  constraints) cap the whole station; the composite of a connector is the lower of its own limit
  and the station limit.
* Limits in A become kW as ``A * V * phases`` with the phases of the period (capped by the
  connector's phases) and the connector's measured voltage.

Times are simulation seconds; a profile's timestamps are converted on arrival.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from qubit_sim.errors import ProtocolError

__all__ = [
    "ChargingProfile",
    "Electrical",
    "ProfileError",
    "ProfileKind",
    "ProfilePurpose",
    "RateUnit",
    "Recurrency",
    "SchedulePeriod",
    "TxContext",
    "composite_limit_kw",
    "composite_schedule",
    "connector_limit_kw",
    "from_kw",
    "share_station_limit",
    "station_limit_kw",
    "to_kw",
]


class ProfilePurpose(StrEnum):
    """Purpose of a profile (version-neutral names)."""

    STATION_MAX = "StationMax"
    STATION_EXTERNAL = "StationExternal"
    TX_DEFAULT = "TxDefault"
    TX = "Tx"


class ProfileKind(StrEnum):
    """How a profile's schedule is anchored in time."""

    ABSOLUTE = "Absolute"
    RECURRING = "Recurring"
    RELATIVE = "Relative"


class RateUnit(StrEnum):
    """Unit of a schedule's limits."""

    A = "A"
    W = "W"


class Recurrency(StrEnum):
    """Repeat period of a recurring profile."""

    DAILY = "Daily"
    WEEKLY = "Weekly"


_RECURRENCE_S = {Recurrency.DAILY: 86400.0, Recurrency.WEEKLY: 7 * 86400.0}
_STATION = (ProfilePurpose.STATION_MAX, ProfilePurpose.STATION_EXTERNAL)


class ProfileError(ProtocolError):
    """A charging profile is inconsistent (the charge point rejects it)."""


@dataclass(frozen=True)
class SchedulePeriod:
    """One step of a schedule.

    Attributes:
        start_s: Offset from the schedule start [s].
        limit: Limit in the schedule's unit [A per phase or W].
        number_phases: Phases the limit assumes (A only); ``None`` = all of the connector's.
    """

    start_s: int
    limit: float
    number_phases: int | None = None


@dataclass(frozen=True)
class Electrical:
    """What an A limit is converted with: phases [-] and phase-to-neutral voltage [V]."""

    phases: int = 3
    voltage_v: float = 230.0


@dataclass(frozen=True)
class TxContext:
    """The transaction running on a connector: its id and start [s]."""

    transaction_id: str
    start_s: float


@dataclass(frozen=True)
class ChargingProfile:
    """A charging profile in simulation time.

    Attributes:
        profile_id: Profile id (unique on the charge point).
        stack_level: Precedence within its purpose; higher wins.
        purpose: What the profile limits.
        unit: Unit of the limits.
        periods: Schedule periods, ``start_s`` strictly increasing from 0.
        connector: Connector (EVSE) it is installed on; 0 = the whole station.
        kind: Absolute, Recurring or Relative.
        start_s: Schedule start [s] (Absolute and Recurring).
        duration_s: Schedule length [s]; ``None`` = open-ended.
        recurrency: Daily or Weekly (Recurring only).
        valid_from_s: Start of validity [s].
        valid_to_s: End of validity [s] (exclusive).
        transaction_id: Transaction a TxProfile belongs to.
        min_rate: Minimum charging rate in ``unit`` (informative).
    """

    profile_id: int
    stack_level: int
    purpose: ProfilePurpose
    unit: RateUnit
    periods: tuple[SchedulePeriod, ...]
    connector: int = 0
    kind: ProfileKind = ProfileKind.ABSOLUTE
    start_s: float | None = None
    duration_s: float | None = None
    recurrency: Recurrency | None = None
    valid_from_s: float | None = None
    valid_to_s: float | None = None
    transaction_id: str | None = None
    min_rate: float | None = None

    def __post_init__(self) -> None:
        name = f"charging profile {self.profile_id}"
        if self.stack_level < 0:
            raise ProfileError(f"{name}: stackLevel {self.stack_level} must be >= 0")
        if not self.periods:
            raise ProfileError(f"{name}: the schedule has no periods")
        if self.periods[0].start_s != 0:
            raise ProfileError(
                f"{name}: the first period starts at {self.periods[0].start_s} s; it must be 0"
            )
        starts = [p.start_s for p in self.periods]
        if any(b <= a for a, b in zip(starts, starts[1:], strict=False)):
            raise ProfileError(f"{name}: period starts {starts} must strictly increase")
        for period in self.periods:
            if not math.isfinite(period.limit) or period.limit < 0.0:
                raise ProfileError(f"{name}: limit {period.limit} must be a number >= 0")
            if period.number_phases is not None and period.number_phases not in (1, 2, 3):
                raise ProfileError(f"{name}: numberPhases {period.number_phases} not in 1..3")
        if self.duration_s is not None and self.duration_s <= 0:
            raise ProfileError(f"{name}: duration {self.duration_s} s must be positive")
        if self.kind is ProfileKind.RECURRING and self.recurrency is None:
            raise ProfileError(f"{name}: a Recurring profile needs recurrencyKind")
        if self.kind is not ProfileKind.RELATIVE and self.start_s is None:
            raise ProfileError(f"{name}: an {self.kind} profile needs a schedule start")
        if self.purpose in _STATION and self.kind is ProfileKind.RELATIVE:
            raise ProfileError(
                f"{name}: a station profile cannot be Relative (it has no transaction to start "
                "from); make it Absolute"
            )
        if self.purpose in _STATION and self.connector != 0:
            raise ProfileError(f"{name}: a station profile must be set on connector 0")
        if self.purpose is ProfilePurpose.TX and self.connector == 0:
            raise ProfileError(f"{name}: a TxProfile must be set on a connector, not 0")

    def _valid(self, t_s: float) -> bool:
        if self.valid_from_s is not None and t_s < self.valid_from_s:
            return False
        return self.valid_to_s is None or t_s < self.valid_to_s

    def schedule_start(self, t_s: float, relative_start_s: float) -> float | None:
        """Start [s] of the occurrence of the schedule that covers ``t_s`` (if any)."""
        if self.kind is ProfileKind.RELATIVE:
            return relative_start_s
        assert self.start_s is not None
        if self.kind is ProfileKind.ABSOLUTE:
            return self.start_s
        assert self.recurrency is not None
        if t_s < self.start_s:
            return None
        every = _RECURRENCE_S[self.recurrency]
        return self.start_s + math.floor((t_s - self.start_s) / every) * every

    def period_at(self, t_s: float, relative_start_s: float) -> SchedulePeriod | None:
        """The period in force at ``t_s`` [s], or ``None`` when the profile is silent then.

        Args:
            t_s: Time [s].
            relative_start_s: Start [s] a Relative profile is anchored to (the transaction start).
        """
        if not self._valid(t_s):
            return None
        start = self.schedule_start(t_s, relative_start_s)
        if start is None:
            return None
        offset = t_s - start
        if offset < 0:
            return None
        length = self.duration_s
        if self.recurrency is not None and self.kind is ProfileKind.RECURRING:
            every = _RECURRENCE_S[self.recurrency]
            length = every if length is None else min(length, every)
        if length is not None and offset >= length:
            return None
        current = None
        for period in self.periods:
            if period.start_s <= offset:
                current = period
            else:
                break
        return current

    def breakpoints(self, t0_s: float, t1_s: float, relative_start_s: float) -> set[float]:
        """Instants in ``(t0_s, t1_s)`` [s] at which this profile's output may change."""
        points = {self.valid_from_s, self.valid_to_s}
        if self.kind is ProfileKind.RECURRING:
            assert self.recurrency is not None and self.start_s is not None
            every = _RECURRENCE_S[self.recurrency]
            first = max(0, math.floor((t0_s - self.start_s) / every))
            starts = []
            k = first
            while self.start_s + k * every < t1_s:
                starts.append(self.start_s + k * every)
                k += 1
        else:
            start = self.schedule_start(t0_s, relative_start_s)
            starts = [] if start is None else [start]
        for start in starts:
            points.update(start + p.start_s for p in self.periods)
            if self.duration_s is not None:
                points.add(start + self.duration_s)
        return {p for p in points if p is not None and t0_s < p < t1_s}


def to_kw(limit: float, unit: RateUnit, number_phases: int | None, electrical: Electrical) -> float:
    """A limit in ``unit`` as power [kW] (A: ``limit * V * phases``)."""
    if unit is RateUnit.W:
        return limit / 1000.0
    phases = electrical.phases if number_phases is None else min(number_phases, electrical.phases)
    return limit * electrical.voltage_v * phases / 1000.0


def from_kw(p_kw: float, unit: RateUnit, electrical: Electrical) -> float:
    """Power [kW] expressed in ``unit`` (A per phase over all the connector's phases)."""
    if unit is RateUnit.W:
        return p_kw * 1000.0
    return p_kw * 1000.0 / (electrical.voltage_v * electrical.phases)


def _winner(
    profiles: Iterable[ChargingProfile], t_s: float, relative_start_s: float
) -> tuple[ChargingProfile, SchedulePeriod] | None:
    best: tuple[ChargingProfile, SchedulePeriod] | None = None
    best_key: tuple[int, bool, int] | None = None
    for profile in profiles:
        period = profile.period_at(t_s, relative_start_s)
        if period is None:
            continue
        key = (profile.stack_level, profile.connector > 0, profile.profile_id)
        if best_key is None or key > best_key:
            best, best_key = (profile, period), key
    return best


def _own_profiles(
    profiles: Iterable[ChargingProfile], connector: int, tx: TxContext | None
) -> tuple[list[ChargingProfile], list[ChargingProfile]]:
    tx_profiles: list[ChargingProfile] = []
    defaults: list[ChargingProfile] = []
    for profile in profiles:
        if profile.purpose is ProfilePurpose.TX:
            if (
                tx is not None
                and profile.connector == connector
                and profile.transaction_id in (None, tx.transaction_id)
            ):
                tx_profiles.append(profile)
        elif profile.purpose is ProfilePurpose.TX_DEFAULT and profile.connector in (0, connector):
            defaults.append(profile)
    return tx_profiles, defaults


def _own_limit(
    profiles: Iterable[ChargingProfile],
    connector: int,
    t_s: float,
    anchor_s: float,
    tx: TxContext | None,
    electrical: Electrical,
) -> float | None:
    tx_profiles, defaults = _own_profiles(profiles, connector, tx)
    win = _winner(tx_profiles, t_s, anchor_s) or _winner(defaults, t_s, anchor_s)
    if win is None:
        return None
    profile, period = win
    return to_kw(period.limit, profile.unit, period.number_phases, electrical)


def connector_limit_kw(
    profiles: Iterable[ChargingProfile],
    connector: int,
    t_s: float,
    *,
    tx: TxContext | None,
    electrical: Electrical,
) -> float | None:
    """The connector's own limit [kW] at ``t_s`` (TxProfile, else TxDefaultProfile), or None.

    Relative profiles are anchored at the transaction start, or at ``t_s`` without one.
    """
    anchor = t_s if tx is None else tx.start_s
    return _own_limit(profiles, connector, t_s, anchor, tx, electrical)


def station_limit_kw(
    profiles: Iterable[ChargingProfile], t_s: float, *, electrical: Electrical
) -> float | None:
    """The station-wide limit [kW] at ``t_s`` (the lowest of its station purposes), or None."""
    limits = []
    profiles = list(profiles)
    for purpose in _STATION:
        win = _winner((p for p in profiles if p.purpose is purpose), t_s, t_s)
        if win is not None:
            profile, period = win
            limits.append(to_kw(period.limit, profile.unit, period.number_phases, electrical))
    return min(limits) if limits else None


def _composite(
    profiles: list[ChargingProfile],
    connector: int,
    t_s: float,
    anchor_s: float,
    tx: TxContext | None,
    electrical: Electrical,
    station_electrical: Electrical | None,
) -> float | None:
    station = station_limit_kw(profiles, t_s, electrical=station_electrical or electrical)
    if connector == 0:
        return station
    own = _own_limit(profiles, connector, t_s, anchor_s, tx, electrical)
    limits = [v for v in (own, station) if v is not None]
    return min(limits) if limits else None


def composite_limit_kw(
    profiles: Iterable[ChargingProfile],
    connector: int,
    t_s: float,
    *,
    tx: TxContext | None,
    electrical: Electrical,
    station_electrical: Electrical | None = None,
) -> float | None:
    """Composite limit [kW] of ``connector`` at ``t_s`` (connector 0: the station limit)."""
    anchor = t_s if tx is None else tx.start_s
    return _composite(list(profiles), connector, t_s, anchor, tx, electrical, station_electrical)


def composite_schedule(
    profiles: Iterable[ChargingProfile],
    connector: int,
    start_s: float,
    duration_s: float,
    *,
    tx: TxContext | None,
    electrical: Electrical,
    default_kw: float,
    station_electrical: Electrical | None = None,
) -> list[tuple[int, float]]:
    """The composite schedule of ``connector`` over ``[start_s, start_s + duration_s)``.

    Relative profiles are anchored at the transaction start, or at ``start_s`` without one.

    Returns:
        ``(offset_s, limit_kw)`` steps, offsets from ``start_s`` [s] starting at 0, consecutive
        limits different. Where no profile limits the connector, ``default_kw`` applies, and
        no step exceeds it.
    """
    if duration_s <= 0:
        raise ValueError(f"composite schedule duration {duration_s} s must be positive")
    profiles = list(profiles)
    end_s = start_s + duration_s
    anchor = start_s if tx is None else tx.start_s
    points = {start_s}
    for profile in profiles:
        points |= profile.breakpoints(start_s, end_s, anchor)
    steps: list[tuple[int, float]] = []
    for t_s in sorted(points):
        limit = _composite(profiles, connector, t_s, anchor, tx, electrical, station_electrical)
        value = default_kw if limit is None else min(limit, default_kw)
        offset = int(round(t_s - start_s))
        if steps and steps[-1][0] == offset:
            steps[-1] = (offset, value)
        elif not steps or steps[-1][1] != value:
            steps.append((offset, value))
    return steps


def share_station_limit(demands_kw: Mapping[int, float], station_kw: float) -> dict[int, float]:
    """Split a station limit [kW] over connectors by water-filling.

    Each connector gets at most its demand; connectors that want less than an equal share keep
    their demand and the rest is shared equally among the others. The result sums to at most
    ``station_kw`` and never exceeds a demand.
    """
    if station_kw < 0:
        raise ValueError(f"station limit {station_kw} kW must be >= 0")
    if sum(demands_kw.values()) <= station_kw:
        return dict(demands_kw)
    shares: dict[int, float] = {}
    remaining = station_kw
    ordered = sorted(demands_kw.items(), key=lambda item: (item[1], item[0]))
    for index, (connector, demand) in enumerate(ordered):
        share = remaining / (len(ordered) - index)
        given = min(max(demand, 0.0), share)
        shares[connector] = given
        remaining -= given
    return shares
