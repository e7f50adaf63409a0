"""Takeover before the clock starts, and the safe state's availability on exit.

Claims checked here: a battery found running beyond its envelope on its own is put in its safe
state and the bench waits for its read-back to come within the envelope before the clock starts,
so not one step measures the power it had before; a battery that does not obey stops the run
before the clock starts, with an error naming it and its reading, and is left in its safe state;
a safe state with ``available: false`` is written to the device (SunSpec 802 ``SetOp``) along
with its power, after which the bridge writes nothing else.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from qubit_sim.errors import SimulationError
from qubit_sim.hil import run_bench
from qubit_sim.hil.bench import DeviceSpec
from qubit_sim.hil.bridge import DeviceBridge
from qubit_sim.hil.devices import SunSpecBattery
from qubit_sim.hil.envelope import Envelope
from qubit_sim.hil.testing.processes import (
    FakeBatteryProcess,
    battery_device,
    sunspec_battery_device,
    write_bench,
)
from qubit_sim.twins.der_device import SimpleBattery
from qubit_sim.twins.sunspec_server import SunSpecServer

ROOT = Path(__file__).resolve().parents[2]
LAB_SITE = ROOT / "hil" / "scenarios" / "lab_site.yaml"


def test_a_device_running_on_its_own_is_brought_into_its_envelope_first(
    fake_batteries: Callable[..., FakeBatteryProcess], tmp_path: Path
) -> None:
    # Discharging 9 kW on its own, 5 kW allowed; at 5 kW/s it needs about 0.8 s to comply.
    battery = fake_batteries("--initial-kw", "-9", "--ramp-kw-per-s", "5")
    bench = write_bench(
        tmp_path, LAB_SITE, [battery_device(battery.port)], name="takeover", until="2min"
    )
    result = run_bench(bench, out=tmp_path / "hil", twin_tick_s=0.2)
    takeover = result.manifest["hil"]["devices"][0]["takeover"]
    assert -5.2 <= takeover["p_kw"] <= 5.2
    assert takeover["wait_s"] >= 0.3  # it did have to wait for the device
    frame = result.timeseries()
    assert frame["battery_p_kw"].abs().max() <= 5.0 + 1e-6
    assert battery.setpoint_writes()[0]["setpoint_kw"] == 0.0  # the first write is the safe one


def test_a_device_that_does_not_obey_stops_the_run_in_its_safe_state(
    fake_batteries: Callable[..., FakeBatteryProcess], tmp_path: Path
) -> None:
    battery = fake_batteries("--initial-kw", "9", "--stuck-kw", "9")
    bench = write_bench(
        tmp_path,
        LAB_SITE,
        [battery_device(battery.port)],
        name="stuck",
        takeover_timeout_s=0.5,
    )
    with pytest.raises(SimulationError) as caught:
        run_bench(bench, out=tmp_path / "hil", twin_tick_s=0.2)
    message = str(caught.value)
    assert "bess" in message and "reads 9 kW" in message
    assert "takeover_timeout_s = 0.5 s" in message and "[-5, 5] kW" in message
    writes = battery.setpoint_writes()
    assert writes and all(w["setpoint_kw"] == 0.0 for w in writes)  # nothing but the safe state


def _spec(port: int) -> DeviceSpec:
    return DeviceSpec.model_validate(
        sunspec_battery_device(port, safe_state={"p_kw": 0.0, "available": False})
    )


def test_the_safe_state_makes_the_device_unavailable_and_locks_the_bridge() -> None:
    twin = SimpleBattery()

    async def scenario() -> tuple[list[bool], list[float], str]:
        server = SunSpecServer(twin, port=0, identity=("Volt Works", "VW-50", "VW0042", "1.2"))
        await server.start()
        spec = _spec(server.port)
        device = SunSpecBattery(spec)
        bridge = DeviceBridge(device, Envelope(spec.id, spec.limits, spec.kind), refresh_s=1.0)
        enabled: list[bool] = []
        setpoints: list[float] = []
        try:
            await device.connect()
            await bridge.set_power_limit(-3.0)
            state = await device.link.read()
            enabled.append(twin.enabled)
            setpoints.append(float(state["setpoint_kw"]))
            await bridge.safe_state()
            state = await device.link.read()
            enabled.append(twin.enabled)
            setpoints.append(float(state["setpoint_kw"]))
            after = await bridge.set_power_limit(4.0)
            state = await device.link.read()
            setpoints.append(float(state["setpoint_kw"]))
        finally:
            await device.close()
            await server.stop()
        return enabled, setpoints, after.status

    enabled, setpoints, status = asyncio.run(scenario())
    assert enabled == [True, False]
    assert setpoints == pytest.approx([-3.0, 0.0, 0.0])
    assert status == "Locked"
