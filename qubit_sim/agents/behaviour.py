"""Vehicle types and driver behaviour presets of the EV population.

Presets ``workplace``, ``residential`` and ``depot`` are read from the shipped table
``qubit_sim/data/ev_behaviours.yaml``, which also lists the published statistics they follow:

* Z. J. Lee, T. Li, S. H. Low, "ACN-Data: Analysis and Applications of an Open EV Charging
  Dataset", ACM e-Energy 2019 (workplace arrivals ~8-9 h local, dwell ~8-9 h, ~10-15 kWh);
* ElaadNL open charging-transaction data (arrival peaks ~8-9 h and ~17-19 h);
* J. Smart, S. Schey, "Battery Electric Vehicle Driving and Charging Behavior Observed Early in
  The EV Project", SAE Int. J. Alt. Power 1(1), 2012, and J. Quiros-Tortos et al., "Statistical
  representation of EV charging: real data analysis and applications", PSCC 2018 (home arrival
  ~17-19 h, overnight dwell ~12-14 h);
* NREL Fleet DNA (depot return ~18-20 h, departure ~5-7 h, ~100-150 km/day for delivery vans).

The values are rounded central values consistent with those sources, not fitted estimates.
Vehicle types come from ``qubit_sim/data/ev_vehicle_types.csv`` (generic segments, not models).
"""

from __future__ import annotations

import csv
import difflib
import math
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from importlib import resources
from typing import Any

import numpy as np

from qubit_sim.errors import QubitSimError

__all__ = [
    "Behaviour",
    "DayPattern",
    "VehicleType",
    "available_behaviours",
    "behaviour_preset",
    "default_vehicle_types",
]

Mixture = tuple[tuple[float, float, float], ...]

_SOC_RANGE = (0.05, 0.95)
_LATEST_ARRIVAL_H = 24.0 - 1.0 / 60.0


@dataclass(frozen=True)
class VehicleType:
    """An EV model class.

    Attributes:
        name: Label, e.g. ``"midsize"``.
        battery_kwh: Usable battery capacity [kWh].
        max_ac_kw: On-board charger limit for AC charging [kW].
        max_dc_kw: Peak DC charging power [kW].
        knee_soc: SOC where the charging taper starts [0..1).
        share: Relative frequency in the population (normalised over the types given).
    """

    name: str
    battery_kwh: float
    max_ac_kw: float
    max_dc_kw: float
    knee_soc: float = 0.8
    share: float = 1.0

    def __post_init__(self) -> None:
        for attr in ("battery_kwh", "max_ac_kw", "max_dc_kw"):
            if not getattr(self, attr) > 0:
                raise QubitSimError(
                    f"vehicle type {self.name!r}: {attr} must be > 0, got {getattr(self, attr)}"
                )
        if not 0.0 <= self.knee_soc < 1.0:
            raise QubitSimError(
                f"vehicle type {self.name!r}: knee_soc must be in [0, 1), got {self.knee_soc}"
            )
        if not self.share >= 0:
            raise QubitSimError(f"vehicle type {self.name!r}: share must be >= 0")


def _mixture(value: Any, what: str) -> Mixture:
    try:
        parts = tuple((float(w), float(m), float(s)) for w, m, s in value)
    except (TypeError, ValueError) as exc:
        raise QubitSimError(f"{what} must be a list of [weight, mean_h, std_h]") from exc
    if not parts or any(w <= 0 or s < 0 for w, _, s in parts):
        raise QubitSimError(f"{what} needs at least one component with weight > 0 and std >= 0")
    return parts


