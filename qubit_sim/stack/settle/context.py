"""The site facts settlement needs, as a run records them in its ``manifest.json``.

Settlement belongs to the stack and does not read scenario files: the run writes the few facts it
needs into the manifest, and settlement reads them back from there::

    "start": "2025-03-02T22:00:00Z",          simulation time 0 (UTC)
    "step_s": 60,
    "site": {"name": "depot_overnight", "tz": "Europe/Amsterdam"},
    "tariff": {"currency": "EUR", "energy_rates": [...], "default_price_per_kwh": 0.25,
               "export_price_per_kwh": 0.0, "demand_charge_per_kw": 0.0,
               "demand_window_s": 900, "billing_period": "month",
               "driver_price_per_kwh": 0.39}

The tariff section is :class:`~qubit_sim.core.tariff.Tariff` field by field (energy rates as
:class:`~qubit_sim.core.tariff.EnergyRate` fields) plus the price drivers pay per kWh. A tariff
priced by a price series (``tariff.price_csv``) records where its prices are instead of the
prices themselves: the run wrote the price of every step into its time series, and settlement
bills with exactly those (:data:`PRICE_COLUMNS`)::

    "price_series": {"source": "prices.csv", "recorded_in": "timeseries.parquet",
                     "export_prices": true}

``export_prices`` says whether the series had export prices (else the constant
``export_price_per_kwh`` applies).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from qubit_sim.core.price_series import PriceSeries
from qubit_sim.core.tariff import EnergyRate, Tariff, TariffError
from qubit_sim.stack.settle.errors import SettlementError

__all__ = ["PRICE_COLUMNS", "SiteContext", "context_from_manifest", "recorded_price_series"]

#: Time-series columns holding each step's import and export price [currency/kWh].
PRICE_COLUMNS = ("price_per_kwh", "export_price_per_kwh")
_RECORDED_IN = "timeseries.parquet"

_RERUN = "re-run the scenario with this qubit-sim version to record it"


@dataclass(frozen=True)
class SiteContext:
    """What settlement needs to know about the site besides the measurements.

    Attributes:
        site_name: Scenario site name; the site signs as ``sit_<name>``.
        tz: Site IANA time zone (billing calendar, tariff windows).
        start: UTC instant of simulation time 0.
        step_s: Step length [s].
        tariff: The site's import/export tariff.
        driver_price_per_kwh: Price drivers pay per kWh charged [currency/kWh].
    """

    site_name: str
    tz: str
    start: datetime
    step_s: int
    tariff: Tariff
    driver_price_per_kwh: float

    def to_manifest(self) -> dict[str, Any]:
        """The manifest entries (module doc) that :func:`context_from_manifest` reads back."""
        tariff = {f.name: getattr(self.tariff, f.name) for f in fields(self.tariff)}
        tariff["energy_rates"] = [_rate_dict(rate) for rate in self.tariff.energy_rates]
        series = tariff.pop("price_series")
        if series is not None:
            tariff["price_series"] = {
                "source": Path(series.source).name,
                "recorded_in": _RECORDED_IN,
                "export_prices": series.export_price_per_kwh is not None,
            }
        tariff["driver_price_per_kwh"] = float(self.driver_price_per_kwh)
        return {
            "start": self.start.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "step_s": int(self.step_s),
            "site": {"name": self.site_name, "tz": self.tz},
            "tariff": tariff,
        }


def _rate_dict(rate: EnergyRate) -> dict[str, Any]:
    data = asdict(rate)
    for name in ("weekdays", "months"):
        if data[name] is not None:
            data[name] = list(data[name])
    return data


def _section(manifest: dict[str, Any], name: str) -> dict[str, Any]:
    section = manifest.get(name)
    if not isinstance(section, dict):
        raise SettlementError(f"manifest.json has no {name!r} section; {_RERUN}")
    return section


def recorded_price_series(manifest: dict[str, Any]) -> dict[str, Any] | None:
    """The ``price_series`` entry of the manifest's tariff (module doc); None without one.

    Raises:
        SettlementError: an entry that does not say where the prices were recorded.
    """
    tariff = manifest.get("tariff")
    entry = tariff.get("price_series") if isinstance(tariff, dict) else None
    if entry is None:
        return None
    if not isinstance(entry, dict) or entry.get("recorded_in") != _RECORDED_IN:
        raise SettlementError(
            f"manifest.json tariff price_series {entry!r} does not say the prices are recorded "
            f"in {_RECORDED_IN}; {_RERUN}"
        )
    return entry


def _tariff(section: dict[str, Any], prices: PriceSeries | None) -> tuple[Tariff, float]:
    data = dict(section)
    driver = data.pop("driver_price_per_kwh", None)
    if not isinstance(driver, int | float) or isinstance(driver, bool):
        raise SettlementError(
            f"manifest.json tariff has driver_price_per_kwh {driver!r}, not a number; {_RERUN}"
        )
    known = {f.name for f in fields(Tariff)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise SettlementError(f"manifest.json tariff has unknown fields {unknown}")
    if data.pop("price_series", None) is not None:
        if prices is None:
            raise SettlementError(
                f"manifest.json tariff is priced by a price series recorded in {_RECORDED_IN}; "
                "pass its prices (read_run_inputs does)"
            )
        data["price_series"] = prices
    try:
        rates = []
        for rate in data.pop("energy_rates", []):
            rate = dict(rate)
            for name in ("weekdays", "months"):
                if rate.get(name) is not None:
                    rate[name] = tuple(rate[name])
            rates.append(EnergyRate(**rate))
        return Tariff(energy_rates=tuple(rates), **data), float(driver)
    except (TypeError, TariffError) as exc:
        raise SettlementError(f"manifest.json tariff cannot be read: {exc}") from exc


def context_from_manifest(
    manifest: dict[str, Any], prices: PriceSeries | None = None
) -> SiteContext:
    """The :class:`SiteContext` recorded in a run's manifest.

    Args:
        manifest: ``manifest.json`` as a dict.
        prices: The run's recorded per-step prices, for a tariff priced by a price series
            (:func:`recorded_price_series`); ignored otherwise.

    Raises:
        SettlementError: a missing section or field, one that does not make a tariff, or a
            tariff priced by a price series without ``prices``.
    """
    site = _section(manifest, "site")
    name, tz = site.get("name"), site.get("tz")
    if not isinstance(name, str) or not isinstance(tz, str):
        raise SettlementError(f"manifest.json site section lacks 'name' or 'tz'; {_RERUN}")
    start_text, step_s = manifest.get("start"), manifest.get("step_s")
    try:
        start = datetime.fromisoformat(str(start_text).replace("Z", "+00:00"))
    except ValueError as exc:
        raise SettlementError(f"manifest.json start {start_text!r} is not an ISO instant") from exc
    if start.tzinfo is None:
        raise SettlementError(f"manifest.json start {start_text!r} has no UTC offset")
    if not isinstance(step_s, int) or isinstance(step_s, bool) or step_s <= 0:
        raise SettlementError(f"manifest.json step_s {step_s!r} is not a positive integer")
    tariff, driver = _tariff(_section(manifest, "tariff"), prices)
    return SiteContext(name, tz, start.astimezone(UTC), step_s, tariff, driver)
