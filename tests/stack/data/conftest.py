"""Fixtures of the L1 data-layer tests: the official Qubit v0.1 schemas and two small runs."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

REPO = Path(__file__).resolve().parents[3]
SCHEMA_ROOT = REPO / ".." / "shared" / "reference" / "qubit-schemas"
ENTITIES = ("organization", "site", "asset", "meter", "sensor", "timeseries")

TINY_SCENARIO = """
site:
  name: tiny.site
  location: {lat: 34.05, lon: -118.25, tz: America/Los_Angeles}
  start: 2024-06-03T15:00:00Z
  duration: 3h
  step: 5min
  seed: 3
assets:
  chargers:
    - {power_kw: 11, count: 2}
    - {kind: dc, power_kw: 50, connectors: 2, protocol: ocpp2.0.1}
    - {id: bay, power_kw: 7.4, phases: 1, voltage_v: 230}
  batteries:
    - {capacity_kwh: 50, charge_kw: 20, discharge_kw: 25}
  pv:
    - {kwp: 10, count: 2}
  loads:
    - {profile: H0-A, peak_kw: 5}
evs:
  population: {behaviour: workplace, vehicles: 3}
tariff:
  currency: USD
  default_rate: 0.3
controller:
  name: rule_based
  params: {threshold_kw: 10}
"""


def _schema_dir() -> Path:
    folder = SCHEMA_ROOT / "v0.1"
    if not folder.is_dir():
        pytest.skip(f"official Qubit schemas not found at {folder}")
    return folder


@pytest.fixture(scope="session")
def schemas() -> dict[str, dict[str, Any]]:
    """Schema file stem -> schema, including ``_definitions``."""
    folder = _schema_dir()
    return {path.stem: json.loads(path.read_text()) for path in sorted(folder.glob("*.json"))}


@pytest.fixture(scope="session")
def examples() -> dict[str, dict[str, Any]]:
    """The official example documents, by entity."""
    _schema_dir()
    folder = SCHEMA_ROOT / "examples"
    return {name: json.loads((folder / f"{name}.json").read_text()) for name in ENTITIES}


@pytest.fixture(scope="session")
def validators(schemas: dict[str, dict[str, Any]]) -> dict[str, Draft202012Validator]:
    """A Draft 2020-12 validator per entity, resolving ``_definitions.json`` refs offline."""
    registry = Registry().with_resources(
        (schema["$id"], Resource.from_contents(schema)) for schema in schemas.values()
    )
    return {
        name: Draft202012Validator(
            schemas[name], registry=registry, format_checker=Draft202012Validator.FORMAT_CHECKER
        )
        for name in ENTITIES
    }


@pytest.fixture(scope="session")
def schema_errors(
    validators: dict[str, Draft202012Validator],
) -> Callable[[str, dict[str, Any]], list[str]]:
    """``schema_errors(kind, document)`` -> every schema violation as ``"path: message"``."""

    def errors(kind: str, document: dict[str, Any]) -> list[str]:
        found = validators[kind].iter_errors(document)
        return sorted(f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in found)

    return errors


@pytest.fixture(scope="session")
def workplace_results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three hours of the shipped workplace scenario from 08:00 local (EVs arrive, PV produces)."""
    import qubit_sim
    from qubit_sim.scenario.loader import load_scenario

    loaded = load_scenario(
        REPO / "scenarios" / "workplace_pv_battery.yaml",
        overrides={"site": {"start": "2025-06-02T06:00:00Z"}},
    )
    out = tmp_path_factory.mktemp("workplace") / "results"
    qubit_sim.run(loaded, until_s=3 * 3600, plots=False, out=out)
    return out


@pytest.fixture(scope="session")
def tiny_results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copper-plate site with auto-numbered devices, 5-min steps, three hours."""
    import qubit_sim

    folder = tmp_path_factory.mktemp("tiny")
    scenario = folder / "tiny.yaml"
    scenario.write_text(TINY_SCENARIO, encoding="utf-8")
    out = folder / "results"
    qubit_sim.run(scenario, plots=False, out=out)
    return out
