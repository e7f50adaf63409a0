"""The ``qubit-sim`` command line.

Heavy packages are imported inside the commands, so ``qubit-sim --help`` stays fast.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperCommand

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


def _check_seed(value: int | None) -> int | None:
    if value is not None and value < 0:
        raise typer.BadParameter(
            f"{value} is negative; a seed is a whole number >= 0, as site.seed"
        )
    return value


# Options that run, serve and hil share. Help texts put defaults in round brackets: rich reads
# "[default: ...]" as markup and drops it.
SeedOption = Annotated[
    int | None, typer.Option(callback=_check_seed, help="Seed >= 0 (overrides site.seed).")
]
ResultsOption = Annotated[
    Path | None, typer.Option(help="Results folder (default: results/<name>-seed<seed>).")
]
PlotsOption = Annotated[bool, typer.Option(help="Write plots/*.png.")]

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
    ("voltage_violation_steps", "Voltage violation steps (any bus)", ""),
    ("site_voltage_violation_steps", "Voltage violation steps (site bus)", ""),
    ("overload_steps", "Overload steps", ""),
    ("energy_balance_error_kwh", "Energy balance error", "kWh"),
]


def _console() -> Any:
    from rich.console import Console

    return Console()


def _fail_scenario(exc: Exception) -> None:
    from rich.console import Console
    from rich.markup import escape

    Console(stderr=True).print(
        f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True
    )
    raise typer.Exit(EXIT_SCENARIO)


def _fail_run(console: Any, command: str, exc: Exception) -> None:
    """A run that stopped on a simulation error: say so and exit with ``EXIT_FAILED``."""
    from rich.markup import escape

    console.print(
        f"[bold red]{command} failed:[/] {escape(str(exc))}", highlight=False, soft_wrap=True
    )
    raise typer.Exit(EXIT_FAILED) from None


def _note(console: Any, text: str) -> None:
    from rich.markup import escape

    console.print(f"[bold yellow]note:[/] {escape(text)}", highlight=False, soft_wrap=True)


def _until_notice(until: str, until_s: int, duration_s: int, step_s: int) -> str | None:
    """What ``--until`` asked and what runs instead, when the two differ (``None`` when not)."""
    from qubit_sim.core.clock import format_duration

    if until_s <= 0:
        return None  # refused by the build, with its own error
    if until_s > duration_s:
        return (
            f"--until {until} is longer than the scenario (site.duration "
            f"{format_duration(duration_s)}): simulating all of it"
        )
    steps = max(until_s // step_s, 1)
    if steps * step_s == until_s:
        return None
    plural = "s" if steps != 1 else ""
    return (
        f"--until {until} is not a whole number of {step_s} s steps (site.step): simulating "
        f"{steps:,} step{plural} ({format_duration(steps * step_s)})"
    )


def _note_until(console: Any, until: str | None, until_s: int | None, loaded: Any) -> None:
    if until is None or until_s is None:
        return
    site = loaded.spec.site
    notice = _until_notice(until, until_s, site.duration, site.step)
    if notice is not None:
        _note(console, notice)


def _stop_exit_code(manifest: dict[str, Any]) -> int | None:
    """The exit status of a run that a stop (Ctrl-C, SIGTERM) ended early: 128 + the signal's
    number, as a shell reports a process killed by it; ``None`` for any other run."""
    import signal

    stopped_by = manifest.get("stopped_by")
    if manifest.get("status") != "incomplete" or not stopped_by:
        return None
    stop = signal.SIGTERM if "SIGTERM" in stopped_by else signal.SIGINT
    return 128 + int(stop)


def _exit_if_stopped(result: Any) -> None:
    code = _stop_exit_code(result.manifest)
    if code is not None:
        raise typer.Exit(code)


def _wide_when_piped(console: Any, width: int) -> None:
    """Piped or redirected: no terminal to wrap for, so tables keep one line per row."""
    if not console.is_terminal:
        console.width = max(console.width, width)


def _print_paced_end(console: Any, result: Any) -> None:
    """How a wall-clock paced run ended: stopped early or not, and its lag (manifest realtime)."""
    realtime = result.manifest["realtime"]
    if not result.complete:
        console.print(
            f"stopped early at {result.manifest.get('stopped_at')}: results in "
            f"{result.out_dir} (marked incomplete)",
            highlight=False,
            soft_wrap=True,
        )
    console.print(
        f"lag behind the wall clock: max {realtime['lag_max_s']:.3f} s, mean "
        f"{realtime['lag_mean_s']:.3f} s over {realtime['steps']} steps",
        highlight=False,
    )


@contextmanager
def _progress_bar(
    console: Any, description: str, unit: str, quiet: bool
) -> Iterator[Callable[..., None] | None]:
    """A transient rich progress bar; yields ``update(done, total, description=None)``, or
    ``None`` when ``quiet``."""
    if quiet:
        yield None
        return
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
        TextColumn(unit),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task(description, total=None)

        def update(done: int, total: int, label: str | None = None) -> None:
            if label is None:
                bar.update(task, completed=done, total=total)
            else:
                bar.update(task, completed=done, total=total, description=label)

        yield update


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


def _print_kpis(console: Any, result: Any) -> None:
    from rich.markup import escape
    from rich.table import Table

    kpis = result.kpis
    currency = kpis.get("currency", "")
    manifest = result.manifest
    table = Table(
        title=escape(f"{manifest['scenario']} — {manifest['controller']}, seed {manifest['seed']}"),
        title_justify="left",
    )
    table.add_column("KPI")
    table.add_column("value", justify="right")
    table.add_column("unit")
    for key, label, unit in KPI_ROWS:
        value = kpis.get(key)
        if value is None:
            continue
        text = (
            f"{value:,.4f}"
            if key.endswith("_pu") or key.endswith("ratio")
            else (f"{value:,}" if isinstance(value, int) else f"{value:,.2f}")
        )
        if key == "energy_balance_error_kwh":
            text = f"{value:.2e}"
        table.add_row(label, text, escape(unit.format(currency=currency)))
    console.print(table)
    timings = manifest.get("timings_s", {})
    n_steps = manifest["n_steps"]
    done = manifest.get("steps_done", n_steps)
    steps = f"{done:,} of {n_steps:,}" if done < n_steps else f"{done:,}"
    console.print(
        f"{steps} steps of {manifest['step_s']} s simulated in "
        f"{timings.get('simulate', 0):.1f} s (total {timings.get('total', 0):.1f} s)"
    )
    console.print(f"results: [bold]{escape(str(result.out_dir))}[/]", highlight=False)


@app.command()
def validate(
    scenario: Annotated[list[Path], typer.Argument(help="Scenario YAML file(s).")],
    deep: Annotated[
        bool,
        typer.Option(help="Also build the site: feeder buses, profiles, weather, sessions."),
    ] = True,
) -> None:
    """Check scenario files; report every problem with its YAML path and line."""
    from rich.markup import escape

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

            Console(stderr=True).print(
                f"[bold red]invalid:[/] {escape(str(exc))}", highlight=False, soft_wrap=True
            )
            continue
        console.print(f"[green]valid:[/] {escape(f'{path} ({loaded.name})')}", highlight=False)
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


SETTLE_PERIODS = ("month", "week", "day")


@app.command()
def settle(
    results: Annotated[Path, typer.Argument(help="Results folder of a run.")],
    period: Annotated[
        str | None,
        typer.Option(
            help="Billing and ledger period: month, week or day (default: the scenario's)."
        ),
    ] = None,
    key_dir: Annotated[
        Path | None,
        typer.Option(
            help="Folder of site signing keys (default: $QUBIT_SIM_KEY_DIR or "
            "~/.config/qubit-sim/keys)."
        ),
    ] = None,
) -> None:
    """Settle a run: site bill, signed invoices and PV certificates, ledger, carbon, reconciliation.

    Replaces the run's settlement/ folder. Exits 1 if reconciliation fails.

    Billing periods the run covers only in part are marked * and billed in full.
    """
    from qubit_sim.errors import QubitSimError
    from qubit_sim.stack.settle.run import settle_results

    console = _console()
    if period is not None and period not in SETTLE_PERIODS:
        _fail_scenario(ValueError(f"--period {period!r} is not one of {', '.join(SETTLE_PERIODS)}"))
    try:
        report = settle_results(results, period=period, key_dir=key_dir)
    except QubitSimError as exc:
        _fail_scenario(exc)
    _print_settlement(console, report)
    if not report.reconciled:
        raise typer.Exit(EXIT_FAILED)


def _print_settlement(console: Any, report: Any) -> None:
    from rich.table import Table

    from qubit_sim.stack.settle.bills import (
        PARTIAL_MARK,
        bill_totals,
        partial_note,
        period_coverage,
    )

    currency = report.currency
    partial = period_coverage(report.bill_lines)["partial"]
    # The export credit is shown as summary.md shows it: a positive amount that the total
    # subtracts (bill_lines.csv books it as a negative amount).
    header = (
        "period",
        "import kWh",
        "export kWh",
        "peak kW",
        "energy",
        "demand",
        "export credit",
        "total",
    )
    rows = [
        [
            str(period) + (PARTIAL_MARK if partial[period] else ""),
            f"{row.import_kwh:,.1f}",
            f"{row.export_kwh:,.1f}",
            f"{row.peak_kw:,.1f}",
            f"{row.energy:,.2f}",
            f"{row.demand:,.2f}",
            f"{row.export_credit + 0.0:,.2f}",
            f"{row.total:,.2f}",
        ]
        for period, row in bill_totals(report.bill_lines).iterrows()
    ]
    table = Table(
        title=f"Site bill per {report.period} ({currency})", title_justify="left", show_edge=False
    )
    for index, name in enumerate(header):
        # Each column as wide as its widest number (headers wrap between words), so an
        # 80-column terminal shows every digit; narrower ones fold digits, never drop them.
        width = max([len(word) for word in name.split()] + [len(c[index]) for c in rows])
        table.add_column(
            name, justify="left" if index == 0 else "right", width=width, overflow="fold"
        )
    for cells in rows:
        table.add_row(*cells)
    _wide_when_piped(console, 120)
    console.print(table)
    note = partial_note(report.bill_lines)
    if note is not None:
        console.print(note, style="yellow", highlight=False, markup=False)
    signed = report.signed
    total = report.carbon["total"]
    console.print(
        f"{signed.invoice_count} invoices, {signed.certificate_count} certificates, "
        f"{len(signed.periods)} ledger entries; {report.open_sessions} sessions still plugged "
        f"(not invoiced)\ncarbon: {total['grid_import_kg']:,.1f} kg CO2 from grid imports, "
        f"{total['pv_self_consumption_avoided_kg']:,.1f} kg avoided by PV, "
        f"{total['battery_shift_avoided_kg'] + 0.0:,.1f} kg by the battery"
    )
    checks = Table(title="Reconciliation", title_justify="left")
    for name in ("check", "difference Wh", "tolerance Wh", "verdict"):
        checks.add_column(name, justify="left" if name in ("check", "verdict") else "right")
    for check in report.reconciliation["checks"]:
        if check["passed"] is None:
            checks.add_row(check["name"], "", "", "not checked")
            continue
        colour = "green" if check["passed"] else "red"
        checks.add_row(
            check["name"],
            f"{check['difference_wh']:.3g}",
            f"{check['tolerance_wh']:,.0f}",
            f"[{colour}]{check['status']}[/]",
        )
    console.print(checks)
    if report.reconciled:
        console.print("[bold green]reconciliation: PASS[/]")
    else:
        failed = [c["name"] for c in report.reconciliation["checks"] if c["passed"] is False]
        console.print(f"[bold red]reconciliation: FAIL[/] ({', '.join(failed)})")
    console.print(f"settlement: [bold]{report.folder}[/]", highlight=False)


@app.command()
def verify(
    results: Annotated[Path, typer.Argument(help="Results folder of a settled run.")],
) -> None:
    """Verify a settled run against its manifest; exits 1 naming the first tampered item.

    Checks every signature, Merkle inclusion and the ledger hash chain against the key
    fingerprint and ledger head published in manifest.json, and the unsigned settlement files
    against their digests there.
    """
    from rich.markup import escape

    from qubit_sim.stack.settle.run import UNSETTLED, verify_results

    console = _console()
    if not results.is_dir():
        _fail_scenario(ValueError(f"results folder {results} does not exist"))
    report = verify_results(results)
    if report.ok:
        console.print(
            f"[bold green]verified:[/] {report.ledger_entries} ledger entries, "
            f"{report.certificates} certificates, {report.invoices} invoices; key "
            f"{report.public_key_fingerprint}, ledger head {report.ledger_head}",
            highlight=False,
        )
        return
    first = report.first
    assert first is not None
    if first.kind == UNSETTLED:
        console.print(
            f"[bold yellow]not settled:[/] {escape(str(results))} has no settlement to verify; "
            f"run `qubit-sim settle {escape(str(results))}` first",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(EXIT_FAILED)
    where = f" ({first.file}" + (f" line {first.line})" if first.line else ")")
    console.print(f"[bold red]TAMPERED:[/] {first}{where}", highlight=False, soft_wrap=True)
    more = len(report.findings) - 1
    if more:
        console.print(f"{more} further finding(s):", highlight=False)
        for finding in report.findings[1:6]:
            console.print(f"  {finding}", highlight=False, soft_wrap=True)
    raise typer.Exit(EXIT_FAILED)


@app.command()
def export(
    results: Annotated[Path, typer.Argument(help="Results folder written by 'qubit-sim run'.")],
    format_: Annotated[
        str, typer.Option("--format", help="Export format; 'qubit' (Qubit v0.1 JSON).")
    ] = "qubit",
    out: Annotated[
        Path | None, typer.Option(help="Output folder (default: <results>/qubit).")
    ] = None,
    interval: Annotated[
        str | None, typer.Option(help="Time-series interval, e.g. 15m or 1h (default: the step).")
    ] = None,
    organization_id: Annotated[
        str | None, typer.Option(help="Organization id (org_...) (default: org_<site>).")
    ] = None,
) -> None:
    """Export a run as Qubit v0.1 JSON: organization, site, assets, meters, time series.

    Every document conforms to the official Qubit v0.1 JSON Schemas; timestamps are UTC.
    """
    if format_ != "qubit":
        _fail_scenario(ValueError(f"unknown export format {format_!r}; supported: qubit"))
    from qubit_sim.stack.data import ExportError, export_qubit

    target = out if out is not None else results / "qubit"
    try:
        files = export_qubit(results, target, organization_id=organization_id, interval=interval)
    except ExportError as exc:
        _fail_scenario(exc)
    _console().print(f"wrote {len(files)} Qubit documents to [bold]{target}[/]", highlight=False)


@app.command()
def backtest(
    source: Annotated[
        Path, typer.Argument(help="A scenario YAML (run first, quietly) or a results folder.")
    ],
    until: Annotated[
        str | None, typer.Option(help="Simulate only this long when given a scenario.")
    ] = None,
    every: Annotated[str, typer.Option(help="Issue a forecast this often.")] = "1h",
    horizon: Annotated[str, typer.Option(help="Forecast horizon (15-min slots).")] = "24h",
    warmup: Annotated[str, typer.Option(help="History before the first forecast.")] = "2d",
) -> None:
    """Backtest the L2 forecasters (PV, load) on a scenario: MAE, RMSE, interval coverage.

    Given a scenario, it is run first into a temporary folder, which is removed afterwards.
    """
    import pandas as pd
    from rich.markup import escape
    from rich.table import Table

    from qubit_sim.core.clock import format_duration, parse_duration
    from qubit_sim.errors import QubitSimError
    from qubit_sim.stack.predict import backtest_scenario_frame

    try:
        every_s, horizon_s, warmup_s = (parse_duration(v) for v in (every, horizon, warmup))
        until_s = parse_duration(until) if until is not None else None
    except ValueError as exc:
        _fail_scenario(exc)
    with _backtest_source(source, until_s) as (loaded, folder):
        df = pd.read_parquet(folder / "timeseries.parquet")
    site = loaded.spec.site
    plants = loaded.spec.assets.pv
    main = plants[0] if plants else None
    try:
        reports = backtest_scenario_frame(
            df,
            site.location.lat,
            site.location.lon,
            sum(p.kwp * p.count for p in plants) or 1.0,
            tz=site.location.tz,
            pv_tilt_deg=main.tilt_deg if main else 30.0,
            pv_azimuth_deg=main.azimuth_deg if main else 180.0,
            pv_inverter_kw=sum((p.inverter_kw or p.kwp) * p.count for p in plants) or None,
            pv_losses_pct=main.losses_pct if main else 14.0,
            start_after_s=warmup_s,
            every_s=every_s,
            horizon_slots=max(1, horizon_s // 900),
        )
    except QubitSimError as exc:
        if "no issue time fits" in str(exc):
            # Said in the command's own terms: which options to lower or lengthen.
            span = format_duration(int(len(df) * loaded.spec.site.step))
            _fail_scenario(
                ValueError(
                    f"the run spans {span}, too short for --warmup {warmup} plus --horizon "
                    f"{horizon}: lower them (e.g. --warmup 1d --horizon 12h) or backtest a "
                    "longer run (--until)"
                )
            )
        _fail_scenario(exc)
    table = Table(title=f"Forecast backtest — {escape(loaded.name)}", title_justify="left")
    for column in ("forecaster", "forecasts", "MAE [kW]", "RMSE [kW]", "cover 80 %", "cover 95 %"):
        # Forecaster names stay whole on a narrow terminal; the headers wrap instead.
        first = column == "forecaster"
        table.add_column(escape(column), justify="left" if first else "right", no_wrap=first)
    for name, report in reports.items():
        data = report.to_dict()
        coverage = data["coverage"]
        table.add_row(
            escape(name),
            str(data["n_forecasts"]),
            f"{data['mae']:.3f}",
            f"{data['rmse']:.3f}",
            f"{coverage.get('0.8', float('nan')):.3f}",
            f"{coverage.get('0.95', float('nan')):.3f}",
        )
    console = _console()
    _wide_when_piped(console, 100)
    console.print(table)


@contextmanager
def _backtest_source(source: Path, until_s: int | None) -> Iterator[tuple[Any, Path]]:
    """(loaded scenario, results folder) of ``source``: a results folder as it is, or a scenario
    run quietly into a temporary folder that is removed on exit, also on error."""
    import tempfile

    from qubit_sim.errors import ControllerError, ScenarioError, SimulationError
    from qubit_sim.scenario.loader import load_scenario
    from qubit_sim.scenario.runner import run_loaded

    given_results = source.is_dir()
    try:
        loaded = load_scenario(source / "scenario.yaml" if given_results else source)
    except ScenarioError as exc:
        _fail_scenario(exc)
    if given_results:
        if not (source / "timeseries.parquet").is_file():
            _fail_scenario(ValueError(f"{source} has no timeseries.parquet; pass a run's results"))
        yield loaded, source
        return
    with tempfile.TemporaryDirectory(prefix="qubit-backtest-") as temp:
        folder = Path(temp)
        try:
            run_loaded(loaded, out=folder, until_s=until_s, plots=False, settle=False)
        except (ScenarioError, ControllerError) as exc:
            _fail_scenario(exc)
        except SimulationError as exc:
            _fail_run(_console(), "backtest", exc)
        yield loaded, folder


def _repeat_list_flags(args: list[str], flags: tuple[str, ...]) -> list[str]:
    """``--flag a b`` -> ``--flag a --flag b`` for each of ``flags``: a value that follows a
    value of a list option belongs to it, up to the next option."""
    out: list[str] = []
    flag: str | None = None  # the list option whose values are being read
    has_value = False
    for token in args:
        if token.startswith("-"):
            name, sep, _ = token.partition("=")
            flag = name if name in flags else None
            has_value = bool(sep)
        elif flag is not None:
            if has_value:
                out.append(flag)
            has_value = True
        out.append(token)
    return out


class _ListOptionsCommand(TyperCommand):
    """A command whose list options take several values after one flag (``--scenarios a b``),
    and still appear, with their help, among its options."""

    list_flags = ("--scenarios", "--controllers")

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        return super().parse_args(ctx, _repeat_list_flags(args, self.list_flags))


DEFAULT_COMPARE_CONTROLLERS = (
    "uncontrolled",
    "rule_based",
    "qubit_greedy",
    "mpc",
    "offline_optimal",
)


@app.command(cls=_ListOptionsCommand)
def compare(
    scenarios: Annotated[
        list[Path],
        typer.Option(
            metavar="YAML...",
            help="Scenario YAML files, one or more: --scenarios A.yaml B.yaml ...",
            show_default=False,
        ),
    ],
    controllers: Annotated[
        list[str] | None,
        typer.Option(
            metavar="NAME...",
            help="Controllers, one or more: --controllers mpc rule_based ...; names, "
            "rl:models/NAME or module:Class (default: "
            + ", ".join(DEFAULT_COMPARE_CONTROLLERS)
            + ").",
            show_default=False,
        ),
    ] = None,
    seeds: Annotated[
        int, typer.Option(min=1, help="Seeds per scenario x controller (0..N-1).")
    ] = 5,
    until: Annotated[
        str | None, typer.Option(help="Simulate only this long, e.g. 2d, 6h (default: all).")
    ] = None,
    out: Annotated[Path, typer.Option(help="Results folder of the comparison.")] = Path(
        "results/compare"
    ),
    workers: Annotated[
        int | None, typer.Option(help="Worker processes (Ray: CPUs); default: the CPU count.")
    ] = None,
    executor: Annotated[str, typer.Option(help="local (processes) or ray.")] = "local",
    address: Annotated[
        str | None, typer.Option(help="Ray cluster address (default: start a local Ray).")
    ] = None,
    run_plots: Annotated[bool, typer.Option(help="Each run also writes its own plots.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Compare controllers over scenarios x seeds: KPI table with 95 % CIs, gap to the optimum.

    Every controller sees the same EV sessions for a seed. On each scenario, the scenario's own
    controller runs with its controller.params, every other controller with its defaults.
    Writes runs/, kpis.parquet, kpis.csv, summary.csv and plots/ to --out. Exits 1 if a run
    failed.
    """
    from rich.markup import escape

    from qubit_sim.core.clock import parse_duration
    from qubit_sim.errors import QubitSimError
    from qubit_sim.experiments import compare as run_compare
    from qubit_sim.experiments import make_executor, summary_table

    console = _console()
    chosen = controllers or list(DEFAULT_COMPARE_CONTROLLERS)
    try:
        until_s = parse_duration(until) if until is not None else None
    except ValueError as exc:
        _fail_scenario(exc)
    try:
        runner = make_executor(executor, workers=workers, address=address)
    except QubitSimError as exc:
        _fail_scenario(exc)

    def sweep(progress: Any) -> Any:
        return run_compare(
            scenarios,
            chosen,
            seeds,
            out,
            until_s=until_s,
            executor=runner,
            progress=progress,
            run_plots=run_plots,
        )

    try:
        with _progress_bar(console, f"comparing on {runner.name}", "runs", quiet) as update:
            progress = None
            if update is not None:

                def progress(done: int, total: int, row: dict[str, Any]) -> None:
                    label = f"{row['scenario']}/{row['controller']}/seed{row['seed']}"
                    update(done, total, label)

            result = sweep(progress)
    except QubitSimError as exc:
        _fail_scenario(exc)
    _wide_when_piped(console, 200)
    console.print(summary_table(result))
    for note in result.notes:
        console.print(f"[yellow]note:[/] {escape(note)}", highlight=False)
    console.print(f"results: [bold]{escape(str(result.out_dir))}[/]", highlight=False)
    failed = result.failed
    if len(failed):
        for row in failed.itertuples(index=False):
            where = escape(f"{row.scenario}/{row.controller}/seed{row.seed}: {row.error}")
            console.print(
                f"[bold red]failed:[/] {where}",
                highlight=False,
                soft_wrap=True,
            )
        raise typer.Exit(EXIT_FAILED)


