"""The reference devices behind the SunSpec twins: physics invariants and interfaces."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qubit_sim.errors import QubitSimError
from qubit_sim.twins import der_device
from qubit_sim.twins.der_device import (
    BatteryDevice,
    DeviceParameterError,
    PvDevice,
    SimpleBattery,
    SimplePv,
)


def test_exports_and_protocol_conformance() -> None:
    assert sorted(der_device.__all__) == [
        "BatteryDevice",
        "DeviceParameterError",
        "PvDevice",
        "SimpleBattery",
        "SimplePv",
    ]
    assert isinstance(SimpleBattery(), BatteryDevice)
    assert isinstance(SimplePv(), PvDevice)
    assert not isinstance(SimplePv(), BatteryDevice)


steps = st.lists(
    st.tuples(st.one_of(st.none(), st.floats(-200.0, 200.0)), st.integers(1, 3600)),
    min_size=1,
    max_size=30,
)


@given(steps=steps, soc=st.floats(0.1, 0.9))
def test_battery_energy_balance_and_limits(
    steps: list[tuple[float | None, int]], soc: float
) -> None:
    battery = SimpleBattery(
        capacity_kwh=50.0,
        p_charge_max_kw=20.0,
        p_discharge_max_kw=30.0,
        soc=soc,
        soc_min=0.1,
        soc_max=0.9,
        eta_charge=0.9,
        eta_discharge=0.8,
        default_p_kw=-1.0,
    )
    stored0 = battery.soc * battery.capacity_kwh
    for setpoint, dt_s in steps:
        battery.set_power_setpoint_kw(setpoint)
        assert -30.0 <= battery.p_kw <= 20.0
        mean = battery.advance(dt_s)
        assert -30.0 - 1e-9 <= mean <= 20.0 + 1e-9
        assert 0.1 - 1e-9 <= battery.soc <= 0.9 + 1e-9
    stored = battery.soc * battery.capacity_kwh
    expected = stored0 + 0.9 * battery.e_charged_kwh - battery.e_discharged_kwh / 0.8
    assert stored == pytest.approx(expected, abs=1e-6)


def test_battery_follows_setpoint_default_enable_and_fault() -> None:
    battery = SimpleBattery(default_p_kw=-2.0)
    assert battery.p_kw == -2.0  # local default without a setpoint
    battery.set_power_setpoint_kw(10.0)
    assert battery.p_kw == 10.0
    assert battery.advance(3600) == pytest.approx(10.0)
    assert battery.e_charged_kwh == pytest.approx(10.0)
    battery.set_enabled(False)
    assert battery.p_kw == 0.0 and battery.advance(3600) == 0.0
    battery.set_enabled(True)
    battery.set_fault(True)
    assert battery.p_kw == 0.0
    battery.set_fault(False)
    battery.set_power_setpoint_kw(None)
    assert battery.p_kw == -2.0


@given(
    available=st.floats(-5.0, 100.0),
    pct=st.one_of(st.none(), st.floats(0.0, 100.0)),
    dt_s=st.integers(0, 7200),
)
def test_pv_output_respects_inverter_and_curtailment(
    available: float, pct: float | None, dt_s: int
) -> None:
    pv = SimplePv(kwp=40.0, inverter_kw=30.0)
    pv.set_available_kw(available)
    pv.set_curtailment_pct(pct)
    assert 0.0 <= pv.p_available_kw <= 30.0
    assert -30.0 <= pv.p_kw <= 0.0
    if pct is not None:
        assert -pv.p_kw <= 30.0 * pct / 100.0 + 1e-12
    cap_pct = 100.0 if pct is None else pct
    assert pv.p_kw == pytest.approx(-min(max(available, 0.0), 40.0, 30.0, 30.0 * cap_pct / 100))
    before = pv.e_produced_kwh
    pv.advance(dt_s)
    assert pv.e_produced_kwh == pytest.approx(before - pv.p_kw * dt_s / 3600.0)


def test_bad_parameters_are_clear_errors() -> None:
    with pytest.raises(DeviceParameterError, match="soc_min 0.9 must not exceed soc_max 0.2"):
        SimpleBattery(soc_min=0.9, soc_max=0.2)
    with pytest.raises(DeviceParameterError, match="eta_charge = 1.5"):
        SimpleBattery(eta_charge=1.5)
    with pytest.raises(QubitSimError, match="phases = 2"):
        SimplePv(phases=2)
    with pytest.raises(ValueError, match="curtailment 120 %"):
        SimplePv().set_curtailment_pct(120)
