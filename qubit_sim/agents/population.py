"""Agent-based EV population on mesa: one driver per vehicle, one model step per local day.

Every driver owns a random stream derived from the population seed and its vehicle number, so
same seed gives the same sessions, a different seed different ones, and adding vehicles leaves the
sessions of the existing ones unchanged. Each day the driver may start one session following its
:class:`~qubit_sim.agents.behaviour.Behaviour` (weekday or weekend pattern, local time of the
site's IANA time zone); a day whose arrival falls before the driver's previous departure is
skipped (the car is still plugged in).

The first simulated days lie before the scenario start, so vehicles that would already be
plugged in at the start are present: their session starts at 0 with the energy need they arrived
with (``plugged_in_at_start=False`` drops them instead). Departures after the scenario end are
kept as drawn.
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import mesa
import numpy as np

from qubit_sim.agents.behaviour import (
    Behaviour,
    DayPattern,
    VehicleType,
    available_behaviours,
    behaviour_preset,
    default_vehicle_types,
)
from qubit_sim.agents.csv_replay import to_utc_timestamp
from qubit_sim.agents.sessions import SessionTable
from qubit_sim.errors import QubitSimError

__all__ = [
    "Behaviour",
    "DayPattern",
    "Driver",
    "EvPopulation",
    "SessionTable",
    "VehicleType",
    "available_behaviours",
    "behaviour_preset",
    "default_vehicle_types",
]


class Driver(mesa.Agent):
    """One vehicle and its driver.

    Attributes:
        index: Vehicle number 0..n-1.
        vehicle_id: ``"ev_<index>"``, zero-padded.
        vehicle: Its :class:`VehicleType`.
        home_charger: Own charger index, or -1.
        busy_until_s: Departure of its latest session [s since scenario start].
    """

    model: EvPopulation

    def __init__(
        self,
        model: EvPopulation,
        index: int,
        vehicle_id: str,
        vehicle_types: tuple[VehicleType, ...],
        home_charger: int,
        seed: int,
    ) -> None:
        super().__init__(model)
        self.index = index
        self.vehicle_id = vehicle_id
        self.home_charger = home_charger
        self.stream = np.random.Generator(
            np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(index,)))
        )
        shares = np.array([v.share for v in vehicle_types], dtype=float)
        pick = int(
            np.searchsorted(np.cumsum(shares / shares.sum())[:-1], self.stream.random(), "right")
        )
        self.vehicle = vehicle_types[pick]
        self.busy_until_s = -(2**62)

    def step(self) -> None:
        """Decide today's session, if any, and hand it to the model."""
        model = self.model
        day = model.current_day
        plugs, arrival_h, departure_h, energy_kwh, arrival_soc = model.behaviour.pattern(
            day.weekday()
        ).draw(self.stream)
        if not plugs:
            return
        arrival_s = model.local_to_sim_s(day, arrival_h)
        departure_s = model.local_to_sim_s(day, departure_h)
        if arrival_s < self.busy_until_s:
            return
        # Plugged in whether or not the scenario window sees the stay.
        self.busy_until_s = departure_s
        if departure_s <= 0 or arrival_s >= model.duration_s:
            return
        if arrival_s < 0 and not model.plugged_in_at_start:
            return
        capacity = self.vehicle.battery_kwh
        model.record(
            self,
            max(arrival_s, 0),
            departure_s,
            min(energy_kwh, max(model.target_soc - arrival_soc, 0.0) * capacity),
            arrival_soc,
        )


