"""One rule for controller parameters, in ``run`` and ``compare``.

A controller whose name is the scenario's ``controller.name`` is built with the scenario's
``controller.params``, with ``--set`` merged over them; any other controller gets its defaults
plus ``--set``. The office car park's own controller is ``rule_based`` with ``threshold_kw: 120``;
the class default is 80 % of the 250 kW import limit (200 kW), which over the first six hours of
seed 0 shaves nothing, so the threshold shows in the peak.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

import qubit_sim
from qubit_sim.cli import app
from qubit_sim.control.registry import controller_params_for
from qubit_sim.core.results import RunResult
from qubit_sim.experiments import LocalExecutor, compare

ROOT = Path(__file__).resolve().parents[1]
WORKPLACE = ROOT / "scenarios" / "workplace_pv_battery.yaml"
DEPOT = ROOT / "scenarios" / "depot_overnight.yaml"
SEED = 0
UNTIL = "6h"
UNTIL_S = 6 * 3600
PEAK = "peak_import_15min_kw"

params = st.dictionaries(st.sampled_from(["a", "b", "c", "d"]), st.integers(), max_size=4)


@given(params, params)
def test_the_rule(scenario_params: dict[str, int], overrides: dict[str, int]) -> None:
    own = controller_params_for("mpc", "mpc", scenario_params, overrides)
    assert own == {**scenario_params, **overrides}
    other = controller_params_for("qubit_greedy", "mpc", scenario_params, overrides)
    assert other == overrides
    assert controller_params_for("mpc", "mpc", scenario_params) == scenario_params


def _run(out: Path, **kwargs: Any) -> RunResult:
    return qubit_sim.run(
        WORKPLACE, seed=SEED, out=out, until_s=UNTIL_S, plots=False, settle=False, **kwargs
    )


@pytest.fixture(scope="module")
def own(tmp_path_factory: pytest.TempPathFactory) -> RunResult:
    """The scenario as its YAML says: rule_based with threshold_kw 120."""
    return _run(tmp_path_factory.mktemp("own"))


@pytest.fixture(scope="module")
def default_threshold(tmp_path_factory: pytest.TempPathFactory) -> RunResult:
    """rule_based at its class default (``--set threshold_kw=null`` over the scenario's 120)."""
    return _run(
        tmp_path_factory.mktemp("default"),
        controller="rule_based",
        controller_params={"threshold_kw": None},
    )


def test_the_threshold_shows_in_the_peak(own: RunResult, default_threshold: RunResult) -> None:
    assert own.manifest["controller_params"] == {"threshold_kw": 120}
    assert default_threshold.manifest["controller_params"] == {"threshold_kw": None}
    assert own.kpis[PEAK] < 130.0 < default_threshold.kpis[PEAK]


def test_run_of_the_scenarios_own_controller_by_name_keeps_its_params(
    own: RunResult, tmp_path: Path
) -> None:
    by_name = _run(tmp_path, controller="rule_based")
    assert by_name.manifest["controller_params"] == {"threshold_kw": 120}
    assert by_name.kpis == own.kpis


def test_set_merges_over_the_scenario_params(tmp_path: Path) -> None:
    merged = _run(tmp_path, controller="rule_based", controller_params={"recharge_below_kw": 50})
    assert merged.manifest["controller_params"] == {"threshold_kw": 120, "recharge_below_kw": 50}
    # Without --controller, parameters are for the scenario's own controller.
    implicit = _run(tmp_path / "implicit", controller_params={"recharge_below_kw": 50})
    assert implicit.manifest["controller"] == "rule_based"
    assert implicit.manifest["controller_params"] == merged.manifest["controller_params"]
    assert implicit.kpis == merged.kpis


def test_another_controller_gets_only_its_defaults(tmp_path: Path) -> None:
    # Uncontrolled takes no parameters: the scenario's threshold_kw would be refused.
    result = _run(tmp_path, controller="uncontrolled")
    assert result.manifest["controller_params"] == {}


def _cli_run(out: Path, *args: str) -> dict[str, Any]:
    result = CliRunner().invoke(
        app,
        ["run", str(WORKPLACE), "--seed", str(SEED), "--until", UNTIL, "--out", str(out),
         "--quiet", "--no-plots", *args],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return json.loads((out / "kpis.json").read_text())


def test_cli_run_with_the_scenarios_own_controller(
    own: RunResult, default_threshold: RunResult, tmp_path: Path
) -> None:
    kpis = _cli_run(tmp_path / "a", "--controller", "rule_based")
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert manifest["controller_params"] == {"threshold_kw": 120}
    assert kpis[PEAK] == own.kpis[PEAK]
    kpis = _cli_run(tmp_path / "b", "--controller", "rule_based", "--set", "threshold_kw=null")
    assert kpis[PEAK] == default_threshold.kpis[PEAK]


def test_compare_builds_each_scenarios_own_controller_with_its_params(
    own: RunResult, default_threshold: RunResult, tmp_path: Path
) -> None:
    result = compare(
        [WORKPLACE, DEPOT],
        ["rule_based", "uncontrolled"],
        [SEED],
        tmp_path,
        until_s=UNTIL_S,
        executor=LocalExecutor(1),
        plots=False,
    )
    assert result.failed.empty, result.failed.error.tolist()
    runs = result.runs.set_index(["scenario", "controller"])
    workplace = runs.loc[("workplace_pv_battery", "rule_based")]
    assert workplace[PEAK] == own.kpis[PEAK] != default_threshold.kpis[PEAK]
    manifest = json.loads((Path(workplace.run_dir) / "manifest.json").read_text())
    assert manifest["controller_params"] == {"threshold_kw": 120}
    # The depot's own controller is uncontrolled: there rule_based keeps its defaults.
    depot = json.loads((Path(runs.loc[("depot_overnight", "rule_based")].run_dir)
                        / "manifest.json").read_text())  # fmt: skip
    assert depot["controller_params"] == {}
    recorded = json.loads((tmp_path / "compare.json").read_text())["controllers"]
    assert recorded[0]["params_by_scenario"] == {
        "workplace_pv_battery": {"threshold_kw": 120},
        "depot_overnight": {},
    }
