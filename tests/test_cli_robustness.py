"""The command line where a new user stumbles: taken ports, bad values, clamped horizons, narrow
terminals, misspelt controller parameters.

Claims checked here: ``serve`` with a port already taken exits 2 with one line naming the address
and the option that moves it, and marks the results folder incomplete; a negative seed is refused
as a usage error; ``--until`` beyond the scenario or between steps says what runs instead;
``compare --help`` documents ``--scenarios`` and ``--controllers``, which take several values
after one flag; the settlement's bill table shows every digit on an 80-column terminal and the
export credit as summary.md shows it; a misspelt ``--set`` names the controller's parameters
with a "did you mean".
"""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Iterator
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from hypothesis import given
from hypothesis import strategies as st
from rich.console import Console
from typer.testing import CliRunner

import qubit_sim
from qubit_sim.cli import app
from qubit_sim.cli.experiments import _repeat_list_flags
from qubit_sim.cli.settle import _print_settlement
from qubit_sim.scenario.loader import load_scenario
from qubit_sim.stack.settle.run import settle_results

ROOT = Path(__file__).resolve().parents[1]
WORKPLACE = ROOT / "scenarios" / "workplace_pv_battery.yaml"
runner = CliRunner()


def _workplace(folder: Path, **site: object) -> Path:
    """The workplace scenario without its feeder (it builds in a second), ``site`` overridden."""
    document = yaml.safe_load(WORKPLACE.read_text())
    del document["grid"]
    document["site"].update(site)
    path = folder / "workplace.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def one_day(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _workplace(tmp_path_factory.mktemp("one_day"), duration="1d")


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port on 127.0.0.1 that another socket listens on."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        yield int(taken.getsockname()[1])


# --------------------------------------------------------------------------- taken ports


@pytest.mark.parametrize(
    ("option", "other"),
    [("--csms-port", "--modbus-base-port"), ("--modbus-base-port", "--csms-port")],
)
def test_serve_on_a_taken_port_exits_2_in_one_line(
    one_day: Path, taken_port: int, tmp_path: Path, option: str, other: str
) -> None:
    out = tmp_path / "out"
    args = ["serve", str(one_day), option, str(taken_port), other, "0", "--out", str(out)]
    result = runner.invoke(app, [*args, "--until", "1h", "--no-plots"])
    assert result.exit_code == 2, result.output
    assert not isinstance(result.exception, OSError)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert f"127.0.0.1:{taken_port}" in lines[0] and "already in use" in lines[0]
    assert f"choose another with {option}" in lines[0]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "incomplete" and manifest["steps_done"] == 0
    assert f"127.0.0.1:{taken_port}" in manifest["error"]


# ------------------------------------------------------------------------------- values


@pytest.mark.parametrize("command", ["run", "serve"])
def test_a_negative_seed_is_a_usage_error(one_day: Path, command: str) -> None:
    result = runner.invoke(app, [command, str(one_day), "--seed", "-1"], env={"COLUMNS": "200"})
    assert result.exit_code == 2
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Invalid value for '--seed': -1 is negative; a seed is a whole number >= 0" in (
        result.output
    )


@pytest.mark.parametrize(
    ("until", "notice", "n_steps"),
    [
        ("2d", "--until 2d is longer than the scenario (site.duration 1d): simulating all of it",
         1440),
        ("90s", "--until 90s is not a whole number of 60 s steps (site.step): simulating 1 step "
                "(1min)", 1),
        ("150min", None, 150),
    ],
)  # fmt: skip
def test_until_says_what_runs_when_it_differs_from_what_was_asked(
    one_day: Path, tmp_path: Path, until: str, notice: str | None, n_steps: int
) -> None:
    out = tmp_path / "out"
    args = ["run", str(one_day), "--until", until, "--out", str(out), "-q", "--no-plots"]
    result = runner.invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert json.loads((out / "manifest.json").read_text())["n_steps"] == n_steps
    notes = [line for line in result.output.splitlines() if line.startswith("note:")]
    assert notes == ([f"note: {notice}"] if notice else [])
    assert f"{n_steps:,} steps of 60 s simulated" in result.output


# ----------------------------------------------------------------------------- compare


