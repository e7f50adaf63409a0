"""What validation checks beyond single keys — fault device ids, the site location, tariff
windows, cross-field limits, hints for common slips — and that each problem, also one found
while building the site, is given at its own YAML path and line."""

from __future__ import annotations

import copy
import dataclasses
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter

from qubit_sim.errors import ConfigIssue, ScenarioError
from qubit_sim.scenario.build import build_site
from qubit_sim.scenario.fault_targets import device_ids
from qubit_sim.scenario.faults import plan_faults
from qubit_sim.scenario.loader import LoadedScenario, load_scenario, load_scenario_text
from qubit_sim.scenario.schema import DeviceFaultSpec, FaultSpec

ROOT = Path(__file__).resolve().parents[2]
WORKPLACE = (ROOT / "scenarios" / "workplace_pv_battery.yaml").read_text()


def load(text: str) -> LoadedScenario:
    return load_scenario_text(text, base_dir=ROOT / "scenarios")


def issues_of(text: str) -> list[ConfigIssue]:
    with pytest.raises(ScenarioError) as info:
        load(text)
    return info.value.issues


def line_of(text: str, snippet: str) -> int:
    """1-based line of the only line of ``text`` that contains ``snippet``."""
    (number,) = [n for n, line in enumerate(text.splitlines(), 1) if snippet in line]
    return number


def edited(old: str, new: str, text: str = WORKPLACE) -> str:
    assert text.count(old) == 1, old
    return text.replace(old, new)


# ---------------------------------------------------------------------------- fault device ids


FAULT_CASES = [
    # (entry, path, message part)
    (
        "{kind: device_fault, device: office11, at: 1h, duration: 10min}",
        "faults[0].device",
        "unknown device id 'office11'; did you mean 'office1'?",
    ),
    (
        "{kind: modbus_timeout, device: office1, duration: 1h}",
        "faults[0].device",
        "modbus_timeout takes battery or PV ids",
    ),
    (
        "{kind: link_drop, devices: [office2, office_battery], duration: 1h}",
        "faults[0].devices[1]",
        "link_drop takes charger ids",
    ),
    (
        "{kind: device_fault, device: carport_pvv, duration: 1h}",
        "faults[0].device",
        "did you mean 'carport_pv'",
    ),
    ("{kind: latency, devices: [], delay: 5s}", "faults[0].devices", "give at least one device id"),
]


@pytest.mark.parametrize(
    ("entry", "path", "message"), FAULT_CASES, ids=[c[2][:24] for c in FAULT_CASES]
)
def test_fault_device_ids_are_checked_on_load_with_their_line(
    entry: str, path: str, message: str
) -> None:
    text = WORKPLACE + f"faults:\n  - {{kind: meter_freeze, device: office3}}\n  - {entry}\n"
    (issue,) = issues_of(text)
    # The second entry is the faulty one: the path counts entries, the line points at it.
    assert issue.path == path.replace("faults[0]", "faults[1]")
    assert issue.line == line_of(text, entry)
    assert message in issue.message


def test_a_fraction_needs_chargers() -> None:
    text = WORKPLACE.replace("  chargers:\n    - {template: ac_22kw, count: 10, id: office}\n", "")
    text = text.replace("evs:\n  population:\n    behaviour: workplace\n    vehicles: 18\n", "")
    text += "faults:\n  - {kind: link_drop, devices: {fraction: 0.5}, duration: 1h}\n"
    (issue,) = issues_of(text)
    assert issue.path == "faults[0].devices" and "no chargers to choose from" in issue.message
    assert issue.line == line_of(text, "fraction: 0.5")


