"""Commands that run and check scenarios: ``run``, ``validate``, ``list``.

Heavy packages are imported inside the commands, so ``qubit-sim --help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from qubit_sim.cli.common import (
    EXIT_SCENARIO,
    PlotsOption,
    ResultsOption,
    SeedOption,
    _console,
    _fail_run,
    _fail_scenario,
    _note_until,
    _parse_sets,
    _print_kpis,
    _progress_bar,
    app,
)

__all__ = ["list_", "run", "validate"]


@app.command()
def run(
    scenario: Annotated[Path, typer.Argument(help="Scenario YAML file.")],
    seed: SeedOption = None,
    out: ResultsOption = None,
    until: Annotated[
        str | None, typer.Option(help="Simulate only this long, e.g. 1d, 12h (default: all).")
    ] = None,
    controller: Annotated[
        str | None,
        typer.Option(
            help="Controller name or 'module:Class' (overrides the YAML). The scenario's own "
            "controller keeps its controller.params; any other starts from its defaults."
        ),
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="Controller parameter key=value, read as YAML (repeatable); merges over the "
            "scenario's controller.params when the controller is the scenario's own.",
        ),
    ] = None,
    plots: PlotsOption = True,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    mode: Annotated[
        str | None,
        typer.Option(
            help="fast (in-process links) or wire (OCPP + Modbus TCP on loopback); "
            "overrides the YAML's mode. Both give the same results."
        ),
    ] = None,
) -> None:
    """Run a scenario and write its results folder (time series, KPIs, events, plots)."""
    from qubit_sim.core.clock import parse_duration
    from qubit_sim.errors import ControllerError, ScenarioError, SimulationError
    from qubit_sim.scenario.loader import load_scenario
    from qubit_sim.scenario.runner import run_loaded

    console = _console()
    try:
        until_s = parse_duration(until) if until is not None else None
    except ValueError as exc:
        _fail_scenario(exc)
    params = _parse_sets(set_)
    try:
        loaded = load_scenario(scenario)
    except ScenarioError as exc:
        _fail_scenario(exc)
    _note_until(console, until, until_s, loaded)
    try:
        with _progress_bar(console, f"simulating {loaded.name}", "steps", quiet) as update:
            result = run_loaded(
                loaded,
                seed=seed,
                out=out,
                until_s=until_s,
                controller=controller,
                controller_params=params,
                plots=plots,
                progress=update,
                mode=mode,
            )
    except (ScenarioError, ControllerError) as exc:
        _fail_scenario(exc)
    except SimulationError as exc:
        _fail_run(console, "run", exc)
    _print_kpis(console, result)


@app.command()
def validate(
    scenario: Annotated[list[Path], typer.Argument(help="Scenario YAML file(s).")],
    deep: Annotated[
        bool,
        typer.Option(
            help="Also build the site over the whole run: feeder buses, profiles, every row of "
            "the data files the run reads, and the controller with its params."
        ),
    ] = True,
) -> None:
    """Check scenario files; report every problem with its YAML path and line."""
    from rich.console import Console
    from rich.markup import escape

    from qubit_sim.errors import ConfigIssue, ControllerError, ScenarioError
    from qubit_sim.scenario.build import build_site
    from qubit_sim.scenario.loader import load_scenario

    console = _console()
    failed = False
    for path in scenario:
        try:
            loaded = load_scenario(path)
            if deep:
                try:
                    # The whole horizon: data files are checked for every step the run reads.
                    build_site(loaded)
                except ControllerError as exc:
                    issue = ConfigIssue("controller.name", str(exc))
                    raise loaded.locate(ScenarioError([issue], str(path))) from exc
        except ScenarioError as exc:
            failed = True
            Console(stderr=True).print(
                f"[bold red]invalid:[/] {escape(str(exc))}", highlight=False, soft_wrap=True
            )
            continue
        shallow = "" if deep else " (--no-deep: feeder, data files and controller not checked)"
        console.print(
            f"[green]valid:[/] {escape(f'{path} ({loaded.name})')}{escape(shallow)}",
            highlight=False,
        )
    if failed:
        raise typer.Exit(EXIT_SCENARIO)


@app.command("list")
def list_(
    what: Annotated[str, typer.Argument(help="scenarios, templates, controllers or all.")] = "all",
    scenarios_dir: Annotated[Path, typer.Option(help="Folder of scenario YAMLs.")] = Path(
        "scenarios"
    ),
) -> None:
    """List shipped scenarios, twin templates and controllers."""
    from rich.markup import escape
    from rich.table import Table

    from qubit_sim.control.registry import default_registry
    from qubit_sim.scenario.templates import TemplateCatalogue

    console = _console()
    choices = ("scenarios", "templates", "controllers", "all")
    if what not in choices:
        _fail_scenario(ValueError(f"cannot list {what!r}; choose one of {', '.join(choices)}"))
    if what in ("scenarios", "all"):
        import yaml

        table = Table(title=escape(f"Scenarios ({scenarios_dir})"), title_justify="left")
        # Paths and names are what one copies into a command: never cut short.
        table.add_column("file", no_wrap=True, overflow="fold", min_width=12)
        table.add_column("name", overflow="fold")
        table.add_column("description", ratio=1)
        folder = scenarios_dir if scenarios_dir.is_dir() else _project_scenarios()
        for file in sorted(folder.glob("*.yaml")):
            text = file.read_text(encoding="utf-8")
            first = text.splitlines()[0] if text else ""
            description = first.lstrip("# ").strip() if first.startswith("#") else ""
            try:
                name = (yaml.safe_load(text) or {}).get("site", {}).get("name", "?")
            except yaml.YAMLError:
                name = "(invalid YAML)"
            table.add_row(escape(str(file)), escape(str(name)), escape(description))
        console.print(table)
    if what in ("templates", "all"):
        table = Table(title="Twin templates", title_justify="left")
        table.add_column("name", no_wrap=True, overflow="fold")
        table.add_column("kind", no_wrap=True)
        table.add_column("description")
        for template in TemplateCatalogue.default(Path.cwd()):
            table.add_row(
                escape(template.name), escape(template.kind), escape(template.description)
            )
        console.print(table)
    if what in ("controllers", "all"):
        table = Table(title="Controllers", title_justify="left")
        table.add_column("name", no_wrap=True, overflow="fold")
        table.add_column("description")
        for name, description in default_registry().describe().items():
            table.add_row(escape(name), escape(description))
        table.add_row("module:Class", "your own Controller subclass, by import path")
        console.print(table)


def _project_scenarios() -> Path:
    return Path(__file__).resolve().parents[2] / "scenarios"
