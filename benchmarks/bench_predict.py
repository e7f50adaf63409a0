"""L2 prediction benchmark: per-cycle predict latency and backtest throughput.

Baseline in the same run: the seasonal-naive load forecaster (cheapest model) on the same data.
Run: .venv/bin/python benchmarks/bench_predict.py
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import pandas as pd

from qubit_sim.stack.predict import (
    LoadForecaster,
    PvForecaster,
    backtest,
    clear_sky_ac_kw,
)

LAT, LON = 52.37, 4.90


def series(days: int, step: str, seed: int = 0):
    times = pd.date_range(
        "2025-04-07", periods=days * 86400 // pd.Timedelta(step).seconds, freq=step, tz="UTC"
    )
    rng = np.random.default_rng(seed)
    hours = np.asarray(times.hour + times.minute / 60)
    load = (
        15
        + 40 * np.exp(-0.5 * ((hours - 12.5) / 3) ** 2) * np.where(times.dayofweek >= 5, 0.25, 1)
        + rng.normal(0, 3, len(times))
    )
    clear = clear_sky_ac_kw(times, LAT, LON, 100, inverter_kw=90)["p_kw"].to_numpy()
    pv = clear * np.clip(
        rng.uniform(0.4, 1.0, days)[np.arange(len(times)) * days // len(times)]
        + rng.normal(0, 0.05, len(times)),
        0,
        1.1,
    )
    return times, load, pv


def cycle_latency(factory, times, values, cycles=96):
    forecaster = factory()
    start = times[0] + pd.Timedelta(days=35)
    forecaster.observe(times[times < start], values[times < start])
    forecaster.predict(start, 96)  # warm-up: replays, caches
    samples = []
    now = start
    for _ in range(cycles):
        nxt = now + pd.Timedelta(minutes=15)
        sel = (times >= now) & (times < nxt)
        forecaster.observe(times[sel], values[sel])
        t0 = time.perf_counter()
        forecaster.predict(nxt, 96)
        samples.append(time.perf_counter() - t0)
        now = nxt
    return statistics.median(samples) * 1e3


def main() -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    times, load, pv = series(40, "1min")
    print("per-cycle predict, 96 x 15 min, 35 days of 1-min history (median ms):")
    base = cycle_latency(lambda: LoadForecaster("seasonal_naive"), times, load)
    print(f"  load_seasonal_naive {base:7.2f}  (baseline)")
    for name, factory, values in (
        ("load_regression", lambda: LoadForecaster("regression"), load),
        ("pv_clearsky", lambda: PvForecaster(LAT, LON, 100, inverter_kw=90), pv),
    ):
        ms = cycle_latency(factory, times, values)
        print(f"  {name:19s} {ms:7.2f}  x{ms / base:.1f}")
    t15, load15, pv15 = series(7, "15min")
    print("backtest, 7 days of 15-min data, hourly issues, 96-slot horizon (s):")
    for name, factory, values in (
        ("load_seasonal_naive", lambda: LoadForecaster("seasonal_naive"), load15),
        ("load_regression", lambda: LoadForecaster("regression"), load15),
        ("pv_clearsky", lambda: PvForecaster(LAT, LON, 100, inverter_kw=90), pv15),
    ):
        t0 = time.perf_counter()
        report = backtest(factory, t15, values, start_after_s=2 * 86400, every_s=3600)
        print(f"  {name:19s} {time.perf_counter() - t0:6.2f} s for {report.n_forecasts} forecasts")


if __name__ == "__main__":
    main()
