"""EV sessions as rows of an L3 problem, with the simulator's charging limits.

A session can charge in the slots it is plugged in for *entirely*: from the first slot start at or
after its plug-in to the last slot start before it leaves (an empty charger gets 0 kW, so an EV that
plugs in mid-slot waits for the next control call, and in its last, partial slot its charger already
gets 0 kW). The EV-side limit is ``min(charger rating x efficiency, vehicle limit)``; the simulator
tapers the *vehicle* limit linearly above the knee, which is the same line as the L3 taper of the
smaller limit with the knee moved (:func:`effective_knee_soc`). The L3 taper is checked at the
end-of-slot SOC, the simulator's at the start of each step, so a planned power is deliverable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from qubit_sim.stack.optimize import EvSessions

__all__ = ["SessionRows", "effective_knee_soc"]

# EvSessions' array fields, in constructor order after ``ev_ids``.
_EV_ARRAYS = (
    "arrival_slot",
    "departure_slot",
    "e_needed_kwh",
    "soc0",
    "capacity_kwh",
    "p_max_kw",
    "knee_soc",
    "charger_efficiency",
    "priority",
)


def effective_knee_soc(knee_soc: Any, vehicle_max_kw: Any, p_max_kw: Any) -> np.ndarray:
    """Knee that makes the L3 taper of ``p_max_kw`` the simulator's taper of ``vehicle_max_kw``.

    The simulator limits EV power to ``min(p_charger, vehicle * (1 - soc) / (1 - knee))``; with
    ``p_max = min(p_charger, vehicle)`` this equals ``min(p_max, p_max * (1 - soc) / (1 - knee'))``
    for ``knee' = 1 - (1 - knee) * p_max / vehicle``.
    """
    knee = np.asarray(knee_soc, dtype=float)
    vehicle = np.asarray(vehicle_max_kw, dtype=float)
    p_max = np.asarray(p_max_kw, dtype=float)
    ratio = np.divide(p_max, vehicle, out=np.ones_like(p_max), where=vehicle > 0)
    return np.clip(1.0 - (1.0 - knee) * np.minimum(ratio, 1.0), 0.0, 1.0)


@dataclass(frozen=True)
class SessionRows:
    """The EV sessions of one problem and where they charge.

    Attributes:
        evs: The sessions, one row each.
        charger: Charger index of each row.
        session: Index of each row in the run's session table.
    """

    evs: EvSessions
    charger: np.ndarray
    session: np.ndarray

    @property
    def n(self) -> int:
        """Number of rows."""
        return self.evs.n

    @classmethod
    def empty(cls) -> SessionRows:
        """No sessions."""
        none = np.zeros(0, dtype=np.int64)
        return cls(EvSessions.empty(), none, none.copy())

    @classmethod
    def build(
        cls,
        session: np.ndarray,
        charger: np.ndarray,
        arrival_slot: np.ndarray,
        departure_slot: np.ndarray,
        e_needed_kwh: np.ndarray,
        soc0: np.ndarray,
        capacity_kwh: np.ndarray,
        vehicle_max_kw: np.ndarray,
        knee_soc: np.ndarray,
        charger_ev_max_kw: np.ndarray,
        charger_efficiency: np.ndarray,
    ) -> SessionRows:
        """Rows from per-session arrays, with the EV-side limit ``min(charger rating x
        efficiency, vehicle limit)`` and the knee as the simulator applies them
        (``charger_ev_max_kw`` and ``charger_efficiency`` are per charger)."""
        session = np.asarray(session, dtype=np.int64)
        charger = np.asarray(charger, dtype=np.int64)
        vehicle = np.maximum(np.asarray(vehicle_max_kw, dtype=float), 0.0)
        p_max = np.minimum(np.asarray(charger_ev_max_kw)[charger], vehicle)
        evs = EvSessions(
            ev_ids=tuple(f"s{int(s)}" for s in session),
            arrival_slot=arrival_slot,
            departure_slot=np.maximum(departure_slot, arrival_slot),
            e_needed_kwh=np.maximum(e_needed_kwh, 0.0),
            soc0=np.clip(soc0, 0.0, 1.0),
            capacity_kwh=capacity_kwh,
            p_max_kw=p_max,
            knee_soc=effective_knee_soc(knee_soc, vehicle, p_max),
            charger_efficiency=np.asarray(charger_efficiency)[charger],
            priority=np.ones(len(session), dtype=np.int64),
        )
        return cls(evs, charger, session)

    def __add__(self, other: SessionRows) -> SessionRows:
        if not other.n:
            return self
        if not self.n:
            return other
        a, b = self.evs, other.evs
        evs = EvSessions(
            a.ev_ids + b.ev_ids,
            *(np.concatenate([getattr(a, name), getattr(b, name)]) for name in _EV_ARRAYS),
        )
        return SessionRows(
            evs,
            np.concatenate([self.charger, other.charger]),
            np.concatenate([self.session, other.session]),
        )

    def head(self, n: int) -> SessionRows:
        """The first ``n`` rows."""
        if n >= self.n:
            return self
        a = self.evs
        evs = EvSessions(a.ev_ids[:n], *(getattr(a, name)[:n] for name in _EV_ARRAYS))
        return SessionRows(evs, self.charger[:n], self.session[:n])

    def row_of_charger(self, charger_session: np.ndarray) -> np.ndarray:
        """Row of the session plugged at each charger (-1: empty or not in the problem)."""
        charger_session = np.asarray(charger_session, dtype=np.int64)
        if not self.n:
            return np.full(charger_session.shape[0], -1, dtype=np.int64)
        lookup = dict(zip(self.session.tolist(), range(self.n), strict=True))
        return np.array([lookup.get(int(s), -1) for s in charger_session], dtype=np.int64)
