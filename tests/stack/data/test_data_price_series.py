"""A run priced by a price CSV: its Qubit v0.1 export stays schema-valid, and the L3 tariff shape,
which has no form for dynamic prices, refuses the tariff instead of approximating it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from qubit_sim.stack.data import ExportError, Tariff, export_qubit

SCENARIO = """
site:
  name: spot.site
  location: {lat: 52.0, lon: 5.1, tz: Europe/Amsterdam}
  start: 2025-06-02T06:00:00Z
  duration: 3h
  step: 5min
  seed: 3
assets:
  chargers:
    - {power_kw: 11, count: 2}
  pv:
    - {kwp: 10}
  loads:
    - {profile: G1-A, annual_kwh: 20000}
evs:
  population: {behaviour: workplace, vehicles: 2}
tariff:
  price_csv: prices.csv
controller:
  name: rule_based
"""
FOLDERS = ("organizations", "sites", "assets", "meters", "timeseries")


@pytest.fixture(scope="module")
def spot_results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import qubit_sim

    folder = tmp_path_factory.mktemp("spot")
    quarters = pd.date_range("2025-06-02T06:00:00Z", periods=12, freq="15min")
    prices = np.round(0.10 + 0.02 * np.arange(12), 3)
    pd.DataFrame({"time": quarters.strftime("%Y-%m-%dT%H:%M:%SZ"), "price_per_kwh": prices}).to_csv(
        folder / "prices.csv", index=False
    )
    (folder / "spot.yaml").write_text(SCENARIO, encoding="utf-8")
    out = folder / "results"
    qubit_sim.run(folder / "spot.yaml", plots=False, out=out, key_dir=folder / "keys")
    return out


def test_export_of_a_price_series_run_is_schema_valid(
    spot_results: Path, tmp_path: Path, schema_errors: Any
) -> None:
    export_qubit(spot_results, tmp_path)
    kinds = dict(
        zip(FOLDERS, ("organization", "site", "asset", "meter", "timeseries"), strict=True)
    )
    count = 0
    for folder, kind in kinds.items():
        for path in sorted((tmp_path / folder).glob("*.json")):
            document = json.loads(path.read_text(encoding="utf-8"))
            assert schema_errors(kind, document) == [], document["id"]
            count += 1
    assert count > 5
    organization = json.loads(next((tmp_path / "organizations").glob("*.json")).read_text())
    assert organization["currency"] == "EUR"


def test_the_l3_tariff_shape_refuses_a_price_series(spot_results: Path) -> None:
    import qubit_sim
    from qubit_sim.scenario.build import build_site

    site = build_site(qubit_sim.load_scenario(spot_results.parent / "spot.yaml"))
    assert site.tariff.price_series is not None
    with pytest.raises(ExportError, match="time-of-use energy_rates only.*timeseries.parquet"):
        Tariff.from_core(site.tariff)
