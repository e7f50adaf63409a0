"""Throughput of the RL environments on a 25-charger site at 15-min control steps.

Prints, for ``SiteDispatch`` and ``ChargerFleet``:

* single-environment steps/s without and with the feeder's power flow, including the cost of
  ``reset`` (one reset per one-day episode of 96 steps), and the reset cost alone;
* the same through ``gymnasium.make`` (its order-enforcing and checker wrappers);
* the batched environments' aggregate steps/s for N = 64 and N = 1,024 sites (no power flow);

against baselines measured in the same run: the bare simulator stepped control period by control
period with ``Engine.run_until`` under a controller returning fixed setpoints, and under one
returning new random setpoints every period (what any environment on the one engine pays before
its observation, projection and reward). Also the cost of delivering new setpoints to all 25
chargers and the battery, vectorised (``SetpointRouter.apply_direct``) against one in-process
link call per device, and the import cost that decided where the gymnasium ids are registered.

Figures (``--seconds 2 --clock cpu``, 2 cores shared with other work, no power flow), before and
after the vectorised setpoint path, the one-site observation and projection paths:

=============================================  ===========  ===========
                                               before       after
=============================================  ===========  ===========
bare simulator, fixed setpoints [us/period]    47           41
bare simulator, changing setpoints [us/period] 122          57
setpoint delivery, all changing [us]           61 (links)   9.2
SiteDispatchEnv [steps/s]                      8,295        13,723
ChargerFleetEnv [steps/s]                      8,076        13,208
=============================================  ===========  ===========

Then the simulator's per-step core (same command, the previous code measured in the same
session): the fleet step as the charging formulas' operations fused into scratch arrays, with
the taper shared between the control cycle's observation and the step, and the EVs' maximum
power reused while nothing changed (nobody plugged in); no unused chunk buffer zeroed when a run fills its preallocated
rows; one-battery accumulators and setpoint check without numpy calls; arrivals and departures
read their session as Python values and format each instant's timestamp once. Every run is bit
for bit the same (time series, events, KPIs):

=============================================  ===========  ===========
                                               before       after
=============================================  ===========  ===========
bare simulator, fixed setpoints [us/period]    41           26
bare simulator, changing setpoints [us/period] 57           41
SiteDispatchEnv [steps/s]                      13,915       17,375
ChargerFleetEnv [steps/s]                      13,776       16,525
=============================================  ===========  ===========

Of the bare simulator's 26 us per period, the fleet step takes about 6 (22 element-wise numpy
calls on 25 chargers while EVs are plugged in), the control cycle about 5 (observation,
setpoint check and delivery), the EVs' maximum power 2, the battery 2, the engine with the EV
arrivals and departures about 5. The target of 30,000 steps/s (33 us/step) leaves the
environments 7 us for their own observation, action projection and reward, which took about
30 us then.

Then the environments' own work (the previous code measured in the same session, best of three
1-s runs, ``--clock cpu``): the observation's charger sums as one reduction over a scratch
matrix, the occupied chargers' count and summed rating kept until an EV plugs in or out, the
EV-level projection reusing two observed sums for the array it observed, the charger-fleet
blocks as one division, ``info`` as one literal with its keys formatted once,
the departure check skipped in periods nobody leaves, and the single-plant PV cap test without a
reduction. Every run is bit for bit the same:

=============================================  ===========  ===========
                                               before       after
=============================================  ===========  ===========
SiteDispatchEnv [steps/s]                      17,444       19,313
ChargerFleetEnv [steps/s]                      16,730       18,115
=============================================  ===========  ===========

Of the single environment's ~52 us per step, the engine with the control cycle takes about 30
(setpoint delivery 9 of it: wire rounding 3 and the held-limit update 2.4, outside the
environment), the observation about 10 (the EVs' maximum power 2.5, the state features 6, the
clipping and float32 copy 2), the projection 3.5 and the reward and ``info`` about 5.

What the remaining gap to 30,000 steps/s would cost, measured: the core's many small numpy and
Python calls are what is left (no single one above 10 us), so only compiled kernels could close it.
numba calls cost 0.15-0.2 us each here, but with numba installed pandapower switches to its numba
mode: its own time-series loop (the year benchmark's baseline, ``bench_powerflow.py --weeks 1``)
goes from 4.96 to 2.90 ms/step on the MV feeder, and its JIT adds about 2 s to building every
feeder (FastPowerFlow build 29 ms -> 2,178 ms). The year benchmark's 66x would fall to about 39x,
under its 50x target, unless the power flow were compiled too.

Run: ``.venv/bin/python benchmarks/bench_envs.py [--seconds 3] [--clock wall|cpu]``
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import gymnasium
import numpy as np

import qubit_sim.rl  # noqa: F401  (registers the ids)
from qubit_sim.control.base import Controller, Observation, Setpoints, SiteInfo
from qubit_sim.rl.envs import ChargerFleetEnv, SiteDispatchEnv
from qubit_sim.rl.horizon import Horizon
from qubit_sim.rl.vector import ChargerFleetVectorEnv, SiteDispatchVectorEnv, SiteVectorEnv
from qubit_sim.scenario.simulation import Simulation

SCENARIO = Path(__file__).parent / "scenarios" / "envs_25_chargers.yaml"
TARGET_SINGLE = 30_000
TARGET_BATCH = 300_000

#: The clock rates are measured with; ``--clock cpu`` uses this process's CPU time, which a
#: machine busy with other work disturbs far less than the wall clock.
clock = time.perf_counter


class FixedSetpoints(Controller):
    """Half power for every charger, battery idle: the simulator's own cost per period."""

    name = "fixed"
    # The simulator's own cost, as the environments' controller sees it: the arrays themselves,
    # not the read-only views a controller from outside the package gets.
    direct_observation = True

    def reset(self, site: SiteInfo, rng: np.random.Generator) -> None:
        super().reset(site, rng)
        self._setpoints = Setpoints(
            np.asarray(site.charger_max_kw) * 0.5,
            np.zeros(len(site.battery_ids)),
            np.full(len(site.pv_ids), np.nan),
        )

    def act(self, obs: Observation) -> Setpoints:
        return self._setpoints


