"""``mode: wire`` against ``mode: fast`` on the 22-charger depot with a battery and PV.

Scenario: ``benchmarks/scenarios/depot_pv_battery.yaml`` — 20 AC + 2 DC chargers, a 200 kWh
battery and a 100 kW PV plant on SimBench ``1-MV-rural--0-sw`` with a power flow every step, run
for 24 h at 1-minute steps by the Qubit greedy scheduler (control every 15 min).

Measured in one process, each run built from scratch (the build is not timed):

1. ``fast`` — in-process links (the baseline).
2. ``wire`` — 22 OCPP 1.6J charge point twins on the stack's CSMS (websockets) and two SunSpec
   Modbus TCP servers, lock-step, meter values every 60 s (the twin templates' interval).
3. ``wire`` with meter values every 15 min, to separate the cost of the lock-step itself from
   the cost of the meter-value traffic.

Printed: wall and CPU seconds, ms per step, the ratio to ``fast``, the OCPP transaction messages
and setpoint requests carried, and whether the time series are identical to ``fast`` (they must
be). A last line gives the cost of the ``fast`` setpoint path (rounding, change detection) per
control call.

Usage::

    python benchmarks/bench_wire.py [--hours 24] [--repeat 1]
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from qubit_sim.scenario.build import build_site
from qubit_sim.scenario.loader import load_scenario
from qubit_sim.scenario.simulation import Simulation
from qubit_sim.scenario.wire import WireSimulation
from qubit_sim.twins.links import SetpointRouter

HERE = Path(__file__).resolve().parent
SCENARIO = HERE / "scenarios" / "depot_pv_battery.yaml"


def timed_run(loaded: Any, hours: float, cls: type[Simulation], **options: Any) -> dict[str, Any]:
    site = build_site(loaded, until_s=int(hours * 3600))
    sim = cls(site, **options)
    wall, cpu = time.perf_counter(), time.process_time()
    sim.run()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    result: dict[str, Any] = {
        "wall_s": wall,
        "cpu_s": cpu,
        "steps": sim.engine.steps_done,
        "frame": sim.recorder.frame(),
        "setpoints_sent": sim.router.sent,
    }
    if isinstance(sim, WireSimulation) and sim.csms is not None:
        result["tx_messages"] = len(sim.csms.state.journal)
        result["traffic"] = dict(sim.traffic)
    return result


def router_cost_us(loaded: Any, calls: int = 20000) -> tuple[float, float]:
    """Per control call [us]: unchanged setpoints, and setpoints where 3 chargers changed."""
    site = build_site(loaded, until_s=3600)
    sim = Simulation(site)
    router: SetpointRouter = sim.router
    n, nb, npv = sim.fleet.n, sim.bank.n, len(site.pv_ids)
    rng = np.random.default_rng(1)
    charger = rng.uniform(0, 22, n)
    battery, pv = rng.uniform(-50, 50, nb), np.full(npv, np.nan)
    router.apply_direct(charger, battery, pv)
    start = time.perf_counter()
    for _ in range(calls):
        router.apply_direct(charger, battery, pv)
    quiet = (time.perf_counter() - start) / calls * 1e6
    variants = [charger.copy() for _ in range(2)]
    for k, variant in enumerate(variants):
        variant[[0, 5, 9]] += 0.5 * (k + 1)
    start = time.perf_counter()
    for i in range(calls):
        router.apply_direct(variants[i % 2], battery, pv)
    busy = (time.perf_counter() - start) / calls * 1e6
    return quiet, busy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--hours", type=float, default=24.0, help="simulated hours [h]")
    parser.add_argument("--repeat", type=int, default=1, help="runs per variant (best is kept)")
    args = parser.parse_args()
    loaded = load_scenario(SCENARIO)
    print(
        f"python {platform.python_version()} on {platform.machine()}, {SCENARIO.name}, "
        f"{args.hours:g} h at 60 s steps"
    )

    variants: list[tuple[str, type[Simulation], dict[str, Any]]] = [
        ("fast", Simulation, {}),
        ("wire, meter values 60 s", WireSimulation, {"meter_interval_s": 60}),
        ("wire, meter values 15 min", WireSimulation, {"meter_interval_s": 900}),
    ]
    results: dict[str, dict[str, Any]] = {}
    differing: list[str] = []
    for name, cls, options in variants:
        runs = [timed_run(loaded, args.hours, cls, **options) for _ in range(args.repeat)]
        results[name] = min(runs, key=lambda r: r["wall_s"])

    base = results["fast"]
    print(
        f"{'variant':28} {'wall s':>8} {'cpu s':>8} {'ms/step':>8} {'x fast':>8} "
        f"{'tx msgs':>8} {'setpts':>7}  identical"
    )
    for name, r in results.items():
        identical = "yes"
        if r is not base:
            try:
                pd.testing.assert_frame_equal(base["frame"], r["frame"], check_exact=True)
            except AssertionError:
                identical = "NO"
                differing.append(name)
        print(
            f"{name:28} {r['wall_s']:8.2f} {r['cpu_s']:8.2f} "
            f"{r['wall_s'] / r['steps'] * 1e3:8.3f} {r['wall_s'] / base['wall_s']:8.1f} "
            f"{r.get('tx_messages', 0):8d} {r['setpoints_sent']:7d}  {identical}"
        )
    quiet, busy = router_cost_us(loaded)
    print(
        f"fast setpoint path per control call: {quiet:.1f} us unchanged, "
        f"{busy:.1f} us with 3 chargers changed"
    )
    if differing:
        sys.exit(f"results differ from fast mode: {', '.join(differing)}")


if __name__ == "__main__":
    main()
