"""Scenario validation: every broken file gives its specific error, with path and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from qubit_sim.errors import ScenarioError
from qubit_sim.scenario.loader import load_scenario, load_scenario_text
from qubit_sim.scenario.templates import TemplateCatalogue

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = sorted((ROOT / "scenarios").glob("*.yaml"))

VALID = """
site:
  name: tiny
  start: 2025-01-06T00:00:00Z
  duration: 1d
  step: 15min
assets:
  chargers:
    - {template: ac_22kw, count: 2}
  batteries:
    - {capacity_kwh: 50, power_kw: 25}
evs:
  population: {behaviour: workplace, vehicles: 3}
"""


def load(text: str):  # type: ignore[no-untyped-def]
    return load_scenario_text(text, base_dir=ROOT / "scenarios")


def problems(text: str) -> list[str]:
    with pytest.raises(ScenarioError) as info:
        load(text)
    return [str(issue) for issue in info.value.issues]


def test_valid_text_loads_with_template_applied() -> None:
    loaded = load(VALID)
    charger = loaded.spec.assets.chargers[0]
    assert charger.power_kw == 22.0 and charger.count == 2 and charger.efficiency == 0.98
    assert loaded.spec.site.duration == 86400 and loaded.spec.site.step == 900


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_every_shipped_scenario_validates(path: Path) -> None:
    loaded = load_scenario(path)
    assert loaded.name == path.stem


BROKEN = [
    # (description, replace-from, replace-to, expected substrings of one issue)
    ("misspelt key", "  duration: 1d", "  duraton: 1d", ["site.duraton", "did you mean 'duration'"]),
    ("step not dividing", "  step: 15min", "  step: 7min", ["site", "must divide the duration"]),
    ("negative capacity", "capacity_kwh: 50", "capacity_kwh: -50", ["capacity_kwh", "greater than 0", "-50"]),
    ("soc window", "power_kw: 25}", "power_kw: 25, soc_min: 0.8, soc_max: 0.2}", ["batteries[0]", "soc_min (0.8) must be below soc_max (0.2)"]),
    ("soc outside 0..1", "power_kw: 25}", "power_kw: 25, soc_max: 1.5}", ["soc_max", "less than or equal to 1"]),
    ("unknown template", "template: ac_22kw", "template: ac_22k", ["chargers[0].template", "did you mean 'ac_22kw'"]),
    ("template of wrong kind", "template: ac_22kw", "template: battery_200kwh", ["describes a battery, not a charger"]),
    ("bad behaviour", "behaviour: workplace", "behaviour: workplac", ["evs.population.behaviour", "did you mean 'workplace'"]),
    ("naive start", "2025-01-06T00:00:00Z", "2025-01-06T00:00:00", ["site.start", "time zone"]),
    ("bad duration", "duration: 1d", "duration: one day", ["site.duration", "cannot read duration"]),
    ("unknown tz", "  step: 15min", "  step: 15min\n  location: {lat: 1, lon: 2, tz: Mars/Olympus}", ["location.tz", "unknown time zone"]),
    ("latitude range", "  step: 15min", "  step: 15min\n  location: {lat: 123, lon: 2, tz: UTC}", ["location.lat", "less than or equal to 90"]),
    ("unknown controller", "evs:", "controller: {name: rule_base}\nevs:", ["controller.name", "did you mean 'rule_based'"]),
    ("controller period", "evs:", "controller: {name: uncontrolled, period: 10min}\nevs:", ["controller.period", "multiple of site.step"]),
    ("missing csv", "  population: {behaviour: workplace, vehicles: 3}", "  sessions_csv: nowhere.csv", ["evs.sessions_csv", "file not found"]),
    ("population and csv", "vehicles: 3}", "vehicles: 3}\n  sessions_csv: x.csv", ["evs", "exactly one of population or sessions_csv"]),
    ("bus without grid", "count: 2}", "count: 2, bus: 3}", ["chargers[0].bus", "no grid section"]),
    ("duplicate ids", "power_kw: 25}", "power_kw: 25, id: a}\n    - {capacity_kwh: 5, power_kw: 2, id: a}", ["batteries[1].id", "already used"]),
]


@pytest.mark.parametrize("case", BROKEN, ids=[case[0] for case in BROKEN])
def test_broken_scenarios_name_the_problem(case: tuple[str, str, str, list[str]]) -> None:
    _, old, new, expected = case
    assert old in VALID
    found = problems(VALID.replace(old, new, 1))
    assert any(all(part in issue for part in expected) for issue in found), found


def test_all_problems_reported_at_once_with_lines() -> None:
    text = VALID.replace("  duration: 1d", "  duraton: 1d").replace(
        "capacity_kwh: 50", "capacity_kwh: -1"
    ).replace("behaviour: workplace", "behaviour: office")
    found = problems(text)
    assert len(found) >= 3
    assert any("(line 5)" in issue and "duraton" in issue for issue in found)
    assert any("(line 11)" in issue and "capacity_kwh" in issue for issue in found)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("site: [unclosed", "not valid YAML"),
        ("", "found an empty file"),
        ("- a\n- b\n", "found list"),
    ],
)
def test_not_a_scenario(text: str, expected: str) -> None:
    with pytest.raises(ScenarioError, match=expected):
        load(text)


def test_missing_file_is_a_scenario_error(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="no such scenario file"):
        load_scenario(tmp_path / "nope.yaml")


def test_scenario_error_message_lists_each_issue() -> None:
    with pytest.raises(ScenarioError) as info:
        load(VALID.replace("  duration: 1d", "  duraton: 1d"))
    message = str(info.value)
    assert "problem" in message and "site.duraton" in message


def test_template_catalogue_has_the_required_devices() -> None:
    catalogue = TemplateCatalogue.default(ROOT / "scenarios")
    kinds = {t.name: t.kind for t in catalogue}
    assert kinds["ac_22kw"] == "charger" and kinds["dc_150kw"] == "charger"
    assert "battery" in kinds.values() and "pv" in kinds.values()
    dc = catalogue.get("dc_150kw")
    assert dc is not None and dc.params["kind"] == "dc"


def test_broken_template_file_is_reported(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("name: bad\nkind: toaster\nparams: {}\n")
    with pytest.raises(ScenarioError, match="kind"):
        TemplateCatalogue.from_dirs(tmp_path)


def test_overrides_merge_over_file() -> None:
    loaded = load_scenario_text(VALID, overrides={"site": {"seed": 9}}, base_dir=ROOT)
    assert loaded.spec.site.seed == 9 and loaded.spec.site.name == "tiny"