class ChangingSetpoints(FixedSetpoints):
    """New random charger limits and battery power every period (as an agent's would be)."""

    name = "changing"

    def reset(self, site: SiteInfo, rng: np.random.Generator) -> None:
        super().reset(site, rng)
        self._rated = np.asarray(site.charger_max_kw)
        self._battery_kw = np.asarray(site.battery_charge_max_kw)

    def act(self, obs: Observation) -> Setpoints:
        sp = self._setpoints
        sp.charger_kw = self._rated * self.rng.uniform(0.0, 1.0, len(self._rated))
        sp.battery_kw = self._battery_kw * self.rng.uniform(-1.0, 1.0, len(self._battery_kw))
        return sp


def simulator_steps_per_s(horizon: Horizon, seconds: float, controller: type) -> float:
    """Control periods per second of the bare simulation over one-day windows."""
    powerflow = horizon.new_powerflow()
    period = horizon.period_s
    done = 0
    start = clock()
    block = 0
    while clock() - start < seconds:
        if powerflow is not None:
            powerflow.reset()
        sim = Simulation(horizon.site_for(block % 5, controller(), powerflow))
        for k in range(1, horizon.episode_controls + 1):
            sim.engine.run_until(k * period)
        done += horizon.episode_controls
        block += 1
    return done / (clock() - start)


def env_steps_per_s(env: Any, seconds: float) -> tuple[float, float]:
    """(steps/s including one reset per episode, mean reset time [ms])."""
    rng = np.random.default_rng(0)
    actions = rng.uniform(-1, 1, (96, *env.action_space.shape)).astype(np.float32)
    env.reset(seed=0)
    steps = resets = 0
    reset_s = 0.0
    start = clock()
    while clock() - start < seconds:
        t0 = clock()
        env.reset()
        reset_s += clock() - t0
        resets += 1
        for action in actions:
            env.step(action)
        steps += len(actions)
    return steps / (clock() - start), reset_s / resets * 1e3


def batch_steps_per_s(env: Any, seconds: float) -> float:
    rng = np.random.default_rng(0)
    actions = rng.uniform(-1, 1, (96, *env.action_space.shape)).astype(np.float32)
    env.reset(seed=0)
    steps = 0
    start = clock()
    while clock() - start < seconds:
        for action in actions:
            env.step(action)
        env.step(actions[0])  # the autoreset call starting the next episodes
        steps += len(actions) * env.num_envs
    return steps / (clock() - start)


