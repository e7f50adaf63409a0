"""Errors that need the feeder or outside data are reported like schema errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from qubit_sim.errors import ScenarioError
from qubit_sim.scenario.build import build_site
from qubit_sim.scenario.loader import load_scenario_text

ROOT = Path(__file__).resolve().parents[2]

TEXT = """
site: {name: b, start: 2025-01-06T00:00:00Z, duration: 1h, step: 15min}
grid: {network: NETWORK, site_bus: SITE_BUS}
assets:
  chargers:
    - {template: ac_22kw, count: 2, bus: CHARGER_BUS}
  loads:
    - {profile: PROFILE, annual_kwh: 1000}
"""


def build(network: str = "1-LV-rural1--0-sw", site_bus: str = "'LV1.101 Bus 4'",
          charger_bus: str = "6", profile: str = "G1-A"):  # type: ignore[no-untyped-def]
    text = (
        TEXT.replace("NETWORK", network).replace("SITE_BUS", site_bus)
        .replace("CHARGER_BUS", charger_bus).replace("PROFILE", profile)
    )
    return build_site(load_scenario_text(text, base_dir=ROOT / "scenarios"))


def test_valid_feeder_builds() -> None:
    site = build()
    assert site.grid is not None and len(site.grid.site_buses) == 2
    assert site.charger_site_bus.tolist() == [1, 1]


@pytest.mark.parametrize(
    ("kwargs", "path", "text"),
    [
        ({"charger_bus": "999"}, "assets.chargers[0].bus", "999"),
        ({"charger_bus": "'LV1.101 Bus 44'"}, "assets.chargers[0].bus", "LV1.101 Bus 4"),
        ({"site_bus": "'nowhere'"}, "grid.site_bus", "nowhere"),
        ({"network": "1-LV-rurl1--0-sw"}, "grid.network", "did you mean"),
        ({"profile": "G1-Z"}, "assets.loads[0].profile", "G1-Z"),
    ],
)
def test_outside_facts_are_checked(kwargs: dict, path: str, text: str) -> None:
    with pytest.raises(ScenarioError) as info:
        build(**kwargs)
    issues = [str(issue) for issue in info.value.issues]
    assert any(issue.startswith(path) and text in issue for issue in issues), issues


def test_several_build_problems_are_reported_together() -> None:
    with pytest.raises(ScenarioError) as info:
        build(charger_bus="999", profile="G1-Z")
    assert len(info.value.issues) == 2
