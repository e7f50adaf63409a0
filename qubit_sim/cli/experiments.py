"""Commands that evaluate over runs: ``backtest`` (L2 forecasters), ``compare``
(controllers over scenarios x seeds).

Heavy packages are imported inside the commands, so ``qubit-sim --help`` stays fast.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperCommand

from qubit_sim.cli.common import (
    EXIT_FAILED,
    _console,
    _fail_run,
    _fail_scenario,
    _progress_bar,
    _wide_when_piped,
    app,
)

__all__ = ["DEFAULT_COMPARE_CONTROLLERS", "backtest", "compare"]


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
            "rl:models/NAME or module:Class, with parameters in brackets: "
            "'mpc[horizon_slots=48,forecast=l2]' (default: "
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
