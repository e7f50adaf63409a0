"""Run a scenario end to end and write its results folder."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from qubit_sim.control.base import Controller
from qubit_sim.core.results import RunResult, git_revision, package_versions, write_json
from qubit_sim.errors import (
    ConfigIssue,
    ControllerError,
    QubitSimError,
    ScenarioError,
    SimulationError,
)
from qubit_sim.scenario.build import SiteModel, build_site
from qubit_sim.scenario.loader import LoadedScenario, load_scenario
from qubit_sim.scenario.simulation import Simulation

__all__ = ["default_out_dir", "run", "run_loaded"]

#: Run modes: in-process device links, or OCPP and Modbus TCP over loopback sockets.
_MODES = ("fast", "wire")

#: The energy-balance error a run may show from floating-point rounding alone [kWh]: this floor,
#: or :data:`BALANCE_TOLERANCE_SHARE` of the energy that flowed through the devices if larger.
#: Runs whose devices change only through their physics stay below 1e-13 of that energy
#: (measured: 1e-14 .. 3e-8 kWh, for hours to weeks of sites of a few kW to a few MW).
BALANCE_TOLERANCE_KWH = 1e-6
#: See :data:`BALANCE_TOLERANCE_KWH` [-].
BALANCE_TOLERANCE_SHARE = 1e-9


def _simulation_class(mode: str, faults: bool) -> type[Simulation]:
    if mode == "wire":
        # Protocol libraries and sockets only for runs that use them.
        from qubit_sim.scenario.wire import WireSimulation

        return WireSimulation
    if faults:
        from qubit_sim.scenario.faults import FaultedSimulation

        return FaultedSimulation
    return Simulation


def default_out_dir(name: str, seed: int) -> Path:
    """``results/<scenario>-seed<seed>`` under the current folder."""
    return Path("results") / f"{name}-seed{seed}"


def run(
    scenario: str | Path | LoadedScenario,
    *,
    seed: int | None = None,
    out: str | Path | None = None,
    until_s: int | None = None,
    controller: str | Controller | None = None,
    controller_params: dict[str, Any] | None = None,
    plots: bool = True,
    progress: Callable[[int, int], None] | None = None,
    settle: bool = True,
    key_dir: str | Path | None = None,
    mode: str | None = None,
    overrides: dict[str, Any] | None = None,
) -> RunResult:
    """Run a scenario and write its results folder.

    Args:
        scenario: A scenario YAML path or an already loaded scenario.
        seed: Overrides ``site.seed``.
        out: Results folder (default ``results/<name>-seed<seed>``); replaced if it exists.
        until_s: Simulate only the first ``until_s`` seconds.
        controller: A registered name, ``"module:Class"``, or a controller instance; overrides the
            scenario's controller.
        controller_params: Parameters for a controller given by name (or, without
            ``controller``, for the scenario's own). The scenario's own controller starts from
            its ``controller.params`` and these merge over them; any other controller starts
            from its defaults (:func:`~qubit_sim.control.registry.controller_params_for`).
        plots: Write ``plots/*.png``.
        progress: Called with (steps done, total steps).
        settle: Settle the run at the end (``settlement/``: bills, signed invoices and
            certificates, ledger, carbon, reconciliation), also a run that stopped early.
        key_dir: Folder of site signing keys (default ``$QUBIT_SIM_KEY_DIR`` or
            ``~/.config/qubit-sim/keys``).
        mode: ``"fast"`` (in-process device links) or ``"wire"`` (OCPP and Modbus TCP on
            loopback, lock-step); overrides the scenario's ``mode``. Both give the same results.
        overrides: Nested values merged over the scenario file, as
            :func:`~qubit_sim.scenario.loader.load_scenario` merges them, e.g.
            ``{"assets": {"pv": [{"kwp": 150, "id": "roof"}]}}`` for a sweep; a list replaces the
            file's list as a whole (write each entry out). Only with a path.

    Returns:
        The :class:`RunResult`. A run that fails half-way writes what it simulated, marks the
        manifest ``incomplete`` and raises :class:`~qubit_sim.errors.SimulationError`. An error
        while the simulation is set up (e.g. a controller that rejects its parameters in
        ``reset``) also marks the manifest ``incomplete``, with no steps done, and is raised as
        it is (:class:`~qubit_sim.errors.ControllerError`, ...). A run that simulated every step
        but whose results cannot be trusted — an energy balance error above rounding
        (:data:`BALANCE_TOLERANCE_KWH`: the device state changed outside the physics), or a
        controller whose ``stats()`` failed — writes its folder, marks the manifest ``failed``
        and raises :class:`~qubit_sim.errors.SimulationError`.

    The manifest records the controller (``controller``: as given; ``controller_class``:
    ``"module:Class"``) and the parameters it was built with (``controller_params``); for an
    instance passed in, from its ``params`` mapping or else its attributes named like its
    ``__init__`` parameters, with any that cannot be read listed in
    ``controller_params_unrecorded``.
    """
    if isinstance(scenario, LoadedScenario):
        if overrides:
            raise ScenarioError(
                [
                    ConfigIssue(
                        "overrides",
                        "a loaded scenario takes no overrides; pass them to load_scenario(path, "
                        "overrides=...) or pass the path here",
                    )
                ]
            )
        loaded = scenario
    else:
        loaded = load_scenario(scenario, overrides=overrides)
    return run_loaded(
        loaded,
        seed=seed,
        out=out,
        until_s=until_s,
        controller=controller,
        controller_params=controller_params,
        plots=plots,
        progress=progress,
        settle=settle,
        key_dir=key_dir,
        mode=mode,
    )


def run_loaded(
    loaded: LoadedScenario,
    *,
    seed: int | None = None,
    out: str | Path | None = None,
    until_s: int | None = None,
    controller: str | Controller | None = None,
    controller_params: dict[str, Any] | None = None,
    plots: bool = True,
    progress: Callable[[int, int], None] | None = None,
    settle: bool = True,
    key_dir: str | Path | None = None,
    mode: str | None = None,
    simulation_factory: Callable[..., Simulation] | None = None,
    notices: list[str] | None = None,
) -> RunResult:
    """Run an already loaded scenario; arguments as for :func:`run`.

    ``simulation_factory`` builds the simulation instead of the mode's own class (called as
    ``factory(site, timeseries_path=, events_path=, progress=)``; real-time serving uses it);
    ``notices`` are recorded in the manifest. A simulation may add KPIs and a manifest section
    through :meth:`Simulation.report`.
    """
    run_mode = loaded.spec.mode if mode is None else mode
    if mode == "realtime" and simulation_factory is None:
        raise ScenarioError(
            [
                ConfigIssue(
                    "mode", "unknown mode 'realtime' for a run: serve it with 'qubit-sim serve'"
                )
            ]
        )
    if run_mode == "realtime" and simulation_factory is None:
        from qubit_sim.scenario.realtime import serve

        if controller is not None or progress is not None:
            raise ScenarioError(
                [ConfigIssue("mode", "a realtime run takes its controller from the scenario")]
            )
        return serve(
            loaded, seed=seed, out=out, until_s=until_s, plots=plots, settle=settle, key_dir=key_dir
        )
    if simulation_factory is None and run_mode not in _MODES:
        raise ScenarioError(
            [ConfigIssue("mode", f"unknown mode {run_mode!r}; use one of {', '.join(_MODES)}")]
        )
    wall_start = time.perf_counter()
    started_at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    from qubit_sim.control.checks import class_path, instance_params

    instance: Controller | None = None
    own = loaded.spec.controller
    controller_name = own.name
    # What the controller was built with; for an instance passed in, read before reset() runs.
    params: dict[str, Any] = dict(own.params)
    unrecorded: list[str] = []
    if controller is None and controller_params:
        controller = own.name
    if isinstance(controller, Controller):
        instance = controller
        controller_name = controller.name
        params, unrecorded = instance_params(controller)
    elif isinstance(controller, str):
        from qubit_sim.control.registry import controller_params_for, make_controller

        params = controller_params_for(controller, own.name, own.params, controller_params)
        instance = make_controller(controller, params)
        controller_name = controller
    site = build_site(loaded, seed=seed, until_s=until_s, controller=instance)
    built = time.perf_counter()
    run_seed = loaded.spec.site.seed if seed is None else seed
    folder = Path(out) if out is not None else default_out_dir(loaded.name, run_seed)
    _prepare(folder)
    (folder / "scenario.yaml").write_text(
        yaml.safe_dump(loaded.raw, sort_keys=False, default_flow_style=None), encoding="utf-8"
    )
    manifest: dict[str, Any] = {
        "scenario": loaded.name,
        "scenario_file": str(loaded.path) if loaded.path else None,
        "seed": run_seed,
        "mode": run_mode,
        "controller": controller_name,
        "controller_class": class_path(site.controller),
        "controller_params": params,
        **({"controller_params_unrecorded": unrecorded} if unrecorded else {}),
        "start": site.clock.iso(0),
        "step_s": site.clock.step_s,
        "duration_s": site.clock.duration_s,
        "n_steps": site.clock.n_steps,
        **_site_context(loaded, site),
        "status": "running",
        "versions": package_versions(),
        "git_revision": git_revision(),
        "started_at": started_at,
    }
    write_json(folder / "manifest.json", manifest)

    total = site.clock.n_steps
    factory = simulation_factory or _simulation_class(run_mode, bool(loaded.spec.faults))
    from qubit_sim.scenario.telemetry import attach_telemetry

    try:
        sim = factory(
            site,
            timeseries_path=folder / "timeseries.parquet",
            events_path=folder / "events.jsonl",
            progress=(lambda done: progress(done, total)) if progress else None,
        )
        telemetry = attach_telemetry(sim)
    except QubitSimError as exc:
        # E.g. a controller that refuses its parameters in reset(): nothing was simulated, but
        # the folder exists, so its manifest must not stay "running".
        manifest.update(
            {
                "status": "incomplete",
                "steps_done": 0,
                "stopped_at_s": 0,
                "stopped_at": site.clock.iso(0),
                "error": str(exc),
            }
        )
        write_json(folder / "manifest.json", manifest)
        raise
    error: SimulationError | None = None
    try:
        sim.run()
    except SimulationError as exc:
        error = exc
    except QubitSimError as exc:
        error = SimulationError(str(exc), sim.engine.now_s)
        error.__cause__ = exc
    simulated = time.perf_counter()

    _write_sessions(folder, site, sim)
    balance = sim.energy_balance()
    # Failures found after every step ran: the run's figures cannot be trusted.
    failure: QubitSimError | None = None
    stats, stats_error = _controller_stats(site.controller)
    if error is None:
        failure = _balance_failure(site, sim, balance) or stats_error
    kpis = _kpis(site, sim, balance, stats)
    extra_kpis, extra_manifest = sim.report()
    if "status" not in kpis:
        kpis.update(extra_kpis)
    write_json(folder / "kpis.json", kpis)
    plot_files: list[Path] = []
    if plots and sim.recorder.n_rows:
        from qubit_sim.core.plots import write_plots

        plot_files = write_plots(
            sim.recorder.frame(),
            folder / "plots",
            title=f"{loaded.name} — {controller_name}, seed {run_seed}",
            import_limit_kw=site.site_info.import_limit_kw,
            voltage_limits_pu=site.grid.voltage_limits_pu if site.grid else (0.95, 1.05),
            loading_limit_pct=site.grid.loading_limit_pct if site.grid else 100.0,
            tz=loaded.spec.site.location.tz,
            currency=site.tariff.currency,
        )
    finished = time.perf_counter()
    incomplete = error is not None or sim.stopped_early
    status = "incomplete" if incomplete else "complete"
    manifest.update(
        {
            "status": "failed" if failure is not None else status,
            "steps_done": sim.engine.steps_done,
            "timings_s": {
                "build": round(built - wall_start, 3),
                "simulate": round(simulated - built, 3),
                "results": round(finished - simulated, 3),
                "total": round(finished - wall_start, 3),
            },
        }
    )
    manifest.update(extra_manifest)
    if telemetry is not None:
        manifest["telemetry"] = telemetry.summary()
    if notices:
        manifest["notices"] = list(notices)
    if sim.stopped_early and error is None:
        manifest["stopped_at_s"] = sim.engine.now_s
        manifest["stopped_at"] = site.clock.iso(sim.engine.now_s)
        manifest["stopped_by"] = sim.stopped_by
    if error is not None:
        manifest["stopped_at_s"] = error.sim_time_s
        manifest["stopped_at"] = site.clock.iso(error.sim_time_s or 0)
        manifest["error"] = str(error)
    if failure is not None:
        manifest["error"] = str(failure)
    write_json(folder / "manifest.json", manifest)
    failed = incomplete or failure is not None
    if settle:
        manifest["settlement"] = _settle(folder, manifest, key_dir, failed=failed)
    result = RunResult(folder, kpis, manifest, plot_files)
    if error is not None:
        raise SimulationError(
            f"{error} — results up to the failure are in {folder} (marked incomplete)",
            error.sim_time_s,
        ) from (error.__cause__ or error)
    if failure is not None:
        raise SimulationError(
            f"{failure} — the results are in {folder} (marked failed)", sim.engine.now_s
        ) from failure
    return result


def _balance_failure(
    site: SiteModel, sim: Simulation, balance: dict[str, float]
) -> SimulationError | None:
    """The error of a run whose site meter and devices disagree by more than rounding."""
    error_kwh = abs(balance["error_kwh"])
    steps = sim.engine.steps_done
    hours = site.clock.step_s / 3600.0
    flowed_kwh = (
        float(np.abs(site.load_kw[:steps]).sum() + np.abs(site.pv_available_kw[:steps]).sum())
        * hours
        + float(np.abs(site.fleet.e_register_kwh).sum())
        + site.batteries.throughput_kwh
    )
    tolerance = max(BALANCE_TOLERANCE_KWH, BALANCE_TOLERANCE_SHARE * flowed_kwh)
    if error_kwh <= tolerance:  # also False for NaN: a NaN balance fails
        return None
    return SimulationError(
        f"energy balance broken by {error_kwh:.6g} kWh (site meter {balance['meter_kwh']:.6g} "
        f"kWh, devices {balance['devices_kwh']:.6g} kWh; rounding allows {tolerance:.2g} kWh): "
        "the device state changed outside the physics, e.g. a controller writing into its "
        "observation",
        sim.engine.now_s,
    )


def _controller_stats(controller: Controller) -> tuple[dict[str, Any], ControllerError | None]:
    """The controller's ``stats()`` for the KPIs, or ``({}, error)`` when it fails."""
    from qubit_sim.control.checks import controller_label, user_location

    label = controller_label(controller)
    try:
        stats = controller.stats()
    except Exception as exc:
        where = user_location(exc)
        at = f" at {where}" if where else ""
        return {}, ControllerError(
            f"controller {label} raised {type(exc).__name__} in stats(){at}: {exc}"
        )
    if not isinstance(stats, dict):
        return {}, ControllerError(
            f"controller {label}: stats() returned {type(stats).__name__}; it must return a "
            "dict of KPI name -> number"
        )
    return stats, None


def _settle(
    folder: Path, manifest: dict[str, Any], key_dir: str | Path | None, *, failed: bool
) -> dict[str, Any]:
    """Settle the results folder; the manifest section it wrote (or the error of a failed run)."""
    from qubit_sim.stack.settle.run import settle_results

    try:
        return settle_results(folder, key_dir=key_dir).to_manifest()
    except QubitSimError as exc:
        if not failed:
            raise
        # The simulation error is the one to report; settlement of its remains is secondary.
        section = {"error": str(exc)}
        write_json(folder / "manifest.json", {**manifest, "settlement": section})
        return section


def _site_context(loaded: LoadedScenario, site: SiteModel) -> dict[str, Any]:
    """The manifest's ``start``, ``step_s``, ``site`` and ``tariff``: what settlement reads."""
    from qubit_sim.stack.settle.context import SiteContext

    spec = loaded.spec
    return SiteContext(
        site_name=spec.site.name,
        tz=spec.site.location.tz,
        start=site.clock.start,
        step_s=site.clock.step_s,
        tariff=site.tariff,
        driver_price_per_kwh=spec.tariff.driver_price_per_kwh,
    ).to_manifest()


def _prepare(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(folder / "settlement", ignore_errors=True)
    # A wire run writes csms_transactions.parquet; a stale one would be settled as this run's.
    for name in (
        "timeseries.parquet",
        "kpis.json",
        "events.jsonl",
        "sessions.parquet",
        "csms_transactions.parquet",
    ):
        (folder / name).unlink(missing_ok=True)
    plots = folder / "plots"
    if plots.is_dir():
        for png in plots.glob("*.png"):
            png.unlink()


def _write_sessions(folder: Path, site: SiteModel, sim: Simulation) -> None:
    import pandas as pd

    sessions = site.sessions
    frame = sessions.to_frame() if len(sessions) else pd.DataFrame()
    if len(sessions):
        ids = np.array(site.fleet.ids + ("",), dtype=object)
        frame["charger_id"] = ids[sim.session_charger]
        frame["plugged_s"] = sim.session_plugged_s
        frame["unplugged_s"] = sim.session_unplugged_s
        frame["rejected"] = sim.session_rejected
        frame["e_delivered_kwh"] = sim.session_delivered_kwh
        frame["meter_start_wh"] = sim.session_meter_start_wh
        frame["meter_stop_wh"] = sim.session_meter_stop_wh
    frame.to_parquet(folder / "sessions.parquet", index=False)


def _sessions_in_horizon(site: SiteModel) -> np.ndarray:
    """Sessions that plug in (or are turned away) within the simulated horizon."""
    dt = site.clock.step_s
    arrive = -(-np.asarray(site.sessions.arrival_s, dtype=np.int64) // dt) * dt
    return arrive < site.clock.duration_s


def _degradation_cost(site: SiteModel) -> float:
    """Throughput of each battery times its degradation cost per kWh."""
    specs = site.scenario.spec.assets.batteries
    bank = site.batteries
    if not bank.n:
        return 0.0
    cost = np.array([spec.degradation_cost_per_kwh for spec in specs])
    return float((bank.e_charged_kwh + bank.e_discharged_kwh) @ cost)


def _mean_eta_discharge(site: SiteModel) -> float:
    bank = site.batteries
    if not bank.n:
        return 1.0
    weights = bank.capacity_kwh / bank.capacity_kwh.sum()
    return float(weights @ bank.eta_discharge)


def _kpis(
    site: SiteModel, sim: Simulation, balance: dict[str, float], stats: dict[str, Any]
) -> dict[str, Any]:
    from qubit_sim.core.kpis import compute_kpis

    within = _sessions_in_horizon(site)
    df = sim.recorder.frame()
    if not len(df):
        return {"status": "no steps simulated"}
    grid = site.grid
    kpis = compute_kpis(
        df,
        step_s=site.clock.step_s,
        tariff=site.tariff,
        tz=site.site_info.tz,
        sessions_needed_kwh=np.asarray(site.sessions.e_needed_kwh)[within],
        sessions_delivered_kwh=sim.session_delivered_kwh[within],
        sessions_rejected=sim.session_rejected[within],
        sessions_open_at_end=((sim.session_plugged_s >= 0) & (sim.session_unplugged_s < 0))[within],
        battery_throughput_kwh=site.batteries.throughput_kwh,
        battery_energy_change_kwh=balance["battery_stored_end_kwh"]
        - balance["battery_stored_start_kwh"],
        energy_balance_error_kwh=balance["error_kwh"],
        import_limit_kw=site.site_info.import_limit_kw,
        export_limit_kw=site.site_info.export_limit_kw,
        voltage_limits_pu=grid.voltage_limits_pu if grid else (0.95, 1.05),
        loading_limit_pct=grid.loading_limit_pct if grid else 100.0,
        unmet_penalty_per_kwh=site.scenario.spec.tariff.unmet_energy_penalty_per_kwh,
        degradation_cost=_degradation_cost(site),
        battery_eta_discharge=_mean_eta_discharge(site),
        extra=stats,
    )
    kpis["currency"] = site.tariff.currency
    return kpis
