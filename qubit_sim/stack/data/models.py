"""Pydantic models of the six Qubit v0.1 entities, and the L3 tariff shape.

Every entity follows its official JSON Schema field by field: required fields, enums, patterns,
id prefixes (``org_ sit_ ast_ met_ sen_ tse_``), numeric ranges (efficiency in percent 0..100),
closed top level (``additionalProperties: false`` -> unknown keys are errors; extensions go in
``metadata``), nested objects open where the schema leaves them open. Timestamps are UTC and
written ``...Z``.

* ``Entity.from_document(doc)`` parses a JSON document and reports every problem at once as a
  :class:`~qubit_sim.stack.data.errors.DocumentError`.
* ``entity.to_json()`` gives the document back (plain types, unset fields left out); it validates
  against the official schema.

Units follow the schemas: power [kW], energy [kWh], efficiency [percent], timestamps UTC.
"""

from __future__ import annotations

from typing import Any

from qubit_sim.stack.data.entities import Asset, Organization, Site
from qubit_sim.stack.data.errors import DocumentError
from qubit_sim.stack.data.measurement_entities import (
    DataPoint,
    Meter,
    MeterMeasurement,
    Sensor,
    TimeSeries,
    TimeSeriesMeasurement,
    TimeSeriesSource,
)
from qubit_sim.stack.data.schema_types import QubitEntity, QubitModel
from qubit_sim.stack.data.tariff import EnergyRate, RateSchedule, Tariff

__all__ = [
    "ENTITY_MODELS",
    "Asset",
    "DataPoint",
    "EnergyRate",
    "Meter",
    "MeterMeasurement",
    "Organization",
    "QubitEntity",
    "QubitModel",
    "RateSchedule",
    "Sensor",
    "Site",
    "Tariff",
    "TimeSeries",
    "TimeSeriesMeasurement",
    "TimeSeriesSource",
    "parse_document",
]

ENTITY_MODELS: dict[str, type[QubitEntity]] = {
    model.SCHEMA_NAME: model for model in (Organization, Site, Asset, Meter, Sensor, TimeSeries)
}
"""Schema file stem (``"meter"`` for ``meter.json``) -> model."""


def parse_document(
    kind: str, document: dict[str, Any], *, accept_docs_prefixes: bool = False
) -> QubitEntity:
    """Parse a document of the entity ``kind`` (a schema file stem, e.g. ``"site"``).

    Raises:
        DocumentError: an unknown kind, or every problem of the document.
    """
    model = ENTITY_MODELS.get(kind)
    if model is None:
        raise DocumentError(kind, [f"unknown entity kind {kind!r}; one of {sorted(ENTITY_MODELS)}"])
    return model.from_document(document, accept_docs_prefixes=accept_docs_prefixes)
