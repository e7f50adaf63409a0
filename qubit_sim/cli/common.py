"""The ``qubit-sim`` app and what its commands share: options, exit codes, error exits, notes,
the progress bar and the KPI table.

Heavy packages are imported inside the functions, so ``qubit-sim --help`` stays fast.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

__all__ = [
    "EXIT_FAILED",
    "EXIT_SCENARIO",
    "KPI_ROWS",
    "PlotsOption",
    "ResultsOption",
    "SeedOption",
    "app",
    "main",
]

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
    ("max_trafo_loading_pct", "Max transformer loading", "%"),
    ("grid_losses_kwh", "Feeder losses", "kWh"),
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


def main() -> None:
    """Entry point of the ``qubit-sim`` script."""
    app()
