"""``qubit-sim serve`` at scale: 1,000 OCPP charger twins on the stack's CSMS in real time.

Scenario: ``benchmarks/scenarios/realtime_1000.yaml`` — 500 OCPP 1.6J and 500 OCPP 2.0.1 charge
point twins, each with an EV charging from the first five simulated minutes on, meter values every
60 s of simulated time, 60 s steps, no feeder. Each run is a fresh child process (so CPU time and
peak memory are its own) serving the scenario exactly as ``qubit-sim serve`` does
(:class:`~qubit_sim.scenario.realtime.RealtimeSimulation`), without writing a results folder.

Measured per run:

* **connect** — wall time from the start of the run until every charge point is connected and its
  BootNotification accepted (the endpoint table is ready), and the CPU time it took;
* **message rate** — OCPP frames on the wire per wall second while paced (from the CSMS's
  :class:`~qubit_sim.protocols.ocpp_common.OcppTraffic` counter: each frame the CSMS receives is
  answered by, or answers, exactly one), and frames per CPU second, the ratio to compare runs by;
* **CPU** — process CPU time while paced, as % of one core (all threads);
* **memory** — peak RSS of the child process;
* **lag** — the lag policy's measure: how late each step starts behind its wall-clock due time
  (max, p95, steps more than one step late).

The first run is at ``--factor`` (10: one 60 s step every 6 wall seconds); then higher factors
are tried, each for ``--sweep-wall`` seconds, and the highest one with a maximum lag under 1 s
is reported. Every run also checks its traffic: all charge points booted, every transaction's
meter values at the CSMS exactly one per 60 s up to the end, the energy the CSMS holds equal to
the twins' meters, no reconnects and no errors at the twins; the script fails otherwise. The
machine may be shared; take the figures as indicative and compare ratios within one run.

Usage::

    python benchmarks/bench_realtime.py [--factor 10] [--wall 90] [--sweep 20,30,45,60]
    python benchmarks/bench_realtime.py --one --factor 10 --wall 60 --profile loop.prof
"""

from __future__ import annotations

import argparse
import cProfile
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
SCENARIO = HERE / "scenarios" / "realtime_1000.yaml"
LAG_LIMIT_S = 1.0