def delivery_us(horizon: Horizon, calls: int = 20_000) -> tuple[float, float]:
    """(vectorised, per-device) cost of delivering new limits to every charger and the battery
    [us per control instant]: ``SetpointRouter.apply_direct`` against the same changes sent
    through one in-process link per device (the path of protocol links and fault injection)."""
    rng = np.random.default_rng(0)
    costs = []
    for vectorised in (True, False):
        sim = Simulation(horizon.site_for(0, FixedSetpoints()))
        router = sim.router
        rated = sim.fleet.rated_kw
        charger = [rated * rng.uniform(0.0, 1.0, len(rated)) for _ in range(64)]
        battery = [rng.uniform(-50.0, 50.0, sim.bank.n) for _ in range(64)]
        pv = np.full(len(sim.site.pv_ids), np.nan)
        start = clock()
        for i in range(calls):
            if vectorised:
                router.apply_direct(charger[i % 64], battery[i % 64], pv)
            else:
                changes = router.changes(charger[i % 64], battery[i % 64], pv)
                if changes is not None:
                    router.deliver(changes)
        costs.append((clock() - start) / calls * 1e6)
    return costs[0], costs[1]


def import_ms(module: str) -> float:
    """Best-of-5 time of ``import module`` in a fresh interpreter [ms]."""
    code = f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
    runs = [
        float(
            subprocess.run(
                [sys.executable, "-c", code], capture_output=True, text=True, check=True
            ).stdout
        )
        for _ in range(5)
    ]
    return min(runs) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="time per measurement [s]")
    parser.add_argument(
        "--clock", choices=("wall", "cpu"), default="wall", help="wall clock or process CPU time"
    )
    args = parser.parse_args()
    seconds = args.seconds
    global clock
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    print(f"rates per {args.clock}-clock second")

    print(
        f"import qubit_sim: {import_ms('qubit_sim'):.0f} ms; "
        f"import gymnasium: {import_ms('gymnasium'):.0f} ms "
        "(so `import qubit_sim` does not register the gymnasium ids)"
    )

    for power_flow in (False, True):
        t0 = time.perf_counter()
        horizon = Horizon(SCENARIO, power_flow=power_flow)
        label = "with power flow" if power_flow else "without power flow"
        print(
            f"\n== {label}: horizon of {horizon.n_steps} steps built once in "
            f"{time.perf_counter() - t0:.1f} s"
        )
        if not power_flow:
            vectorised, per_device = delivery_us(horizon)
            print(
                f"  setpoint delivery, every charger and the battery changing: vectorised "
                f"{vectorised:.1f} us vs per-device links {per_device:.1f} us "
                f"(x{per_device / vectorised:.1f})"
            )
        base = simulator_steps_per_s(horizon, seconds, FixedSetpoints)
        changing = simulator_steps_per_s(horizon, seconds, ChangingSetpoints)
        print(
            f"  baseline  bare simulator, fixed setpoints    {base:10,.0f} periods/s "
            f"({1e6 / base:.0f} us)"
        )
        print(
            f"            bare simulator, changing setpoints {changing:10,.0f} periods/s "
            f"({1e6 / changing:.0f} us; delivering new setpoints every period)"
        )
        for cls in (SiteDispatchEnv, ChargerFleetEnv):
            rate, reset_ms = env_steps_per_s(cls(horizon=horizon), seconds)
            made = gymnasium.make(f"qubit_sim/{cls.__name__[:-3]}-v0", horizon=horizon)
            made_rate, _ = env_steps_per_s(made, seconds)
            target = f" target >= {TARGET_SINGLE:,}" if not power_flow else ""
            print(
                f"  {cls.__name__:16s} {rate:10,.0f} steps/s ({1e6 / rate:.0f} us/step, "
                f"x{rate / base:.2f} / x{rate / changing:.2f} of the two baselines), "
                f"reset {reset_ms:.2f} ms; "
                f"via gymnasium.make {made_rate:,.0f} steps/s{target}"
            )

    horizon = Horizon(SCENARIO, power_flow=False)
    print("\n== batched environments (no power flow)")
    batched: tuple[type[SiteVectorEnv], ...] = (SiteDispatchVectorEnv, ChargerFleetVectorEnv)
    for vector_cls in batched:
        for n in (64, 1024):
            rate = batch_steps_per_s(vector_cls(horizon=horizon, num_envs=n), seconds)
            print(
                f"  {vector_cls.__name__:22s} N={n:5d} {rate:12,.0f} aggregate steps/s "
                f"(target >= {TARGET_BATCH:,})"
            )


if __name__ == "__main__":
    main()
