"""``compare``: controllers x scenarios x seeds, run by an executor, summarised with statistics.

Results folder::

    <out>/runs/<scenario>/<controller>/seed<k>/   a normal results folder per run
    <out>/kpis.parquet, kpis.csv                  one row per run (KPIs, status, episode digest)
    <out>/summary.csv                             mean, std, 95 % CI per scenario x controller;
                                                  paired gap to offline_optimal (abs. and %)
    <out>/plots/cost_bars.png, peak_bars.png, unmet_bars.png, profiles_<scenario>.png
    <out>/compare.json                            what was compared, with versions and timings
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from qubit_sim.errors import ConfigIssue, ScenarioError
from qubit_sim.experiments.executors import LocalExecutor, ProgressFn, RayExecutor
from qubit_sim.experiments.harness import (
    BASELINE,
    MAIN_KPIS,
    ControllerSpec,
    check_identical_episodes,
    parse_controller,
    plan_runs,
)
from qubit_sim.experiments.stats import summarize

__all__ = ["OWED_AT_END_KWH", "ComparisonResult", "compare", "comparison_notes", "summary_table"]


@dataclass
class ComparisonResult:
    """What :func:`compare` wrote.

    Attributes:
        out_dir: The comparison's results folder.
        runs: One row per run.
        summary: One row per scenario x controller (see :func:`~.stats.summarize`).
        plots: PNG files written.
        currency: Currency of the cost KPIs.
        notes: Caveats for reading the table (see :func:`comparison_notes`).
        failed: Rows of runs that failed.
    """

    out_dir: Path
    runs: pd.DataFrame
    summary: pd.DataFrame
    plots: list[Path] = field(default_factory=list)
    currency: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def failed(self) -> pd.DataFrame:
        return self.runs[self.runs.status != "complete"]


@dataclass(frozen=True)
class _Scenario:
    """What the comparison needs of a scenario before any run."""

    name: str
    path: Path
    import_limit_kw: float | None
    controller: str
    controller_params: dict[str, Any]
    duration_s: int
    billing_period: str
    demand_charge_per_kw: float
    currency: str


def _load(paths: Sequence[str | Path]) -> list[_Scenario]:
    from qubit_sim.scenario.loader import load_scenario

    if not paths:
        raise ScenarioError(
            [ConfigIssue("scenarios", "no scenarios to compare; pass --scenarios a.yaml [b.yaml]")]
        )
    scenarios = []
    for path in paths:
        loaded = load_scenario(path)
        own = loaded.spec.controller
        tariff = loaded.spec.tariff
        scenarios.append(
            _Scenario(
                loaded.name,
                Path(path),
                loaded.spec.site.grid_connection.import_kw,
                own.name,
                dict(own.params),
                loaded.spec.site.duration,
                tariff.billing_period,
                tariff.demand_charge_per_kw,
                tariff.currency,
            )
        )
    return scenarios


def _resolved_params(
    scenarios: Sequence[_Scenario], specs: Sequence[ControllerSpec]
) -> dict[str, dict[str, dict[str, Any]]]:
    """``{controller label: {scenario: params}}``: each run's parameters, by the rule of
    :func:`~qubit_sim.control.registry.controller_params_for` (the runs apply it themselves)."""
    from qubit_sim.control.registry import controller_params_for

    return {
        spec.label: {
            s.name: controller_params_for(spec.name, s.controller, s.controller_params, spec.params)
            for s in scenarios
        }
        for spec in specs
    }


def _check_controllers(
    specs: Sequence[ControllerSpec], params: dict[str, dict[str, dict[str, Any]]]
) -> None:
    """Build each controller here with each scenario's parameters, so a typo or a rejected
    parameter fails before any worker starts."""
    from qubit_sim.control.registry import make_controller

    for spec in specs:
        for scenario_params in params[spec.label].values():
            make_controller(spec.name, scenario_params)


def compare(
    scenarios: Sequence[str | Path],
    controllers: Sequence[str | ControllerSpec],
    seeds: int | Sequence[int],
    out: str | Path,
    *,
    until_s: int | None = None,
    executor: LocalExecutor | RayExecutor | None = None,
    progress: ProgressFn | None = None,
    kpis: Sequence[str] | None = None,
    run_plots: bool = False,
    plots: bool = True,
    settle: bool = False,
    key_dir: str | Path | None = None,
    confidence: float = 0.95,
) -> ComparisonResult:
    """Run every controller on every scenario for every seed and summarise.

    Args:
        scenarios: Scenario YAML files.
        controllers: Names (``mpc``), ``"module:Class"``, ``rl:models/<name>``, or specs. On each
            scenario, its own controller (``controller.name``) runs with the scenario's
            ``controller.params`` with the spec's parameters merged over them; any other with
            its defaults plus the spec's parameters.
        seeds: A count ``n`` (seeds ``0..n-1``) or the seeds themselves.
        out: Results folder of the comparison.
        until_s: Simulate only the first ``until_s`` seconds of each scenario [s].
        executor: Where runs execute (default: local processes, one per CPU).
        progress: Called after each run with (done, total, row).
        kpis: KPIs to summarise (default: :data:`~.harness.MAIN_KPIS`).
        run_plots: Each run also writes its own ``plots/``.
        plots: Write the comparison plots.
        settle: Settle each run (bills, certificates); off by default, it costs time.
        key_dir: Signing keys for ``settle``.
        confidence: Level of the confidence intervals.

    Your own controllers are named ``"module:Class"`` (importable from the current folder or
    ``PYTHONPATH``; Ray workers need the module shipped to them), or by the name an installed
    package registers (``docs/controllers.md``). Runs execute in worker processes that are
    *spawned*: each one imports the calling script's main module again, so a script that calls
    ``compare`` must do so under ``if __name__ == "__main__":``, or every worker starts the
    comparison anew.

    A run that fails — an exception, invalid setpoints, or an energy balance broken by a
    controller that changed the devices' state — is listed with ``status="failed"`` and its
    ``error`` (see :attr:`ComparisonResult.failed`) and left out of the summary.

    Raises:
        ScenarioError: A scenario does not load, or names repeat.
        ControllerError: A controller is unknown or rejects its parameters.
        EpisodeMismatchError: Controllers of one scenario and seed saw different EV sessions.
    """
    started = time.perf_counter()
    folder = Path(out)
    seed_list = list(range(seeds)) if isinstance(seeds, int) else [int(s) for s in seeds]
    if not seed_list:
        raise ScenarioError([ConfigIssue("seeds", "no seeds to run; pass --seeds N with N >= 1")])
    specs = [c if isinstance(c, ControllerSpec) else parse_controller(c) for c in controllers]
    if not specs:
        raise ScenarioError(
            [ConfigIssue("controllers", "no controllers to compare; pass --controllers a b")]
        )
    loaded = _load(scenarios)
    params = _resolved_params(loaded, specs)
    _check_controllers(specs, params)
    tasks = plan_runs(
        [(s.name, s.path) for s in loaded],
        specs,
        seed_list,
        folder,
        until_s=until_s,
        plots=run_plots,
        settle=settle,
        key_dir=Path(key_dir) if key_dir is not None else None,
    )
    runner = executor if executor is not None else LocalExecutor()
    rows = runner.map(tasks, progress)
    ran = time.perf_counter()

    runs = pd.DataFrame(rows)
    check_identical_episodes(runs)
    keys = [k for k, _, _ in MAIN_KPIS] if kpis is None else list(kpis)
    labels = [s.label for s in specs]
    summary = summarize(
        runs,
        keys,
        baseline=BASELINE if BASELINE in labels else None,
        confidence=confidence,
        controllers=labels,
    )
    currencies = runs["currency"].dropna().unique() if "currency" in runs else []
    currency = str(currencies[0]) if len(currencies) else ""
    folder.mkdir(parents=True, exist_ok=True)
    runs.to_parquet(folder / "kpis.parquet", index=False)
    runs.to_csv(folder / "kpis.csv", index=False)
    summary.to_csv(folder / "summary.csv", index=False)
    written: list[Path] = []
    if plots:
        from qubit_sim.experiments.plots import write_comparison_plots

        written = write_comparison_plots(
            summary,
            runs,
            folder / "plots",
            seed=seed_list[0],
            import_limits_kw={s.name: s.import_limit_kw for s in loaded},
            ci=f"ci{round(confidence * 100):d}",
            currency=currency,
            controllers=labels,
        )
    notes = (
        comparison_notes(runs)
        + _billing_notes(loaded, until_s)
        + _seed_notes(len(seed_list), confidence)
    )
    _write_manifest(
        folder, loaded, specs, params, seed_list, until_s, runner, runs, started, ran, notes
    )
    return ComparisonResult(folder, runs, summary, written, currency, notes)


#: Energy still owed to plugged-in EVs at the end of a run above which :func:`comparison_notes`
#: speaks up [kWh].
OWED_AT_END_KWH = 1.0


def comparison_notes(runs: pd.DataFrame) -> list[str]:
    """Caveats for reading a comparison of ``runs`` (one row per run, with its KPIs), per scenario
    and controller.

    Energy owed to EVs still plugged in when a run ends (``ev_energy_unmet_at_end_kwh``) costs a
    controller only the scenario's unmet-energy penalty, while the demand charge of the billing
    period is charged in full: on a horizon that ends with cars plugged in, a controller can look
    cheaper by deferring their charging past the end.
    """
    column = "ev_energy_unmet_at_end_kwh"
    if column not in runs or not len(runs):
        return []
    by = ["scenario", "controller"] if "scenario" in runs else ["controller"]
    owed = runs.groupby(by)[column].mean().dropna()
    owed = owed[owed > OWED_AT_END_KWH]
    if owed.empty:
        return []
    listed = ", ".join(
        f"{'/'.join(key) if isinstance(key, tuple) else key} {kwh:,.1f} kWh"
        for key, kwh in owed.sort_values().items()
    )
    return [
        "Runs ended with EVs still plugged in and owed energy (mean per run, scenario/controller: "
        f"{listed}). That energy costs only the scenario's unmet-energy penalty "
        "(tariff.unmet_energy_penalty_per_kwh) while demand charges count in full, so a "
        "controller can look cheaper by deferring charging past the end: compare over whole "
        "days (an --until that ends when the cars have left) or raise the penalty."
    ]


#: (shortest, mean) length of each billing period [s]: a run shorter than the first cannot
#: cover a whole period.
_PERIOD_S = {
    "day": (86400, 86400.0),
    "week": (7 * 86400, 7 * 86400.0),
    "month": (28 * 86400, 365.25 / 12 * 86400),
}
#: Seeds below which :func:`_seed_notes` says the confidence intervals are too wide to read.
FEW_SEEDS = 5


def _days(seconds: int) -> str:
    return f"{seconds / 86400:.3g} d"


def _billing_notes(scenarios: Sequence[_Scenario], until_s: int | None) -> list[str]:
    """A note per scenario whose runs are shorter than its billing period while it has a demand
    charge: each run is billed a whole period's demand charge on its peak (as a bill would be),
    so the peak weighs more against energy than over a whole period."""
    notes = []
    for s in scenarios:
        run_s = s.duration_s if until_s is None else min(until_s, s.duration_s)
        shortest, mean = _PERIOD_S.get(s.billing_period, (0, 0.0))
        if s.demand_charge_per_kw <= 0 or run_s >= shortest:
            continue
        notes.append(
            f"{s.name}: runs of {_days(run_s)} are each billed a whole {s.billing_period}'s "
            f"demand charge ({s.demand_charge_per_kw:g} {s.currency}/kW) on their peak, so "
            f"total_cost weighs the peak about {mean / run_s:.0f}x more against energy than "
            "over a whole period would; read peak_import_15min_kw and energy_cost beside it, or "
            "compare over whole billing periods."
        )
    return notes


def _seed_notes(n_seeds: int, confidence: float) -> list[str]:
    """Says how wide the intervals are when there are too few seeds to read them."""
    if n_seeds >= FEW_SEEDS:
        return []
    level = f"{confidence:.0%}"
    if n_seeds == 1:
        return [f"One seed: no {level} confidence intervals; --seeds {FEW_SEEDS} or more for them."]
    from scipy import stats

    def half_width(n: int) -> float:  # per unit standard deviation of the KPI over seeds
        return float(stats.t.ppf(0.5 + confidence / 2.0, n - 1)) / n**0.5

    t = float(stats.t.ppf(0.5 + confidence / 2.0, n_seeds - 1))
    wide = half_width(n_seeds) / half_width(FEW_SEEDS)
    return [
        f"{n_seeds} seeds: the {level} intervals are the standard error times t = {t:.2f}, "
        f"{wide:.1f}x the width {FEW_SEEDS} seeds would give for the same spread; --seeds "
        f"{FEW_SEEDS} or more for intervals worth reading."
    ]


def _write_manifest(
    folder: Path,
    scenarios: Sequence[_Scenario],
    specs: Sequence[ControllerSpec],
    params: dict[str, dict[str, dict[str, Any]]],
    seeds: Sequence[int],
    until_s: int | None,
    runner: LocalExecutor | RayExecutor,
    runs: pd.DataFrame,
    started: float,
    ran: float,
    notes: list[str],
) -> None:
    from qubit_sim.core.results import git_revision, package_versions, write_json

    write_json(
        folder / "compare.json",
        {
            "scenarios": {s.name: str(s.path) for s in scenarios},
            "controllers": [
                {
                    "label": s.label,
                    "name": s.name,
                    "params": s.params,
                    "params_by_scenario": params[s.label],
                }
                for s in specs
            ],
            "seeds": list(seeds),
            "until_s": until_s,
            "executor": runner.name,
            "runs": len(runs),
            "failed": int((runs.status != "complete").sum()),
            "timings_s": {
                "runs": round(ran - started, 3),
                "total": round(time.perf_counter() - started, 3),
                "run_wall_sum": round(float(runs.wall_s.sum()), 3),
            },
            "notes": notes,
            "versions": package_versions(),
            "git_revision": git_revision(),
        },
    )


def _fmt(value: float, half: float) -> str:
    if pd.isna(value):
        return "-"
    digits = 1 if abs(value) >= 100 else 2
    text = f"{value:,.{digits}f}"
    return text if pd.isna(half) else f"{text} ± {half:,.{digits}f}"


def summary_table(result: ComparisonResult, confidence: float = 0.95) -> Any:
    """A rich table of the summary: mean ± CI per KPI, and the gap to the baseline.

    Headers and names are escaped: rich would read ``[kW]`` as markup and drop it.
    """
    from rich.markup import escape
    from rich.table import Table

    ci = f"ci{round(confidence * 100):d}"
    n = int(result.summary.n_runs.max()) if len(result.summary) else 0
    table = Table(
        title=f"Comparison: mean ± {ci[2:]} % CI (t) over {n} seeds",
        title_justify="left",
    )
    table.add_column("scenario", overflow="fold")
    table.add_column("controller", overflow="fold")
    present = [(k, label, unit) for k, label, unit in MAIN_KPIS if f"{k}_mean" in result.summary]
    for _, label, unit in present:
        suffix = unit.format(currency=result.currency)
        table.add_column(escape(f"{label} [{suffix}]" if suffix else label), justify="right")
    table.add_column(f"gap to {BASELINE}", justify="right")
    table.add_column("gap %", justify="right")
    previous = None
    for row in result.summary.itertuples(index=False):
        data = row._asdict()
        cells = [
            escape(data["scenario"]) if data["scenario"] != previous else "",
            escape(data["controller"]),
        ]
        previous = data["scenario"]
        for key, _, _ in present:
            cells.append(_fmt(data[f"{key}_mean"], data[f"{key}_{ci}"]))
        gap = data["gap_objective_cost"]
        cells.append(_fmt(gap, data[f"gap_objective_cost_{ci}"]))
        pct = data["gap_objective_cost_pct"]
        cells.append("-" if pd.isna(pct) else f"{pct:+.1f} %")
        if data["n_failed"]:
            cells[1] += f" ({data['n_failed']} failed)"
        table.add_row(*cells)
    return table