def raise_fd_limit(needed: int) -> tuple[int, int]:
    """Raise the soft open-files limit to at least ``needed`` (up to the hard limit).

    Both ends of every websocket live in this process: 1,000 chargers need over 2,000 descriptors,
    beyond the common default soft limit of 1,024.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        if target < needed:
            print(
                f"warning: open-files limit {target} < {needed} needed; raise the hard limit "
                "(ulimit -Hn) or lower the number of chargers",
                file=sys.stderr,
            )
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def run_once(
    factor: float, wall_s: float, profile: str | None = None, twin_tick_s: float = 1.0
) -> dict[str, Any]:
    """Serve the scenario for about ``wall_s`` wall seconds at ``factor``; the figures."""
    from qubit_sim.protocols.ocpp_common import iso_to_sim
    from qubit_sim.scenario.build import build_site
    from qubit_sim.scenario.loader import load_scenario
    from qubit_sim.scenario.realtime import LagStats, RealtimeSimulation

    limits = raise_fd_limit(4096)
    t0 = time.perf_counter()
    loaded = load_scenario(SCENARIO)
    step_s = loaded.spec.site.step
    until_s = max(step_s, int(wall_s * factor) // step_s * step_s)
    site = build_site(loaded, until_s=until_s)
    build_s = time.perf_counter() - t0
    marks: dict[str, tuple[float, float, int]] = {}
    lags: list[float] = []
    sim: RealtimeSimulation

    def mark(name: str) -> None:
        csms = sim.csms
        frames = 0 if csms is None else csms.traffic.received
        marks[name] = (time.perf_counter(), time.process_time(), frames)

    class RecordingLag(LagStats):
        def add(self, lag_s: float, behind: bool) -> None:
            super().add(lag_s, behind)
            lags.append(lag_s)
            mark("last_step")

    profiler = cProfile.Profile() if profile else None

    def on_ready(_: Any) -> None:
        mark("ready")
        if profiler is not None and sim._loop is not None:
            # The event loop thread serves every socket: profile it, not this thread.
            sim._loop.loop.call_soon_threadsafe(profiler.enable)

    sim = RealtimeSimulation(
        site,
        factor=factor,
        csms_port=0,
        modbus_base_port=0,
        lag="warn",
        twin_tick_s=twin_tick_s,
        on_ready=on_ready,
    )
    sim.lag_stats = RecordingLag()
    mark("start")
    sim.run()
    mark("closed")
    if profiler is not None and profile:
        # The loop thread has ended with the run; its profile is complete.
        profiler.dump_stats(profile)
    csms = sim.csms
    assert csms is not None
    start, ready, last = marks["start"], marks["ready"], marks["last_step"]
    paced_wall = last[0] - ready[0]
    paced_cpu = last[1] - ready[1]
    # Each frame received is answered by one, or answers one the CSMS sent.
    paced_frames = 2 * (last[2] - ready[2])
    calls = csms.traffic.calls
    meter_msgs = calls["MeterValues"] + calls["TransactionEvent"]
    twin_wh = sum(
        t.device.e_register_wh(c) - tx.meter_start_wh
        for t in sim.twins
        for c, tx in t.transactions.items()
    )
    csms_wh = 0.0
    irregular = 0  # transactions whose meter values at the CSMS miss or add an interval
    interval = sim.meter_interval_s
    for record in csms.state.transactions.values():
        energy = record.energy_wh
        csms_wh += 0.0 if energy is None else energy
        start_s = iso_to_sim(site.clock.start, record.start_time)
        times = sorted(iso_to_sim(site.clock.start, stamp) for stamp in record.samples)
        expected = list(range(int(start_s) + interval, until_s + 1, interval))
        irregular += [t for t in times if t != start_s] != expected
    return {
        "factor": factor,
        "chargers": len(sim.twins),
        "until_s": until_s,
        "steps": sim.engine.steps_done,
        "fd_limit": limits[0],
        "build_s": build_s,
        "connect_s": ready[0] - start[0],
        "connect_cpu_s": ready[1] - start[1],
        "booted": sum(t.booted for t in sim.twins),
        "boots_at_csms": sum(cp.boots for cp in csms.state.charge_points.values()),
        "paced_wall_s": paced_wall,
        "paced_cpu_s": paced_cpu,
        "frames_paced": paced_frames,
        "frames_total": 2 * csms.traffic.received,
        "calls": dict(calls),
        "meter_msgs": meter_msgs,
        "irregular_meter_tx": irregular,
        "transactions": len(csms.state.transactions),
        "twin_wh": twin_wh,
        "csms_wh": csms_wh,
        "lag_max_s": max(lags, default=0.0),
        "lag_p95_s": float(np.percentile(lags, 95)) if lags else 0.0,
        "lag_mean_s": float(np.mean(lags)) if lags else 0.0,
        "steps_behind": sim.lag_stats.steps_behind,
        "lags_s": [round(lag, 3) for lag in lags],
        "reconnects": sum(t.connects - 1 for t in sim.twins),
        "twin_errors": sum(len(t.errors) for t in sim.twins),
        "close_s": marks["closed"][0] - last[0],
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def run_child(factor: float, wall_s: float) -> dict[str, Any]:
    """:func:`run_once` in a fresh process; its figures."""
    cmd = [sys.executable, __file__, "--one", "--factor", str(factor), "--wall", str(wall_s)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
        raise SystemExit(f"run at factor {factor:g} failed (exit {done.returncode})")
    return json.loads(done.stdout.strip().splitlines()[-1])


def describe(r: dict[str, Any]) -> str:
    """One table row."""
    rate = r["frames_paced"] / r["paced_wall_s"] if r["paced_wall_s"] > 0 else 0.0
    per_cpu = r["frames_paced"] / r["paced_cpu_s"] if r["paced_cpu_s"] > 0 else 0.0
    cpu_pct = 100 * r["paced_cpu_s"] / r["paced_wall_s"] if r["paced_wall_s"] > 0 else 0.0
    return (
        f"{r['factor']:6g} {r['steps']:5d} {r['connect_s']:9.2f} {rate:9.0f} {per_cpu:9.0f} "
        f"{cpu_pct:6.0f} {r['peak_rss_mib']:8.0f} {r['lag_max_s']:8.3f} {r['lag_p95_s']:8.3f} "
        f"{r['steps_behind']:6d}"
    )


def check(r: dict[str, Any]) -> list[str]:
    """What is wrong with a run's traffic (empty: all fine)."""
    problems = []
    n = r["chargers"]
    if r["booted"] != n or r["boots_at_csms"] != n:
        problems.append(f"booted {r['booted']} / at the CSMS {r['boots_at_csms']} of {n}")
    if r["transactions"] != n:
        problems.append(f"{r['transactions']} transactions for {n} chargers")
    if r["irregular_meter_tx"]:
        problems.append(f"{r['irregular_meter_tx']} transactions with meter values off interval")
    # 1.6 meterStart is whole Wh: up to 1 Wh per transaction.
    if abs(r["twin_wh"] - r["csms_wh"]) > n * 1.0:
        problems.append(f"CSMS energy {r['csms_wh']:.0f} Wh, twins {r['twin_wh']:.0f} Wh")
    if r["reconnects"] or r["twin_errors"]:
        problems.append(f"{r['reconnects']} reconnects, {r['twin_errors']} errors at the twins")
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--factor", type=float, default=10.0, help="main real-time factor")
    parser.add_argument("--wall", type=float, default=90.0, help="paced wall time of it [s]")
    parser.add_argument(
        "--sweep", default="20,30,45,60", help="higher factors to try, comma-separated"
    )
    parser.add_argument("--sweep-wall", type=float, default=30.0, help="wall time of each [s]")
    parser.add_argument("--one", action="store_true", help="one run in this process (JSON out)")
    parser.add_argument("--profile", help="with --one: cProfile the event loop to this file")
    parser.add_argument(
        "--twin-tick", type=float, default=1.0, help="with --one: twins' idle tick period [s]"
    )
    args = parser.parse_args()
    if args.one:
        result = run_once(args.factor, args.wall, args.profile, args.twin_tick)
        print(json.dumps(result))
        return

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    print(
        f"python {platform.python_version()} on {platform.machine()}, {SCENARIO.name}; "
        f"open-files limit {soft}/{hard} (raised in the runs when needed)"
    )
    results = [run_child(args.factor, args.wall)]
    for factor in [float(f) for f in args.sweep.split(",") if f.strip()]:
        if results[-1]["lag_max_s"] >= LAG_LIMIT_S:
            break
        results.append(run_child(factor, args.sweep_wall))
    main_run = results[0]
    print(
        f"{main_run['chargers']} charge points; build {main_run['build_s']:.1f} s; "
        f"connect + boot {main_run['connect_s']:.2f} s wall, {main_run['connect_cpu_s']:.2f} s CPU"
    )
    print(
        f"{'factor':>6} {'steps':>5} {'connect s':>9} {'frames/s':>9} {'fr/CPU-s':>9} "
        f"{'CPU %':>6} {'RSS MiB':>8} {'lag max':>8} {'lag p95':>8} {'behind':>6}"
    )
    failed: list[str] = []
    for r in results:
        print(describe(r))
        failed += [f"factor {r['factor']:g}: {p}" for p in check(r)]
    print(
        f"CSMS received at factor {main_run['factor']:g}: "
        + ", ".join(f"{k} {v}" for k, v in sorted(main_run["calls"].items()))
        + f"; meter messages {main_run['meter_msgs']} in {main_run['steps']} steps"
    )
    holding = [r["factor"] for r in results if r["lag_max_s"] < LAG_LIMIT_S]
    print(
        "highest factor with max lag < 1 s: "
        + (f"{max(holding):g}" if holding else f"none (not even {args.factor:g})")
        + (" (the highest tried)" if holding and max(holding) == results[-1]["factor"] else "")
    )
    if failed:
        sys.exit("traffic check failed: " + "; ".join(failed))


if __name__ == "__main__":
    main()
