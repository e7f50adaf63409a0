"""The public API of qubit_sim.stack.data is pinned, and the layer stays self-contained."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import qubit_sim.stack.data as data

EXPECTED = {
    "DOCS_ID_PREFIXES", "ENERGY_REGISTER", "ENTITY_MODELS", "ID_PREFIXES", "MEASUREMENT_UNITS",
    "SOC_FRACTION", "SOC_PERCENT", "AmbiguousTimeError", "Asset", "Bounds", "DataError",
    "DataPoint", "DocumentError", "EnergyRate", "ExportError", "Meter", "NonexistentTimeError",
    "Organization", "QualitySummary", "QubitEntity", "QubitExport", "RateSchedule", "Sensor",
    "SeriesValidation", "Site", "Tariff", "TelemetryError", "TimeSeries", "TimezoneError",
    "UnitError", "build_qubit_documents", "canonical_id", "check_timezone", "convert",
    "convert_timeseries", "current_to_power_kw", "export_qubit", "format_utc", "local_to_utc",
    "localize_to_utc", "parse_document", "power_to_current_a", "quantity_of", "timeseries_to_utc",
    "to_amperes", "to_kw", "to_kwh", "to_volts", "unit_factor", "utc_to_local", "validate_series",
    "validate_timeseries",
}  # fmt: skip

PACKAGE = Path(data.__file__).parent


def test_exported_names_are_pinned_and_importable() -> None:
    assert set(data.__all__) == EXPECTED
    assert all(getattr(data, name) is not None for name in data.__all__)


def test_every_module_declares_all_and_exports_only_what_it_defines() -> None:
    for path in sorted(PACKAGE.glob("*.py")):
        module = importlib.import_module(f"qubit_sim.stack.data.{path.stem}")
        if path.stem == "__init__":
            continue
        assert isinstance(module.__all__, list), path.name
        assert all(hasattr(module, name) for name in module.__all__), path.name


def test_the_layer_imports_only_downward_and_never_reads_the_schema_files() -> None:
    allowed = ("qubit_sim.errors", "qubit_sim.units", "qubit_sim.core", "qubit_sim.stack.data")
    for path in sorted(PACKAGE.glob("*.py")):
        source = path.read_text(encoding="utf-8")
        tree = ast.parse(source)
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("qubit_sim"):
                assert node.module.startswith(allowed), f"{path.name} imports {node.module}"
        assert "qubit-schemas" not in source and "shared/reference" not in source, path.name