@app.command()
def serve(
    scenario: Annotated[Path, typer.Argument(help="Scenario YAML file.")],
    factor: Annotated[
        float | None,
        typer.Option(help="Simulated seconds per wall second (default: YAML realtime.factor, 1)."),
    ] = None,
    csms_url: Annotated[
        str | None,
        typer.Option(
            help="External CSMS for the charger twins (ws://host:port); the run is then "
            "uncontrolled, the stack cannot reach the chargers."
        ),
    ] = None,
    host: Annotated[
        str | None, typer.Option(help="Interface to listen on (default: 127.0.0.1).")
    ] = None,
    csms_port: Annotated[
        int | None, typer.Option(help="Port of the stack's CSMS, 0 = free (default: 9000).")
    ] = None,
    modbus_base_port: Annotated[
        int | None,
        typer.Option(help="Port of the first SunSpec server, +1 each, 0 = free (default: 5020)."),
    ] = None,
    lag: Annotated[
        str | None,
        typer.Option(
            help="When behind the wall clock: warn, strict (stop when more than one step "
            "behind) or a threshold in seconds (default: warn)."
        ),
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="Serve only this long (simulated), e.g. 1d, 2h.")
    ] = None,
    seed: SeedOption = None,
    out: ResultsOption = None,
    plots: PlotsOption = True,
) -> None:
    """Serve a scenario's twins in real time (wall clock x factor) for outside software.

    Chargers are OCPP charge points of the stack's CSMS (or of --csms-url), batteries and PV
    plants SunSpec Modbus TCP servers; the endpoint table is printed at start-up. Charge points
    listed under realtime.charge_points in the YAML may join the CSMS (basic auth). Ctrl-C or
    SIGTERM stops and writes the results folder, marked incomplete, and exits 130 or 143.
    """
    import logging
    import sys

    from qubit_sim.core.clock import parse_duration
    from qubit_sim.errors import ControllerError, ScenarioError, SimulationError
    from qubit_sim.scenario.loader import load_scenario
    from qubit_sim.scenario.realtime import Endpoint, ListenError, ServeOptions
    from qubit_sim.scenario.realtime import serve as serve_scenario

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    console = _console()
    try:
        until_s = parse_duration(until) if until is not None else None
        loaded = load_scenario(scenario)
        options = ServeOptions(factor, host, csms_port, modbus_base_port, csms_url, lag)
    except (ScenarioError, ValueError) as exc:
        _fail_scenario(exc)
    _note_until(console, until, until_s, loaded)

    def ready(endpoints: list[Endpoint]) -> None:
        spec = loaded.spec.realtime
        speed = spec.factor if factor is None else factor
        typer.echo(f"serving {loaded.name} at x{speed:g}; Ctrl-C stops and writes the results")
        width = max(len(e.asset_id) for e in endpoints)
        url_width = max(len(e.url) for e in endpoints)
        typer.echo(f"{'kind':<8} {'id':<{width}} {'endpoint':<{url_width}} detail")
        for e in endpoints:
            typer.echo(f"{e.kind:<8} {e.asset_id:<{width}} {e.url:<{url_width}} {e.detail}")
        sys.stdout.flush()

    try:
        result = serve_scenario(
            loaded,
            options,
            seed=seed,
            out=out,
            until_s=until_s,
            plots=plots,
            on_ready=ready,
            notify=lambda text: _note(console, text),
        )
    except (ScenarioError, ControllerError, ListenError) as exc:
        # A taken port is found before the run starts; the results folder is marked incomplete.
        _fail_scenario(exc)
    except SimulationError as exc:
        _fail_run(console, "serve", exc)
    _print_paced_end(console, result)
    _print_kpis(console, result)
    _exit_if_stopped(result)


