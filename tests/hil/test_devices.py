"""Device access: register-map codecs, a SunSpec battery's identity and expiring setpoint, and
OCPP command profiles that lapse by themselves.

Claims checked here: any value a register type can hold survives encode/decode; values that do
not fit are refused; a SunSpec battery (the project's SunSpec twin server) identifies itself
from model 1 and every setpoint goes out with its revert timer; an OCPP command profile is only
valid for ``profile_duration_s`` of the device's clock and sits above the open-ended safe one.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qubit_sim.errors import ProtocolError
from qubit_sim.hil.bench import DeviceSpec, RegisterPoint
from qubit_sim.hil.devices import OcppCharger, SunSpecBattery, decode_point, encode_point
from qubit_sim.hil.testing.processes import sunspec_battery_device
from qubit_sim.protocols.csms import Csms
from qubit_sim.twins.der_device import SimpleBattery
from qubit_sim.twins.sunspec_server import SunSpecServer

RANGES = {
    "int16": (-(2**15), 2**15 - 1),
    "uint16": (0, 2**16 - 1),
    "int32": (-(2**31), 2**31 - 1),
    "uint32": (0, 2**32 - 1),
}


@given(
    st.sampled_from(sorted(RANGES)).flatmap(
        lambda kind: st.tuples(st.just(kind), st.integers(*RANGES[kind]))
    ),
    st.sampled_from([1.0, 0.1, 0.01, 10.0]),
)
def test_integer_registers_round_trip(kind_raw: tuple[str, int], scale: float) -> None:
    kind, raw = kind_raw
    point = RegisterPoint(address=0, type=kind, scale=scale)  # type: ignore[arg-type]
    registers = encode_point(point, raw * scale)
    assert all(0 <= r <= 0xFFFF for r in registers) and len(registers) == (1 if "16" in kind else 2)
    assert decode_point(point, registers) == pytest.approx(raw * scale)


@given(st.floats(-1e6, 1e6, width=32))
def test_float_registers_round_trip(value: float) -> None:
    point = RegisterPoint(address=0, type="float32")
    assert decode_point(point, encode_point(point, value)) == value


@given(st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), max_size=16))
def test_string_registers_round_trip(text: str) -> None:
    point = RegisterPoint(address=0, type="string", count=8)
    assert decode_point(point, encode_point(point, text)) == text


def test_a_value_that_does_not_fit_is_refused() -> None:
    with pytest.raises(ProtocolError, match="does not fit a uint16 at 7"):
        encode_point(RegisterPoint(address=7, type="uint16"), -1)
    with pytest.raises(ProtocolError, match="does not fit a int16"):
        encode_point(RegisterPoint(address=7, type="int16", scale=0.1), 4000.0)


def _battery_spec(port: int) -> DeviceSpec:
    return DeviceSpec.model_validate(sunspec_battery_device(port))


def test_a_sunspec_battery_identifies_itself_and_setpoints_carry_a_revert_timer() -> None:
    async def scenario() -> tuple[dict[str, str], dict[str, object], object]:
        server = SunSpecServer(
            SimpleBattery(), port=0, identity=("Volt Works", "VW-50", "VW0042", "1.2")
        )
        await server.start()
        device = SunSpecBattery(_battery_spec(server.port))
        try:
            await device.connect()
            identity = await device.identify()
            await device.write_power(-3.0)
            state = await device.link.read()
            timer = (await device.link.read_model(704)).get("WSetRvrtTms")
        finally:
            await device.close()
            await server.stop()
        return identity, state, timer

    identity, state, timer = asyncio.run(scenario())
    assert identity == {"manufacturer": "Volt Works", "model": "VW-50", "serial": "VW0042"}
    assert state["setpoint_kw"] == pytest.approx(-3.0)
    assert timer == 7


def _charger(version: str) -> OcppCharger:
    spec = DeviceSpec.model_validate(
        {
            "id": "cp",
            "replaces": "lab1",
            "protocol": "ocpp",
            "ocpp": {"identity": "CP-9", "password": "x" * 16, "profile_duration_s": 90},
            "limits": {"max_charge_kw": 7},
        }
    )
    csms = Csms(port=0)
    csms.state.charge_point("CP-9", version)
    return OcppCharger(spec, csms)


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
def test_ocpp_commands_lapse_and_fall_back_to_the_safe_limit(version: str) -> None:
    charger = _charger(version)
    command = charger.profile(6.5, safe=False)
    now = charger.device_now()
    valid_to = datetime.fromisoformat(command["validTo"].replace("Z", "+00:00"))
    assert timedelta(seconds=88) <= valid_to - now <= timedelta(seconds=90)
    safe = charger.profile(0.0, safe=True)
    assert "validTo" not in safe
    assert safe["stackLevel"] < command["stackLevel"]
    assert safe["chargingProfilePurpose"] == command["chargingProfilePurpose"] == "TxDefaultProfile"
    schedule = command["chargingSchedule"]
    period = (schedule[0] if version == "2.0.1" else schedule)["chargingSchedulePeriod"][0]
    assert period == {"startPeriod": 0, "limit": 6500.0}
