"""FastPowerFlow against pandapower's own time-series loop, on the same steps.

For each feeder (SimBench ``1-LV-rural1--0-sw`` and ``1-MV-rural--0-sw``) a site with 20 chargers,
PV and a battery is connected at one bus as a varying injection; the feeder's own loads and PV
follow the SimBench profiles. The script runs

(a) ``pandapower.timeseries.run_timeseries`` with ``DFData`` / ``ConstControl`` on those profiles
    (the baseline, measured in the same run),
(b) :meth:`qubit_sim.grid.FastPowerFlow.solve` on the same steps (checked inputs, every result),
(c) :meth:`qubit_sim.grid.FastPowerFlow.step` on the same steps, as the site simulation calls it
    (background injections prepared a block of steps at a time, summary and bus voltages only),

and prints ms/step for each, the speed-ups and the largest voltage difference to the baseline.
With ``--year`` it also times FastPowerFlow over a full year of 15-min steps.

Usage::

    python benchmarks/bench_powerflow.py [--weeks N] [--year]
"""

from __future__ import annotations

import argparse
import logging
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from qubit_sim.grid import (
    RUNPP_OPTIONS,
    BackgroundProfiles,
    FastPowerFlow,
    background_profiles,
    load_network,
)

FEEDERS = {
    # code: (site bus, charger power [kW], site limit [kW], PV [kWp], battery [kW], battery [kWh])
    "1-LV-rural1--0-sw": (6, 11.0, 100.0, 30.0, 30.0, 60.0),
    "1-MV-rural--0-sw": (30, 22.0, 350.0, 150.0, 100.0, 200.0),
}
N_CHARGERS = 20
STEP_S = 900
START = "2025-01-06"  # a Monday


@dataclass
class Timing:
    steps: int
    ms_per_step: float
    vm_pu: np.ndarray