class EvPopulation(mesa.Model):
    """Synthetic EV drivers producing charging sessions for a scenario.

    Args:
        n_vehicles: Number of vehicles (one :class:`Driver` each).
        vehicle_types: Vehicle mix; default: the shipped types of the behaviour's fleet.
        behaviour: Preset name (``workplace``, ``residential``, ``depot``) or a
            :class:`Behaviour`.
        seed: Non-negative integer seed.
        tz: IANA time zone of the site; behaviour hours are local wall-clock hours.
        start_utc: Scenario start, tz-aware (``datetime`` or ISO string with offset).
        duration_s: Scenario length [s].
        n_chargers: Number of chargers for dedicated assignment (default ``n_vehicles``).
        dedicated: Whether vehicle ``i`` uses charger ``i % n_chargers`` (default: the
            behaviour's own setting: True for residential and depot); otherwise -1 (any free).
        plugged_in_at_start: Keep sessions that began before the start (clamped to 0).
        target_soc: SOC drivers stop charging at: the energy need is capped at
            ``(target_soc - arrival_soc) * battery_kwh`` (0 if they arrive above it).
    """

    def __init__(
        self,
        n_vehicles: int,
        vehicle_types: tuple[VehicleType, ...] | list[VehicleType] | None = None,
        behaviour: str | Behaviour = "workplace",
        seed: int = 0,
        tz: str = "UTC",
        start_utc: datetime | str = "2025-01-06T00:00:00Z",
        duration_s: int = 7 * 86400,
        n_chargers: int | None = None,
        dedicated: bool | None = None,
        plugged_in_at_start: bool = True,
        target_soc: float = 1.0,
    ) -> None:
        if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
            raise QubitSimError(f"seed must be a non-negative integer, got {seed!r}")
        super().__init__(seed=int(seed))
        if n_vehicles < 0:
            raise QubitSimError(f"n_vehicles must be >= 0, got {n_vehicles}")
        if not 0.0 < target_soc <= 1.0:
            raise QubitSimError(f"target_soc must be within (0, 1], got {target_soc}")
        if duration_s <= 0:
            raise QubitSimError(f"duration_s must be > 0, got {duration_s}")
        try:
            self.zone = ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise QubitSimError(
                f"unknown time zone {tz!r}; use an IANA name such as 'Europe/Amsterdam'"
            ) from exc
        self.behaviour = behaviour_preset(behaviour) if isinstance(behaviour, str) else behaviour
        types = tuple(vehicle_types or default_vehicle_types(self.behaviour.fleet))
        if not types or sum(v.share for v in types) <= 0:
            raise QubitSimError("vehicle_types needs at least one type with share > 0")
        self.vehicle_types = types
        self.n_vehicles = int(n_vehicles)
        self.seed_value = int(seed)
        self.tz = tz
        self.start_utc = to_utc_timestamp(start_utc, "start_utc").to_pydatetime()
        self.duration_s = int(duration_s)
        self.plugged_in_at_start = plugged_in_at_start
        self.target_soc = float(target_soc)
        self.dedicated = self.behaviour.dedicated if dedicated is None else bool(dedicated)
        self.n_chargers = self.n_vehicles if n_chargers is None else int(n_chargers)
        if self.dedicated and self.n_chargers <= 0 and self.n_vehicles > 0:
            raise QubitSimError(f"dedicated chargers need n_chargers > 0, got {n_chargers}")

        lookback = math.ceil(self.behaviour.max_dwell_h() / 24.0)
        first = self.start_utc.astimezone(self.zone).date() - timedelta(days=lookback)
        last = (self.start_utc + timedelta(seconds=self.duration_s)).astimezone(self.zone).date()
        self.days = [first + timedelta(days=k) for k in range((last - first).days + 1)]
        self.current_day = self.days[0]
        self._midnights: dict[date, tuple[float, bool]] = {}
        self._rows: list[tuple] = []

        width = max(3, len(str(max(self.n_vehicles - 1, 0))))
        for i in range(self.n_vehicles):
            Driver(
                self,
                index=i,
                vehicle_id=f"ev_{i:0{width}d}",
                vehicle_types=types,
                home_charger=i % self.n_chargers if self.dedicated else -1,
                seed=self.seed_value,
            )

    def local_to_sim_s(self, day: date, hours: float) -> int:
        """Simulation second of local wall time ``day`` 00:00 + ``hours`` (may exceed 24)."""
        cached = self._midnights.get(day)
        if cached is None:
            midnight = datetime.combine(day, time(), tzinfo=self.zone)
            later = datetime.combine(day + timedelta(days=3), time(), tzinfo=self.zone)
            cached = (
                (midnight - self.start_utc).total_seconds(),
                midnight.utcoffset() == later.utcoffset(),
            )
            self._midnights[day] = cached
        base_s, steady = cached
        if steady and hours < 72.0:
            return int(round(base_s + hours * 3600.0))
        # A clock change lies within reach: convert the wall time exactly. Times in a spring gap
        # resolve with the pre-change offset, i.e. they land just after the gap.
        wall = datetime.combine(day, time()) + timedelta(hours=hours)
        aware = wall.replace(tzinfo=self.zone).astimezone(UTC)
        return int(round((aware - self.start_utc).total_seconds()))

    def record(
        self,
        driver: Driver,
        arrival_s: int,
        departure_s: int,
        e_needed_kwh: float,
        arrival_soc: float,
    ) -> None:
        """Store one session of ``driver``."""
        self._rows.append((driver, arrival_s, departure_s, e_needed_kwh, arrival_soc))

    def step(self) -> None:
        """Simulate one local day for every driver."""
        if self.steps > len(self.days):
            self.running = False
            return
        self.current_day = self.days[self.steps - 1]
        self.agents.shuffle_do("step")
        if self.steps >= len(self.days):
            self.running = False

    def run(self) -> None:
        """Step through every day of the scenario (and the look-back days before it)."""
        while self.running:
            self.step()

    def sessions(self) -> SessionTable:
        """All sessions, sorted by arrival (runs the remaining days first)."""
        self.run()
        # Shuffled agent order must not leak into the result: sort by arrival, then vehicle.
        rows = sorted(self._rows, key=lambda r: (r[1], r[0].index))
        drivers = [r[0] for r in rows]
        return SessionTable(
            session_id=np.arange(len(rows), dtype=np.int64),
            vehicle_id=np.array([d.vehicle_id for d in drivers], dtype=str),
            vehicle_type=np.array([d.vehicle.name for d in drivers], dtype=str),
            arrival_s=np.array([r[1] for r in rows], dtype=np.int64),
            departure_s=np.array([r[2] for r in rows], dtype=np.int64),
            e_needed_kwh=np.array([r[3] for r in rows], dtype=np.float64),
            arrival_soc=np.array([r[4] for r in rows], dtype=np.float64),
            capacity_kwh=np.array([d.vehicle.battery_kwh for d in drivers], dtype=np.float64),
            max_ac_kw=np.array([d.vehicle.max_ac_kw for d in drivers], dtype=np.float64),
            max_dc_kw=np.array([d.vehicle.max_dc_kw for d in drivers], dtype=np.float64),
            knee_soc=np.array([d.vehicle.knee_soc for d in drivers], dtype=np.float64),
            home_charger=np.array([d.home_charger for d in drivers], dtype=np.int64),
        )