def test_compare_help_documents_its_list_options() -> None:
    result = runner.invoke(app, ["compare", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    text = re.sub(r"\s+", " ", result.output.replace("│", " "))
    assert "--scenarios YAML... Scenario YAML files, one or more" in text
    assert "--controllers NAME... Controllers, one or more" in text


def _parse_compare(args: list[str]) -> dict[str, Any]:
    command = typer.main.get_command(app).commands["compare"]  # type: ignore[attr-defined]
    with command.make_context("compare", args) as ctx:
        return dict(ctx.params)


names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_./:", min_size=1, max_size=12)


@given(scenarios=st.lists(names, min_size=1, max_size=4), controllers=st.lists(names, max_size=4))
def test_list_options_take_every_value_after_one_flag(
    scenarios: list[str], controllers: list[str]
) -> None:
    args = ["--seeds", "2", "--scenarios", *scenarios, "-q"]
    args += ["--controllers", *controllers] if controllers else []
    params = _parse_compare(args)
    assert [str(p) for p in params["scenarios"]] == [str(Path(s)) for s in scenarios]
    assert list(params["controllers"] or []) == controllers
    assert params["seeds"] == 2 and params["quiet"] is True


def test_list_options_also_take_the_repeated_and_the_equals_forms() -> None:
    args = ["--scenarios=a.yaml", "b.yaml", "--controllers", "mpc", "--controllers", "x:Y"]
    assert _repeat_list_flags(args, ("--scenarios", "--controllers")) == [
        "--scenarios=a.yaml", "--scenarios", "b.yaml", "--controllers", "mpc",
        "--controllers", "x:Y",
    ]  # fmt: skip
    params = _parse_compare([*args, "--until", "2h"])
    assert [str(p) for p in params["scenarios"]] == ["a.yaml", "b.yaml"]
    assert params["controllers"] == ["mpc", "x:Y"] and params["until"] == "2h"


def test_compare_refuses_a_stray_value_and_a_missing_scenario_list() -> None:
    wide = {"COLUMNS": "200"}
    args = ["compare", "--scenarios", "a.yaml", "--seeds", "2", "stray.yaml"]
    result = runner.invoke(app, args, env=wide)
    assert result.exit_code == 2 and "unexpected extra argument(s) (stray.yaml)" in result.output
    result = runner.invoke(app, ["compare", "--controllers", "mpc"], env=wide)
    assert result.exit_code == 2 and "--scenarios" in result.output


# ------------------------------------------------------------------------------ settle


@pytest.fixture(scope="module")
def week_settled(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The workplace week without its feeder (bills above 1,000 EUR), run unsettled."""
    loaded = load_scenario(WORKPLACE, overrides={"grid": None})
    out = tmp_path_factory.mktemp("week")
    qubit_sim.run(loaded, out=out, plots=False, settle=False)
    return out, tmp_path_factory.mktemp("keys")


def _summary_bill_rows(summary: str) -> list[list[str]]:
    """The period rows of summary.md's bill table, cell by cell."""
    section = summary.split("## Site bill", 1)[1].split("\n\n", 2)[1]
    rows = [line.strip("| ").split(" | ") for line in section.splitlines()[2:]]
    return [row for row in rows if not row[0].startswith("**")]


def test_the_bill_table_shows_every_digit_and_the_summary_signs(
    week_settled: tuple[Path, Path],
) -> None:
    folder, key_dir = week_settled
    report = settle_results(folder, period="week", key_dir=key_dir)
    buffer = StringIO()
    console = Console(file=buffer, width=80, force_terminal=True, color_system=None)
    _print_settlement(console, report)
    table = buffer.getvalue().split("invoices,", 1)[0]
    assert "…" not in table
    header = [line.split("┃") for line in table.splitlines() if "┃" in line]
    assert ["export", "credit"] in [[row[6].strip() for row in header]]
    expected = _summary_bill_rows((folder / "settlement" / "summary.md").read_text())
    assert any(len(cell) >= 8 for row in expected for cell in row[1:])  # 1,234.56 and wider
    shown = [
        [cell.strip() for cell in line.split("│")]
        for line in table.splitlines()
        if line.strip().startswith("20")
    ]
    assert shown == expected


def test_settle_piped_keeps_one_line_per_bill_row(week_settled: tuple[Path, Path]) -> None:
    folder, key_dir = week_settled
    args = ["settle", str(folder), "--period", "week", "--key-dir", str(key_dir)]
    result = runner.invoke(app, args, env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    rows = [line for line in result.output.splitlines() if re.match(r"\W*2025-W2\d", line)]
    assert len(rows) == 2 and "…" not in result.output
    assert all(len(re.findall(r"\d[\d,]*\.\d+", row)) == 7 for row in rows)


# ------------------------------------------------------------------------ controller --set


def test_a_misspelt_controller_parameter_names_the_valid_ones(one_day: Path) -> None:
    args = ["run", str(one_day), "--controller", "rule_based", "--set", "threshold=300"]
    result = runner.invoke(app, [*args, "--until", "1h", "-q"], env={"COLUMNS": "300"})
    assert result.exit_code == 2
    assert "no parameter 'threshold' (did you mean 'threshold_kw'?)" in result.output
    assert "its parameters: threshold_kw=None, recharge_below_kw=None" in result.output
    assert "unexpected keyword argument" not in result.output


def test_list_never_cuts_a_scenario_path_short() -> None:
    from typer.testing import CliRunner

    from qubit_sim.cli import app

    result = CliRunner().invoke(app, ["list", "scenarios"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    for name in ("depot_overnight", "residential_feeder", "workplace_pv_battery"):
        assert f"scenarios/{name}.yaml" in result.output
