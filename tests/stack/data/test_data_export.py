"""A run's results folder exported as Qubit v0.1 documents: valid, consistent, faithful."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from qubit_sim.stack.data import ExportError, export_qubit, parse_document

KIND_OF_FOLDER = {
    "organizations": "organization",
    "sites": "site",
    "assets": "asset",
    "meters": "meter",
    "timeseries": "timeseries",
}
PREFIX = {
    "organization": "org_",
    "site": "sit_",
    "asset": "ast_",
    "meter": "met_",
    "timeseries": "tse_",
}
UTC_Z = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{3}|\.\d{6})?Z")
TIME_KEYS = {"timestamp", "start", "end", "created_at", "updated_at", "last_read"}


@pytest.fixture(scope="module")
def workplace_export(workplace_results: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("workplace_qubit")
    export_qubit(workplace_results, out, organization_id="org_office_park")
    return out


@pytest.fixture(scope="module")
def tiny_export(tiny_results: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tiny_qubit")
    export_qubit(tiny_results, out, interval="15m", site_type="commercial_building")
    return out


def _load(folder: Path) -> dict[str, list[dict[str, Any]]]:
    documents: dict[str, list[dict[str, Any]]] = {kind: [] for kind in KIND_OF_FOLDER.values()}
    for sub, kind in KIND_OF_FOLDER.items():
        for path in sorted((folder / sub).glob("*.json")):
            document = json.loads(path.read_text(encoding="utf-8"))
            assert path.stem == document["id"]
            documents[kind].append(document)
    return documents


def _by_column(series: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {s["id"].rsplit("_", 1)[0]: s for s in series}


def _walk_times(node: Any, key: str = "") -> list[str]:
    if isinstance(node, dict):
        return [t for k, v in node.items() for t in _walk_times(v, k)]
    if isinstance(node, list):
        return [t for item in node for t in _walk_times(item, key)]
    return [node] if key in TIME_KEYS else []


@pytest.mark.parametrize("which", ["workplace_export", "tiny_export"])
def test_every_exported_document_validates_against_the_official_schema(
    which: str, request: pytest.FixtureRequest, schema_errors: Any
) -> None:
    documents = _load(request.getfixturevalue(which))
    assert len(documents["organization"]) == 1 and len(documents["site"]) == 1
    for kind, items in documents.items():
        for document in items:
            assert schema_errors(kind, document) == [], document["id"]
            assert document["id"].startswith(PREFIX[kind])
            assert parse_document(kind, document).to_json() == document
            times = _walk_times(document)
            assert all(UTC_Z.fullmatch(t) for t in times), document["id"]


def test_references_between_documents_resolve(workplace_export: Path) -> None:
    docs = _load(workplace_export)
    (organization,), (site,) = docs["organization"], docs["site"]
    assets = {a["id"]: a for a in docs["asset"]}
    meters = {m["id"]: m for m in docs["meter"]}
    assert organization["id"] == "org_office_park" == site["organization_id"]
    assert all(a["site_id"] == site["id"] for a in assets.values())
    assert all(m["site_id"] == site["id"] for m in meters.values())
    assert {m["asset_id"] for m in meters.values() if "asset_id" in m} == set(assets)
    for series in docs["timeseries"]:
        source = series["source"]
        assert source["site_id"] == site["id"]
        assert source.get("meter_id", next(iter(meters))) in meters
        assert source.get("asset_id", next(iter(assets))) in assets
    ids = [d["id"] for items in docs.values() for d in items]
    assert len(ids) == len(set(ids))


def test_site_and_assets_describe_the_scenario(workplace_export: Path) -> None:
    docs = _load(workplace_export)
    site = docs["site"][0]
    assert site["id"] == "sit_workplace_pv_battery"
    assert site["location"] == {"latitude": 52.37, "longitude": 4.9, "timezone": "Europe/Amsterdam"}
    assert site["grid_connection"] == {"max_import_kw": 250.0, "max_export_kw": 150.0}
    assert docs["organization"][0]["currency"] == "EUR"
    assets = {a["id"]: a for a in docs["asset"]}
    chargers = [a for a in assets.values() if a["type"] == "ev_charger"]
    assert len(chargers) == 10
    charger = assets["ast_workplace_pv_battery_charger_office1"]
    assert charger["capacity"] == {"power_kw": 22.0}
    assert charger["efficiency"] == 98.0  # percent, from the template's 0.98
    assert charger["electrical"]["current_a"] == pytest.approx(22000 / (3 * 230))
    battery = assets["ast_workplace_pv_battery_battery_office_battery"]
    assert battery["capacity"] == {"power_kw": 100.0, "energy_kwh": 200.0}
    assert battery["efficiency"] == pytest.approx(95.0 * 0.95)
    assert assets["ast_workplace_pv_battery_pv_carport_pv"]["capacity"] == {"power_kw": 90.0}
    assert assets["ast_workplace_pv_battery_load_office_building"]["type"] == "other"
    assert len(docs["meter"]) == len(assets) + 1
    main = next(m for m in docs["meter"] if m["type"] == "main")
    assert main["id"] == "met_workplace_pv_battery_main"


def _points(series: dict[str, Any]) -> np.ndarray:
    return np.array([np.nan if p["value"] is None else p["value"] for p in series["data_points"]])


def test_series_carry_the_recorded_values(workplace_results: Path, workplace_export: Path) -> None:
    frame = pd.read_parquet(workplace_results / "timeseries.parquet")
    series = _by_column(_load(workplace_export)["timeseries"])
    site = "tse_workplace_pv_battery"
    net = series[f"{site}_main_active_power"]
    assert net["measurement"]["unit"] == "kW" and net["interval"] == "1m"
    np.testing.assert_allclose(_points(net), frame["site_p_kw"], atol=5e-7)
    stamps = pd.to_datetime([p["timestamp"] for p in net["data_points"]], utc=True)
    assert stamps.equals(pd.DatetimeIndex(frame["time"]))
    assert net["period"] == {"start": "2025-06-02T06:00:00Z", "end": "2025-06-02T09:00:00Z"}
    soc = series[f"{site}_battery_office_battery_soc"]
    assert soc["measurement"]["unit"] == "percent"
    np.testing.assert_allclose(_points(soc), 100 * frame["battery_office_battery_soc"], atol=5e-7)
    register = series[f"{site}_main_active_energy_import"]
    expected = np.cumsum(frame["grid_import_kw"]) / 60.0
    np.testing.assert_allclose(_points(register), expected, atol=5e-7)
    kpis = json.loads((workplace_results / "kpis.json").read_text())
    assert _points(register)[-1] == pytest.approx(kpis["grid_import_kwh"], abs=1e-5)
    pv = _points(series[f"{site}_pv_carport_pv_active_power"])
    assert pv.min() < -1.0 and pv.max() <= 0.0  # load convention: generation is negative
    plugged = [p["value"] for p in series[f"{site}_charger_office1_connected"]["data_points"]]
    assert set(plugged) <= {True, False}
    assert series[f"{site}_site_voltage_pu"]["metadata"]["column"] == "grid_vm_site_pu"


def test_simulated_values_pass_every_quality_check(workplace_export: Path) -> None:
    for series in _load(workplace_export)["timeseries"]:
        assert series["validation"]["passed"] is True, (series["id"], series["validation"])
        assert {p["quality"] for p in series["data_points"]} == {"measured"}
        assert series["statistics"]["count"] == len(series["data_points"]) == 180


def test_resampling_averages_power_and_keeps_the_last_state(
    tiny_results: Path, tiny_export: Path
) -> None:
    frame = pd.read_parquet(tiny_results / "timeseries.parquet")
    series = _by_column(_load(tiny_export)["timeseries"])
    site = "tse_tiny_site"
    bins = np.arange(len(frame)) // 3  # 5-min steps into 15-min intervals
    net = series[f"{site}_main_active_power"]
    assert net["interval"] == "15m" and net["aggregation"] == "average"
    np.testing.assert_allclose(_points(net), frame.groupby(bins)["site_p_kw"].mean(), atol=5e-7)
    soc = series[f"{site}_battery_battery1_soc"]
    assert soc["aggregation"] == "last"
    np.testing.assert_allclose(
        _points(soc), 100 * frame.groupby(bins)["battery_battery1_soc"].last(), atol=5e-7
    )
    occupied = [p["value"] for p in series[f"{site}_charger_ac1_connected"]["data_points"]]
    assert occupied == list(frame.groupby(bins)["charger_ac1_connected"].max() > 0)
    assert [p["timestamp"][11:16] for p in net["data_points"]][:3] == ["15:00", "15:15", "15:30"]


def test_auto_numbered_devices_are_matched_to_their_scenario_entries(tiny_export: Path) -> None:
    docs = _load(tiny_export)
    assets = {a["metadata"]["qubit_sim_id"]: a for a in docs["asset"]}
    assert sorted(assets) == sorted(
        ["ac1", "ac2", "dc1", "dc2", "bay", "battery1", "pv1", "pv2", "load1"]
    )
    assert assets["dc2"]["subtype"] == "dc_fast"
    assert assets["dc2"]["control_system"] == {"protocol": "OCPP 2.0.1"}
    assert assets["bay"]["electrical"]["phases"] == "single"
    assert assets["battery1"]["capacity"] == {"power_kw": 25.0, "energy_kwh": 50.0}
    assert assets["pv1"]["capacity"] == {"power_kw": 10.0}
    assert assets["load1"]["capacity"] == {"power_kw": 5.0}
    assert docs["site"][0]["id"] == "sit_tiny_site"  # '.' is not allowed in ids
    assert docs["site"][0]["type"] == "commercial_building"
    assert docs["organization"][0]["id"] == "org_tiny_site"


def test_export_is_deterministic(workplace_results: Path, tmp_path: Path) -> None:
    first = export_qubit(workplace_results, tmp_path / "a")
    second = export_qubit(workplace_results, tmp_path / "b")
    assert [p.relative_to(tmp_path / "a") for p in first] == [
        p.relative_to(tmp_path / "b") for p in second
    ]
    assert all(a.read_bytes() == b.read_bytes() for a, b in zip(first, second, strict=True))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"interval": "7m"}, "not in the Qubit data_interval enum"),
        ({"interval": "1M"}, "not a fixed Qubit data interval"),
        ({"interval": "30s"}, "not a multiple of the run's step"),
        ({"organization_id": "acme"}, "must be 'org_'"),
        ({"site_type": "car_park"}, "not a Qubit site type"),
    ],
)
def test_bad_options_are_refused(
    options: dict[str, Any], message: str, workplace_results: Path, tmp_path: Path
) -> None:
    with pytest.raises(ExportError, match=message):
        export_qubit(workplace_results, tmp_path, **options)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("missing", "message"),
    [
        ("manifest.json", "manifest.json does not exist"),
        ("scenario.yaml", "scenario.yaml does not exist"),
        ("timeseries.parquet", "timeseries.parquet does not exist"),
    ],
)
def test_incomplete_results_folders_name_the_missing_file(
    missing: str, message: str, tiny_results: Path, tmp_path: Path
) -> None:
    copy = tmp_path / "results"
    shutil.copytree(tiny_results, copy)
    (copy / missing).unlink()
    with pytest.raises(ExportError, match=message):
        export_qubit(copy, tmp_path / "out")
    with pytest.raises(ExportError, match="does not exist"):
        export_qubit(tmp_path / "nowhere", tmp_path / "out")
