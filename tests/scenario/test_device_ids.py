"""Device ids are unique across the site: every way two devices could share one is refused when the
scenario is loaded (so by ``qubit-sim validate`` and ``run``), with the entries, their lines and
the fix; automatic numbering never makes a clash and names devices as it always has."""

from __future__ import annotations

from itertools import combinations
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from qubit_sim.cli import app
from qubit_sim.errors import ConfigIssue, ScenarioError
from qubit_sim.scenario import schema
from qubit_sim.scenario.build import build_site
from qubit_sim.scenario.fault_targets import device_id_clashes, device_ids, entry_device_ids
from qubit_sim.scenario.loader import LoadedScenario, load_scenario, load_scenario_text

ROOT = Path(__file__).resolve().parents[2]

HEAD = """\
site:
  name: t
  start: 2025-05-05T00:00:00Z
  duration: 1d
  step: 15min
  grid_connection: {import_kw: 400, export_kw: 150}
"""

REPRO = (
    HEAD
    + """\
assets:
  chargers:
    - {template: ac_22kw, count: 2, id: ac}     # -> ac1, ac2
    - {template: ac_22kw, id: ac1}              # explicit id taken by the entry above
    - {template: ac_22kw, count: 2}
evs:
  population: {behaviour: workplace, vehicles: 5}
"""
)

BATTERY = "{capacity_kwh: 50, power_kw: 25"
LOAD = "{profile: G1-A, annual_kwh: 30000"


def scenario(assets: str) -> str:
    """``assets`` (indented YAML lines under ``assets:``) in a one-day site."""
    return HEAD + "assets:\n" + assets


def load(text: str) -> LoadedScenario:
    return load_scenario_text(text, base_dir=ROOT / "scenarios")


def issues_of(text: str) -> list[ConfigIssue]:
    with pytest.raises(ScenarioError) as info:
        load(text)
    return info.value.issues


def line_of(text: str, needle: str) -> int:
    """1-based line of the first line containing ``needle``."""
    return next(n for n, line in enumerate(text.splitlines(), 1) if needle in line)


# ----------------------------------------------------------------------------- the repro


def test_validate_refuses_the_repro_with_the_entries_lines_and_fix(tmp_path: Path) -> None:
    path = tmp_path / "repro.yaml"
    path.write_text(REPRO)
    result = CliRunner().invoke(app, ["validate", str(path)], env={"COLUMNS": "300"})
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and "valid:" not in result.output.replace("invalid", "")
    assert "1 problem in scenario" in result.output
    expected = (
        f"assets.chargers[1].id (line {line_of(REPRO, 'id: ac1')}): device id 'ac1' is already "
        f"used by assets.chargers[0] (line {line_of(REPRO, 'id: ac}')}), whose id 'ac' numbers "
        "its 2 devices ac1, ac2"
    )
    assert expected in " ".join(result.output.split())
    assert "give this entry another id" in result.output


def test_run_refuses_the_repro_before_simulating(tmp_path: Path) -> None:
    path = tmp_path / "repro.yaml"
    path.write_text(REPRO)
    out = tmp_path / "out"
    args = ["run", str(path), "--out", str(out), "--until", "1h", "--no-plots", "-q"]
    result = CliRunner().invoke(app, args, env={"COLUMNS": "300"})
    assert result.exit_code == 2, result.output
    assert not isinstance(result.exception, ValueError)
    assert "duplicate recorder columns" not in result.output
    assert "device id 'ac1' is already used by assets.chargers[0]" in result.output
    assert not (out / "timeseries.parquet").exists()


def test_without_the_clashing_entry_the_repro_runs_with_automatic_ids_skipping_taken_ones() -> None:
    text = REPRO.replace("    - {template: ac_22kw, id: ac1}", "    - {template: ac_22kw, id: ac3}")
    site = build_site(load(text), until_s=900)
    # ac1, ac2 from `id: ac`, ac3 written: the automatic entry takes the next free ones.
    assert list(site.fleet.ids) == ["ac1", "ac2", "ac3", "ac4", "ac5"]