@dataclass(frozen=True)
class DayPattern:
    """What drivers do on one kind of day (weekday or weekend), in local hours.

    Attributes:
        p_plug: Probability that a vehicle starts a session that day.
        arrival_h: Mixture of normals over the local arrival hour: ``((weight, mean_h, std_h),
            ...)``; draws are clipped to [0, 24).
        energy_kwh: ``(mean, std)`` of the lognormal energy wanted per session [kWh].
        arrival_soc: ``(mean, std)`` of the arrival SOC, clipped to [0.05, 0.95].
        dwell_h: ``(mean, std, min, max)`` of the connection time [h], normal clipped to
            ``[min, max]``. Exactly one of ``dwell_h`` and ``departure_h`` is set.
        departure_h: Mixture over the local clock hour of departure; the vehicle leaves at the
            first such time at least ``min_dwell_h`` after arrival.
        min_dwell_h: Shortest connection with ``departure_h`` [h].
    """

    p_plug: float
    arrival_h: Mixture
    energy_kwh: tuple[float, float]
    arrival_soc: tuple[float, float]
    dwell_h: tuple[float, float, float, float] | None = None
    departure_h: Mixture | None = None
    min_dwell_h: float = 0.5

    def __post_init__(self) -> None:
        if not 0.0 <= self.p_plug <= 1.0:
            raise QubitSimError(f"p_plug must be within 0..1, got {self.p_plug}")
        if (self.dwell_h is None) == (self.departure_h is None):
            raise QubitSimError("a day pattern needs exactly one of dwell_h or departure_h")
        if self.dwell_h is not None:
            mean, std, low, high = self.dwell_h
            if not 0 < low <= high or std < 0:
                raise QubitSimError(
                    f"dwell_h needs std >= 0 and 0 < min <= max, got {self.dwell_h}"
                )
        mean_e, std_e = self.energy_kwh
        if not mean_e > 0 or std_e < 0:
            raise QubitSimError(f"energy_kwh needs mean > 0 and std >= 0, got {self.energy_kwh}")
        if self.min_dwell_h <= 0:
            raise QubitSimError(f"min_dwell_h must be > 0, got {self.min_dwell_h}")

    @cached_property
    def _arrival(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return _mixture_arrays(self.arrival_h)

    @cached_property
    def _departure(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return _mixture_arrays(self.departure_h or ((1.0, 0.0, 0.0),))

    @cached_property
    def _lognormal(self) -> tuple[float, float]:
        mean, std = self.energy_kwh
        sigma2 = math.log1p((std / mean) ** 2)
        return math.log(mean) - sigma2 / 2.0, math.sqrt(sigma2)

    def draw(self, rng: np.random.Generator) -> tuple[bool, float, float, float, float]:
        """One day of one driver: ``(plugs, arrival_h, departure_h, energy_kwh, arrival_soc)``.

        Hours count from local midnight of the day (departure may exceed 24). The same number
        of random values is drawn whether or not the driver plugs in, so changing one parameter
        leaves every other draw of the stream unchanged.
        """
        u = rng.random(3)
        z = rng.standard_normal(4)
        cum, means, stds = self._arrival
        k = int(np.searchsorted(cum, u[1], side="right"))
        arrival = min(max(means[k] + stds[k] * z[0], 0.0), _LATEST_ARRIVAL_H)
        if self.dwell_h is not None:
            mean, std, low, high = self.dwell_h
            departure = arrival + min(max(mean + std * z[1], low), high)
        else:
            cum, means, stds = self._departure
            k = int(np.searchsorted(cum, u[2], side="right"))
            departure = (means[k] + stds[k] * z[1]) % 24.0
            departure += 24.0 * math.ceil(max(arrival + self.min_dwell_h - departure, 0.0) / 24.0)
        mu, sigma = self._lognormal
        energy = math.exp(mu + sigma * z[2])
        mean_soc, std_soc = self.arrival_soc
        soc = min(max(mean_soc + std_soc * z[3], _SOC_RANGE[0]), _SOC_RANGE[1])
        return bool(u[0] < self.p_plug), arrival, departure, energy, soc


def _mixture_arrays(parts: Mixture) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    weights = np.array([w for w, _, _ in parts], dtype=float)
    cum = np.cumsum(weights / weights.sum())[:-1]
    means = np.array([m for _, m, _ in parts], dtype=float)
    stds = np.array([s for _, _, s in parts], dtype=float)
    return cum, means, stds


@dataclass(frozen=True)
class Behaviour:
    """A driver population's habits: one pattern for weekdays (Mon-Fri), one for weekends.

    Attributes:
        name: Preset name or a label of your own.
        weekday: Pattern for Monday to Friday (local calendar).
        weekend: Pattern for Saturday and Sunday.
        fleet: Which default vehicle types fit (``"passenger"`` or ``"van"``).
        dedicated: Whether each vehicle has its own charger (home, depot bay).
        description: One line for people.
        sources: Keys of the statistics the preset follows (see the module doc).
    """

    name: str
    weekday: DayPattern
    weekend: DayPattern
    fleet: str = "passenger"
    dedicated: bool = False
    description: str = ""
    sources: tuple[str, ...] = field(default_factory=tuple)

    def pattern(self, weekday: int) -> DayPattern:
        """Pattern for a day with Python ``weekday()`` number (Monday 0 .. Sunday 6)."""
        return self.weekend if weekday >= 5 else self.weekday

    def max_dwell_h(self) -> float:
        """Longest connection the behaviour can produce [h]."""
        longest = 0.0
        for day in (self.weekday, self.weekend):
            if day.dwell_h is not None:
                longest = max(longest, day.dwell_h[3])
            else:
                longest = max(longest, 24.0 + day.min_dwell_h)
        return longest


def _day(raw: dict[str, Any], where: str) -> DayPattern:
    try:
        dwell = raw.get("dwell_h")
        return DayPattern(
            p_plug=float(raw["p_plug"]),
            arrival_h=_mixture(raw["arrival_h"], f"{where}.arrival_h"),
            energy_kwh=(float(raw["energy_kwh"]["mean"]), float(raw["energy_kwh"]["std"])),
            arrival_soc=(float(raw["arrival_soc"]["mean"]), float(raw["arrival_soc"]["std"])),
            dwell_h=None
            if dwell is None
            else (
                float(dwell["mean"]),
                float(dwell["std"]),
                float(dwell["min"]),
                float(dwell["max"]),
            ),
            departure_h=None
            if raw.get("departure_h") is None
            else _mixture(raw["departure_h"], f"{where}.departure_h"),
            min_dwell_h=float(raw.get("min_dwell_h", 0.5)),
        )
    except KeyError as exc:
        raise QubitSimError(f"behaviour table: {where} lacks {exc.args[0]!r}") from exc
    except QubitSimError as exc:
        raise QubitSimError(f"behaviour table: {where}: {exc}") from exc


@lru_cache(maxsize=1)
def _presets() -> dict[str, Behaviour]:
    import yaml

    text = resources.files("qubit_sim").joinpath("data", "ev_behaviours.yaml").read_text("utf-8")
    table = yaml.safe_load(text)
    presets = {}
    for name, raw in table.items():
        presets[name] = Behaviour(
            name=name,
            weekday=_day(raw["weekday"], f"{name}.weekday"),
            weekend=_day(raw["weekend"], f"{name}.weekend"),
            fleet=str(raw.get("fleet", "passenger")),
            dedicated=bool(raw.get("dedicated", False)),
            description=str(raw.get("description", "")),
            sources=tuple(raw.get("sources", ())),
        )
    return presets


def available_behaviours() -> list[str]:
    """Names of the shipped behaviour presets."""
    return sorted(_presets())


def behaviour_preset(name: str) -> Behaviour:
    """The shipped behaviour preset ``name`` (``workplace``, ``residential``, ``depot``).

    Raises:
        QubitSimError: unknown name (with close matches).
    """
    presets = _presets()
    if name not in presets:
        close = difflib.get_close_matches(name, presets, n=2, cutoff=0.5)
        hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else "."
        raise QubitSimError(
            f"unknown EV behaviour {name!r}{hint} Presets: {', '.join(sorted(presets))}"
        )
    return presets[name]


@lru_cache(maxsize=4)
def default_vehicle_types(fleet: str = "passenger") -> tuple[VehicleType, ...]:
    """Shipped generic vehicle types of ``fleet`` (``"passenger"`` or ``"van"``)."""
    text = resources.files("qubit_sim").joinpath("data", "ev_vehicle_types.csv").read_text("utf-8")
    rows = [row for row in csv.DictReader(text.splitlines()) if row["fleet"] == fleet]
    if not rows:
        raise QubitSimError(f"no shipped vehicle types for fleet {fleet!r}; use passenger or van")
    return tuple(
        VehicleType(
            name=row["name"],
            battery_kwh=float(row["battery_kwh"]),
            max_ac_kw=float(row["max_ac_kw"]),
            max_dc_kw=float(row["max_dc_kw"]),
            knee_soc=float(row["knee_soc"]),
            share=float(row["share"]),
        )
        for row in rows
    )
