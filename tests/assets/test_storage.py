"""BatteryBank against the pure physics functions it must reproduce bit for bit."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from qubit_sim.assets import BatteryBank
from qubit_sim.physics.battery import battery_limits_kw, battery_step

PARAMS = {
    "capacity_kwh": np.array([200.0, 13.5, 50.0]),
    "p_charge_max_kw": np.array([100.0, 5.0, 30.0]),
    "p_discharge_max_kw": np.array([90.0, 5.0, 25.0]),
    "eta_charge": np.array([0.95, 0.97, 0.9]),
    "eta_discharge": np.array([0.96, 0.97, 0.92]),
    "soc_min": np.array([0.1, 0.05, 0.2]),
    "soc_max": np.array([0.9, 1.0, 0.95]),
    "self_discharge_per_h": np.array([1e-4, 0.0, 2e-3]),
}

socs = st.lists(st.floats(0.0, 1.0), min_size=3, max_size=3)
powers = st.lists(st.floats(-150.0, 150.0), min_size=3, max_size=3)


def _bank(soc: list[float]) -> BatteryBank:
    return BatteryBank(["a", "b", "c"], soc_initial=np.array(soc), **PARAMS)


@settings(max_examples=200, deadline=None)
@given(soc=socs, steps=st.lists(powers, min_size=1, max_size=5), dt_s=st.sampled_from([60, 900]))
def test_step_is_battery_step_bit_for_bit(
    soc: list[float], steps: list[list[float]], dt_s: int
) -> None:
    bank = _bank(soc)
    state = np.array(soc)
    loss = np.zeros(3)
    throughput = np.zeros(3)
    for p_set in steps:
        expected = battery_step(state, np.array(p_set), dt_s, **PARAMS)
        p_kw = bank.step(np.array(p_set), dt_s)
        assert p_kw.tobytes() == expected.p_kw.tobytes()
        assert bank.soc.tobytes() == expected.soc.tobytes()
        state = expected.soc
        loss += expected.loss_kwh
        throughput += expected.throughput_kwh
        assert np.float64(bank.p_total_kw).tobytes() == expected.p_kw.sum().tobytes()
    assert bank.loss_kwh == float(loss.sum())
    assert bank.throughput_kwh == float(throughput.sum())


@settings(max_examples=200, deadline=None)
@given(soc=socs, dt_s=st.sampled_from([1, 60, 900, 3600]))
def test_limits_are_battery_limits_without_self_discharge(soc: list[float], dt_s: int) -> None:
    params = {k: v for k, v in PARAMS.items() if k != "self_discharge_per_h"}
    p_min, p_max = _bank(soc).limits(dt_s)
    want_min, want_max = battery_limits_kw(np.array(soc), dt_s, **params)
    assert p_min.tobytes() == want_min.tobytes()
    assert p_max.tobytes() == want_max.tobytes()


def test_limits_follow_a_change_of_step() -> None:
    bank = _bank([0.5, 0.5, 0.5])
    _, p_max_fine = bank.limits(60)
    _, p_max_coarse = bank.limits(36_000)
    # Over ten hours the room in the SOC window, not the power rating, binds.
    assert (p_max_coarse < p_max_fine).all()


ONE = {name: values[:1] for name, values in PARAMS.items()}
# Window edges, a zero setpoint of either sign and setpoints at the ratings: where a signed zero
# or a clipped value would show a difference between the one-battery path and numpy.
EDGE_SOCS = [0.0, 0.1, 0.9, 1.0, 0.5]
EDGE_POWERS = [0.0, -0.0, 100.0, -90.0, 1e-12, -1e-12, 150.0, -150.0]


@settings(max_examples=300, deadline=None)
@given(
    soc=st.one_of(st.sampled_from(EDGE_SOCS), st.floats(0.0, 1.0)),
    steps=st.lists(
        st.one_of(st.sampled_from(EDGE_POWERS), st.floats(-150.0, 150.0)), min_size=1, max_size=6
    ),
    dt_s=st.sampled_from([1, 60, 900, 36_000]),
    self_discharge=st.sampled_from([0.0, 1e-4, 0.5]),
)
def test_one_battery_matches_numpy_bit_for_bit(
    soc: float, steps: list[float], dt_s: int, self_discharge: float
) -> None:
    params = {**ONE, "self_discharge_per_h": np.array([self_discharge])}
    bank = BatteryBank(["a"], soc_initial=np.array([soc]), **params)
    state = np.array([soc])
    loss = throughput = charged = 0.0
    limit_params = {k: v for k, v in params.items() if k != "self_discharge_per_h"}
    for p_set in steps:
        p_min, p_max = bank.limits(dt_s)
        want_min, want_max = battery_limits_kw(state, dt_s, **limit_params)
        assert (p_min.tobytes(), p_max.tobytes()) == (want_min.tobytes(), want_max.tobytes())
        expected = battery_step(state, np.array([p_set]), dt_s, **params)
        bank.step(np.array([p_set]), dt_s)
        assert bank.p_kw.tobytes() == expected.p_kw.tobytes()
        assert bank.soc.tobytes() == expected.soc.tobytes()
        assert np.float64(bank.p_total_kw).tobytes() == expected.p_kw.sum().tobytes()
        state = expected.soc
        loss += float(expected.loss_kwh[0])
        throughput += float(expected.throughput_kwh[0])
        charged += max(float(expected.p_kw[0]) * (dt_s / 3600.0), 0.0)
    assert bank.loss_kwh == loss
    assert bank.throughput_kwh == throughput
    assert bank.e_charged_kwh[0] == charged


def test_one_battery_passes_a_nan_setpoint_through_as_numpy_does() -> None:
    bank = BatteryBank(["a"], soc_initial=np.array([0.5]), **ONE)
    assert np.isnan(bank.step(np.array([np.nan]), 60)).all()
