"""Charging sessions as a struct of arrays, and their replay from CSV files.

A session is one stay of one vehicle at the site: it arrives at ``arrival_s``, leaves at
``departure_s`` (integer seconds since the scenario start) and wants ``e_needed_kwh`` during the
stay. Invariants, checked on construction:

* all arrays have one entry per session, sorted by arrival;
* ``departure_s > arrival_s``;
* ``0 <= e_needed_kwh <= (1 - arrival_soc) * capacity_kwh``;
* a vehicle has at most one session at a time (touching sessions are fine).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from qubit_sim.errors import QubitSimError

__all__ = ["SessionTable"]

_TOL_KWH = 1e-9


@dataclass(frozen=True, eq=False)
class SessionTable:
    """Charging sessions, one numpy array per field, sorted by arrival.

    Attributes:
        session_id: Session number (int64).
        vehicle_id: Vehicle name (str), e.g. ``"ev_007"``.
        vehicle_type: Vehicle type name (str).
        arrival_s: Plug-in time [s since scenario start] (int64).
        departure_s: Plug-out time [s since scenario start] (int64), > ``arrival_s``.
        e_needed_kwh: Energy the driver wants delivered during the stay [kWh].
        arrival_soc: Battery SOC on arrival [0..1].
        capacity_kwh: Battery capacity [kWh].
        max_ac_kw: Vehicle limit on AC chargers [kW].
        max_dc_kw: Vehicle limit on DC chargers [kW].
        knee_soc: SOC where the charging taper starts [0..1).
        home_charger: Index of the vehicle's own charger, or -1 for any free charger (int64).
    """

    session_id: np.ndarray
    vehicle_id: np.ndarray
    vehicle_type: np.ndarray
    arrival_s: np.ndarray
    departure_s: np.ndarray
    e_needed_kwh: np.ndarray
    arrival_soc: np.ndarray
    capacity_kwh: np.ndarray
    max_ac_kw: np.ndarray
    max_dc_kw: np.ndarray
    knee_soc: np.ndarray
    home_charger: np.ndarray

    def __post_init__(self) -> None:
        kinds = {
            "session_id": np.int64,
            "arrival_s": np.int64,
            "departure_s": np.int64,
            "home_charger": np.int64,
            "vehicle_id": str,
            "vehicle_type": str,
        }
        n = None
        for spec in fields(self):
            value: np.ndarray = np.asarray(
                getattr(self, spec.name), dtype=kinds.get(spec.name, np.float64)
            )
            if value.ndim != 1:
                raise QubitSimError(f"SessionTable.{spec.name} must be one-dimensional")
            if n is None:
                n = len(value)
            elif len(value) != n:
                raise QubitSimError(
                    f"SessionTable.{spec.name} has {len(value)} entries, expected {n}"
                )
            value.setflags(write=False)
            object.__setattr__(self, spec.name, value)
        self._check()

    def _check(self) -> None:
        def fail(mask: np.ndarray, what: str) -> None:
            ids = self.session_id[mask][:5].tolist()
            raise QubitSimError(f"SessionTable: {what} for session(s) {ids}")

        if (np.diff(self.arrival_s) < 0).any():
            raise QubitSimError("SessionTable must be sorted by arrival_s")
        if (self.departure_s <= self.arrival_s).any():
            fail(self.departure_s <= self.arrival_s, "departure_s <= arrival_s")
        if (self.e_needed_kwh < 0).any():
            fail(self.e_needed_kwh < 0, "negative e_needed_kwh")
        room = (1.0 - self.arrival_soc) * self.capacity_kwh
        if (self.e_needed_kwh > room + _TOL_KWH).any():
            fail(self.e_needed_kwh > room + _TOL_KWH, "e_needed_kwh > (1 - arrival_soc) * capacity")
        if ((self.arrival_soc < 0) | (self.arrival_soc > 1)).any():
            fail((self.arrival_soc < 0) | (self.arrival_soc > 1), "arrival_soc outside 0..1")
        order = np.lexsort((self.arrival_s, self.vehicle_id))
        same = self.vehicle_id[order][1:] == self.vehicle_id[order][:-1]
        overlap = same & (self.arrival_s[order][1:] < self.departure_s[order][:-1])
        if overlap.any():
            mask = np.zeros(len(self), dtype=bool)
            mask[order[1:][overlap]] = True
            fail(mask, "overlapping sessions of the same vehicle")

    def __len__(self) -> int:
        return len(self.session_id)

    def to_frame(self) -> pd.DataFrame:
        """All fields as a :class:`pandas.DataFrame`, one row per session."""
        return pd.DataFrame({spec.name: getattr(self, spec.name) for spec in fields(self)})

    def equals(self, other: SessionTable) -> bool:
        """True when every field of ``other`` is identical."""
        return all(
            np.array_equal(getattr(self, spec.name), getattr(other, spec.name))
            for spec in fields(self)
        )

    @classmethod
    def empty(cls) -> SessionTable:
        """A table without sessions."""
        return cls(**{spec.name: np.zeros(0) for spec in fields(cls)})

    @classmethod
    def from_columns(cls, **columns: np.ndarray) -> SessionTable:
        """Build from unsorted columns: sorts by (arrival_s, session_id) and checks invariants."""
        order = np.lexsort((np.asarray(columns["session_id"]), np.asarray(columns["arrival_s"])))
        return cls(**{name: np.asarray(values)[order] for name, values in columns.items()})

    @classmethod
    def from_csv(
        cls,
        path: str | Path,
        start_utc: datetime | str,
        tz: str | None = None,
        battery_kwh: float = 60.0,
        arrival_soc: float = 0.2,
        max_ac_kw: float = 11.0,
        max_dc_kw: float = 50.0,
        knee_soc: float = 0.8,
        home_charger: int = -1,
    ) -> SessionTable:
        """Replay sessions from a CSV file exactly.

        Columns: ``arrival``, ``departure`` (ISO 8601 with ``Z``/offset, or local wall time when
        ``tz`` is given) and ``kwh`` (energy wanted). Optional: ``vehicle_id``, ``battery_kwh``,
        ``arrival_soc``, ``max_kw`` (AC limit), ``max_dc_kw``, ``charger`` (home charger index).
        Missing optional values take the defaults given here; without ``arrival_soc`` the
        default is lowered where needed so that ``kwh`` fits into the battery. Times are kept to
        the second; ``kwh`` is kept as given. Without ``vehicle_id`` each row is its own vehicle
        (``csv_<row>``); ``session_id`` is the 0-based data row.

        Raises:
            QubitSimError: unreadable file, missing columns, or bad rows (with line numbers):
                unparsable time, departure <= arrival, arrival before ``start_utc``, negative
                or too large kWh, overlapping sessions of one vehicle.
        """
        from qubit_sim.agents.csv_replay import read_sessions_csv

        columns = read_sessions_csv(
            Path(path),
            start_utc,
            tz=tz,
            defaults={
                "battery_kwh": battery_kwh,
                "arrival_soc": arrival_soc,
                "max_ac_kw": max_ac_kw,
                "max_dc_kw": max_dc_kw,
                "knee_soc": knee_soc,
                "home_charger": home_charger,
            },
        )
        return cls.from_columns(**columns)
