"""Micro-benchmarks of the physics step functions.

Prints microseconds per call of ``battery_step`` and ``ev_charge_step`` for 50 devices, with two
baselines measured in the same run: a single numpy ufunc on 50 values (the floor of any
vectorised step) and a plain-Python loop over the 50 devices doing the same arithmetic (what a
list-of-objects design would cost). Also times the whole-year PV and load-profile calls.

Run: ``.venv/bin/python benchmarks/bench_physics.py [--devices 50]``
"""

from __future__ import annotations

import argparse
import math
import time
import timeit
from collections.abc import Callable

import numpy as np
import pandas as pd

from qubit_sim.physics.battery import battery_step
from qubit_sim.physics.ev import ev_charge_step


def per_call_us(func: Callable[[], object], repeat: int = 7) -> float:
    """Best-of-``repeat`` time per call [µs], auto-ranged to ~0.2 s per repeat."""
    timer = timeit.Timer(func)
    number, _ = timer.autorange()
    return min(timer.repeat(repeat=repeat, number=number)) / number * 1e6


def battery_loop(soc, p_set, dt_s, cap, p_ch, p_dis, eta_c, eta_d, soc_min, soc_max, sd):
    dt_h = dt_s / 3600.0
    out = []
    for i in range(len(soc)):
        e = soc[i] * cap[i]
        e_min, e_max = soc_min * cap[i], soc_max * cap[i]
        loss_sd = min(sd * dt_h * e, max(e - e_min, 0.0))
        e -= loss_sd
        p_max = min(p_ch[i], max(e_max - e, 0.0) / (eta_c * dt_h))
        p_min = -min(p_dis[i], max(e - e_min, 0.0) * eta_d / dt_h)
        p = min(max(p_set[i], p_min), p_max)
        ac = p * dt_h
        stored = ac * eta_c if ac > 0 else ac / eta_d
        out.append((p, (e + stored) / cap[i], ac - stored + loss_sd, abs(ac)))
    return out


def ev_loop(soc, need, cap, limit, p_max, knee, dt_s):
    dt_h = dt_s / 3600.0
    out = []
    for i in range(len(soc)):
        taper = p_max[i] * min(max(1.0 - soc[i], 0.0) / (1.0 - knee), 1.0)
        lim = taper if math.isnan(limit[i]) else min(limit[i], taper)
        want = min(max(need[i], 0.0), max(1.0 - soc[i], 0.0) * cap[i])
        p = max(min(lim, want / dt_h), 0.0)
        e = p * dt_h
        out.append((p, min(soc[i] + e / cap[i], 1.0), max(need[i] - e, 0.0), e))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=50)
    n = parser.parse_args().devices
    rng = np.random.default_rng(0)

    soc = rng.uniform(0.1, 0.9, n)
    p_set = rng.uniform(-60.0, 60.0, n)
    cap = np.full(n, 100.0)
    p_ch = np.full(n, 50.0)
    p_dis = np.full(n, 50.0)
    battery_args = (soc, p_set, 60, cap, p_ch, p_dis, 0.95, 0.95, 0.1, 0.9, 1e-4)
    battery_full = (
        soc,
        p_set,
        60,
        cap,
        p_ch,
        p_dis,
        np.full(n, 0.95),
        np.full(n, 0.95),
        np.full(n, 0.1),
        np.full(n, 0.9),
        np.full(n, 1e-4),
    )

    ev_soc = rng.uniform(0.1, 0.99, n)
    need = rng.uniform(0.0, 40.0, n)
    ev_cap = np.full(n, 60.0)
    limit = rng.uniform(0.0, 22.0, n)
    limit[::5] = np.nan
    p_max = np.full(n, 11.0)
    ev_args = (ev_soc, need, ev_cap, limit, p_max, 0.8, 60)

    floor = per_call_us(lambda: soc * cap)
    rows = [
        ("numpy floor: one ufunc on the arrays", floor, None),
        ("battery_step, scalar parameters", per_call_us(lambda: battery_step(*battery_args)), None),
        (
            "battery_step, all parameters arrays",
            per_call_us(lambda: battery_step(*battery_full)),
            None,
        ),
        (
            "battery, plain-Python loop baseline",
            per_call_us(lambda: battery_loop(*battery_args)),
            None,
        ),
        ("ev_charge_step", per_call_us(lambda: ev_charge_step(*ev_args)), None),
        ("ev, plain-Python loop baseline", per_call_us(lambda: ev_loop(*ev_args)), None),
    ]
    print(f"physics step functions, {n} devices (best of 7, µs per call)")
    for label, us, _ in rows:
        print(f"  {label:<42s} {us:9.2f} µs   {us / floor:6.1f}x floor")
    bat_vec, bat_loop = rows[1][1], rows[3][1]
    ev_vec, ev_loop_us = rows[4][1], rows[5][1]
    print(f"  battery: vectorised is {bat_loop / bat_vec:.1f}x faster than the loop")
    print(f"  ev:      vectorised is {ev_loop_us / ev_vec:.1f}x faster than the loop")
    steps = 525_600
    print(
        f"  a year of 1-min steps: battery {bat_vec * steps / 1e6:.1f} s, "
        f"ev {ev_vec * steps / 1e6:.1f} s"
    )

    from qubit_sim.physics.load import profile_at, simbench_load_profile
    from qubit_sim.physics.pv import pv_ac_power_kw, tmy_weather

    weather = tmy_weather("723170TYA", 2021)
    site = dict(latitude=weather.attrs["latitude"], longitude=weather.attrs["longitude"])
    print("whole-scenario calls (single run each, s)")
    for label, freq, periods in (("hourly", "1h", 8760), ("1-min", "1min", 525_600)):
        times = pd.date_range("2021-01-01", periods=periods, freq=freq, tz="UTC")
        start = time.perf_counter()
        pv_ac_power_kw(times, weather, kwp=1.0, tilt_deg=30, azimuth_deg=180, **site)
        print(f"  pv_ac_power_kw, one year {label:<7s} {time.perf_counter() - start:7.3f} s")
    start = time.perf_counter()
    profile = simbench_load_profile("G1-A")
    print(f"  simbench_load_profile, first read   {time.perf_counter() - start:7.3f} s")
    times = pd.date_range("2025-01-01", periods=525_600, freq="1min", tz="UTC")
    start = time.perf_counter()
    profile_at(times, profile, tz="Europe/Berlin")
    print(f"  profile_at, one year 1-min         {time.perf_counter() - start:7.3f} s")


if __name__ == "__main__":
    main()