@app.command()
def hil(
    bench: Annotated[Path, typer.Argument(help="Bench YAML file (hil/<bench>.yaml).")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Connect, identify and read; never write.")
    ] = False,
    seed: SeedOption = None,
    out: ResultsOption = None,
    plots: PlotsOption = True,
) -> None:
    """Hardware in the loop: run a bench with physical devices in place of chosen twins.

    Every device is checked (reachable, identifies itself as the bench expects) and a bench
    report is printed before the wall clock starts. Commands pass the bench's safety envelope;
    every write expires on the device by itself. At the end, on watchdog expiry, on too much
    lag, on Ctrl-C or SIGTERM every device is put in its safe state. A run stopped early exits
    130 after Ctrl-C, 143 after SIGTERM. See hil/README.md.
    """
    import logging
    import sys

    from qubit_sim.errors import ControllerError, ScenarioError, SimulationError
    from qubit_sim.hil.bench import load_bench
    from qubit_sim.hil.run import format_report, run_bench
    from qubit_sim.scenario.realtime import ListenError

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    console = _console()
    try:
        loaded = load_bench(bench)
    except ScenarioError as exc:
        _fail_scenario(exc)

    def ready(sim: Any) -> None:
        typer.echo(format_report(sim))
        typer.echo("running; Ctrl-C puts every device in its safe state and stops")
        sys.stdout.flush()

    try:
        result = run_bench(loaded, dry_run=dry_run, seed=seed, out=out, plots=plots, on_ready=ready)
    except (ScenarioError, ControllerError, ListenError) as exc:
        _fail_scenario(exc)
    except SimulationError as exc:
        _fail_run(console, "hil", exc)
    _print_paced_end(console, result)
    section = result.manifest["hil"]
    for device in section["devices"]:
        counts = device["envelope"]
        console.print(
            f"{device['id']}: {device['writes']} writes, {counts['clamped']} clamped, "
            f"{counts['refused']} refused, largest |command| {device['max_abs_sent_kw']:.2f} kW",
            highlight=False,
        )
    for report in section["shadow"]:
        if report["steps"]:
            console.print(
                f"shadow {report['device']}: power difference MAE {report['power_mae_kw']:.3f} "
                f"kW, RMSE {report['power_rmse_kw']:.3f} kW over {report['steps']} steps",
                highlight=False,
            )
    _print_kpis(console, result)
    _exit_if_stopped(result)


