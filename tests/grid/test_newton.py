"""The Newton-Raphson kernel on small hand-made networks, and its matrix products."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from qubit_sim.grid.newton import ChordNewton, MatVec


@pytest.mark.parametrize("size", [6, 120])  # dense below 2,500 entries, compiled kernel above
def test_matvec_equals_the_sparse_product(size: int) -> None:
    rng = np.random.default_rng(size)
    matrix = sp.random_array((size, size), density=0.05, rng=rng, format="csr")
    matrix = (matrix + 1j * sp.random_array((size, size), density=0.05, rng=rng)).tocsr()
    product = MatVec(matrix)
    assert (product.dense is not None) == (size == 6)
    x = rng.normal(size=size) + 1j * rng.normal(size=size)
    out = np.full(size, np.nan + 0j)
    product(x, out)
    np.testing.assert_allclose(out, matrix @ x, rtol=1e-13, atol=1e-13)


def _feeder(n_pq: int) -> sp.csr_array:
    """A radial chain of ``n_pq`` load buses fed from a slack bus, numbered [PQ..., slack]."""
    n = n_pq + 1
    y_line = 1.0 / (0.01 + 0.02j)
    ybus = np.zeros((n, n), dtype=np.complex128)
    chain = [n_pq, *range(n_pq)]  # slack first along the chain
    for a, b in zip(chain, chain[1:], strict=False):
        ybus[a, a] += y_line
        ybus[b, b] += y_line
        ybus[a, b] -= y_line
        ybus[b, a] -= y_line
    return sp.csr_array(ybus)


@settings(max_examples=40, deadline=None)
@given(
    loads=st.lists(st.tuples(st.floats(-0.5, 1.0), st.floats(-0.3, 0.3)), min_size=1, max_size=6),
    linear_solver=st.sampled_from(["dense", "sparse"]),
)
def test_the_solution_meets_the_power_equations(
    loads: list[tuple[float, float]], linear_solver: str
) -> None:
    n_pq = len(loads)
    ybus = _feeder(n_pq)
    sbus = np.array([-(p + 1j * q) for p, q in loads] + [0.0])  # loads draw
    # Loads beyond the feeder's voltage-collapse point have no solution at all: a full Newton
    # (fresh Jacobian every iteration, many iterations) is the judge of that.
    judge = ChordNewton(ybus, 0, n_pq, np.ones(n_pq + 1, dtype=complex), linear_solver)
    assume(judge.iterate(sbus, 1e-10, 100, False, 0.05)[0])
    newton = ChordNewton(ybus, 0, n_pq, np.ones(n_pq + 1, dtype=complex), linear_solver)
    converged, _ = newton.iterate(sbus, 1e-10, 30, True, 0.05)
    assert converged
    v = newton.v
    s = v * np.conj(ybus @ v)
    # The tolerance bounds each real and imaginary part.
    np.testing.assert_allclose(s[:n_pq].view(float), sbus[:n_pq].view(float), rtol=0, atol=1e-10)
    np.testing.assert_allclose(newton.s, s, rtol=0, atol=1e-12)
    assert v[n_pq] == 1.0  # the slack is held
    # A fresh Jacobian at every update lands on the same solution.
    fresh = ChordNewton(ybus, 0, n_pq, np.ones(n_pq + 1, dtype=complex), linear_solver)
    assert fresh.iterate(sbus, 1e-10, 30, False, 0.05)[0]
    np.testing.assert_allclose(fresh.v, v, rtol=0, atol=1e-9)


def test_a_pv_bus_holds_its_voltage_magnitude() -> None:
    ybus = _feeder(3)
    v_init = np.array([1.02, 1.0, 1.0, 1.0], dtype=complex)  # bus 0 is PV at 1.02 p.u.
    sbus = np.array([0.3, -0.4 - 0.1j, -0.2 - 0.05j, 0.0])
    newton = ChordNewton(ybus, 1, 3, v_init, "dense")
    assert newton.iterate(sbus, 1e-10, 30, True, 0.05)[0]
    s = newton.v * np.conj(ybus @ newton.v)
    assert abs(newton.v[0]) == pytest.approx(1.02, abs=1e-10)
    assert s[0].real == pytest.approx(0.3, abs=1e-10)
    np.testing.assert_allclose(s[1:3].view(float), sbus[1:3].view(float), rtol=0, atol=1e-10)


def test_collapse_is_reported_not_solved() -> None:
    newton = ChordNewton(_feeder(2), 0, 2, np.ones(3, dtype=complex), "dense")
    converged, iterations = newton.iterate(np.array([-50.0, -50.0, 0.0]), 1e-10, 15, True, 0.05)
    assert not converged and iterations <= 15
    assert newton.largest_mismatch() > 1e-3
    newton.reset()
    np.testing.assert_array_equal(newton.v, np.ones(3))
