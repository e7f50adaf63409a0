"""EV charging curve and charge step."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from qubit_sim.physics.ev import charger_grid_power_kw, ev_charge_step, ev_max_power_kw


def test_taper_is_flat_to_the_knee_then_linear_to_zero() -> None:
    soc = np.array([0.0, 0.5, 0.8, 0.9, 0.95, 1.0])
    np.testing.assert_allclose(ev_max_power_kw(soc, 100.0, 0.8), [100, 100, 100, 50, 25, 0])
    assert ev_max_power_kw(1.2, 100.0, 0.8) == 0.0


def test_step_limited_by_charger_taper_need_and_room() -> None:
    hour = 3600.0
    # charger limit
    assert ev_charge_step(0.2, 50.0, 60.0, 7.4, 11.0, 0.8, hour).p_kw == pytest.approx(7.4)
    # vehicle limit
    assert ev_charge_step(0.2, 50.0, 60.0, 22.0, 11.0, 0.8, hour).p_kw == pytest.approx(11.0)
    # taper evaluated at the start-of-step SOC
    assert ev_charge_step(0.9, 50.0, 100.0, 150.0, 150.0, 0.8, 60.0).p_kw == pytest.approx(75.0)
    # remaining need
    met = ev_charge_step(0.2, 3.0, 60.0, 22.0, 11.0, 0.8, hour)
    assert met.p_kw == pytest.approx(3.0)
    assert met.e_needed_kwh == 0.0
    # battery room: the need (50 kWh) exceeds the 0.6 kWh left; the taper still allows 10 kW
    full = ev_charge_step(0.99, 50.0, 60.0, 1000.0, 1000.0, 0.0, hour)
    assert full.soc == 1.0
    assert full.e_kwh == pytest.approx(0.6)


@pytest.mark.parametrize("limit", [np.nan, np.inf])
def test_nan_or_inf_limit_means_no_limit(limit: float) -> None:
    result = ev_charge_step(0.3, 40.0, 60.0, limit, 11.0, 0.8, 900.0)
    assert result.p_kw == pytest.approx(11.0)
    assert result.e_kwh == pytest.approx(11.0 * 0.25)
    assert result.soc == pytest.approx(0.3 + 11.0 * 0.25 / 60.0)
    assert result.e_needed_kwh == pytest.approx(40.0 - 11.0 * 0.25)


def test_negative_limit_or_need_gives_zero_power() -> None:
    assert ev_charge_step(0.3, 10.0, 60.0, -5.0, 11.0, 0.8, 60.0).p_kw == 0.0
    idle = ev_charge_step(0.3, -1.0, 60.0, 11.0, 11.0, 0.8, 60.0)
    assert idle.p_kw == 0.0 and idle.e_needed_kwh == 0.0 and idle.soc == 0.3


def test_vectorised_over_evs() -> None:
    result = ev_charge_step(
        np.array([0.1, 0.85, 1.0]),
        np.array([10.0, 10.0, 10.0]),
        np.array([50.0, 50.0, 50.0]),
        np.array([np.nan, 100.0, 50.0]),
        np.array([11.0, 100.0, 100.0]),
        0.8,
        60.0,
    )
    np.testing.assert_allclose(result.p_kw, [11.0, 75.0, 0.0])


def test_charger_grid_power_divides_by_efficiency() -> None:
    np.testing.assert_allclose(charger_grid_power_kw(np.array([9.5, 0.0]), 0.95), [10.0, 0.0])


@settings(max_examples=100, deadline=None)
@given(
    soc=hnp.arrays(np.float64, 20, elements=st.floats(0.0, 1.0)),
    p_max=st.floats(0.1, 400.0),
    knee=st.floats(0.0, 0.99),
)
def test_taper_is_monotone_and_bounded(soc: np.ndarray, p_max: float, knee: float) -> None:
    ordered = np.sort(soc)
    power = ev_max_power_kw(ordered, p_max, knee)
    assert np.all(np.diff(power) <= 1e-12)
    assert np.all((power >= 0) & (power <= p_max))


@st.composite
def sessions(draw: st.DrawFn) -> dict:
    n = draw(st.integers(1, 10))

    def floats(lo: float, hi: float) -> np.ndarray:
        return draw(hnp.arrays(np.float64, n, elements=st.floats(lo, hi)))

    limit = floats(0.0, 400.0)
    limit[floats(0.0, 1.0) < 0.2] = np.nan
    return dict(
        soc=floats(0.0, 1.0),
        e_needed_kwh=floats(0.0, 150.0),
        capacity_kwh=floats(5.0, 150.0),
        p_limit_kw=limit,
        p_max_kw=floats(1.0, 350.0),
        knee_soc=floats(0.0, 0.95),
        dt_s=draw(st.sampled_from([1.0, 60.0, 900.0, 3600.0])),
    )


@settings(max_examples=80, deadline=None)
@given(sessions())
def test_ev_never_exceeds_need_or_full_battery(case: dict) -> None:
    soc, need = case["soc"].copy(), case["e_needed_kwh"].copy()
    delivered = np.zeros_like(soc)
    fixed = {k: case[k] for k in ("capacity_kwh", "p_limit_kw", "p_max_kw", "knee_soc", "dt_s")}
    for _ in range(60):
        result = ev_charge_step(soc=soc, e_needed_kwh=need, **fixed)
        assert np.all(result.p_kw >= 0)
        assert np.all(result.p_kw <= np.fmin(case["p_limit_kw"], case["p_max_kw"]) + 1e-12)
        assert np.all(result.p_kw <= ev_max_power_kw(soc, case["p_max_kw"], case["knee_soc"]))
        np.testing.assert_allclose(
            (result.soc - soc) * case["capacity_kwh"], result.e_kwh, rtol=0, atol=1e-9
        )
        delivered += result.e_kwh
        soc, need = result.soc, result.e_needed_kwh
        assert np.all(soc <= 1.0)
        assert np.all(need >= 0.0)
    assert np.all(delivered <= case["e_needed_kwh"] + 1e-9)
    np.testing.assert_allclose(delivered + need, case["e_needed_kwh"], rtol=0, atol=1e-9)
