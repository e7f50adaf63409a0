"""Battery step: hand-computed cases and property tests of the invariants."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from qubit_sim.physics.battery import BatteryStep, battery_limits_kw, battery_step

BASE = dict(
    capacity_kwh=100.0,
    p_charge_max_kw=50.0,
    p_discharge_max_kw=40.0,
    eta_charge=0.95,
    eta_discharge=0.9,
    soc_min=0.1,
    soc_max=0.9,
    self_discharge_per_h=0.0,
)


def step(soc: float, p_set_kw: float, dt_s: float = 3600.0, **over: float) -> BatteryStep:
    return battery_step(soc, p_set_kw, dt_s, **{**BASE, **over})


def test_charging_stores_eta_charge_of_ac_energy() -> None:
    result = step(0.5, 10.0)
    assert result.p_kw == pytest.approx(10.0)
    assert result.soc == pytest.approx(0.5 + 10.0 * 0.95 / 100.0)
    assert result.loss_kwh == pytest.approx(0.5)
    assert result.throughput_kwh == pytest.approx(10.0)


def test_discharging_removes_energy_over_eta_discharge() -> None:
    result = step(0.5, -9.0)
    assert result.p_kw == pytest.approx(-9.0)
    assert result.soc == pytest.approx(0.5 - 9.0 / 0.9 / 100.0)
    assert result.loss_kwh == pytest.approx(9.0 / 0.9 - 9.0)
    assert result.throughput_kwh == pytest.approx(9.0)


def test_power_limits_clip_the_setpoint() -> None:
    assert step(0.5, 80.0, dt_s=60).p_kw == pytest.approx(50.0)
    assert step(0.5, -80.0, dt_s=60).p_kw == pytest.approx(-40.0)


def test_soc_window_clips_charging_at_soc_max() -> None:
    result = step(0.85, 50.0)  # room 5 kWh stored = 5/0.95 kWh AC in one hour
    assert result.p_kw == pytest.approx(5.0 / 0.95)
    assert result.soc == 0.9


def test_soc_window_clips_discharging_at_soc_min() -> None:
    result = step(0.12, -40.0)  # 2 kWh stored above the floor gives 1.8 kWh AC
    assert result.p_kw == pytest.approx(-1.8)
    assert result.soc == 0.1


def test_self_discharge_is_a_loss_and_stops_at_soc_min() -> None:
    result = step(0.5, 0.0, self_discharge_per_h=0.01)
    assert result.soc == pytest.approx(0.5 * 0.99)
    assert result.loss_kwh == pytest.approx(0.5)
    floor = step(0.1005, 0.0, self_discharge_per_h=0.5)
    assert floor.soc == pytest.approx(0.1)
    assert floor.loss_kwh == pytest.approx(0.05)


def test_soc_outside_window_only_moves_towards_it() -> None:
    low = step(0.05, -10.0)
    assert low.p_kw == 0.0 and low.soc == pytest.approx(0.05)
    charged = step(0.05, 10.0)
    assert charged.soc > 0.05
    high = step(0.95, 10.0)
    assert high.p_kw == 0.0 and high.soc == pytest.approx(0.95)


def test_limits_match_what_the_step_executes() -> None:
    p_min, p_max = battery_limits_kw(
        np.array([0.12, 0.5, 0.85]), 3600.0, **{**BASE, "self_discharge_per_h": 0.001}
    )
    np.testing.assert_allclose(p_min, [-(11.988 - 10) * 0.9, -(49.95 - 10) * 0.9, -40.0])
    assert p_max[1] == pytest.approx((90.0 - 49.95) / 0.95)
    result = battery_step(
        np.array([0.12, 0.5, 0.85]), p_max, 3600.0, **{**BASE, "self_discharge_per_h": 0.001}
    )
    np.testing.assert_allclose(result.p_kw, p_max)


def test_vectorised_over_devices_with_mixed_parameters() -> None:
    result = battery_step(
        np.array([0.2, 0.5, 0.8]),
        np.array([20.0, 0.0, -20.0]),
        900.0,
        np.array([50.0, 100.0, 200.0]),
        50.0,
        50.0,
        np.array([0.9, 0.95, 1.0]),
        0.95,
        0.0,
        1.0,
        0.0,
    )
    assert result.p_kw.shape == (3,)
    np.testing.assert_allclose(result.soc, [0.2 + 5 * 0.9 / 50, 0.5, 0.8 - 5 / 0.95 / 200])


devices = st.integers(min_value=1, max_value=12)


@st.composite
def battery_cases(draw: st.DrawFn) -> dict:
    n = draw(devices)

    def floats(lo: float, hi: float) -> np.ndarray:
        return draw(hnp.arrays(np.float64, n, elements=st.floats(lo, hi)))

    soc_min = floats(0.0, 0.5)
    soc_max = floats(0.5, 1.0)
    frac = floats(0.0, 1.0)
    return dict(
        # Clipped: soc_min + 1 * (soc_max - soc_min) can round one ulp past soc_max, a start
        # outside the window that no step is asked to repair.
        soc=np.clip(soc_min + frac * (soc_max - soc_min), soc_min, soc_max),
        p_set_kw=floats(-2000.0, 2000.0),
        dt_s=draw(st.sampled_from([1.0, 60.0, 300.0, 900.0, 3600.0])),
        capacity_kwh=floats(0.5, 2000.0),
        p_charge_max_kw=floats(0.0, 1000.0),
        p_discharge_max_kw=floats(0.0, 1000.0),
        eta_charge=floats(0.5, 1.0),
        eta_discharge=floats(0.5, 1.0),
        soc_min=soc_min,
        soc_max=soc_max,
        self_discharge_per_h=floats(0.0, 0.05),
    )


@settings(max_examples=150, deadline=None)
@given(battery_cases())
def test_step_invariants(case: dict) -> None:
    result = battery_step(**case)
    # The SOC window holds exactly, not just to a tolerance.
    assert np.all(result.soc >= case["soc_min"])
    assert np.all(result.soc <= case["soc_max"])
    dt_h = case["dt_s"] / 3600.0
    delta_e = (result.soc - case["soc"]) * case["capacity_kwh"]
    np.testing.assert_allclose(delta_e, result.p_kw * dt_h - result.loss_kwh, rtol=0, atol=1e-9)
    assert np.all(result.loss_kwh >= -1e-12)
    np.testing.assert_allclose(result.throughput_kwh, np.abs(result.p_kw) * dt_h)
    assert np.all(result.p_kw <= case["p_charge_max_kw"])
    assert np.all(result.p_kw >= -case["p_discharge_max_kw"])
    # Never reverses or amplifies the request.
    assert np.all(result.p_kw * case["p_set_kw"] >= 0)
    assert np.all(np.abs(result.p_kw) <= np.abs(case["p_set_kw"]))


@settings(max_examples=80, deadline=None)
@given(battery_cases())
def test_limits_are_feasible_and_tight(case: dict) -> None:
    args = {k: v for k, v in case.items() if k != "p_set_kw"}
    p_min, p_max = battery_limits_kw(**args)
    assert np.all(p_min <= 0) and np.all(p_max >= 0)
    at_max = battery_step(p_set_kw=p_max, **args)
    at_min = battery_step(p_set_kw=p_min, **args)
    np.testing.assert_allclose(at_max.p_kw, p_max)
    np.testing.assert_allclose(at_min.p_kw, p_min)
    beyond = battery_step(p_set_kw=p_max + 1.0, **args)
    np.testing.assert_allclose(beyond.p_kw, p_max)


@settings(max_examples=40, deadline=None)
@given(battery_cases(), st.integers(0, 2**32 - 1))
def test_energy_is_conserved_over_many_steps(case: dict, seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = len(case["soc"])
    soc = case["soc"].copy()
    args = {k: v for k, v in case.items() if k not in ("soc", "p_set_kw")}
    e_in = np.zeros(n)
    losses = np.zeros(n)
    for _ in range(100):
        result = battery_step(soc=soc, p_set_kw=rng.uniform(-1500, 1500, n), **args)
        e_in += result.p_kw * case["dt_s"] / 3600.0
        losses += result.loss_kwh
        soc = result.soc
        assert np.all((soc >= case["soc_min"]) & (soc <= case["soc_max"]))
    stored = (soc - case["soc"]) * case["capacity_kwh"]
    np.testing.assert_allclose(stored, e_in - losses, rtol=0, atol=1e-9)
