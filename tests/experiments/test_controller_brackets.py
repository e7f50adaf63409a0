"""Controllers with parameters on the command line: ``name[key=value,...]`` compares two settings
of one controller side by side."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from qubit_sim.cli import app
from qubit_sim.errors import ControllerError
from qubit_sim.experiments.harness import controller_dir, parse_controller

ROOT = Path(__file__).resolve().parents[2]


def test_brackets_give_parameters_read_as_yaml_scalars() -> None:
    spec = parse_controller(" mpc[horizon_h=12, forecast=l2,x=0.5,flag=true] ")
    assert spec.name == "mpc" and spec.label == "mpc[horizon_h=12, forecast=l2,x=0.5,flag=true]"
    assert spec.params == {"horizon_h": 12, "forecast": "l2", "x": 0.5, "flag": True}
    assert parse_controller("mod.sub:Cls[a=1]").name == "mod.sub:Cls"
    assert parse_controller("rule_based").params == {}
    # Labels make distinct, readable folders.
    assert controller_dir("rule_based[threshold_kw=60]") == "rule_based-threshold_kw-60"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("mpc[horizon_h]", "'horizon_h' is not key=value"),
        ("mpc[]", "'' is not key=value"),
        ("[a=1]", "names no controller"),
        ("mpc[a=1,a=2]", "sets 'a' twice"),
    ],
)
def test_malformed_brackets_are_refused(text: str, message: str) -> None:
    with pytest.raises(ControllerError, match=message):
        parse_controller(text)


def test_compare_runs_two_settings_of_one_controller(tmp_path: Path) -> None:
    scenario = ROOT / "scenarios" / "workplace_pv_battery.yaml"
    args = ["compare", "--scenarios", str(scenario), "--controllers"]
    args += ["rule_based[threshold_kw=40]", "rule_based[threshold_kw=200]", "--seeds", "1"]
    args += ["--until", "12h", "--workers", "1", "--out", str(tmp_path / "cmp"), "-q"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    runs = pd.read_csv(tmp_path / "cmp" / "kpis.csv")
    by = runs.set_index("controller")
    low, high = "rule_based[threshold_kw=40]", "rule_based[threshold_kw=200]"
    assert set(by.index) == {low, high}
    # Shaving to 40 kW discharges the battery more than a threshold above the site's peak.
    assert by.loc[low, "battery_throughput_kwh"] > by.loc[high, "battery_throughput_kwh"]
    assert (tmp_path / "cmp" / "runs" / "workplace_pv_battery" / controller_dir(low)).is_dir()
    manifest = (tmp_path / "cmp" / "compare.json").read_text()
    assert '"threshold_kw": 40' in manifest


def test_an_unknown_parameter_in_brackets_fails_before_any_run(tmp_path: Path) -> None:
    scenario = ROOT / "scenarios" / "workplace_pv_battery.yaml"
    args = ["compare", "--scenarios", str(scenario), "--controllers", "rule_based[treshold_kw=40]"]
    args += ["--seeds", "1", "--until", "1h", "--out", str(tmp_path / "cmp"), "-q"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "treshold_kw" in result.output and "threshold_kw" in result.output
    assert not (tmp_path / "cmp" / "runs").exists()
