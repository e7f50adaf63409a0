"""Running a bench: identify the devices, print the bench report, run, write the results folder.

``run_bench("hil/battery_bench.yaml")`` is what ``qubit-sim hil`` calls. The results folder is
the one of ``qubit-sim run`` (mode ``hil``), with a ``hil`` manifest section: each device's
identity check, envelope counts and log of clamped/refused commands, writes, errors, the
watchdog, the shadow-mode comparison; the real-time lag is in the ``realtime`` section.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path

from qubit_sim.core.clock import parse_duration
from qubit_sim.core.results import RunResult
from qubit_sim.hil.bench import Bench, load_bench
from qubit_sim.hil.sim import HilSimulation

__all__ = ["format_report", "run_bench"]


def format_report(sim: HilSimulation) -> str:
    """The bench report printed before the clock starts: endpoints, identities, envelopes."""
    bench = sim.bench
    lines = [
        f"bench {bench.name}: scenario {Path(bench.scenario).name} at x{bench.factor:g}"
        + (" (dry run: nothing is written)" if sim.dry_run else ""),
        f"watchdog {bench.watchdog_s:g} s, stop when more than {bench.lag_threshold_s:g} s "
        "behind the wall clock",
    ]
    csms = next((e for e in sim.endpoint_table if e.kind == "csms"), None)
    if csms is not None:
        lines.append(f"CSMS {csms.url}")
    checks = {c.device_id: c for c in sim.identities}
    for spec, bridge in zip(bench.devices, sim.bridges, strict=True):
        check = checks[spec.id]
        status = (
            "identity OK" if not check.mismatches else "MISMATCH " + "; ".join(check.mismatches)
        )
        found = ", ".join(f"{k}={v}" for k, v in check.found.items())
        limits = spec.limits
        expiry = (
            f"profile validity {spec.ocpp.profile_duration_s} s"
            if spec.ocpp is not None
            else f"revert {spec.revert_s} s"
        )
        ramp = (
            f", ramp {limits.max_ramp_kw_per_s:g} kW/s"
            if limits.max_ramp_kw_per_s is not None
            else ""
        )
        lines += [
            f"- {spec.id} ({spec.mode} {spec.kind} {spec.replaces}) at {bridge.device.name}",
            f"    {status} [{found}]; now {check.first_p_kw:.2f} kW",
            f"    envelope [-{limits.max_discharge_kw:g}, {limits.max_charge_kw:g}] kW, SOC "
            f"[{limits.soc_min:g}, {limits.soc_max:g}]{ramp}, {limits.on_violation} "
            f"violations; {expiry}; safe state {spec.safe_state.p_kw:g} kW",
        ]
    return "\n".join(lines)


def run_bench(
    bench: str | Path | Bench,
    *,
    dry_run: bool = False,
    seed: int | None = None,
    out: str | Path | None = None,
    plots: bool = False,
    settle: bool = False,
    on_ready: Callable[[HilSimulation], None] | None = None,
    twin_tick_s: float = 1.0,
) -> RunResult:
    """Run a bench and write its results folder.

    Args:
        bench: A bench YAML path or a loaded :class:`~qubit_sim.hil.bench.Bench`.
        dry_run: Connect, identify and read the devices and run, but write nothing to them.
        seed / out / plots / settle: As for :func:`qubit_sim.run`.
        on_ready: Called once the devices are identified, before the clock starts.
        twin_tick_s: Longest wall wait between twin ticks [s].

    Returns:
        The :class:`~qubit_sim.core.results.RunResult` (manifest section ``hil``).

    Raises:
        BenchError: for an invalid bench file or an asset it names that the scenario lacks.
        SimulationError: when the run fails (a device unreachable or not the expected one, the
            watchdog, too much lag), after the devices are in their safe state and the results
            up to the failure are written.
    """
    from qubit_sim.scenario import runner
    from qubit_sim.scenario.loader import load_scenario

    loaded_bench = bench if isinstance(bench, Bench) else load_bench(bench)
    until = loaded_bench.until
    factory = partial(
        HilSimulation,
        bench=loaded_bench,
        dry_run=dry_run,
        on_ready=on_ready,
        twin_tick_s=twin_tick_s,
    )
    return runner.run_loaded(
        load_scenario(loaded_bench.scenario),
        until_s=parse_duration(until) if until else None,
        mode="hil",
        simulation_factory=factory,
        seed=seed,
        out=out,
        plots=plots,
        settle=settle,
    )
