"""The pydantic models follow the official Qubit v0.1 schemas field by field."""

from __future__ import annotations

import copy
import datetime as dt
import types
import typing
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from qubit_sim.errors import QubitSimError
from qubit_sim.stack.data import (
    ENTITY_MODELS,
    Asset,
    DocumentError,
    Meter,
    Site,
    TimeSeries,
    canonical_id,
    parse_document,
)
from qubit_sim.stack.data.schema_types import DATA_QUALITIES

ROUND_TRIP = ("organization", "site", "asset", "sensor", "timeseries")


# --- structure: every property, required field, enum and closedness -------------------------------


def _resolve(node: dict[str, Any], schemas: dict[str, Any], home: str) -> tuple[dict, str]:
    """Follow ``$ref`` chains (``_definitions.json#/...`` or ``#/...``)."""
    while "$ref" in node:
        target, _, pointer = node["$ref"].partition("#")
        home = target.removesuffix(".json") if target else home
        node = schemas[home]
        for part in pointer.strip("/").split("/"):
            node = node[part]
    return node, home


def _types(annotation: Any) -> list[Any]:
    """Concrete types inside Optional/Union/Annotated/list."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _types(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType, list):
        return [t for arg in typing.get_args(annotation) for t in _types(arg)]
    return [annotation]


def _literal_values(annotation: Any) -> set[Any] | None:
    values: set[Any] = set()
    for kind in _types(annotation):
        if typing.get_origin(kind) is typing.Literal:
            values.update(typing.get_args(kind))
    return values or None


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    for kind in _types(annotation):
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            return kind
    return None


def _compare(model: type[BaseModel], node: dict, schemas: dict, home: str, where: str) -> list[str]:
    problems = []
    properties = node.get("properties", {})
    fields = model.model_fields
    if set(fields) != set(properties):
        problems.append(
            f"{where}: fields {sorted(set(fields) ^ set(properties))} differ from the schema"
        )
    required = {name for name, info in fields.items() if info.is_required()}
    if required != set(node.get("required", [])):
        problems.append(f"{where}: required {sorted(required)} != {node.get('required', [])}")
    closed = node.get("additionalProperties") is False
    if (model.model_config.get("extra") == "forbid") != closed:
        problems.append(f"{where}: extra={model.model_config.get('extra')} but closed={closed}")
    for name, prop in properties.items():
        if name not in fields:
            continue
        prop, prop_home = _resolve(prop, schemas, home)
        if prop.get("type") == "array":
            prop, prop_home = _resolve(prop.get("items", {}), schemas, prop_home)
        annotation = fields[name].annotation
        if "enum" in prop and _literal_values(annotation) != set(prop["enum"]):
            problems.append(f"{where}.{name}: enum {_literal_values(annotation)} != {prop['enum']}")
        if "properties" in prop:
            nested = _nested_model(annotation)
            if nested is None:
                problems.append(f"{where}.{name}: the schema has an object, the model has no model")
            else:
                problems += _compare(nested, prop, schemas, prop_home, f"{where}.{name}")
    return problems


@pytest.mark.parametrize("kind", sorted(ENTITY_MODELS))
def test_model_mirrors_schema_field_by_field(kind: str, schemas: dict[str, Any]) -> None:
    assert _compare(ENTITY_MODELS[kind], schemas[kind], schemas, kind, kind) == []


# --- official examples ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ROUND_TRIP)
def test_official_examples_parse_and_round_trip(
    kind: str, examples: dict[str, Any], schema_errors: Any
) -> None:
    document = examples[kind]
    assert schema_errors(kind, document) == []
    parsed = ENTITY_MODELS[kind].from_document(document)
    assert parsed.to_json() == document
    assert schema_errors(kind, parsed.to_json()) == []


def test_upstream_meter_example_fails_its_own_schema_for_reactive_units(
    examples: dict[str, Any], schema_errors: Any
) -> None:
    document = examples["meter"]
    # the schema's measurement_unit enum has no reactive units; the example uses kVArh and kVAr
    assert schema_errors("meter", document) == [
        f"measurements/1/unit: 'kVArh' is not one of {_units_text(schema_errors)}",
        f"measurements/3/unit: 'kVAr' is not one of {_units_text(schema_errors)}",
    ]
    with pytest.raises(DocumentError) as caught:
        Meter.from_document(document)
    issues = caught.value.issues
    assert [issue.split(":")[0] for issue in issues] == [
        "measurements[1].unit",
        "measurements[3].unit",
    ]
    assert "'kVArh'" in issues[0] and "'kVAr'" in issues[1]
    # without the two reactive measurements the example is valid for both
    active_only = copy.deepcopy(document)
    active_only["measurements"] = [
        m
        for m in document["measurements"]
        if m["parameter"] not in ("reactive_energy", "reactive_power")
    ]
    assert schema_errors("meter", active_only) == []
    assert Meter.from_document(active_only).to_json() == active_only


def _units_text(schema_errors: Any) -> str:
    from qubit_sim.stack.data import MEASUREMENT_UNITS

    return repr(list(MEASUREMENT_UNITS))


def test_measurement_units_match_the_definitions(schemas: dict[str, Any]) -> None:
    from qubit_sim.stack.data import MEASUREMENT_UNITS

    assert list(MEASUREMENT_UNITS) == schemas["_definitions"]["$defs"]["measurement_unit"]["enum"]
    assert list(DATA_QUALITIES) == schemas["_definitions"]["$defs"]["data_quality"]["enum"]


# --- closed top level, open nested objects ---------------------------------------------------------


def test_unknown_top_level_key_is_rejected_by_model_and_schema(
    examples: dict[str, Any], schema_errors: Any
) -> None:
    document = {**examples["site"], "soc": 0.5}
    assert any("Additional properties" in e for e in schema_errors("site", document))
    with pytest.raises(DocumentError, match=r"soc: unknown field.*metadata"):
        Site.from_document(document)


def test_nested_objects_accept_extra_keys_like_the_schema(
    examples: dict[str, Any], schema_errors: Any
) -> None:
    document = copy.deepcopy(examples["site"])
    document["location"]["what3words"] = "index.home.raft"
    assert schema_errors("site", document) == []
    assert Site.from_document(document).to_json()["location"]["what3words"] == "index.home.raft"


# --- ids ---------------------------------------------------------------------------------------


def test_docs_site_prefixes_are_refused_with_the_schema_spelling(examples: dict[str, Any]) -> None:
    document = {**examples["timeseries"], "id": "ts_power_20250115"}
    with pytest.raises(DocumentError, match=r"'ts_'.*'tse_power_20250115'"):
        TimeSeries.from_document(document)


def test_docs_site_prefixes_are_rewritten_on_request_without_touching_the_input(
    examples: dict[str, Any],
) -> None:
    document = copy.deepcopy(examples["meter"])
    document["measurements"] = document["measurements"][:1]
    document["id"] = "mtr_main_001"
    document["virtual_meter"] = {"is_virtual": True, "source_meters": ["mtr_a", "met_b"]}
    before = copy.deepcopy(document)
    meter = Meter.from_document(document, accept_docs_prefixes=True)
    assert meter.id == "met_main_001"
    assert meter.virtual_meter.source_meters == ["met_a", "met_b"]
    assert document == before
    assert canonical_id("sns_t1") == "sen_t1" and canonical_id("ast_x") == "ast_x"


@pytest.mark.parametrize("bad", ["ast", "ast_", "AST_x", "ast_a b", "ast_é", "ast_x\n"])
def test_malformed_ids_are_rejected(bad: str) -> None:
    with pytest.raises(ValidationError, match="asset id"):
        Asset(id=bad, site_id="sit_a", name="a", type="other")


# --- timestamps, numbers, data points ------------------------------------------------------------


def _series(points: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "id": "tse_x",
        "source": {"type": "calculated", "site_id": "sit_x"},
        "measurement": {"parameter": "active_power", "unit": "kW"},
        "interval": "15m",
        "period": {"start": "2025-01-15T00:00:00Z", "end": "2025-01-15T01:00:00Z"},
        "data_points": points,
        **extra,
    }


def test_timestamps_are_stored_in_utc_and_written_with_z() -> None:
    series = TimeSeries.from_document(
        _series(
            [
                {"timestamp": "2025-01-15T01:30:00+01:00", "value": 1},
                {"timestamp": "2025-01-15T00:45:00.250Z", "value": 2},
                {"timestamp": dt.datetime(2025, 1, 15, 1, tzinfo=dt.UTC), "value": 3},
            ]
        )
    )
    stamps = [p["timestamp"] for p in series.to_json()["data_points"]]
    assert stamps == ["2025-01-15T00:30:00Z", "2025-01-15T00:45:00.250Z", "2025-01-15T01:00:00Z"]


@pytest.mark.parametrize(
    "stamp", ["2025-01-15T00:30:00", "2025-01-15", 1736900000, "20250115T003000Z", "15/01/2025"]
)
def test_naive_or_malformed_timestamps_are_refused(stamp: Any) -> None:
    with pytest.raises(DocumentError, match=r"data_points\[0\]\.timestamp"):
        TimeSeries.from_document(_series([{"timestamp": stamp, "value": 1}]))


@pytest.mark.parametrize(
    "capacity",
    [{"power_kw": "5"}, {"power_kw": True}, {"power_kw": float("nan")}, {"power_kw": -1.0}],
)
def test_numbers_are_strict_finite_and_in_range(capacity: dict[str, Any]) -> None:
    with pytest.raises(DocumentError, match=r"capacity\.power_kw"):
        Asset.from_document(
            {"id": "ast_a", "site_id": "sit_a", "name": "a", "type": "other", "capacity": capacity}
        )


def test_integer_fields_take_whole_floats_only(examples: dict[str, Any]) -> None:
    document = copy.deepcopy(examples["asset"])
    document["maintenance_info"]["maintenance_interval_days"] = 90.0
    assert Asset.from_document(document).maintenance_info.maintenance_interval_days == 90
    document["maintenance_info"]["maintenance_interval_days"] = 90.5
    with pytest.raises(DocumentError, match="maintenance_interval_days"):
        Asset.from_document(document)


def test_missing_values_are_written_as_json_null(schema_errors: Any) -> None:
    points = [
        {"timestamp": "2025-01-15T00:00:00Z", "value": None, "quality": "missing"},
        {"timestamp": "2025-01-15T00:15:00Z", "value": True},
        {"timestamp": "2025-01-15T00:30:00Z", "value": 0},
    ]
    written = TimeSeries.from_document(_series(points)).to_json()
    assert written["data_points"][0] == points[0]
    assert written["data_points"][1]["value"] is True
    assert (
        written["data_points"][2]["value"] == 0 and written["data_points"][2]["value"] is not False
    )
    assert schema_errors("timeseries", written) == []


def test_document_error_is_a_qubit_sim_value_error_listing_every_problem() -> None:
    with pytest.raises(DocumentError) as caught:
        Site.from_document({"id": "site_1", "name": "", "type": "park"})
    error = caught.value
    assert isinstance(error, QubitSimError) and isinstance(error, ValueError)
    paths = sorted(issue.split(":")[0] for issue in error.issues)
    assert paths == ["id", "location", "name", "organization_id", "type"]


def test_parse_document_names_unknown_kinds() -> None:
    with pytest.raises(DocumentError, match="unknown entity kind 'tariff'"):
        parse_document("tariff", {})


# --- property: whatever the model accepts, the schema accepts ----------------------------------------

_offsets = st.integers(min_value=-14 * 60, max_value=14 * 60).map(
    lambda minutes: dt.timezone(dt.timedelta(minutes=minutes))
)
_instants = st.datetimes(
    min_value=dt.datetime(1990, 1, 1), max_value=dt.datetime(2100, 1, 1), timezones=_offsets
)
_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**53), max_value=2**53),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
)
_points = st.fixed_dictionaries(
    {"timestamp": _instants, "value": _values},
    optional={
        "quality": st.sampled_from(DATA_QUALITIES),
        "flags": st.lists(st.sampled_from(["out_of_range", "interpolated", "billing"]), max_size=2),
    },
)


@settings(max_examples=60, deadline=None)
@given(points=st.lists(_points, max_size=6), unit=st.sampled_from(["kW", "kWh", "percent"]))
def test_any_valid_timeseries_model_serialises_to_a_schema_valid_document(
    points: list[dict[str, Any]], unit: str, schema_errors: Any
) -> None:
    document = _series(points)
    document["measurement"]["unit"] = unit
    written = TimeSeries.model_validate(document).to_json()
    assert schema_errors("timeseries", written) == []
    for point, original in zip(written["data_points"], points, strict=True):
        assert point["timestamp"].endswith("Z")
        parsed = dt.datetime.fromisoformat(point["timestamp"].replace("Z", "+00:00"))
        assert parsed == original["timestamp"]
        assert point["value"] == original["value"]
        assert type(point["value"]) is type(original["value"])
