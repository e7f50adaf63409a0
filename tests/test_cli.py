"""The qubit-sim command line, run as a user would."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "qubit_sim", *args],
        cwd=cwd, capture_output=True, text=True, timeout=600,
    )


def test_help_lists_the_commands() -> None:
    result = cli("--help")
    assert result.returncode == 0
    for command in ("run", "validate", "list"):
        assert command in result.stdout


def test_help_does_not_import_heavy_packages() -> None:
    code = (
        "import sys; from qubit_sim.cli import app; "
        "heavy = [m for m in ('pandapower', 'pvlib', 'cvxpy', 'pandas', 'matplotlib', 'mesa') "
        "if m in sys.modules]; print(heavy)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "[]"


def test_run_prints_kpis_and_writes_results(tmp_path: Path) -> None:
    out = tmp_path / "res"
    result = cli("run", "scenarios/workplace_pv_battery.yaml", "--until", "6h", "--out", str(out),
                 "--seed", "4", "--quiet", "--no-plots")
    assert result.returncode == 0, result.stderr
    assert "Total cost" in result.stdout and str(out) in result.stdout.replace("\n", "")
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["seed"] == 4 and manifest["n_steps"] == 360
    assert not (out / "plots").exists()


def test_run_with_controller_override_and_set(tmp_path: Path) -> None:
    out = tmp_path / "res"
    result = cli("run", "scenarios/depot_overnight.yaml", "--until", "2h", "--out", str(out),
                 "--controller", "rule_based", "--set", "threshold_kw=123", "-q", "--no-plots")
    assert result.returncode == 0, result.stderr
    assert json.loads((out / "manifest.json").read_text())["controller"] == "rule_based"


def test_controller_refusing_its_parameters_marks_the_manifest(tmp_path: Path) -> None:
    # Found in Controller.reset, after the results folder exists: it must not stay "running".
    out = tmp_path / "res"
    result = cli("run", "scenarios/workplace_pv_battery.yaml", "--controller", "mpc",
                 "--set", "slot_s=30min", "--until", "1h", "--out", str(out), "-q")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "plans in slots of 1800 s" in result.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "incomplete" and manifest["steps_done"] == 0
    assert "plans in slots of 1800 s" in manifest["error"]
    assert manifest["stopped_at"] == "2025-06-02T00:00:00Z"


def test_validate_reports_every_problem_without_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "site:\n  name: bad\n  start: 2025-01-01T00:00:00Z\n  duraton: 1d\n"
        "controller: {name: uncontroled}\n"
    )
    result = cli("validate", str(bad))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "site.duraton (line 4)" in result.stderr and "did you mean 'duration'" in result.stderr
    assert "did you mean 'uncontrolled'" in result.stderr


def test_validate_accepts_the_shipped_scenarios() -> None:
    result = cli("validate", *sorted(str(p) for p in (ROOT / "scenarios").glob("*.yaml")))
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("valid:") == len(list((ROOT / "scenarios").glob("*.yaml")))


def test_run_of_a_broken_scenario_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("site: {name: x, start: 2025-01-01T00:00:00Z, step: 7min, duration: 1h}\n")
    result = cli("run", str(bad))
    assert result.returncode == 2 and "must divide the duration" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_until_is_a_clear_error() -> None:
    result = cli("run", "scenarios/depot_overnight.yaml", "--until", "soon")
    assert result.returncode == 2 and "cannot read duration 'soon'" in result.stderr


def test_list_shows_scenarios_templates_and_controllers() -> None:
    result = cli("list")
    assert result.returncode == 0
    for name in ("depot_overnight", "ac_22kw", "dc_150kw", "battery_200kwh", "rule_based"):
        assert name in result.stdout
    assert cli("list", "things").returncode == 2


def test_export_writes_schema_documents(tmp_path: Path) -> None:
    out = tmp_path / "res"
    assert cli("run", "scenarios/workplace_pv_battery.yaml", "--until", "2h", "--out", str(out),
               "-q", "--no-plots").returncode == 0
    result = cli("export", str(out), "--format", "qubit", "--interval", "15m")
    assert result.returncode == 0, result.stderr
    documents = sorted((out / "qubit").rglob("*.json"))
    assert any(p.parent.name == "sites" for p in documents)
    assert any(p.parent.name == "timeseries" for p in documents)
    bad = cli("export", str(out), "--format", "csv")
    assert bad.returncode == 2 and "unknown export format 'csv'" in bad.stderr


def test_backtest_reports_each_forecaster() -> None:
    result = cli("backtest", "scenarios/workplace_pv_battery.yaml", "--until", "3d",
                 "--every", "6h", "--warmup", "2d")
    assert result.returncode == 0, result.stderr
    for name in ("pv_clearsky", "load_seasonal_naive", "load_regression"):
        assert name in result.stdout
    assert "MAE" in result.stdout and "cover 80 %" in result.stdout
    assert "[kW]" in result.stdout
