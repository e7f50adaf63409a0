"""Hardware in the loop: physical devices in place of chosen twins, behind a safety envelope.

A bench file (``hil/*.yaml``, :mod:`qubit_sim.hil.bench`) names a scenario and the physical
devices (batteries, PV inverters, chargers) that replace (or shadow) its twins; :func:`run_bench` identifies them, prints the bench
report and runs the site on the wall clock with :class:`HilSimulation`. Every command passes an
:class:`Envelope`; every write expires on the device by itself; a :class:`Watchdog` and the end
of every run put the devices in their safe state. See ``hil/README.md``.
"""

from qubit_sim.hil.bench import Bench, BenchError, DeviceSpec, Limits, load_bench, load_bench_text
from qubit_sim.hil.bridge import CommandRecord, DeviceBridge, TeeLink
from qubit_sim.hil.devices import (
    DeviceReading,
    OcppCharger,
    RegisterMapBattery,
    RegisterMapPv,
    SunSpecBattery,
    SunSpecPv,
    make_device,
)
from qubit_sim.hil.envelope import Decision, Envelope
from qubit_sim.hil.run import format_report, run_bench
from qubit_sim.hil.shadow import ShadowRecorder, ShadowSample
from qubit_sim.hil.sim import HilSimulation, IdentityCheck
from qubit_sim.hil.watchdog import Watchdog

__all__ = [
    "Bench",
    "BenchError",
    "CommandRecord",
    "Decision",
    "DeviceBridge",
    "DeviceReading",
    "DeviceSpec",
    "Envelope",
    "HilSimulation",
    "IdentityCheck",
    "Limits",
    "OcppCharger",
    "RegisterMapBattery",
    "RegisterMapPv",
    "ShadowRecorder",
    "ShadowSample",
    "SunSpecBattery",
    "SunSpecPv",
    "TeeLink",
    "Watchdog",
    "format_report",
    "load_bench",
    "load_bench_text",
    "make_device",
    "run_bench",
]
