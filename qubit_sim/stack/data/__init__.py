"""Qubit L1 data layer: v0.1 schema models, adapters, and the export of run results.

* :mod:`.models` — pydantic models of Organization, Site, Asset, Meter, Sensor, TimeSeries
  (conformant to the official Qubit v0.1 JSON Schemas) and the L3 :class:`Tariff` shape.
* :mod:`.adapters` — unit conversion (kW/kWh normalisation, current -> power), local time -> UTC
  with explicit DST gap/overlap errors, telemetry quality flags; document-level adapters that
  never modify their input.
* :mod:`.export` — :func:`export_qubit`: a results folder -> Qubit JSON documents.

Nothing here reads the schema files at run time or the wall clock.
"""

from __future__ import annotations

from qubit_sim.stack.data.adapters import (
    ENERGY_REGISTER,
    SOC_FRACTION,
    SOC_PERCENT,
    Bounds,
    QualitySummary,
    SeriesValidation,
    check_timezone,
    convert,
    convert_timeseries,
    current_to_power_kw,
    local_to_utc,
    localize_to_utc,
    power_to_current_a,
    quantity_of,
    timeseries_to_utc,
    to_amperes,
    to_kw,
    to_kwh,
    to_volts,
    unit_factor,
    utc_to_local,
    validate_series,
    validate_timeseries,
)
from qubit_sim.stack.data.errors import (
    AmbiguousTimeError,
    DataError,
    DocumentError,
    ExportError,
    NonexistentTimeError,
    TelemetryError,
    TimezoneError,
    UnitError,
)
from qubit_sim.stack.data.export import QubitExport, build_qubit_documents, export_qubit
from qubit_sim.stack.data.models import (
    ENTITY_MODELS,
    Asset,
    DataPoint,
    EnergyRate,
    Meter,
    Organization,
    QubitEntity,
    RateSchedule,
    Sensor,
    Site,
    Tariff,
    TimeSeries,
    parse_document,
)
from qubit_sim.stack.data.schema_types import (
    DOCS_ID_PREFIXES,
    ID_PREFIXES,
    MEASUREMENT_UNITS,
    canonical_id,
    format_utc,
)

__all__ = [
    "DOCS_ID_PREFIXES",
    "ENERGY_REGISTER",
    "ENTITY_MODELS",
    "ID_PREFIXES",
    "MEASUREMENT_UNITS",
    "SOC_FRACTION",
    "SOC_PERCENT",
    "AmbiguousTimeError",
    "Asset",
    "Bounds",
    "DataError",
    "DataPoint",
    "DocumentError",
    "EnergyRate",
    "ExportError",
    "Meter",
    "NonexistentTimeError",
    "Organization",
    "QualitySummary",
    "QubitEntity",
    "QubitExport",
    "RateSchedule",
    "Sensor",
    "SeriesValidation",
    "Site",
    "Tariff",
    "TelemetryError",
    "TimeSeries",
    "TimezoneError",
    "UnitError",
    "build_qubit_documents",
    "canonical_id",
    "check_timezone",
    "convert",
    "convert_timeseries",
    "current_to_power_kw",
    "export_qubit",
    "format_utc",
    "local_to_utc",
    "localize_to_utc",
    "parse_document",
    "power_to_current_a",
    "quantity_of",
    "timeseries_to_utc",
    "to_amperes",
    "to_kw",
    "to_kwh",
    "to_volts",
    "unit_factor",
    "utc_to_local",
    "validate_series",
    "validate_timeseries",
]