# ------------------------------------------------------------------------- collision kinds

# (name, assets YAML, path of the issue, words it must contain)
CLASHES = [
    (
        "explicit ids of one kind",
        f"  batteries:\n    - {BATTERY}, id: store}}\n    - {BATTERY}, id: store}}\n",
        "assets.batteries[1].id",
        ["device id 'store' is already used by assets.batteries[0] (line 9)"],
    ),
    (
        "explicit ids of two kinds",
        f"  chargers:\n    - {{power_kw: 22, id: x}}\n  batteries:\n    - {BATTERY}, id: x}}\n",
        "assets.batteries[0].id",
        ["device id 'x' is already used by assets.chargers[0] (line 9)", "share one namespace"],
    ),
    (
        "a group's numbered id, then the same id written",
        "  chargers:\n    - {power_kw: 22, id: ac, count: 2}\n    - {power_kw: 22, id: ac1}\n",
        "assets.chargers[1].id",
        ["device id 'ac1'", "assets.chargers[0] (line 9), whose id 'ac' numbers its 2 devices"],
    ),
    (
        "an id written, then a group numbering it",
        "  chargers:\n    - {power_kw: 22, id: ac1}\n    - {power_kw: 22, id: ac, count: 2}\n",
        "assets.chargers[1].id",
        [
            "device id 'ac1' is already used by assets.chargers[0] (line 9)",
            "(this entry's id 'ac' numbers its devices ac1, ac2)",
        ],
    ),
    (
        "charging points of a multi-connector charger",
        f"  chargers:\n    - {{power_kw: 22, id: cp, connectors: 2}}\n"
        f"  batteries:\n    - {BATTERY}, id: cp2}}\n",
        "assets.batteries[0].id",
        ["device id 'cp2'", "whose id 'cp' numbers its 2 devices cp1, cp2"],
    ),
    (
        "two groups sharing several ids",
        "  chargers:\n    - {power_kw: 22, id: a, count: 3}\n"
        "    - {power_kw: 22, id: a, count: 2}\n",
        "assets.chargers[1].id",
        ["device ids 'a1', 'a2' are already used by assets.chargers[0] (line 9)"],
    ),
    (
        "PV plants and loads",
        f"  pv:\n    - {{kwp: 10, id: roof, count: 2}}\n  loads:\n    - {LOAD}, id: roof2}}\n",
        "assets.loads[0].id",
        ["device id 'roof2' is already used by assets.pv[0] (line 9)"],
    ),
    (
        "an id repeated by a group and one device",
        "  chargers:\n    - {power_kw: 22, id: a, count: 2}\n    - {power_kw: 22, id: a}\n",
        "assets.chargers[1].id",
        ["id 'a' is already used by assets.chargers[0] (line 9)"],
    ),
    (
        "a long group",
        "  chargers:\n    - {power_kw: 22, id: bay, count: 20}\n    - {power_kw: 22, id: bay7}\n",
        "assets.chargers[1].id",
        ["device id 'bay7'", "numbers its 20 devices bay1, ..., bay20"],
    ),
]


@pytest.mark.parametrize(("name", "assets", "path", "words"), CLASHES, ids=[c[0] for c in CLASHES])
def test_each_way_to_share_an_id_is_one_issue_at_the_later_entry(
    name: str, assets: str, path: str, words: list[str]
) -> None:
    text = scenario(assets)
    (issue,) = issues_of(text)
    assert issue.path == path
    index = int(path.split("[")[1].split("]")[0])
    section = path.split(".")[1].split("[")[0]
    entries = [n for n, line in enumerate(text.splitlines(), 1) if line.startswith("    - ")]
    sections = [n for n, line in enumerate(text.splitlines(), 1) if line == f"  {section}:"]
    own = [n for n in entries if n > sections[0]][index]
    assert issue.line == own
    for word in words:
        assert word in issue.message, issue.message
    assert "give this entry another id, or leave its `id` out" in issue.message


