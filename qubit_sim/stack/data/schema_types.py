"""Building blocks of the Qubit v0.1 models: ids, timestamps, enums and the shared definitions.

Mirrors ``_definitions.json`` of the Qubit v0.1 JSON Schemas (draft 2020-12):

* Ids carry the schema prefixes ``org_ sit_ ast_ met_ sen_ tse_`` followed by ``[a-zA-Z0-9_-]+``.
  The documentation site spells three of them differently (``mtr_``, ``sns_``, ``ts_``); those are
  rejected with a message naming the schema spelling, or rewritten by :func:`canonical_id` when a
  caller opts in (``accept_docs_prefixes=True`` on ``from_document``).
* Timestamps must carry a UTC offset; they are stored in UTC and written as ``...Z`` (with
  milliseconds, or microseconds, only when the instant has them).
* Numbers are strict: a string ``"5"`` or a boolean is not a number, NaN and infinity are refused
  (JSON has neither), an integer field takes ``3`` or ``3.0`` but not ``3.5``.
* Objects that the schema closes (``additionalProperties: false``, every entity) forbid unknown
  keys; nested objects the schema leaves open accept extra keys, as the schema does.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
from typing import Annotated, Any, ClassVar, Literal, Self, get_args
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    Strict,
    StrictStr,
    ValidationError,
)

from qubit_sim.stack.data.errors import DocumentError

__all__ = [
    "AGGREGATION_METHODS",
    "ASSET_TYPES",
    "CONNECTION_TYPES",
    "DATA_INTERVALS",
    "DATA_QUALITIES",
    "DOCS_ID_PREFIXES",
    "ID_PREFIXES",
    "MEASUREMENT_UNITS",
    "METER_TYPES",
    "PHASES",
    "SENSOR_TYPES",
    "STATUSES",
    "Address",
    "AggregationMethod",
    "AssetId",
    "AssetType",
    "Capacity",
    "CommissioningInfo",
    "ConnectionType",
    "Contact",
    "DataInterval",
    "DataQuality",
    "Date",
    "Description",
    "Efficiency",
    "Email",
    "Fraction",
    "Integer",
    "Ipv4",
    "Location",
    "MaintenanceInfo",
    "ManufacturerInfo",
    "MeasurementUnit",
    "Metadata",
    "MeterId",
    "MeterType",
    "Name",
    "NonNegative",
    "Number",
    "OrganizationId",
    "Phase",
    "QubitEntity",
    "QubitModel",
    "SensorId",
    "SensorType",
    "SiteId",
    "Status",
    "TimeSeriesId",
    "Timestamp",
    "Uri",
    "canonical_id",
    "format_utc",
    "to_utc",
]

# --- enums of _definitions.json -------------------------------------------------------------------

Status = Literal["active", "inactive", "maintenance", "fault", "unknown"]
AssetType = Literal[
    "solar_pv", "wind_turbine", "battery_storage", "diesel_generator", "natural_gas_generator",
    "grid_connection", "transformer", "inverter", "ev_charger", "fuel_cell", "hydro_turbine",
    "heat_pump", "chiller", "boiler", "other",
]  # fmt: skip
MeterType = Literal["main", "submeter", "generation", "consumption", "net", "check", "virtual"]
SensorType = Literal[
    "temperature", "humidity", "pressure", "irradiance", "wind_speed", "wind_direction", "voltage",
    "current", "power", "energy", "frequency", "power_factor", "co2", "occupancy", "other",
]  # fmt: skip
MeasurementUnit = Literal[
    "W", "kW", "MW", "GW", "Wh", "kWh", "MWh", "GWh", "V", "kV", "A", "kA", "Hz", "celsius",
    "fahrenheit", "kelvin", "percent", "ppm", "pascal", "kPa", "bar", "psi", "m/s", "km/h", "mph",
    "W/m2", "lux", "degree", "radian", "dimensionless", "boolean", "count",
]  # fmt: skip
DataQuality = Literal[
    "measured", "validated", "estimated", "interpolated", "manual", "missing", "error"
]
Phase = Literal["A", "B", "C", "AB", "BC", "CA", "ABC", "single", "three"]
ConnectionType = Literal["grid_import", "grid_export", "island", "microgrid", "backup", "parallel"]
DataInterval = Literal[
    "1s", "5s", "10s", "30s", "1m", "5m", "10m", "15m", "30m", "1h", "1d", "1w", "1M", "irregular"
]
AggregationMethod = Literal[
    "sum", "average", "min", "max", "first", "last", "count", "median", "mode", "std_dev"
]

STATUSES: tuple[str, ...] = get_args(Status)
ASSET_TYPES: tuple[str, ...] = get_args(AssetType)
METER_TYPES: tuple[str, ...] = get_args(MeterType)
SENSOR_TYPES: tuple[str, ...] = get_args(SensorType)
MEASUREMENT_UNITS: tuple[str, ...] = get_args(MeasurementUnit)
DATA_QUALITIES: tuple[str, ...] = get_args(DataQuality)
PHASES: tuple[str, ...] = get_args(Phase)
CONNECTION_TYPES: tuple[str, ...] = get_args(ConnectionType)
DATA_INTERVALS: tuple[str, ...] = get_args(DataInterval)
AGGREGATION_METHODS: tuple[str, ...] = get_args(AggregationMethod)

# --- ids -------------------------------------------------------------------------------------------

ID_PREFIXES: dict[str, str] = {
    "organization": "org_",
    "site": "sit_",
    "asset": "ast_",
    "meter": "met_",
    "sensor": "sen_",
    "timeseries": "tse_",
}
"""Entity -> id prefix required by the v0.1 schemas."""

DOCS_ID_PREFIXES: dict[str, str] = {"mtr_": "met_", "sns_": "sen_", "ts_": "tse_"}
"""Prefixes used on the documentation site -> the schema spelling."""

_ID_BODY = re.compile(r"[a-zA-Z0-9_-]+")


def canonical_id(value: str) -> str:
    """Rewrite a documentation-site id prefix (``mtr_``/``sns_``/``ts_``) to the schema one.

    Ids that already use a schema prefix, or no known prefix, are returned unchanged.
    """
    for docs, schema in DOCS_ID_PREFIXES.items():
        if value.startswith(docs):
            return schema + value[len(docs) :]
    return value


def _id_checker(entity: str) -> Any:
    prefix = ID_PREFIXES[entity]

    def check(value: str) -> str:
        if value.startswith(prefix) and _ID_BODY.fullmatch(value[len(prefix) :]):
            return value
        for docs, schema in DOCS_ID_PREFIXES.items():
            if schema == prefix and value.startswith(docs):
                raise ValueError(
                    f"{entity} id {value!r} uses the documentation-site prefix {docs!r}; the "
                    f"Qubit v0.1 schemas require {prefix!r}: write {canonical_id(value)!r}, or "
                    "parse with from_document(..., accept_docs_prefixes=True)"
                )
        raise ValueError(
            f"{entity} id {value!r} must be {prefix!r} followed by letters, digits, '_' or '-', "
            f"e.g. '{prefix}main_01'"
        )

    return AfterValidator(check)


OrganizationId = Annotated[StrictStr, _id_checker("organization")]
SiteId = Annotated[StrictStr, _id_checker("site")]
AssetId = Annotated[StrictStr, _id_checker("asset")]
MeterId = Annotated[StrictStr, _id_checker("meter")]
SensorId = Annotated[StrictStr, _id_checker("sensor")]
TimeSeriesId = Annotated[StrictStr, _id_checker("timeseries")]

# --- timestamps and dates --------------------------------------------------------------------------

_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def to_utc(value: dt.datetime | str) -> dt.datetime:
    """An offset-carrying instant as a UTC datetime.

    Raises:
        ValueError: for a naive datetime or a string that is not an RFC 3339 date-time.
    """
    if isinstance(value, str):
        if not _RFC3339.fullmatch(value):
            raise ValueError(
                f"timestamp {value!r} is not an RFC 3339 date-time with offset; "
                "write e.g. '2025-01-15T14:30:00Z'"
            )
        value = dt.datetime.fromisoformat(value.upper())
    if not isinstance(value, dt.datetime):
        raise ValueError(f"timestamp must be a string or datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(
            f"timestamp {value.isoformat()!r} has no UTC offset; Qubit timestamps are UTC "
            "(write e.g. '2025-01-15T14:30:00Z', or convert local times with local_to_utc())"
        )
    return value.astimezone(dt.UTC)


def format_utc(value: dt.datetime) -> str:
    """``YYYY-MM-DDTHH:MM:SSZ``; ``.mmm`` or ``.uuuuuu`` only when the instant has a fraction."""
    utc = to_utc(value)
    text = utc.strftime("%Y-%m-%dT%H:%M:%S")
    if utc.microsecond % 1000:
        text += f".{utc.microsecond:06d}"
    elif utc.microsecond:
        text += f".{utc.microsecond // 1000:03d}"
    return text + "Z"


def _check_timestamp(value: Any) -> dt.datetime:
    return to_utc(value)


def _check_date(value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        raise ValueError(f"expected a calendar date, got the datetime {value.isoformat()!r}")
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str) and _DATE.fullmatch(value):
        try:
            return dt.date.fromisoformat(value)
        except ValueError as exc:
            raise ValueError(f"date {value!r} does not exist: {exc}") from None
    raise ValueError(f"date {value!r} must be written 'YYYY-MM-DD'")


Timestamp = Annotated[
    dt.datetime,
    BeforeValidator(_check_timestamp),
    PlainSerializer(format_utc, return_type=str, when_used="json"),
]
"""An instant, stored in UTC and written ``...Z``."""

Date = Annotated[dt.date, BeforeValidator(_check_date)]
"""A calendar date ``YYYY-MM-DD``."""

# --- strings with formats, numbers ----------------------------------------------------------------


def _check_email(value: str) -> str:
    local, at, domain = value.partition("@")
    if not at or not local or not domain or "@" in domain or any(c.isspace() for c in value):
        raise ValueError(f"{value!r} is not an e-mail address (name@domain)")
    return value


def _check_uri(value: str) -> str:
    parts = urlsplit(value)
    if not parts.scheme or not (parts.netloc or parts.path) or any(c.isspace() for c in value):
        raise ValueError(f"{value!r} is not an absolute URI; write e.g. 'https://example.com'")
    return value


def _check_ipv4(value: str) -> str:
    try:
        ipaddress.IPv4Address(value)
    except ValueError:
        raise ValueError(f"{value!r} is not an IPv4 address (e.g. '192.168.1.100')") from None
    return value


def _check_integer(value: Any) -> int:
    # JSON Schema counts 3.0 as an integer; booleans and strings are not numbers.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"expected an integer, got {value!r}")
    if isinstance(value, float) and not value.is_integer():
        raise ValueError(f"expected an integer, got {value!r}")
    return int(value)


Email = Annotated[StrictStr, AfterValidator(_check_email)]
Uri = Annotated[StrictStr, AfterValidator(_check_uri)]
Ipv4 = Annotated[StrictStr, AfterValidator(_check_ipv4)]
Number = Annotated[float, Strict()]
NonNegative = Annotated[float, Strict(), Field(ge=0)]
Integer = Annotated[int, BeforeValidator(_check_integer)]
Efficiency = Annotated[float, Strict(), Field(ge=0, le=100)]
"""Efficiency in percent 0..100 (not a fraction)."""
Fraction = Annotated[float, Strict(), Field(ge=0, le=1)]
Name = Annotated[StrictStr, Field(min_length=1, max_length=200)]
Description = Annotated[StrictStr, Field(max_length=1000)]
Metadata = dict[str, Any]
"""Free-form extension object (the only place for fields the schemas do not define)."""

# --- base model and shared definitions -------------------------------------------------------------


class QubitModel(BaseModel):
    """Base of every Qubit model: strict numbers, no NaN, open to extra keys (as the schema)."""

    model_config = ConfigDict(extra="allow", allow_inf_nan=False, validate_default=True)

    def to_json(self) -> dict[str, Any]:
        """The JSON document: plain types, UTC ``Z`` timestamps, unset (None) fields left out."""
        return self.model_dump(mode="json", exclude_none=True)


_ID_LIST_KEYS = ("source_meters",)


def _canonical_ids(node: Any) -> Any:
    """Copy of a document with the docs-site prefix of every id field rewritten."""
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for key, value in node.items():
            if isinstance(value, str) and (key == "id" or key.endswith("_id")):
                out[key] = canonical_id(value)
            elif key in _ID_LIST_KEYS and isinstance(value, list):
                out[key] = [canonical_id(v) if isinstance(v, str) else v for v in value]
            else:
                out[key] = _canonical_ids(value)
        return out
    if isinstance(node, list):
        return [_canonical_ids(item) for item in node]
    return node


def _issue(error: Any) -> str:
    path = ""
    for part in error["loc"]:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        message = "unknown field; the schema forbids additional properties (use 'metadata')"
    elif isinstance(error.get("input"), str | int | float) and repr(error["input"]) not in message:
        message += f" (got {error['input']!r})"
    return f"{path or '<root>'}: {message}"


class QubitEntity(QubitModel):
    """A closed Qubit document (unknown keys are errors), parsed with every problem collected."""

    model_config = ConfigDict(extra="forbid")
    SCHEMA_NAME: ClassVar[str] = ""

    @classmethod
    def from_document(cls, document: dict[str, Any], *, accept_docs_prefixes: bool = False) -> Self:
        """Parse a JSON document (as loaded by ``json.load``).

        Args:
            document: The document; it is not modified.
            accept_docs_prefixes: Rewrite the documentation-site id prefixes ``mtr_``, ``sns_``,
                ``ts_`` to the schema ones (``met_``, ``sen_``, ``tse_``) before validating.

        Raises:
            DocumentError: listing every problem with its path in the document.
        """
        source = _canonical_ids(document) if accept_docs_prefixes else document
        try:
            return cls.model_validate(source)
        except ValidationError as exc:
            raise DocumentError(cls.__name__, [_issue(e) for e in exc.errors()]) from None


class Address(QubitModel):
    """Postal address."""

    street: StrictStr | None = None
    city: StrictStr | None = None
    state: StrictStr | None = None
    postal_code: StrictStr | None = None
    country: StrictStr | None = None


class Location(QubitModel):
    """WGS84 position [decimal degrees], altitude [m], IANA time zone and address."""

    latitude: Annotated[Number, Field(ge=-90, le=90)]
    longitude: Annotated[Number, Field(ge=-180, le=180)]
    altitude: Number | None = None
    timezone: StrictStr | None = None
    address: Address | None = None


class Contact(QubitModel):
    """A contact person."""

    name: StrictStr | None = None
    email: Email | None = None
    phone: StrictStr | None = None
    role: StrictStr | None = None


class Capacity(QubitModel):
    """Rated power [kW] and energy [kWh]."""

    power_kw: NonNegative | None = None
    energy_kwh: NonNegative | None = None


class ManufacturerInfo(QubitModel):
    """Make, model, serial and firmware of a device."""

    manufacturer: StrictStr | None = None
    model: StrictStr | None = None
    serial_number: StrictStr | None = None
    firmware_version: StrictStr | None = None
    manufacture_date: Date | None = None


class MaintenanceInfo(QubitModel):
    """Last/next maintenance instants and the interval [days]."""

    last_maintenance: Timestamp | None = None
    next_maintenance: Timestamp | None = None
    maintenance_interval_days: Annotated[Integer, Field(ge=1)] | None = None


class CommissioningInfo(QubitModel):
    """Commissioning and decommissioning dates, expected lifetime [years]."""

    commissioned_date: Date | None = None
    decommissioned_date: Date | None = None
    expected_lifetime_years: NonNegative | None = None