def test_the_cli_validate_reports_an_unknown_fault_device_with_its_line(tmp_path: Path) -> None:
    scenario = tmp_path / "office.yaml"
    entry = "{kind: device_fault, device: office11, at: 1h, duration: 10min}"
    scenario.write_text(WORKPLACE + f"faults:\n  - {entry}\n")
    result = subprocess.run(
        [sys.executable, "-m", "qubit_sim", "validate", str(scenario)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2, result.stdout
    line = WORKPLACE.count("\n") + 2
    assert f"faults[0].device (line {line})" in result.stderr
    assert "did you mean 'office1'" in result.stderr


@pytest.fixture(scope="module")
def office_site() -> Any:
    """The office car park without its feeder (device ids do not depend on it)."""
    grid = WORKPLACE[WORKPLACE.index("grid:") : WORKPLACE.index("assets:")]
    return build_site(load(edited(grid, "")), until_s=3600)


@pytest.mark.parametrize(("entry", "path", "message"), FAULT_CASES[:4])
def test_the_planner_and_the_loader_say_the_same(
    office_site: Any, entry: str, path: str, message: str
) -> None:
    """One check serves both: a spec that bypassed the loader fails planning identically."""
    (loaded_issue,) = issues_of(WORKPLACE + f"faults:\n  - {entry}\n")
    adapter: TypeAdapter[Any] = TypeAdapter(FaultSpec)
    fault = adapter.validate_python(yaml.safe_load(entry))
    scenario = copy.copy(office_site.scenario)
    spec = office_site.scenario.spec.model_copy(update={"faults": [fault]})
    object.__setattr__(scenario, "spec", spec)
    with pytest.raises(ScenarioError) as info:
        plan_faults(dataclasses.replace(office_site, scenario=scenario))
    (planned,) = info.value.issues
    assert (planned.path, planned.message) == (loaded_issue.path, loaded_issue.message)
    assert planned.path == path and message in planned.message


def test_valid_fault_devices_still_load_and_plan(office_site: Any) -> None:
    text = WORKPLACE + (
        "faults:\n  - {kind: device_fault, device: carport_pv, at: 10min, duration: 10min}\n"
        "  - {kind: link_drop, devices: [office10, office2], duration: 10min}\n"
    )
    spec = load(text).spec
    assert isinstance(spec.faults[0], DeviceFaultSpec)
    scenario = copy.copy(office_site.scenario)
    object.__setattr__(scenario, "spec", spec)
    plan = plan_faults(dataclasses.replace(office_site, scenario=scenario))
    assert {(w.kind, w.device_id) for w in plan.windows} == {
        ("device_fault", "carport_pv"),
        ("link_drop", "office2"),
        ("link_drop", "office10"),
    }


# Asset entries with an id or none; the ids are drawn to collide with the builder's automatic
# names ("ac1", "pv2") and with each other. Chargers: (kind, id, count, connectors).
_ID = st.one_of(st.none(), st.sampled_from(["ac1", "ac", "dc2", "office", "pv2", "load1", "x"]))
_CHARGERS = st.lists(
    st.tuples(st.sampled_from(["ac", "dc"]), _ID, st.integers(1, 3), st.integers(1, 2)),
    max_size=3,
)
_GROUPS = st.lists(st.tuples(_ID, st.integers(1, 3)), max_size=2)


def _assets_yaml(chargers: list[Any], batteries: list[Any], pv: list[Any], loads: list[Any]) -> str:
    def entries(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{k: v for k, v in row.items() if v is not None} for row in rows]

    assets = {
        "chargers": entries(
            [
                {"kind": kind, "id": i, "power_kw": 22, "count": count, "connectors": connectors}
                for kind, i, count, connectors in chargers
            ]
        ),
        "batteries": entries([{"id": i, "capacity_kwh": 50, "power_kw": 25} for i, _ in batteries]),
        "pv": entries([{"id": i, "kwp": 10, "count": count} for i, count in pv]),
        "loads": entries(
            [{"id": i, "profile": "H0-A", "annual_kwh": 3000, "count": n} for i, n in loads]
        ),
    }
    return yaml.safe_dump({"assets": assets}, default_flow_style=None)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(chargers=_CHARGERS, batteries=_GROUPS, pv=_GROUPS, loads=_GROUPS)
def test_device_ids_are_the_ids_of_the_built_site(
    chargers: list[Any], batteries: list[Any], pv: list[Any], loads: list[Any]
) -> None:
    text = (
        "site: {name: ids, start: 2025-06-02T00:00:00Z, duration: 1h, step: 15min}\n"
        + _assets_yaml(chargers, batteries, pv, loads)
    )
    try:
        loaded = load(text)
    except ScenarioError as exc:
        # Only explicit ids used twice are refused; everything else must load.
        assert all("already used" in issue.message for issue in exc.issues), exc
        return
    site = build_site(loaded, until_s=900)
    ids = device_ids(loaded.spec.assets)
    assert ids["charger"] == list(site.fleet.ids)
    assert ids["battery"] == list(site.batteries.ids)
    assert ids["pv"] == list(site.pv_ids)
    assert ids["load"] == list(site.load_ids)


# ------------------------------------------------------------------------------- location


def test_a_location_without_a_time_zone_is_refused_with_an_example() -> None:
    text = edited(
        "location: {lat: 52.37, lon: 4.90, tz: Europe/Amsterdam}",
        "location: {lat: 52.37, lon: 4.90}",
    )
    (issue,) = issues_of(text)
    assert issue.path == "site.location.tz" and issue.line == line_of(text, "location:")
    assert "required key is missing" in issue.message
    assert "tz: Europe/Amsterdam" in issue.message and "tariff windows" in issue.message


def test_without_a_location_the_site_is_in_amsterdam() -> None:
    text = edited("  location: {lat: 52.37, lon: 4.90, tz: Europe/Amsterdam}\n", "")
    location = load(text).spec.site.location
    assert (location.lat, location.lon, location.tz) == (52.37, 4.90, "Europe/Amsterdam")


def _scenario_files() -> list[Path]:
    files = []
    for folder in ("scenarios", "tests", "benchmarks", "hil"):
        for path in sorted((ROOT / folder).rglob("*.yaml")):
            try:
                document = yaml.safe_load(path.read_text())
            except yaml.YAMLError:
                continue  # a fixture of broken YAML is no scenario
            if isinstance(document, dict) and "site" in document:
                files.append(path)
    return files


@pytest.mark.parametrize("path", _scenario_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_scenario_file_in_the_repository_loads(path: Path) -> None:
    loaded = load_scenario(path)
    assert loaded.name == yaml.safe_load(path.read_text())["site"]["name"]


# ---------------------------------------------------------------------------- line numbers

RATES = '    - {name: peak, rate: 0.32, start_time: "07:00", end_time: "22:59"}'

LINE_CASES = [
    # (description, old, new, path, message part)
    (
        "rate end",
        RATES,
        RATES.replace('"22:59"', '"25:00"'),
        "tariff.energy_rates[1].end_time",
        "end '25:00' is outside 00:00..23:59",
    ),
    (
        "rate start",
        RATES,
        RATES.replace('"07:00"', '"7h"'),
        "tariff.energy_rates[1].start_time",
        "write 'HH:MM'",
    ),
    (
        "weekdays",
        RATES,
        RATES.replace("}", ", weekdays: [mon]}"),
        "tariff.energy_rates[1].weekdays",
        "'mon' must be an integer 0..6 or one of monday",
    ),
    (
        "months",
        RATES,
        RATES.replace("}", ", months: [0, 13]}"),
        "tariff.energy_rates[1].months",
        "months value 0 is outside 1..12",
    ),
    (
        "controller period",
        "period: 15min",
        "period: 90s",
        "controller.period",
        "must be a multiple of site.step (60 s), found 90 s; e.g. 60 s or 120 s",
    ),
]


@pytest.mark.parametrize("case", LINE_CASES, ids=[c[0] for c in LINE_CASES])
def test_each_problem_has_its_field_path_and_line(case: tuple[str, str, str, str, str]) -> None:
    _, old, new, path, message = case
    text = edited(old, new)
    (issue,) = issues_of(text)
    assert issue.path == path and message in issue.message
    assert issue.line == line_of(text, new.strip())


FEEDER = """\
site: {name: feeder, start: 2025-06-02T00:00:00Z, duration: 1h, step: 15min}
grid:
  network: pandapower:example_simple
  site_bus: MV Bus 2
  background: false
assets:
  chargers:
    - {power_kw: 11, count: 2, bus: MV Bus 1}
  pv:
    - {kwp: 10, weather: "tmy:723170TYA"}
  loads:
    - {profile: G1-A, annual_kwh: 1000}
"""

BUILD_CASES = [
    # (description, old, new, path, message part)
    (
        "site bus",
        "site_bus: MV Bus 2",
        "site_bus: MV Bus 22",
        "grid.site_bus",
        "no bus named 'MV Bus 22'",
    ),
    (
        "charger bus",
        "bus: MV Bus 1}",
        "bus: MV Bus 11}",
        "assets.chargers[0].bus",
        "no bus named 'MV Bus 11'",
    ),
    (
        "network",
        "network: pandapower:example_simple",
        "network: pandapower:example_simpel",
        "grid.network",
        "did you mean 'pandapower:example_simple'",
    ),
    (
        "load profile",
        "profile: G1-A",
        "profile: G1A",
        "assets.loads[0].profile",
        "unknown SimBench load profile 'G1A'; did you mean 'G1-A'",
    ),
    (
        "weather",
        "tmy:723170TYA",
        "tmy:nosuch",
        "assets.pv[0].weather",
        "unknown weather file 'nosuch'",
    ),
]


@pytest.mark.parametrize("case", BUILD_CASES, ids=[c[0] for c in BUILD_CASES])
def test_problems_found_while_building_are_given_their_line(
    case: tuple[str, str, str, str, str],
) -> None:
    """The feeder, profiles and weather are looked up when the site is built; the scenario's
    line map places what the builder finds."""
    _, old, new, path, message = case
    text = edited(old, new, FEEDER)
    loaded = load(text)
    with pytest.raises(ScenarioError) as info:
        build_site(loaded, until_s=900)
    located = loaded.locate(info.value)
    (issue,) = located.issues
    assert issue.path == path and message in issue.message
    assert issue.line == line_of(text, new) and f"(line {issue.line})" in str(located)


def test_several_problems_found_while_building_keep_their_lines() -> None:
    text = edited("profile: G1-A", "profile: G1A", edited("MV Bus 1}", "MV Bus 11}", FEEDER))
    loaded = load(text)
    with pytest.raises(ScenarioError) as info:
        build_site(loaded, until_s=900)
    lines = {issue.path: issue.line for issue in loaded.locate(info.value).issues}
    assert lines == {
        "assets.chargers[0].bus": line_of(text, "MV Bus 11"),
        "assets.loads[0].profile": line_of(text, "G1A"),
    }


def test_locate_keeps_given_lines_and_places_only_yaml_paths() -> None:
    loaded = load(FEEDER)
    error = ScenarioError(
        [
            ConfigIssue("grid.site_bus", "kept", 99),
            ConfigIssue("", "no path"),
            ConfigIssue("grid.power_flow", "an ancestor's line"),
            ConfigIssue("--until", "not in the file"),
        ]
    )
    assert [issue.line for issue in loaded.locate(error).issues] == [99, None, 2, None]


# --------------------------------------------------------------------------------- hints


@pytest.mark.parametrize(
    ("old", "new", "path", "hint"),
    [
        (
            "id: office_battery}",
            "id: office_battery, soc_initial: 95}",
            "assets.batteries[0].soc_initial",
            "SOC is a fraction of capacity; write 0.95",
        ),
        (
            "    vehicles: 18",
            "    vehicles: 18\n  target_soc: 80",
            "evs.target_soc",
            "SOC is a fraction of capacity; write 0.8",
        ),
        (
            "id: office_battery}",
            "id: office_battery, soc_max: 100}",
            "assets.batteries[0].soc_max",
            "write 1 for 100 %",
        ),
    ],
)
def test_an_soc_written_as_a_percentage_gets_a_hint(
    old: str, new: str, path: str, hint: str
) -> None:
    (issue,) = issues_of(edited(old, new))
    assert issue.path == path and hint in issue.message


@pytest.mark.parametrize(
    ("field", "value"), [("soc_initial", "150"), ("soc_min", "-5"), ("soc_max", "100.5")]
)
def test_no_percentage_hint_for_values_that_are_no_percentage(field: str, value: str) -> None:
    (issue,) = issues_of(edited("id: office_battery}", f"id: office_battery, {field}: {value}}}"))
    assert issue.path == f"assets.batteries[0].{field}"
    assert "SOC is a fraction" not in issue.message


def test_an_unknown_template_is_the_only_problem_of_its_entry() -> None:
    text = edited("template: ac_22kw,", "template: ac_22_kw,")
    (issue,) = issues_of(text)
    assert issue.path == "assets.chargers[0].template" and "did you mean 'ac_22kw'" in issue.message


def test_an_untemplated_entry_still_reports_the_values_it_gives() -> None:
    text = edited("template: ac_22kw,", "template: ac_22_kw, power_kw: -5,")
    paths = sorted(issue.path for issue in issues_of(text))
    assert paths == ["assets.chargers[0].power_kw", "assets.chargers[0].template"]


def test_a_template_of_another_kind_is_the_only_problem_of_its_entry() -> None:
    text = edited("{template: battery_200kwh,", "{template: ac_22kw,")
    (issue,) = issues_of(text)
    assert "describes a charger, not a battery" in issue.message