def test_an_id_given_three_times_names_both_earlier_entries() -> None:
    text = scenario(
        f"  batteries:\n    - {BATTERY}, id: s}}\n  pv:\n    - {{kwp: 5, id: s}}\n"
        f"  loads:\n    - {LOAD}, id: s}}\n"
    )
    first, second = issues_of(text)
    assert (first.path, second.path) == ("assets.pv[0].id", "assets.loads[0].id")
    assert "used by assets.batteries[0] (line 9)" in first.message
    assert "used by assets.batteries[0] (line 9) and assets.pv[0] (line 11)" in second.message


def test_every_clash_of_a_file_is_reported_at_once_with_other_problems() -> None:
    text = scenario(
        "  chargers:\n    - {power_kw: 22, id: ac, count: 2}\n    - {power_kw: 22, id: ac2}\n"
        f"  batteries:\n    - {BATTERY}, id: b}}\n    - {BATTERY}, id: b}}\n"
    ).replace("step: 15min", "step: 15min\n  seed: 1")
    text += "faults:\n  - {kind: device_fault, device: nowhere, at: 1h}\n"
    issues = issues_of(text)
    assert [issue.path for issue in issues] == [
        "assets.chargers[1].id",
        "assets.batteries[1].id",
        "faults[0].device",
    ]
    assert all(issue.line is not None for issue in issues)


def test_build_refuses_clashing_ids_that_bypassed_the_loader() -> None:
    text = scenario("  chargers:\n    - {power_kw: 22, id: ac, count: 2}\n")
    loaded = load(text)
    clashing = yaml.safe_load(text)
    clashing["assets"]["chargers"].append({"power_kw": 22, "id": "ac2"})
    loaded.spec = schema.Scenario.model_validate(clashing)
    with pytest.raises(ScenarioError) as info:
        build_site(loaded, until_s=900)
    (issue,) = info.value.issues
    assert issue.path == "assets.chargers[1].id" and "device id 'ac2'" in issue.message


# --------------------------------------------------------------------- automatic numbering


def test_automatic_ids_skip_those_a_later_group_numbers() -> None:
    # An automatic entry before `id: ac, count: 2` used to take ac1, ac2 too (a crash at run).
    text = scenario(
        "  chargers:\n    - {power_kw: 22, count: 2}\n    - {power_kw: 22, id: ac, count: 2}\n"
    )
    site = build_site(load(text), until_s=900)
    assert list(site.fleet.ids) == ["ac3", "ac4", "ac1", "ac2"]


def test_automatic_ids_are_numbered_per_kind_after_the_ids_taken_by_any_kind() -> None:
    text = scenario(
        "  chargers:\n    - {power_kw: 22, count: 2}\n    - {power_kw: 50, kind: dc}\n"
        "    - {power_kw: 22, id: pv1}\n"
        f"  batteries:\n    - {BATTERY}}}\n    - {BATTERY}, id: battery1}}\n"
        "  pv:\n    - {kwp: 5, count: 2}\n"
        f"  loads:\n    - {LOAD}}}\n"
    )
    loaded = load(text)
    assert device_ids(loaded.spec.assets) == {
        "charger": ["ac1", "ac2", "dc1", "pv1"],
        "battery": ["battery2", "battery1"],
        "pv": ["pv2", "pv3"],
        "load": ["load1"],
    }
    site = build_site(loaded, until_s=900)
    assert list(site.fleet.ids) == ["ac1", "ac2", "dc1", "pv1"]
    assert list(site.batteries.ids) == ["battery2", "battery1"]
    assert site.pv_ids == ["pv2", "pv3"] and site.load_ids == ["load1"]


