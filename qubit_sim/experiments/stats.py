"""Statistics over seeds: means with t-distribution confidence intervals, gaps to a baseline.

Runs of different controllers with the same seed see the same episode, so the gap to the
baseline is taken per seed (paired) before it is averaged: its interval is then that of the paired
differences, narrower and more honest than the difference of two independent intervals.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["mean_ci", "summarize"]


def mean_ci(values: Sequence[float] | np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    """Mean and half-width of its two-sided confidence interval (Student t, ``n - 1`` dof).

    NaN values are left out. The half-width is NaN for fewer than two values (no spread to
    estimate) and 0 when all values agree.

    Returns:
        (mean, half-width); the interval is ``mean ± half-width``.
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    data = np.asarray(values, dtype=float)
    data = data[~np.isnan(data)]
    n = data.size
    if n == 0:
        return math.nan, math.nan
    mean = float(data.mean())
    if n < 2:
        return mean, math.nan
    from scipy import stats

    std = float(data.std(ddof=1))
    t = float(stats.t.ppf(0.5 + confidence / 2.0, n - 1))
    return mean, t * std / math.sqrt(n)


def summarize(
    runs: pd.DataFrame,
    kpis: Sequence[str],
    *,
    baseline: str | None = "offline_optimal",
    gap_kpi: str = "objective_cost",
    confidence: float = 0.95,
    controllers: Sequence[str] | None = None,
) -> pd.DataFrame:
    """One row per scenario x controller: mean, std and CI half-width of each KPI over seeds,
    and the paired gap of ``gap_kpi`` to ``baseline``.

    Args:
        runs: One row per run with ``scenario``, ``controller``, ``seed``, ``status`` and the KPIs.
        kpis: KPI columns to summarise (missing ones give NaN).
        baseline: Controller to measure gaps against; ``None`` or absent: gap columns are NaN.
        gap_kpi: KPI of the gap (lower is better).
        confidence: Confidence level of the intervals.
        controllers: Row order of controllers (default: order of first appearance).

    Returns:
        Columns ``scenario, controller, n_runs, n_failed``, then ``<kpi>_mean, <kpi>_std,
        <kpi>_ci95`` per KPI (``ci95`` is named for the level: ``ci90`` at 0.90), then
        ``gap_<gap_kpi>``, ``gap_<gap_kpi>_<ci>`` (absolute, paired over seeds) and
        ``gap_<gap_kpi>_pct`` (relative to the baseline's mean, in %).
    """
    ci = f"ci{round(confidence * 100):d}"
    ok = runs[runs["status"] == "complete"] if "status" in runs else runs
    order = list(controllers) if controllers is not None else list(dict.fromkeys(runs.controller))
    rows: list[dict[str, Any]] = []
    for scenario in dict.fromkeys(runs.scenario):
        in_scenario = ok[ok.scenario == scenario]
        base = in_scenario[in_scenario.controller == baseline]
        base_by_seed = (
            base.set_index("seed")[gap_kpi] if gap_kpi in base and len(base) else pd.Series()
        )
        for controller in order:
            every = runs[(runs.scenario == scenario) & (runs.controller == controller)]
            group = in_scenario[in_scenario.controller == controller]
            row: dict[str, Any] = {
                "scenario": scenario,
                "controller": controller,
                "n_runs": len(group),
                "n_failed": len(every) - len(group),
            }
            for kpi in kpis:
                values = group[kpi].to_numpy(dtype=float) if kpi in group else np.array([])
                mean, half = mean_ci(values, confidence)
                row[f"{kpi}_mean"] = mean
                row[f"{kpi}_std"] = float(np.std(values, ddof=1)) if values.size > 1 else math.nan
                row[f"{kpi}_{ci}"] = half
            gap, gap_half, gap_pct = math.nan, math.nan, math.nan
            if len(base_by_seed) and gap_kpi in group:
                mine = group.set_index("seed")[gap_kpi]
                seeds = mine.index.intersection(base_by_seed.index)
                if len(seeds):
                    diffs = mine.loc[seeds].to_numpy(float) - base_by_seed.loc[seeds].to_numpy(
                        float
                    )
                    gap, gap_half = mean_ci(diffs, confidence)
                    base_mean = float(base_by_seed.loc[seeds].mean())
                    if base_mean != 0.0:
                        gap_pct = 100.0 * gap / abs(base_mean)
            row[f"gap_{gap_kpi}"] = gap
            row[f"gap_{gap_kpi}_{ci}"] = gap_half
            row[f"gap_{gap_kpi}_pct"] = gap_pct
            rows.append(row)
    return pd.DataFrame(rows)
