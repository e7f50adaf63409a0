"""``qubit-sim backtest SCENARIO``: its temporary run folder is removed, and its table keeps units.

Run in-process, so the temporary folder can be redirected into the test's own folder and every
folder the command creates there is seen.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from qubit_sim.cli import app

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = str(ROOT / "scenarios" / "workplace_pv_battery.yaml")


@pytest.fixture
def temp_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, list[Path]]:
    """A private temp folder for ``tempfile``, and a list of the folders made in it."""
    root = tmp_path / "tmp"
    root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(root))
    made: list[Path] = []
    mkdtemp = tempfile.mkdtemp

    def recording_mkdtemp(*args: object, **kwargs: object) -> str:
        path = mkdtemp(*args, **kwargs)  # type: ignore[arg-type]
        made.append(Path(path))
        return path

    monkeypatch.setattr(tempfile, "mkdtemp", recording_mkdtemp)
    # Wide enough that no header wraps.
    monkeypatch.setenv("COLUMNS", "200")
    return root, made


def _backtest_folders(made: list[Path]) -> list[Path]:
    return [p for p in made if p.name.startswith("qubit-backtest-")]


def test_backtest_removes_its_run_folder_and_shows_units(
    temp_root: tuple[Path, list[Path]],
) -> None:
    root, made = temp_root
    result = CliRunner().invoke(
        app,
        ["backtest", SCENARIO, "--until", "2d", "--warmup", "1d", "--every", "6h",
         "--horizon", "6h"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    folders = _backtest_folders(made)
    assert len(folders) == 1 and folders[0].parent == root
    assert not folders[0].exists()
    assert list(root.iterdir()) == []
    # rich reads a lowercase "[kW]" as a markup tag and would drop it.
    assert "MAE [kW]" in result.output and "RMSE [kW]" in result.output
    for name in ("pv_clearsky", "load_regression"):
        assert name in result.output


def test_backtest_removes_its_run_folder_when_the_run_fails(
    temp_root: tuple[Path, list[Path]],
) -> None:
    root, made = temp_root
    result = CliRunner().invoke(app, ["backtest", SCENARIO, "--until", "0s"])
    assert result.exit_code == 2
    assert "--until: must be positive" in result.output
    folders = _backtest_folders(made)
    assert len(folders) == 1 and not folders[0].exists()
    assert list(root.iterdir()) == []


def test_a_run_too_short_for_the_backtest_names_the_options() -> None:
    from typer.testing import CliRunner

    from qubit_sim.cli import app

    scenario = Path(__file__).resolve().parents[1] / "scenarios" / "workplace_pv_battery.yaml"
    result = CliRunner().invoke(
        app, ["backtest", str(scenario), "--until", "1d"], env={"COLUMNS": "200"}
    )
    assert result.exit_code == 2, result.output
    assert "--warmup 2d plus --horizon 24h" in result.output and "--until" in result.output
