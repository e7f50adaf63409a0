"""The ``qubit-sim`` command line.

Heavy packages are imported inside the commands, so ``qubit-sim --help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

__all__ = ["app", "main"]

app = typer.Typer(
    name="qubit-sim",
    help=(
        "Digital twin and co-simulation of energy sites: EV chargers, batteries, PV and loads on a "
        "real distribution feeder, run against the Qubit energy stack."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

EXIT_SCENARIO = 2
EXIT_FAILED = 1

KPI_ROWS = [
    ("total_cost", "Total cost", "{currency}"),
    ("energy_cost", "Energy cost", "{currency}"),
    ("demand_charge", "Demand charge", "{currency}"),
    ("export_credit", "Export credit", "{currency}"),
    ("objective_cost", "Objective cost (incl. unmet penalty)", "{currency}"),
    ("grid_import_kwh", "Grid import", "kWh"),
    ("grid_export_kwh", "Grid export", "kWh"),
    ("peak_import_kw", "Peak import", "kW"),
    ("peak_import_15min_kw", "Peak import (15-min average)", "kW"),
    ("ev_sessions", "EV sessions", ""),
    ("ev_energy_delivered_kwh", "EV energy delivered", "kWh"),
    ("ev_energy_unmet_kwh", "EV energy unmet", "kWh"),
    ("pv_energy_kwh", "PV energy", "kWh"),
    ("pv_self_consumption_ratio", "PV self-consumption", "-"),
    ("battery_throughput_kwh", "Battery throughput", "kWh"),
    ("co2_kg", "CO2", "kg"),
    ("min_voltage_pu", "Min feeder voltage", "p.u."),
    ("max_voltage_pu", "Max feeder voltage", "p.u."),
    ("max_line_loading_pct", "Max line loading", "%"),
    ("voltage_violation_steps", "Voltage violation steps", ""),
    ("overload_steps", "Overload steps", ""),
    ("energy_balance_error_kwh", "Energy balance error", "kWh"),
]


def _console():  # type: ignore[no-untyped-def]
    from rich.console import Console

    return Console()


def _fail_scenario(exc: Exception) -> None:
    from rich.console import Console

    Console(stderr=True).print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
    raise typer.Exit(EXIT_SCENARIO)


def _parse_sets(values: list[str] | None) -> dict[str, Any]:
    import yaml

    params: dict[str, Any] = {}
    for item in values or []:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            _fail_scenario(ValueError(f"--set expects key=value, found {item!r}"))
        params[key.strip()] = yaml.safe_load(raw)
    return params


@app.command()
def run(
    scenario: Annotated[Path, typer.Argument(help="Scenario YAML file.")],
    seed: Annotated[int | None, typer.Option(help="Seed (overrides site.seed).")] = None,
    out: Annotated[
        Path | None, typer.Option(help="Results folder [default: results/<name>-seed<seed>].")
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="Simulate only this long, e.g. 1d, 12h (default: all).")
    ] = None,
    controller: Annotated[
        str | None, typer.Option(help="Controller name or 'module:Class' (overrides the YAML).")
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Controller parameter key=value (repeatable)."),
    ] = None,
    plots: Annotated[bool, typer.Option(help="Write plots/*.png.")] = True,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
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
    if params and controller is None:
        controller = loaded.spec.controller.name
        params = {**loaded.spec.controller.params, **params}

    try:
        if quiet:
            result = run_loaded(
                loaded, seed=seed, out=out, until_s=until_s, controller=controller,
                controller_params=params, plots=plots,
            )
        else:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            with Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("steps"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=console,
                transient=True,
            ) as bar:
                task = bar.add_task(f"simulating {loaded.name}", total=None)

                def progress(done: int, total: int) -> None:
                    bar.update(task, completed=done, total=total)

                result = run_loaded(
                    loaded, seed=seed, out=out, until_s=until_s, controller=controller,
                    controller_params=params, plots=plots, progress=progress,
                )
    except (ScenarioError, ControllerError) as exc:
        _fail_scenario(exc)
    except SimulationError as exc:
        console.print(f"[bold red]run failed:[/] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_FAILED) from None
    _print_kpis(console, result)


def _print_kpis(console: Any, result: Any) -> None:
    from rich.table import Table

    kpis = result.kpis
    currency = kpis.get("currency", "")
    manifest = result.manifest
    table = Table(
        title=f"{manifest['scenario']} — {manifest['controller']}, seed {manifest['seed']}",
        title_justify="left",
    )
    table.add_column("KPI")
    table.add_column("value", justify="right")
    table.add_column("unit")
    for key, label, unit in KPI_ROWS:
        value = kpis.get(key)
        if value is None:
            continue
        text = f"{value:,.4f}" if key.endswith("_pu") or key.endswith("ratio") else (
            f"{value:,}" if isinstance(value, int) else f"{value:,.2f}"
        )
        if key == "energy_balance_error_kwh":
            text = f"{value:.2e}"
        table.add_row(label, text, unit.format(currency=currency))
    console.print(table)
    timings = manifest.get("timings_s", {})
    console.print(
        f"{manifest['n_steps']:,} steps of {manifest['step_s']} s simulated in "
        f"{timings.get('simulate', 0):.1f} s (total {timings.get('total', 0):.1f} s)"
    )
    console.print(f"results: [bold]{result.out_dir}[/]", highlight=False)


@app.command()
def validate(
    scenario: Annotated[list[Path], typer.Argument(help="Scenario YAML file(s).")],
    deep: Annotated[
        bool,
        typer.Option(help="Also build the site: feeder buses, profiles, weather, sessions."),
    ] = True,
) -> None:
    """Check scenario files; report every problem with its YAML path and line."""
    from qubit_sim.errors import ScenarioError
    from qubit_sim.scenario.build import build_site
    from qubit_sim.scenario.loader import load_scenario

    console = _console()
    failed = False
    for path in scenario:
        try:
            loaded = load_scenario(path)
            if deep:
                build_site(loaded, until_s=loaded.spec.site.step)
        except ScenarioError as exc:
            failed = True
            from rich.console import Console

            Console(stderr=True).print(f"[bold red]invalid:[/] {exc}", highlight=False, soft_wrap=True)
            continue
        console.print(f"[green]valid:[/] {path} ({loaded.name})", highlight=False)
    if failed:
        raise typer.Exit(EXIT_SCENARIO)


@app.command("list")
def list_(
    what: Annotated[
        str, typer.Argument(help="scenarios, templates, controllers or all.")
    ] = "all",
    scenarios_dir: Annotated[Path, typer.Option(help="Folder of scenario YAMLs.")] = Path(
        "scenarios"
    ),
) -> None:
    """List shipped scenarios, twin templates and controllers."""
    from rich.table import Table

    from qubit_sim.control.registry import default_registry
    from qubit_sim.scenario.templates import TemplateCatalogue

    console = _console()
    choices = ("scenarios", "templates", "controllers", "all")
    if what not in choices:
        _fail_scenario(ValueError(f"cannot list {what!r}; choose one of {', '.join(choices)}"))
    if what in ("scenarios", "all"):
        import yaml

        table = Table(title=f"Scenarios ({scenarios_dir})", title_justify="left")
        table.add_column("file")
        table.add_column("name")
        table.add_column("description")
        folder = scenarios_dir if scenarios_dir.is_dir() else _project_scenarios()
        for file in sorted(folder.glob("*.yaml")):
            text = file.read_text(encoding="utf-8")
            first = text.splitlines()[0] if text else ""
            description = first.lstrip("# ").strip() if first.startswith("#") else ""
            try:
                name = (yaml.safe_load(text) or {}).get("site", {}).get("name", "?")
            except yaml.YAMLError:
                name = "(invalid YAML)"
            table.add_row(str(file), str(name), description)
        console.print(table)
    if what in ("templates", "all"):
        table = Table(title="Twin templates", title_justify="left")
        table.add_column("name")
        table.add_column("kind")
        table.add_column("description")
        for template in TemplateCatalogue.default(Path.cwd()):
            table.add_row(template.name, template.kind, template.description)
        console.print(table)
    if what in ("controllers", "all"):
        table = Table(title="Controllers", title_justify="left")
        table.add_column("name")
        table.add_column("description")
        for name, description in default_registry().describe().items():
            table.add_row(name, description)
        table.add_row("module:Class", "your own Controller subclass, by import path")
        console.print(table)


def _project_scenarios() -> Path:
    return Path(__file__).resolve().parents[1] / "scenarios"


def main() -> None:
    """Entry point of the ``qubit-sim`` script."""
    app()