def site_power_kw(
    times: pd.DatetimeIndex, rng: np.random.Generator, spec: tuple[float, ...]
) -> np.ndarray:
    """Site active power per step [kW], load convention: EV charging + PV + peak-shaving battery."""
    _, charger_kw, limit_kw, pv_kwp, battery_kw, battery_kwh = spec
    step_start = (times - times[0]).total_seconds().to_numpy()
    n_days = int(np.ceil((step_start[-1] + STEP_S) / 86400)) + 1
    ev_kw = np.zeros(len(times))
    for day in range(n_days):
        # Half the chargers serve day-time (workplace) visits, half overnight (home) stays.
        workplace = np.arange(N_CHARGERS) < N_CHARGERS // 2
        arrive_h = np.where(
            workplace, rng.normal(8.0, 1.0, N_CHARGERS), rng.normal(18.0, 1.5, N_CHARGERS)
        )
        stay_h = np.where(workplace, rng.uniform(6, 9, N_CHARGERS), rng.uniform(10, 13, N_CHARGERS))
        energy_kwh = rng.uniform(8.0, 40.0, N_CHARGERS)
        begin = day * 86400 + arrive_h * 3600
        end = begin + np.minimum(stay_h, energy_kwh / charger_kw) * 3600
        # Visits start on this day and end within the next, so only those steps can overlap.
        window = slice(*np.searchsorted(step_start, [day * 86400 - STEP_S, (day + 2) * 86400]))
        starts = step_start[window]
        overlap = np.clip(
            np.minimum(end[:, None], starts[None, :] + STEP_S)
            - np.maximum(begin[:, None], starts[None, :]),
            0.0,
            None,
        )
        ev_kw[window] += charger_kw * overlap.sum(axis=0) / STEP_S
    ev_kw = np.minimum(ev_kw, limit_kw)
    hour = step_start % 86400 / 3600
    season = 0.55 + 0.45 * np.cos(2 * np.pi * (times.dayofyear.to_numpy() - 172) / 366)
    cloud = rng.uniform(0.3, 1.0, n_days)[(step_start // 86400).astype(int)]
    pv_kw = -pv_kwp * np.clip(np.sin(np.pi * (hour - 6.0) / 12.0), 0, None) * season * cloud
    # Battery: shave the EV peak above half the limit, soak up PV surplus.
    battery = np.zeros(len(times))
    energy = 0.5 * battery_kwh
    for k, draw in enumerate(ev_kw + pv_kw):
        if draw > 0.5 * limit_kw:
            power = -min(draw - 0.5 * limit_kw, battery_kw, energy / (STEP_S / 3600))
        elif draw < 0:
            power = min(-draw, battery_kw, (battery_kwh - energy) / (STEP_S / 3600))
        else:
            power = 0.0
        energy += power * STEP_S / 3600
        battery[k] = power
    return ev_kw + pv_kw + battery


def run_pandapower(
    code: str, profiles: BackgroundProfiles, site_bus: int, site_kw: np.ndarray
) -> Timing:
    """pandapower's own time-series loop with DFData/ConstControl on the same profiles."""
    from pandapower import create_load

    net = load_network(code)
    from pandapower.control import ConstControl
    from pandapower.timeseries import DFData, OutputWriter, run_timeseries

    own_loads = net.load.index
    site = create_load(net, site_bus, p_mw=0.0, name="site")
    steps = range(profiles.n_steps)
    frames = {
        "load_p": pd.DataFrame(profiles.load_p_mw, columns=own_loads),
        "load_q": pd.DataFrame(profiles.load_q_mvar, columns=own_loads),
        "sgen_p": pd.DataFrame(profiles.sgen_p_mw, columns=net.sgen.index),
        "site_p": pd.DataFrame({site: site_kw * 1e-3}),
    }
    for key, element, variable in [
        ("load_p", "load", "p_mw"),
        ("load_q", "load", "q_mvar"),
        ("sgen_p", "sgen", "p_mw"),
        ("site_p", "load", "p_mw"),
    ]:
        frame = frames[key]
        ConstControl(
            net,
            element=element,
            variable=variable,
            element_index=frame.columns,
            data_source=DFData(frame),
            profile_name=frame.columns,
        )
    writer = OutputWriter(net, time_steps=steps, output_path=None)
    writer.log_variable("res_bus", "vm_pu")
    started = time.perf_counter()
    run_timeseries(net, time_steps=steps, verbose=False, **RUNPP_OPTIONS)
    elapsed = time.perf_counter() - started
    vm = writer.output["res_bus.vm_pu"].to_numpy()
    return Timing(profiles.n_steps, elapsed / profiles.n_steps * 1e3, vm)


def run_fast(
    net: Any, profiles: BackgroundProfiles, site_bus: int, site_kw: np.ndarray, **options: Any
) -> Timing:
    """FastPowerFlow on the same steps (construction excluded, reported separately)."""
    flow = FastPowerFlow(net, [site_bus], **options)
    vm = np.empty((profiles.n_steps, len(net.bus)))
    started = time.perf_counter()
    for k in range(profiles.n_steps):
        result = flow.solve(
            site_kw[k : k + 1],
            None,
            profiles.load_p_mw[k],
            profiles.load_q_mvar[k],
            profiles.sgen_p_mw[k],
            context=f"step {k}",
        )
        vm[k] = result.vm_pu
    elapsed = time.perf_counter() - started
    return Timing(profiles.n_steps, elapsed / profiles.n_steps * 1e3, vm)


def run_fast_step(
    net: Any, profiles: BackgroundProfiles, site_bus: int, site_kw: np.ndarray, **options: Any
) -> Timing:
    """FastPowerFlow.step on the same steps, injections prepared per block as the simulator does."""
    flow = FastPowerFlow(net, [site_bus], **options)
    vm = np.empty((profiles.n_steps, len(net.bus)))
    site = np.zeros(1)
    block_steps = 1024
    started = time.perf_counter()
    for start in range(0, profiles.n_steps, block_steps):
        stop = min(profiles.n_steps, start + block_steps)
        block = flow.injections(
            None,
            None,
            profiles.load_p_mw[start:stop],
            profiles.load_q_mvar[start:stop],
            profiles.sgen_p_mw[start:stop],
        )
        for k in range(start, stop):
            site[0] = site_kw[k]
            flow.step(block[k - start], site, vm[k])
    elapsed = time.perf_counter() - started
    return Timing(profiles.n_steps, elapsed / profiles.n_steps * 1e3, vm)


def fastest(repeat: int, run: Callable[..., Timing], *args: Any, **kwargs: Any) -> Timing:
    """The fastest of ``repeat`` runs (the least disturbed by other load on the machine)."""
    runs = [run(*args, **kwargs) for _ in range(max(1, repeat))]
    return min(runs, key=lambda timing: timing.ms_per_step)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weeks", type=int, default=1, help="weeks of 15-min steps to compare")
    parser.add_argument("--year", action="store_true", help="also time FastPowerFlow over a year")
    parser.add_argument(
        "--repeat", type=int, default=2, help="runs of each variant; the fastest one is reported"
    )
    args = parser.parse_args()
    logging.getLogger("pandapower").setLevel(logging.ERROR)

    import pandapower

    print(
        f"python {platform.python_version()}, pandapower {pandapower.__version__}, "
        f"numba {'on' if RUNPP_OPTIONS['numba'] else 'off'}, {platform.machine()}"
    )
    rows = []
    year_rows = []
    for code, spec in FEEDERS.items():
        site_bus = spec[0]
        net = load_network(code)
        times = pd.date_range(START, periods=args.weeks * 7 * 96, freq="15min", tz="UTC")
        profiles = background_profiles(net, times)
        site_kw = site_power_kw(times, np.random.default_rng(2025), spec)
        started = time.perf_counter()
        FastPowerFlow(net, [site_bus])
        build_ms = (time.perf_counter() - started) * 1e3

        case = (profiles, site_bus, site_kw)
        fast = fastest(args.repeat, run_fast, net, *case)
        stepped = fastest(args.repeat, run_fast_step, net, *case)
        fresh = fastest(args.repeat, run_fast, net, *case, reuse_jacobian=False)
        baseline = fastest(args.repeat, run_pandapower, code, *case)
        dv = max(
            float(np.nanmax(np.abs(timing.vm_pu - baseline.vm_pu))) for timing in (fast, stepped)
        )
        same_nan = all(
            np.array_equal(np.isnan(timing.vm_pu), np.isnan(baseline.vm_pu))
            for timing in (fast, stepped)
        )
        rows.append((code, fast.steps, baseline, fast, stepped, fresh, dv, same_nan))
        print(
            f"{code}: site bus {site_bus}, site power {site_kw.min():.0f}..{site_kw.max():.0f} kW, "
            f"FastPowerFlow build {build_ms:.0f} ms"
        )
        if args.year:
            year = pd.date_range(START, periods=365 * 96, freq="15min", tz="UTC")
            year_profiles = background_profiles(net, year)
            year_site = site_power_kw(year, np.random.default_rng(2025), spec)
            timing = run_fast(net, year_profiles, site_bus, year_site)
            year_rows.append((code, timing))

    print()
    header = (
        f"{'feeder':<20}{'steps':>7}{'pandapower':>13}{'solve()':>10}{'speed-up':>10}"
        f"{'step()':>10}{'speed-up':>10}{'solve(), no J reuse':>21}{'max|dV| pu':>12}"
        f"{'NaN same':>10}"
    )
    print(header)
    print(
        f"{'':<20}{'':>7}{'ms/step':>13}{'ms/step':>10}{'':>10}{'ms/step':>10}{'':>10}{'ms/step':>21}"
    )
    print("-" * len(header))
    for code, steps, baseline, fast, stepped, fresh, max_dv, same_nan in rows:
        print(
            f"{code:<20}{steps:>7}{baseline.ms_per_step:>13.2f}{fast.ms_per_step:>10.3f}"
            f"{baseline.ms_per_step / fast.ms_per_step:>9.0f}x{stepped.ms_per_step:>10.3f}"
            f"{baseline.ms_per_step / stepped.ms_per_step:>9.0f}x{fresh.ms_per_step:>21.3f}"
            f"{max_dv:>12.1e}{'yes' if same_nan else 'NO':>10}"
        )
    print("targets: speed-up >= 50x, max|dV| <= 1e-6 pu")
    for code, timing in year_rows:
        total_s = timing.ms_per_step * timing.steps / 1e3
        print(
            f"year, {code}: {timing.steps} steps in {total_s:.1f} s "
            f"({timing.ms_per_step:.3f} ms/step)"
        )


if __name__ == "__main__":
    main()
