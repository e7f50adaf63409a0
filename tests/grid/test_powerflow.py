"""FastPowerFlow against pandapower's own runpp, and its invariants."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qubit_sim.errors import GridError
from qubit_sim.grid import FastPowerFlow, PowerFlowResult, load_network, runpp_reference

VM_TOL_PU = 1e-6
LOADING_TOL_PCT = 1e-4
POWER_TOL_KW = 1e-3


def _random_injections(
    net: Any, n_sites: int, rng: np.random.Generator, site_kw: float, spread: float = 1.0
) -> dict[str, Any]:
    """Site powers up to ``site_kw``; loads and PV at their net values times 1 +- ``spread``."""
    low, high = 1.0 - spread, 1.0 + spread
    return {
        "site_p_kw": rng.uniform(-site_kw, 2 * site_kw, n_sites),
        "site_q_kvar": rng.uniform(-0.3 * site_kw, 0.3 * site_kw, n_sites),
        "load_p_mw": net.load["p_mw"].to_numpy() * rng.uniform(low, high, len(net.load)),
        "load_q_mvar": net.load["q_mvar"].to_numpy() * rng.uniform(low, high, len(net.load)),
        "sgen_p_mw": net.sgen["p_mw"].to_numpy() * rng.uniform(low, high, len(net.sgen)),
    }


def _assert_same(fast: PowerFlowResult, ref: PowerFlowResult) -> None:
    assert fast.converged and ref.converged
    np.testing.assert_array_equal(np.isnan(fast.vm_pu), np.isnan(ref.vm_pu))
    np.testing.assert_allclose(fast.vm_pu, ref.vm_pu, rtol=0, atol=VM_TOL_PU)
    np.testing.assert_allclose(fast.va_degree, ref.va_degree, rtol=0, atol=1e-4)
    np.testing.assert_allclose(
        fast.line_loading_pct, ref.line_loading_pct, rtol=0, atol=LOADING_TOL_PCT
    )
    np.testing.assert_allclose(
        fast.trafo_loading_pct, ref.trafo_loading_pct, rtol=0, atol=LOADING_TOL_PCT
    )
    assert fast.losses_kw == pytest.approx(ref.losses_kw, abs=POWER_TOL_KW)
    assert fast.ext_grid_p_kw == pytest.approx(ref.ext_grid_p_kw, abs=POWER_TOL_KW)
    assert fast.ext_grid_q_kvar == pytest.approx(ref.ext_grid_q_kvar, abs=POWER_TOL_KW)


def _compare_many(
    net: Any, sites: list[int], seed: int, n_sets: int, site_kw: float, spread: float = 1.0
) -> None:
    fast = FastPowerFlow(net, sites)
    reference_net = copy.deepcopy(net)
    rng = np.random.default_rng(seed)
    for _ in range(n_sets):
        step = _random_injections(net, len(sites), rng, site_kw, spread)
        _assert_same(
            fast.solve(**step), runpp_reference(reference_net, sites, **step, inplace=True)
        )


def test_lv_matches_runpp_over_random_injections(lv_net_shared: Any) -> None:
    _compare_many(lv_net_shared, [5], seed=1, n_sets=30, site_kw=60.0)


def test_lv_site_at_several_buses(lv_net_shared: Any) -> None:
    _compare_many(lv_net_shared, [2, 9, 12, 9], seed=2, n_sets=15, site_kw=20.0)


def test_mv_matches_runpp_over_random_injections(mv_net_shared: Any) -> None:
    _compare_many(mv_net_shared, [30, 60, 88], seed=3, n_sets=30, site_kw=800.0)


def _open_line(net: Any, line: int) -> None:
    on_line = net.switch.index[(net.switch.et == "l") & (net.switch.element == line)]
    assert len(on_line) == 2
    net.switch.loc[on_line, "closed"] = False


def test_mv_extra_open_line_switch_is_honoured(mv_net: Any, mv_net_shared: Any) -> None:
    # Opening both switches of line 40 cuts off the buses it feeds (the feeder runs radially).
    _open_line(mv_net, 40)
    sites = [30, 60]
    closed = FastPowerFlow(mv_net_shared, sites).solve(np.array([500.0, 500.0]))
    opened = FastPowerFlow(mv_net, sites).solve(np.array([500.0, 500.0]))
    assert closed.line_loading_pct[40] > 1.0
    assert np.isnan(opened.line_loading_pct[40])
    assert np.isnan(opened.vm_pu).sum() == 4
    assert not np.isnan(closed.vm_pu).any()
    _compare_many(mv_net, sites, seed=4, n_sets=10, site_kw=800.0)


def test_mv_reconfiguration_through_a_tie_switch(mv_net: Any, mv_net_shared: Any) -> None:
    # Close every normally-open tie (meshing the feeder), then open line 40: its buses stay fed.
    ties = mv_net.switch.index[~mv_net.switch.closed]
    assert len(ties) == 6
    mv_net.switch.loc[ties, "closed"] = True
    _open_line(mv_net, 40)
    opened = FastPowerFlow(mv_net, [30]).solve(np.array([500.0]))
    radial = FastPowerFlow(mv_net_shared, [30]).solve(np.array([500.0]))
    assert not np.isnan(opened.vm_pu).any()
    assert np.abs(opened.vm_pu - radial.vm_pu).max() > 1e-3
    _compare_many(mv_net, [30], seed=10, n_sets=10, site_kw=800.0)


def test_mv_one_open_switch_end_matches_runpp(mv_net: Any) -> None:
    # One open end leaves the line hanging from the other end (charging current only).
    switch = mv_net.switch.index[(mv_net.switch.et == "l") & mv_net.switch.closed][10]
    mv_net.switch.loc[switch, "closed"] = False
    _compare_many(mv_net, [30], seed=5, n_sets=5, site_kw=800.0)


def test_out_of_service_line_and_bus_match_runpp(lv_net: Any) -> None:
    # Two buses that hang on one line each: one loses its line, the other is switched off.
    ends = np.r_[lv_net.line["from_bus"].to_numpy(), lv_net.line["to_bus"].to_numpy()]
    leaves = [int(b) for b in lv_net.bus.index if (ends == b).sum() == 1 and b != 5]
    assert len(leaves) >= 2
    cut, off = leaves[:2]
    cut_line = lv_net.line.index[(lv_net.line["to_bus"] == cut) | (lv_net.line["from_bus"] == cut)]
    lv_net.line.loc[cut_line, "in_service"] = False
    lv_net.bus.loc[off, "in_service"] = False
    result = FastPowerFlow(lv_net, [5]).solve(np.array([10.0]))
    assert np.isnan(result.vm_pu[lv_net.bus.index.get_indexer([cut, off])]).all()
    assert np.isnan(result.vm_pu).sum() == 2
    _compare_many(lv_net, [5], seed=6, n_sets=5, site_kw=30.0)


def test_scaling_and_out_of_service_elements_match_runpp(lv_net: Any) -> None:
    lv_net.load.loc[lv_net.load.index[:4], "scaling"] = [0.5, 2.0, 0.0, 1.5]
    lv_net.load.loc[lv_net.load.index[5], "in_service"] = False
    lv_net.sgen.loc[lv_net.sgen.index[0], "in_service"] = False
    lv_net.sgen.loc[lv_net.sgen.index[1], "scaling"] = 0.3
    _compare_many(lv_net, [5, 9], seed=11, n_sets=5, site_kw=30.0)


def test_pandapower_net_with_gens_shunts_wards_and_impedances() -> None:
    net = load_network("pandapower:example_multivoltage")
    assert len(net.gen) and len(net.xward) and len(net.shunt) and len(net.impedance)
    _compare_many(net, [54, 55], seed=7, n_sets=5, site_kw=10.0, spread=0.2)


def test_balance_ext_grid_equals_loads_minus_pv_plus_losses(mv_net_shared: Any) -> None:
    net = mv_net_shared
    fast = FastPowerFlow(net, [30, 60])
    rng = np.random.default_rng(8)
    for _ in range(20):
        step = _random_injections(net, 2, rng, 800.0)
        result = fast.solve(**step)
        drawn_kw = (
            step["load_p_mw"].sum() * 1e3 + step["site_p_kw"].sum() - step["sgen_p_mw"].sum() * 1e3
        )
        assert result.losses_kw > 0
        assert result.ext_grid_p_kw == pytest.approx(drawn_kw + result.losses_kw, abs=1e-3)


@settings(max_examples=60, deadline=None)
@given(
    site_p_kw=st.floats(-150.0, 150.0),
    site_q_kvar=st.floats(-40.0, 40.0),
    load_scale=st.floats(0.0, 2.0),
    pv_scale=st.floats(0.0, 2.0),
)
def test_balance_holds_for_any_moderate_injection(
    lv_fast: FastPowerFlow,
    lv_net_shared: Any,
    site_p_kw: float,
    site_q_kvar: float,
    load_scale: float,
    pv_scale: float,
) -> None:
    load_p = lv_net_shared.load["p_mw"].to_numpy() * load_scale
    sgen_p = lv_net_shared.sgen["p_mw"].to_numpy() * pv_scale
    result = lv_fast.solve(
        np.array([site_p_kw]),
        np.array([site_q_kvar]),
        load_p,
        lv_net_shared.load["q_mvar"].to_numpy() * load_scale,
        sgen_p,
    )
    drawn_kw = load_p.sum() * 1e3 + site_p_kw - sgen_p.sum() * 1e3
    assert result.converged
    assert result.losses_kw >= 0
    assert result.ext_grid_p_kw == pytest.approx(drawn_kw + result.losses_kw, abs=1e-3)
    assert np.all((result.vm_pu > 0.8) & (result.vm_pu < 1.2))


@pytest.fixture(scope="module")
def lv_fast(lv_net_shared: Any) -> FastPowerFlow:
    return FastPowerFlow(lv_net_shared, [5])


def test_more_site_load_lowers_the_site_voltage(lv_net_shared: Any) -> None:
    fast = FastPowerFlow(lv_net_shared, [5])
    position = lv_net_shared.bus.index.get_loc(5)
    volts = [fast.solve(np.array([p])).vm_pu[position] for p in (-50.0, 0.0, 50.0, 100.0)]
    assert all(a > b for a, b in zip(volts, volts[1:], strict=False))


def test_jacobian_reuse_gives_the_same_answer(mv_net_shared: Any) -> None:
    reuse = FastPowerFlow(mv_net_shared, [30])
    fresh = FastPowerFlow(mv_net_shared, [30], reuse_jacobian=False)
    rng = np.random.default_rng(9)
    for _ in range(10):
        step = _random_injections(mv_net_shared, 1, rng, 800.0)
        a, b = reuse.solve(**step), fresh.solve(**step)
        np.testing.assert_allclose(a.vm_pu, b.vm_pu, rtol=0, atol=1e-9)
        np.testing.assert_allclose(a.line_loading_pct, b.line_loading_pct, rtol=0, atol=1e-6)


def test_defaults_are_the_nets_own_values(lv_net_shared: Any) -> None:
    fast = FastPowerFlow(lv_net_shared, [5])
    result = fast.solve(np.array([0.0]))
    reference = runpp_reference(lv_net_shared, [5], np.array([0.0]))
    _assert_same(result, reference)


def test_the_callers_net_is_not_modified(lv_net: Any) -> None:
    before = lv_net.load["p_mw"].copy()
    n_loads = len(lv_net.load)
    FastPowerFlow(lv_net, [5]).solve(np.array([50.0]), load_p_mw=np.zeros(n_loads))
    runpp_reference(lv_net, [5], np.array([50.0]))
    assert len(lv_net.load) == n_loads
    assert lv_net.load["p_mw"].equals(before)


def test_divergence_raises_with_the_step_context(lv_net_shared: Any) -> None:
    fast = FastPowerFlow(lv_net_shared, [5])
    with pytest.raises(GridError, match="did not converge at t=900 s"):
        fast.solve(np.array([5e4]), context="t=900 s")
    # A failed step does not poison the warm start of the next one.
    after = fast.solve(np.array([10.0]))
    _assert_same(after, runpp_reference(lv_net_shared, [5], np.array([10.0])))


def test_divergence_can_be_reported_instead(lv_net_shared: Any) -> None:
    fast = FastPowerFlow(lv_net_shared, [5], raise_on_divergence=False)
    result = fast.solve(np.array([5e4]))
    assert not result.converged
    assert np.isnan(result.vm_pu).all()
    assert np.isnan(result.ext_grid_p_kw)
    with pytest.raises(GridError, match="runpp failed"):
        runpp_reference(lv_net_shared, [5], np.array([5e4]))


def test_bad_inputs_are_rejected(lv_fast: FastPowerFlow) -> None:
    with pytest.raises(GridError, match="shapes"):
        lv_fast.solve(np.array([1.0, 2.0]))
    with pytest.raises(GridError, match="shapes"):
        lv_fast.solve(np.array([1.0]), load_p_mw=np.zeros(3))
    with pytest.raises(GridError, match="NaN"):
        lv_fast.solve(np.array([np.nan]))


def test_bad_site_buses_are_rejected(lv_net: Any) -> None:
    with pytest.raises(GridError, match="not in the network"):
        FastPowerFlow(lv_net, [999])
    with pytest.raises(GridError, match="bus indices"):
        FastPowerFlow(lv_net, ["LV1.101 Bus 4"])  # type: ignore[list-item]
    lv_net.bus.loc[5, "in_service"] = False
    with pytest.raises(GridError, match="out of service or cut off"):
        FastPowerFlow(lv_net, [5])


def test_zip_loads_are_rejected(lv_net: Any) -> None:
    lv_net.load.loc[lv_net.load.index[0], "const_z_p_percent"] = 50.0
    with pytest.raises(GridError, match="ZIP"):
        FastPowerFlow(lv_net, [5])
