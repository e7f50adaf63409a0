"""Comparison plots: KPI bars with confidence intervals, and site power profiles side by side."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["BAR_PLOTS", "write_bar_plot", "write_comparison_plots", "write_profile_plot"]

#: File name -> (KPI, axis label; ``{currency}`` is filled in).
BAR_PLOTS: dict[str, tuple[str, str]] = {
    "cost_bars.png": ("objective_cost", "objective cost [{currency}]"),
    "peak_bars.png": ("peak_import_15min_kw", "peak import, 15-min average [kW]"),
    "unmet_bars.png": ("ev_energy_unmet_kwh", "EV energy unmet [kWh]"),
}


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def write_bar_plot(
    summary: pd.DataFrame, kpi: str, ylabel: str, path: Path, *, ci: str = "ci95"
) -> Path:
    """Grouped bars: one group per scenario, one bar per controller, mean ± CI over seeds.

    Args:
        summary: Output of :func:`qubit_sim.experiments.stats.summarize`.
        kpi: KPI to plot (``<kpi>_mean`` and ``<kpi>_<ci>`` columns).
        ylabel: Axis label.
        path: PNG to write.
        ci: Interval column suffix.
    """
    plt = _pyplot()
    scenarios = list(dict.fromkeys(summary.scenario))
    controllers = list(dict.fromkeys(summary.controller))
    width = 0.8 / max(1, len(controllers))
    x = np.arange(len(scenarios))
    fig, ax = plt.subplots(figsize=(max(6.0, 1.6 + 1.1 * len(scenarios) * len(controllers)), 4.2))
    cmap = plt.get_cmap("tab10")
    for i, controller in enumerate(controllers):
        rows = summary[summary.controller == controller].set_index("scenario").reindex(scenarios)
        means = rows[f"{kpi}_mean"].to_numpy(float)
        errors = np.nan_to_num(rows[f"{kpi}_{ci}"].to_numpy(float), nan=0.0)
        ax.bar(
            x + (i - (len(controllers) - 1) / 2) * width,
            means,
            width,
            yerr=errors,
            capsize=3,
            label=controller,
            color=cmap(i % 10),
        )
    ax.set_xticks(x, scenarios)
    ax.set_ylabel(ylabel)
    n = int(summary.n_runs.max()) if len(summary) else 0
    ax.set_title(f"{ylabel}: mean over {n} seeds, error bars {ci[2:]} % CI (t)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, ncols=min(3, len(controllers)))
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_profile_plot(
    scenario: str,
    profiles: dict[str, pd.DataFrame],
    path: Path,
    *,
    seed: int,
    import_limit_kw: float | None = None,
) -> Path:
    """Net site power of every controller side by side (shared axes) for one seed.

    Args:
        scenario: Scenario name (title).
        profiles: Controller label -> time series with ``t_s`` and ``site_p_kw`` [kW].
        path: PNG to write.
        seed: The seed shown (title).
        import_limit_kw: Grid connection import limit [kW], drawn as a line.
    """
    plt = _pyplot()
    n = max(1, len(profiles))
    fig, axes = plt.subplots(
        1, n, figsize=(max(6.0, 3.2 * n), 3.6), sharex=True, sharey=True, squeeze=False
    )
    for ax, (controller, frame) in zip(axes[0], profiles.items(), strict=False):
        hours = frame["t_s"].to_numpy(float) / 3600.0
        power = frame["site_p_kw"].to_numpy(float)
        ax.plot(hours, power, color="black", linewidth=0.8, label="net site power")
        ax.fill_between(
            hours, 0.0, power, where=power < 0, color="tab:green", alpha=0.3, label="export"
        )
        if import_limit_kw is not None:
            ax.axhline(
                import_limit_kw,
                color="tab:red",
                linestyle="--",
                linewidth=0.8,
                label="import limit",
            )
        ax.set_title(controller, fontsize=9)
        ax.set_xlabel("time since the run start [h]")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("net site power [kW] (+ import)")
    axes[0][0].legend(fontsize=7, loc="best")
    fig.suptitle(f"{scenario}: site power per controller, seed {seed}", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_comparison_plots(
    summary: pd.DataFrame,
    runs: pd.DataFrame,
    folder: Path,
    *,
    seed: int,
    import_limits_kw: dict[str, float | None] | None = None,
    ci: str = "ci95",
    currency: str = "",
    controllers: Sequence[str] | None = None,
) -> list[Path]:
    """Bar plots of cost, peak and unmet energy, and a profile plot per scenario for ``seed``.

    Profiles come from each run's ``timeseries.parquet`` (``run_dir`` column of ``runs``).
    """
    written = []
    for name, (kpi, label) in BAR_PLOTS.items():
        if f"{kpi}_mean" in summary:
            written.append(
                write_bar_plot(summary, kpi, label.format(currency=currency), folder / name, ci=ci)
            )
    order = list(controllers) if controllers is not None else list(dict.fromkeys(runs.controller))
    for scenario in dict.fromkeys(runs.scenario):
        chosen = runs[(runs.scenario == scenario) & (runs.seed == seed)]
        profiles: dict[str, pd.DataFrame] = {}
        for controller in order:
            row = chosen[chosen.controller == controller]
            if not len(row):
                continue
            series = Path(row.iloc[0].run_dir) / "timeseries.parquet"
            if series.is_file():
                profiles[controller] = pd.read_parquet(series, columns=["t_s", "site_p_kw"])
        if profiles:
            limit = (import_limits_kw or {}).get(scenario)
            written.append(
                write_profile_plot(
                    scenario,
                    profiles,
                    folder / f"profiles_{scenario}.png",
                    seed=seed,
                    import_limit_kw=limit,
                )
            )
    return written
