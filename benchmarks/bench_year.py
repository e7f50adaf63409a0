"""Year-long runs of the whole simulator, against pandapower's own time-series loop.

1. A year at 15-min steps with an AC power flow every step, on SimBench ``1-LV-rural1--0-sw`` and
   ``1-MV-rural--0-sw``, a site of 20 chargers + PV + battery (``benchmarks/scenarios/year_15min_*``).
   Baseline, measured in the same run: ``pandapower.timeseries.run_timeseries`` on the same net,
   the same feeder profiles and the site's recorded injection, over the first week (a year of it
   takes too long). Both sides run ``--repeat`` times and the fastest run of each counts (the one
   least disturbed by other load on the machine). Printed: ms/step of each (qubit-sim's figure is
   the whole step: EVs, battery, PV, control, power flow, recording, as the run's manifest times
   its ``simulate`` phase), the ratio (target >= 50x) and the largest voltage difference over
   that week (target <= 1e-6 p.u.).
2. A year at 1-minute steps without a power flow: 50 chargers + battery + PV
   (``benchmarks/scenarios/year_1min_50_chargers.yaml``); target: under 30 s for the whole run.

Usage::

    python benchmarks/bench_year.py [--baseline-days 7] [--repeat 3] [--skip-1min] [--skip-15min]
"""

from __future__ import annotations

import argparse
import logging
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_powerflow import fastest, run_pandapower  # noqa: E402

import qubit_sim  # noqa: E402
from qubit_sim.grid import background_profiles, load_network  # noqa: E402
from qubit_sim.scenario.loader import load_scenario  # noqa: E402


def year_with_power_flow(feeder: str, baseline_days: int, repeat: int) -> dict[str, float]:
    path = HERE / "scenarios" / f"year_15min_{feeder}.yaml"
    loaded = load_scenario(path)
    manifests = []
    df = None
    for _ in range(max(1, repeat)):
        with tempfile.TemporaryDirectory() as folder:
            result = qubit_sim.run(loaded, out=folder, plots=False)
            if df is None:
                df = result.timeseries()
        manifests.append(result.manifest)
    assert df is not None
    steps = manifests[0]["n_steps"]
    fastest_run = min(manifests, key=lambda manifest: manifest["timings_s"]["simulate"])
    simulate_s = fastest_run["timings_s"]["simulate"]
    ours_ms = simulate_s / steps * 1e3

    grid = loaded.spec.grid
    assert grid is not None
    net = load_network(grid.network)
    from qubit_sim.grid import resolve_bus

    site_bus = resolve_bus(net, grid.site_bus)
    n = baseline_days * 86400 // loaded.spec.site.step
    times = df["time"].iloc[:n]
    import pandas as pd

    profiles = background_profiles(net, pd.DatetimeIndex(times), scale=grid.background_scale)
    site_kw = df["site_p_kw"].to_numpy()[:n]
    baseline = fastest(repeat, run_pandapower, grid.network, profiles, site_bus, site_kw)
    ours_vm = df[[f"bus_{int(b)}_vm_pu" for b in net.bus.index]].to_numpy()[:n]
    both = ~np.isnan(baseline.vm_pu) & ~np.isnan(ours_vm)
    dv = float(np.max(np.abs(baseline.vm_pu[both] - ours_vm[both])))
    return {
        "steps": steps,
        "total_s": fastest_run["timings_s"]["total"],
        "simulate_s": simulate_s,
        "ours_ms": ours_ms,
        "baseline_ms": baseline.ms_per_step,
        "baseline_steps": n,
        "ratio": baseline.ms_per_step / ours_ms,
        "max_dv_pu": dv,
    }


def year_one_minute() -> dict[str, float]:
    path = HERE / "scenarios" / "year_1min_50_chargers.yaml"
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        result = qubit_sim.run(path, out=folder, settle=False)
    wall = time.perf_counter() - started
    timings = result.manifest["timings_s"]
    return {
        "steps": result.manifest["n_steps"],
        "wall_s": wall,
        "build_s": timings["build"],
        "simulate_s": timings["simulate"],
        "results_s": timings["results"],
        "us_per_step": timings["simulate"] / result.manifest["n_steps"] * 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline-days", type=int, default=7)
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs of each side; the fastest one is reported"
    )
    parser.add_argument("--skip-1min", action="store_true")
    parser.add_argument("--skip-15min", action="store_true")
    args = parser.parse_args()
    logging.getLogger("pandapower").setLevel(logging.ERROR)
    print(f"python {platform.python_version()} on {platform.machine()}")
    if not args.skip_15min:
        print("\nA year at 15-min steps with an AC power flow every step")
        header = (
            f"{'feeder':<6}{'steps':>8}{'qubit-sim ms/step':>19}{'pandapower ms/step':>20}"
            f"{'ratio':>8}{'max |dV| pu':>13}{'year run s':>12}"
        )
        print(header)
        for feeder in ("lv", "mv"):
            r = year_with_power_flow(feeder, args.baseline_days, args.repeat)
            print(
                f"{feeder:<6}{r['steps']:>8}{r['ours_ms']:>19.3f}{r['baseline_ms']:>20.3f}"
                f"{r['ratio']:>7.1f}x{r['max_dv_pu']:>13.1e}{r['total_s']:>12.1f}"
            )
        print(
            "targets: ratio >= 50x, max |dV| <= 1e-6 p.u. (baseline over the first "
            f"{args.baseline_days} days, same injections; fastest of {args.repeat} runs each)"
        )
    if not args.skip_1min:
        r = year_one_minute()
        print("\nA year at 1-min steps, 50 chargers + battery + PV, no power flow")
        print(
            f"{r['steps']} steps: whole run {r['wall_s']:.1f} s (build {r['build_s']:.1f} s, "
            f"simulate {r['simulate_s']:.1f} s = {r['us_per_step']:.1f} us/step, results "
            f"{r['results_s']:.1f} s); target < 30 s"
        )


if __name__ == "__main__":
    main()
