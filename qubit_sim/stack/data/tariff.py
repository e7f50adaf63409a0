"""The Qubit L3 tariff shape as a pydantic model, and its conversion to the simulator's tariff.

The documented shape (consumed by the L3 optimiser)::

    {"energy_rates": [
        {"name": "off_peak", "rate": 0.08, "schedule": {"start_time": "00:00", "end_time": "06:59"}},
        {"name": "peak", "rate": 0.25, "schedule": {"start_time": "07:00", "end_time": "22:59"},
         "weekdays": ["monday", "tuesday"], "months": [6, 7, 8]}]}

Windows are local ``HH:MM`` with an **inclusive end minute** (``07:00``-``22:59`` covers 07:00:00
up to 22:59:59); an end before the start wraps midnight. ``weekdays`` and ``months`` may sit on
the rate or in its schedule (the published material shows both); giving different values in both
places is an error. Where several rates match an instant, the first listed wins — as in
:class:`qubit_sim.core.tariff.Tariff`, which evaluates windows in site-local time.

The shape has no form for dynamic prices (the Qubit v0.1 schemas define no tariff entity; v0.2
names "dynamic pricing" without fields), so a tariff priced by a price series
(``tariff.price_csv``) is refused by :meth:`Tariff.from_core` rather than approximated.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args

from pydantic import BeforeValidator, ConfigDict, Field, StrictStr, model_validator

from qubit_sim.core import tariff as core
from qubit_sim.stack.data.errors import ExportError
from qubit_sim.stack.data.schema_types import Integer, NonNegative, Number, QubitEntity

__all__ = ["WEEKDAYS", "EnergyRate", "RateSchedule", "Tariff"]

Weekday = Literal["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
WEEKDAYS: tuple[Weekday, ...] = get_args(Weekday)


def _hhmm(value: Any) -> str:
    text = value if isinstance(value, str) else ""
    hour, sep, minute = text.partition(":")
    if not (sep and hour.isdigit() and minute.isdigit() and len(hour) == 2 and len(minute) == 2):
        raise ValueError(f"time of day {value!r} must be written 'HH:MM', e.g. '07:00'")
    if int(hour) > 23 or int(minute) > 59:
        raise ValueError(
            f"time of day {value!r} is outside 00:00..23:59; the end minute is inclusive, so a "
            "window up to midnight ends at '23:59'"
        )
    return text


def _weekday(value: Any) -> str:
    if isinstance(value, str) and value.strip().lower() in WEEKDAYS:
        return value.strip().lower()
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 6:
        return WEEKDAYS[value]
    raise ValueError(
        f"weekday {value!r} must be a day name ('monday'..'sunday') or 0..6 (Monday=0)"
    )


TimeOfDay = Annotated[str, BeforeValidator(_hhmm)]
WeekdayName = Annotated[Weekday, BeforeValidator(_weekday)]
Month = Annotated[Integer, Field(ge=1, le=12)]
Weekdays = Annotated[list[WeekdayName], Field(min_length=1)]
Months = Annotated[list[Month], Field(min_length=1)]


class _Closed(QubitEntity):
    model_config = ConfigDict(extra="forbid")


class RateSchedule(_Closed):
    """Local time window of a rate; ``end_time`` is inclusive."""

    start_time: TimeOfDay = "00:00"
    end_time: TimeOfDay = "23:59"
    weekdays: Weekdays | None = None
    months: Months | None = None


class EnergyRate(_Closed):
    """A named energy rate [currency/kWh] with its window, weekday and month filters."""

    name: Annotated[StrictStr, Field(min_length=1)]
    rate: Number
    schedule: RateSchedule = RateSchedule()
    weekdays: Weekdays | None = None
    months: Months | None = None
    carbon_intensity_gco2_kwh: NonNegative | None = None

    @model_validator(mode="after")
    def _filters_agree(self) -> EnergyRate:
        for key in ("weekdays", "months"):
            outer, inner = getattr(self, key), getattr(self.schedule, key)
            if outer is not None and inner is not None and sorted(outer) != sorted(inner):
                raise ValueError(
                    f"rate {self.name!r} gives {key} both on the rate ({outer}) and in its "
                    f"schedule ({inner}); keep one"
                )
        return self

    @property
    def effective_weekdays(self) -> list[Weekday] | None:
        """Weekdays the rate applies on (from the rate or its schedule); None = every day."""
        return self.weekdays if self.weekdays is not None else self.schedule.weekdays

    @property
    def effective_months(self) -> list[int] | None:
        """Months 1..12 the rate applies in; None = every month."""
        return self.months if self.months is not None else self.schedule.months


class Tariff(_Closed):
    """A Qubit L3 tariff: time-of-use energy rates, optionally with its currency (ISO 4217)."""

    energy_rates: Annotated[list[EnergyRate], Field(min_length=1)]
    currency: Annotated[StrictStr, Field(pattern=r"^[A-Z]{3}$")] | None = None

    def to_core(self, **overrides: Any) -> core.Tariff:
        """The simulator's :class:`qubit_sim.core.tariff.Tariff` with the same energy rates.

        Per-rate ``carbon_intensity_gco2_kwh`` has no place there and is not carried over.

        Args:
            overrides: Other :class:`~qubit_sim.core.tariff.Tariff` fields, e.g.
                ``default_price_per_kwh``, ``export_price_per_kwh``, ``demand_charge_per_kw``,
                ``billing_period``, ``currency`` (default: this tariff's currency, else EUR).

        Raises:
            qubit_sim.core.tariff.TariffError: an override is invalid.
        """
        rates = tuple(
            core.EnergyRate(
                name=rate.name,
                price_per_kwh=rate.rate,
                start=rate.schedule.start_time,
                end=rate.schedule.end_time,
                weekdays=_day_numbers(rate.effective_weekdays),
                months=tuple(rate.effective_months) if rate.effective_months else None,
            )
            for rate in self.energy_rates
        )
        options: dict[str, Any] = {"currency": self.currency} if self.currency else {}
        options.update(overrides)
        return core.Tariff(energy_rates=rates, **options)

    @classmethod
    def from_core(cls, tariff: core.Tariff) -> Tariff:
        """The Qubit shape of a simulator tariff.

        A default price becomes a last, all-day rate named
        :data:`~qubit_sim.core.tariff.DEFAULT_RATE_NAME` (the first matching rate wins, so it
        prices exactly the instants no other rate covers). Export prices and demand charges have
        no documented place in the shape and are left out.

        Raises:
            ExportError: a tariff priced by a price series, which the shape cannot hold.
        """
        if tariff.price_series is not None:
            raise ExportError(
                "the Qubit L3 tariff shape holds time-of-use energy_rates only; a tariff priced "
                f"by a price series ({tariff.price_series.source}) has no form in it. The "
                "per-step prices are in the run's timeseries.parquet (price_per_kwh, "
                "export_price_per_kwh)"
            )
        rates = [
            EnergyRate(
                name=rate.name,
                rate=rate.price_per_kwh,
                schedule=RateSchedule(start_time=_pad(rate.start), end_time=_pad(rate.end)),
                weekdays=[WEEKDAYS[day] for day in rate.weekdays] if rate.weekdays else None,
                months=list(rate.months) if rate.months else None,
            )
            for rate in tariff.energy_rates
        ]
        if tariff.default_price_per_kwh is not None:
            rates.append(EnergyRate(name=core.DEFAULT_RATE_NAME, rate=tariff.default_price_per_kwh))
        currency = (
            tariff.currency if len(tariff.currency) == 3 and tariff.currency.isupper() else None
        )
        return cls(energy_rates=rates, currency=currency)


def _day_numbers(days: list[Weekday] | None) -> tuple[int, ...] | None:
    return tuple(WEEKDAYS.index(day) for day in days) if days else None


def _pad(hhmm: str) -> str:
    hour, _, minute = hhmm.partition(":")
    return f"{int(hour):02d}:{int(minute):02d}"
