"""FastPowerFlow.step, the unchecked path the simulator uses, against solve() and pandapower."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qubit_sim.errors import GridError
from qubit_sim.grid import FastPowerFlow, PowerFlowResult, load_network, runpp_reference
from qubit_sim.grid.powerflow import StepSummary

VM_TOL_PU = 1e-6
LOADING_TOL_PCT = 1e-4
POWER_TOL_KW = 1e-3


def _random_steps(
    net: Any, n_sites: int, seed: int, n_steps: int, site_kw: float
) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [
        {
            "site_p_kw": rng.uniform(-site_kw, 2 * site_kw, n_sites),
            "load_p_mw": net.load["p_mw"].to_numpy() * rng.uniform(0, 2, len(net.load)),
            "load_q_mvar": net.load["q_mvar"].to_numpy() * rng.uniform(0, 2, len(net.load)),
            "sgen_p_mw": net.sgen["p_mw"].to_numpy() * rng.uniform(0, 2, len(net.sgen)),
        }
        for _ in range(n_steps)
    ]


def _step(flow: FastPowerFlow, inputs: dict[str, np.ndarray], vm_out: Any = None) -> StepSummary:
    background = flow.injections(
        None, None, inputs["load_p_mw"], inputs["load_q_mvar"], inputs["sgen_p_mw"]
    )
    return flow.step(background, inputs["site_p_kw"], vm_out)


def _assert_summary(summary: StepSummary, result: PowerFlowResult) -> None:
    """``summary`` holds the reductions of the full ``result`` (NaN entries skipped)."""
    assert summary.converged and result.converged
    line, trafo = result.line_loading_pct, result.trafo_loading_pct
    assert summary.vm_min_pu == pytest.approx(np.nanmin(result.vm_pu), abs=VM_TOL_PU)
    assert summary.vm_max_pu == pytest.approx(np.nanmax(result.vm_pu), abs=VM_TOL_PU)
    expected_line = np.nanmax(line) if len(line) else 0.0
    expected_trafo = np.nanmax(trafo) if len(trafo) else 0.0
    assert summary.line_loading_max_pct == pytest.approx(expected_line, abs=LOADING_TOL_PCT)
    assert summary.trafo_loading_max_pct == pytest.approx(expected_trafo, abs=LOADING_TOL_PCT)
    assert summary.losses_kw == pytest.approx(result.losses_kw, abs=POWER_TOL_KW)
    assert summary.ext_grid_p_kw == pytest.approx(result.ext_grid_p_kw, abs=POWER_TOL_KW)
    assert summary.ext_grid_q_kvar == pytest.approx(result.ext_grid_q_kvar, abs=POWER_TOL_KW)


def _compare_with_runpp(
    net: Any, sites: list[int], seed: int, n_steps: int, site_kw: float, **options: Any
) -> None:
    flow = FastPowerFlow(net, sites, **options)
    reference_net = copy.deepcopy(net)
    vm = np.empty(len(net.bus))
    for inputs in _random_steps(net, len(sites), seed, n_steps, site_kw):
        summary = _step(flow, inputs, vm)
        reference = runpp_reference(reference_net, sites, **inputs, inplace=True)
        _assert_summary(summary, reference)
        np.testing.assert_array_equal(np.isnan(vm), np.isnan(reference.vm_pu))
        np.testing.assert_allclose(vm, reference.vm_pu, rtol=0, atol=VM_TOL_PU)


def test_step_matches_runpp_on_lv(lv_net_shared: Any) -> None:
    _compare_with_runpp(lv_net_shared, [5], seed=21, n_steps=12, site_kw=60.0)


def test_step_matches_runpp_on_mv_with_several_sites(mv_net_shared: Any) -> None:
    _compare_with_runpp(mv_net_shared, [30, 60, 88, 60], seed=22, n_steps=12, site_kw=800.0)


def test_float64_inverse_path_matches_runpp(
    mv_net_shared: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The MV Jacobian's inverse is normally kept in float32; the float64 one must agree.
    monkeypatch.setattr("qubit_sim.grid.newton._FLOAT32_MAX_CONDITION", 0.0)
    _compare_with_runpp(mv_net_shared, [30], seed=29, n_steps=4, site_kw=800.0)


def test_sparse_lu_path_matches_runpp(mv_net_shared: Any) -> None:
    _compare_with_runpp(
        mv_net_shared, [30], seed=23, n_steps=6, site_kw=800.0, linear_solver="sparse"
    )


def test_refreshing_the_jacobian_every_iteration_matches_runpp(lv_net_shared: Any) -> None:
    # Reusing the Jacobian only while it contracts 1e-6 per iteration forces a refresh at
    # nearly every iteration: the result must not depend on it.
    _compare_with_runpp(lv_net_shared, [5, 9], seed=24, n_steps=6, site_kw=30.0, contraction=1e-6)


def test_gens_pv_buses_shunts_and_wards_match_runpp() -> None:
    net = load_network("pandapower:example_multivoltage")
    assert len(net.gen) and len(net.shunt) and len(net.xward)
    flow = FastPowerFlow(net, [54, 55])
    reference_net = copy.deepcopy(net)
    rng = np.random.default_rng(25)
    for _ in range(4):
        inputs = {
            "site_p_kw": rng.uniform(-10.0, 20.0, 2),
            "load_p_mw": net.load["p_mw"].to_numpy() * rng.uniform(0.8, 1.2, len(net.load)),
            "load_q_mvar": net.load["q_mvar"].to_numpy() * rng.uniform(0.8, 1.2, len(net.load)),
            "sgen_p_mw": net.sgen["p_mw"].to_numpy() * rng.uniform(0.8, 1.2, len(net.sgen)),
        }
        summary = _step(flow, inputs)
        _assert_summary(summary, runpp_reference(reference_net, [54, 55], **inputs, inplace=True))


def test_step_and_solve_agree_on_dead_buses_and_lines(mv_net: Any) -> None:
    on_line = mv_net.switch.index[(mv_net.switch.et == "l") & (mv_net.switch.element == 40)]
    mv_net.switch.loc[on_line, "closed"] = False
    stepper, solver = FastPowerFlow(mv_net, [30]), FastPowerFlow(mv_net, [30])
    vm = np.empty(len(mv_net.bus))
    for inputs in _random_steps(mv_net, 1, seed=26, n_steps=5, site_kw=500.0):
        summary = _step(stepper, inputs, vm)
        result = solver.solve(**inputs)
        assert np.isnan(result.vm_pu).sum() == 4 and np.isnan(result.line_loading_pct).any()
        _assert_summary(summary, result)
        np.testing.assert_array_equal(np.isnan(vm), np.isnan(result.vm_pu))


def test_unrated_line_reports_an_infinite_maximum(lv_net: Any) -> None:
    lv_net.line.loc[lv_net.line.index[0], "max_i_ka"] = 0.0
    summary = FastPowerFlow(lv_net, [5]).step(FastPowerFlow(lv_net, [5]).injections(), np.ones(1))
    result = FastPowerFlow(lv_net, [5]).solve(np.ones(1))
    assert np.isinf(result.line_loading_pct[0])
    assert summary.line_loading_max_pct == np.inf


def test_an_unchanged_step_needs_no_iteration(mv_net_shared: Any) -> None:
    flow = FastPowerFlow(mv_net_shared, [30])
    inputs = _random_steps(mv_net_shared, 1, seed=27, n_steps=1, site_kw=500.0)[0]
    first = _step(flow, inputs)
    again = _step(flow, inputs)
    assert first.iterations > 0 and again.iterations == 0
    assert again.vm_min_pu == first.vm_min_pu and again.losses_kw == first.losses_kw


@pytest.fixture(scope="module")
def lv_warm_and_cold(lv_net_shared: Any) -> tuple[FastPowerFlow, FastPowerFlow]:
    return FastPowerFlow(lv_net_shared, [5]), FastPowerFlow(lv_net_shared, [5])


@settings(max_examples=25, deadline=None)
@given(
    site_kw=st.lists(st.floats(-150.0, 300.0), min_size=2, max_size=5),
    load_scale=st.floats(0.0, 2.0),
)
def test_a_step_does_not_depend_on_the_steps_before(
    lv_net_shared: Any,
    lv_warm_and_cold: tuple[FastPowerFlow, FastPowerFlow],
    site_kw: list[float],
    load_scale: float,
) -> None:
    # Warm starts and a kept Jacobian (carried over from every earlier example too) only change
    # how fast a step converges, never its result.
    warm, cold = lv_warm_and_cold
    background = warm.injections(
        None,
        None,
        lv_net_shared.load["p_mw"].to_numpy() * load_scale,
        lv_net_shared.load["q_mvar"].to_numpy() * load_scale,
    )
    for p_kw in site_kw:
        summary = warm.step(background, np.array([p_kw]))
    cold.reset()
    fresh = cold.step(background, np.array([site_kw[-1]]))
    # Both stop within the 1e-9 MVA tolerance, not at the same rounding.
    assert summary.vm_min_pu == pytest.approx(fresh.vm_min_pu, abs=1e-7)
    assert summary.line_loading_max_pct == pytest.approx(
        fresh.line_loading_max_pct, abs=LOADING_TOL_PCT
    )
    assert summary.ext_grid_p_kw == pytest.approx(fresh.ext_grid_p_kw, abs=POWER_TOL_KW)


def test_block_injections_equal_one_step_at_a_time(mv_net_shared: Any) -> None:
    flow = FastPowerFlow(mv_net_shared, [30, 60])
    steps = _random_steps(mv_net_shared, 2, seed=28, n_steps=4, site_kw=200.0)
    block = flow.injections(
        np.stack([s["site_p_kw"] for s in steps]),
        None,
        np.stack([s["load_p_mw"] for s in steps]),
        np.stack([s["load_q_mvar"] for s in steps]),
        np.stack([s["sgen_p_mw"] for s in steps]),
    )
    assert block.shape == (4, flow.n_internal_bus)
    for row, s in zip(block, steps, strict=True):
        single = flow.injections(
            s["site_p_kw"], None, s["load_p_mw"], s["load_q_mvar"], s["sgen_p_mw"]
        )
        np.testing.assert_allclose(row, single, rtol=0, atol=1e-15)
    # 1-D arguments hold for every step of a block.
    mixed = flow.injections(None, None, np.stack([s["load_p_mw"] for s in steps]))
    assert mixed.shape == (4, flow.n_internal_bus)
    np.testing.assert_allclose(mixed[2], flow.injections(load_p_mw=steps[2]["load_p_mw"]))


def test_injections_reject_bad_blocks(lv_fast_flow: FastPowerFlow) -> None:
    n_load = lv_fast_flow.n_load
    with pytest.raises(GridError, match="same number of steps"):
        lv_fast_flow.injections(None, None, np.zeros((3, n_load)), np.zeros((2, n_load)))
    with pytest.raises(GridError, match="shapes"):
        lv_fast_flow.injections(None, None, np.zeros((3, n_load + 1)))
    block = np.zeros((3, n_load))
    block[1, 2] = np.inf
    with pytest.raises(GridError, match="NaN or infinite"):
        lv_fast_flow.injections(None, None, block)
    with pytest.raises(GridError, match="one step"):
        lv_fast_flow.solve(np.zeros(1), None, np.zeros((2, n_load)))


def test_bad_linear_solver_is_rejected(lv_net_shared: Any) -> None:
    with pytest.raises(GridError, match="linear_solver"):
        FastPowerFlow(lv_net_shared, [5], linear_solver="cholesky")


def test_step_divergence_raises_then_recovers(lv_net_shared: Any) -> None:
    flow = FastPowerFlow(lv_net_shared, [5])
    background = flow.injections()
    with pytest.raises(GridError, match="did not converge at t=60 s"):
        flow.step(background, np.array([5e4]), context="t=60 s")
    after = flow.step(background, np.array([10.0]))
    _assert_summary(after, runpp_reference(lv_net_shared, [5], np.array([10.0])))


def test_step_divergence_can_be_reported(lv_net_shared: Any) -> None:
    flow = FastPowerFlow(lv_net_shared, [5], raise_on_divergence=False)
    vm = np.zeros(len(lv_net_shared.bus))
    summary = flow.step(flow.injections(), np.array([5e4]), vm)
    assert not summary.converged
    assert np.isnan(summary.vm_min_pu) and np.isnan(summary.losses_kw) and np.isnan(vm).all()


@pytest.fixture(scope="module")
def lv_fast_flow(lv_net_shared: Any) -> FastPowerFlow:
    return FastPowerFlow(lv_net_shared, [5])


def test_step_names_non_finite_inputs(lv_net_shared: Any) -> None:
    flow = FastPowerFlow(lv_net_shared, [5])
    with pytest.raises(GridError, match="NaN or infinite"):
        flow.step(flow.injections(), np.array([np.nan]))
    after = flow.step(flow.injections(), np.array([10.0]))
    _assert_summary(after, runpp_reference(lv_net_shared, [5], np.array([10.0])))