@pytest.mark.parametrize("path", sorted((ROOT / "scenarios").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_scenarios_validate_with_unique_ids(path: Path) -> None:
    loaded = load_scenario(path)
    assert device_id_clashes(loaded.spec.assets) == []
    every = [d for ids in device_ids(loaded.spec.assets).values() for d in ids]
    assert every and len(every) == len(set(every))


# ------------------------------------------------------------------------------ properties


def _numbering_before(assets: schema.AssetsSpec) -> list[str]:
    """The ids as the builder gave them before clashes were checked (entry by entry, automatic
    ids skipping the ``id`` values and the ids of earlier entries): the reference for "a file
    that ran before names its devices as before"."""
    used = {
        e.id
        for section in ("chargers", "batteries", "pv", "loads")
        for e in getattr(assets, section)
        if e.id
    }
    out: list[str] = []
    for section in ("chargers", "batteries", "pv", "loads"):
        for e in getattr(assets, section):
            size = e.count * e.connectors if section == "chargers" else getattr(e, "count", 1)
            if e.id:
                names = [e.id] if size == 1 else [f"{e.id}{i + 1}" for i in range(size)]
            else:
                kinds = {"batteries": "battery", "pv": "pv", "loads": "load"}
                prefix = (
                    ("dc" if e.kind == "dc" else "ac") if section == "chargers" else kinds[section]
                )
                names, n = [], 1
                while len(names) < size:
                    if f"{prefix}{n}" not in used:
                        names.append(f"{prefix}{n}")
                    n += 1
            used.update(names)
            out += names
    return out


_ID = st.one_of(
    st.none(), st.sampled_from(["ac", "ac1", "ac2", "dc", "dc1", "pv", "pv2", "x", "x1"])
)
_CHARGERS = st.lists(
    st.tuples(st.sampled_from(["ac", "dc"]), _ID, st.integers(1, 3), st.integers(1, 2)),
    max_size=4,
)
_GROUPS = st.lists(st.tuples(_ID, st.integers(1, 3)), max_size=3)


def _assets(
    chargers: list[Any], batteries: list[Any], pv: list[Any], loads: list[Any]
) -> dict[str, Any]:
    def entry(row: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in row.items() if v is not None}

    return {
        "chargers": [
            entry({"kind": k, "id": i, "power_kw": 22, "count": c, "connectors": n})
            for k, i, c, n in chargers
        ],
        "batteries": [entry({"id": i, "capacity_kwh": 50, "power_kw": 25}) for i, _ in batteries],
        "pv": [entry({"id": i, "kwp": 10, "count": c}) for i, c in pv],
        "loads": [
            entry({"id": i, "profile": "G1-A", "annual_kwh": 3000, "count": c}) for i, c in loads
        ],
    }


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(chargers=_CHARGERS, batteries=_GROUPS, pv=_GROUPS, loads=_GROUPS)
def test_a_file_loads_exactly_when_its_written_ids_leave_every_device_its_own(
    chargers: list[Any], batteries: list[Any], pv: list[Any], loads: list[Any]
) -> None:
    assets = schema.AssetsSpec.model_validate(_assets(chargers, batteries, pv, loads))
    named = entry_device_ids(assets)
    # Independent statement of the rule: entries that write an `id` may neither repeat it nor
    # number a device alike.
    written = [
        (f"assets.{section}[{index}].id", spec.id, set(named[section, index]))
        for section in ("chargers", "batteries", "pv", "loads")
        for index, spec in enumerate(getattr(assets, section))
        if spec.id
    ]
    refused = {
        later
        for (_, a, ids_a), (later, b, ids_b) in combinations(written, 2)
        if a == b or ids_a & ids_b
    }
    text = HEAD + yaml.safe_dump({"assets": _assets(chargers, batteries, pv, loads)})
    if refused:
        issues = issues_of(text)
        assert {issue.path for issue in issues} == refused
        assert all(i.line is not None and "already used by assets." in i.message for i in issues)
        return
    loaded = load(text)
    every = [d for ids in device_ids(loaded.spec.assets).values() for d in ids]
    assert len(every) == len(set(every))
    before = _numbering_before(loaded.spec.assets)
    if len(before) == len(set(before)):
        assert every == before  # a file that ran before keeps its device names
