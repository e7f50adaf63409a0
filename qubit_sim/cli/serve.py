"""Commands paced by the wall clock: ``serve`` (twins for outside software), ``hil``
(hardware in the loop).

Heavy packages are imported inside the commands, so ``qubit-sim --help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from qubit_sim.cli.common import (
    PlotsOption,
    ResultsOption,
    SeedOption,
    _console,
    _exit_if_stopped,
    _fail_run,
    _fail_scenario,
    _note,
    _note_until,
    _print_kpis,
    _print_paced_end,
    app,
)

__all__ = ["hil", "serve"]


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