@app.command()
def train(
    env: Annotated[str, typer.Option(help="Environment: SiteDispatch or ChargerFleet.")],
    scenario: Annotated[Path, typer.Option(help="Scenario YAML to train on.")],
    algo: Annotated[str, typer.Option(help="PPO, SAC or TD3.")] = "PPO",
    timesteps: Annotated[int, typer.Option(help="Environment steps (control instants).")] = 50_000,
    seed: Annotated[int, typer.Option(help="Seed of the agent, torch and episode draws.")] = 0,
    test_fraction: Annotated[
        float, typer.Option(help="Share of the episode blocks held out as test days.")
    ] = 0.2,
    name: Annotated[
        str | None,
        typer.Option(help="Model folder name (default: <scenario>-<env>-<algo>-s<seed>)."),
    ] = None,
    out: Annotated[Path, typer.Option(help="Folder the model folder goes in.")] = Path("models"),
    episodes: Annotated[
        int | None, typer.Option(help="Test episodes in the card's evaluation (default: all).")
    ] = None,
    env_kwargs: Annotated[
        str | None,
        typer.Option(
            metavar="JSON",
            help="Environment arguments as a JSON object, replacing the default "
            "{\"power_flow\": false} ('{}' keeps the scenario's power flow), e.g. "
            '\'{"forecast": "l2", "carbon_price_per_kg": 0.1}\'. The test share comes from '
            "--test-fraction.",
        ),
    ] = None,
    hyperparameters: Annotated[
        str | None,
        typer.Option(
            metavar="JSON",
            help="Overrides of the algorithm's default hyperparameters as a JSON object, e.g. "
            '\'{"learning_rate": 0.0001, "policy_kwargs": {"net_arch": [32, 32]}}\'.',
        ),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Train an RL policy; writes policy.zip, card.json, model_card.md, training_curve.png."""
    import json

    from qubit_sim.errors import ControllerError, ScenarioError, SimulationError
    from qubit_sim.rl.train import TrainConfig
    from qubit_sim.rl.train import train as train_policy

    def json_object(option: str, text: str) -> dict[str, Any]:
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            _fail_scenario(ValueError(f"{option} is not valid JSON ({exc}): {text!r}"))
        if not isinstance(value, dict):
            kind = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
            found = kind.get(type(value), "a number")
            _fail_scenario(ValueError(f"{option} must be a JSON object {{...}}, found {found}"))
        return value

    config = TrainConfig(
        scenario=scenario.as_posix(),
        env=env,
        algo=algo,
        timesteps=timesteps,
        seed=seed,
        test_fraction=test_fraction,
        name=name,
        out=out.as_posix(),
        eval_episodes=episodes,
    )
    if env_kwargs is not None:
        config.env_kwargs = json_object("--env-kwargs", env_kwargs)
        if "test_fraction" in config.env_kwargs:
            _fail_scenario(
                ValueError("--env-kwargs must not hold test_fraction; pass --test-fraction")
            )
    if hyperparameters is not None:
        config.hyperparameters = json_object("--hyperparameters", hyperparameters)
    try:
        folder = train_policy(config, progress=not quiet)
    except (ScenarioError, ControllerError) as exc:
        _fail_scenario(exc)
    except SimulationError as exc:
        _fail_run(_console(), "train", exc)

    card = json.loads((folder / "card.json").read_text())
    console = _console()
    console.print(
        f"trained {card['algo']} on {card['env']} in {card['train_wall_s']} s -> [bold]{folder}[/]",
        highlight=False,
    )
    _print_rl_evaluation(console, card["evaluation"])


@app.command()
def evaluate(
    model: Annotated[Path, typer.Option(help="Model folder (policy.zip + card.json).")],
    scenario: Annotated[
        Path | None, typer.Option(help="Scenario YAML (default: the one trained on).")
    ] = None,
    episodes: Annotated[
        int | None, typer.Option(help="First N episodes of the split (default: all).")
    ] = None,
    split: Annotated[str, typer.Option(help="test, train or all.")] = "test",
) -> None:
    """Evaluate a trained policy against uncontrolled and rule_based on the same episodes."""
    from qubit_sim.errors import QubitSimError, SimulationError
    from qubit_sim.rl.evaluate import evaluate_model

    try:
        evaluation = evaluate_model(model, scenario=scenario, split=split, episodes=episodes)
    except SimulationError as exc:
        _fail_run(_console(), "evaluate", exc)
    except QubitSimError as exc:
        _fail_scenario(exc)
    _print_rl_evaluation(_console(), evaluation)


def _print_rl_evaluation(console: Any, evaluation: dict[str, Any]) -> None:
    from rich.markup import escape
    from rich.table import Table

    from qubit_sim.rl.evaluate import CARD_KPIS

    names = list(evaluation["mean"])
    table = Table(
        title=f"KPIs, mean over {evaluation['split']} blocks {evaluation['blocks']}",
        title_justify="left",
    )
    table.add_column("KPI")
    for column in names:
        table.add_column(column, justify="right")
    for key, label, unit in CARD_KPIS:
        unit = unit.format(currency=evaluation["currency"])
        cells = [f"{evaluation['mean'][n].get(key, float('nan')):.2f}" for n in names]
        table.add_row(escape(f"{label} [{unit}]"), *cells)
    console.print(table)


def _project_scenarios() -> Path:
    return Path(__file__).resolve().parents[1] / "scenarios"


def main() -> None:
    """Entry point of the ``qubit-sim`` script."""
    app()
