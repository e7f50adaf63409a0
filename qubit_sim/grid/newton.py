"""Newton-Raphson on a fixed admittance matrix, in rectangular coordinates, Jacobian kept.

:class:`ChordNewton` solves ``V_i conj((Ybus V)_i) = S_i`` for the non-slack buses of a network
whose buses are numbered ``[PV, PQ, slack]``. The unknowns are ``V = e + jf``: each bus power
is a quadratic function of them and an update is one subtraction, with no trigonometry. At PV
buses the reactive equation is replaced by ``e^2 + f^2 = vm_set^2``. The Jacobian rows and
columns alternate (real, imaginary) per bus, so the mismatch and the update are complex vectors
viewed as real ones.

The Jacobian is kept across iterations and calls (a chord method) while it still contracts the
mismatch fast, as an explicit inverse (one matrix-vector product per update) on feeders of up to
a few hundred unknowns, else as a sparse LU. Every call still iterates until the largest
mismatch is below the tolerance, so the answer does not depend on how old the Jacobian is.

Nothing here spreads work over threads: on a busy machine OpenBLAS's threaded complex products
and LAPACK inversions run 10-100x slower than single-threaded ones, so those are avoided.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.linalg.blas import dgemv
from scipy.sparse.linalg import splu

try:  # scipy's compiled kernel behind `csr @ vector`, without ~1.5 us of checks per call
    from scipy.sparse._sparsetools import csr_matvec as _csr_matvec
except ImportError:  # pragma: no cover - private module; MatVec then falls back to `@`
    _csr_matvec = None

__all__ = ["LINEAR_SOLVERS", "ChordNewton", "MatVec"]

#: Accepted values of ``linear_solver``.
LINEAR_SOLVERS = ("auto", "dense", "sparse")

# A dense inverse Jacobian turns each linear solve into one matrix-vector product (200 unknowns:
# 1.8 us in float32 against ~12 us for a sparse LU solve); past a few hundred unknowns the
# inversion, memory and product grow too fast and the sparse LU wins.
_DENSE_MAX_UNKNOWNS = 250
# Complex matrix-vector products with at most this many entries are done dense: faster than a
# sparse product at this size, and below the size at which OpenBLAS threads a complex product.
_DENSE_COMPLEX_MAX_ENTRIES = 2500
# A float32 inverse halves the cost of the product on larger feeders (200 unknowns: 1.8 us
# against 3.3 us) and perturbs each update by about cond(J) * 6e-8 relative: harmless for the
# contraction up to here; worse-conditioned Jacobians keep a float64 inverse.
_FLOAT32_MIN_UNKNOWNS = 100
_FLOAT32_MAX_CONDITION = 1e5
# Up to this many unknowns LAPACK inverts in one thread, faster than the sparse LU route.
_LAPACK_MAX_UNKNOWNS = 64
# Columns of the inverse per sparse triangular solve (larger blocks go multi-threaded).
_INVERSE_BLOCK = 32
# How an update applies the kept Jacobian.
_SOLVE_FLOAT64, _SOLVE_FLOAT32, _SOLVE_LU = 0, 1, 2


class MatVec:
    """``out[:] = matrix @ x`` for a fixed complex matrix, chosen per size, without allocating.

    Small matrices are multiplied dense; larger ones through scipy's compiled CSR kernel when it
    gives the same product as ``@`` on a test vector (else through ``@``).
    """

    def __init__(self, matrix: Any) -> None:
        matrix = sp.csr_array(matrix, dtype=np.complex128)
        matrix.sum_duplicates()
        self.shape: tuple[int, int] = matrix.shape
        self.matrix = matrix
        small = self.shape[0] * self.shape[1] <= _DENSE_COMPLEX_MAX_ENTRIES
        self.dense = matrix.toarray() if small else None
        self.kernel = None if small else self._kernel()
        self.kernel_args = (*self.shape, matrix.indptr, matrix.indices, matrix.data)

    def _kernel(self) -> Any:
        if _csr_matvec is None:  # pragma: no cover
            return None
        rows, cols = self.shape
        probe = np.array([1.0, 1j]) @ np.random.default_rng(0).normal(size=(2, cols))
        out = np.zeros(rows, dtype=np.complex128)
        matrix = self.matrix
        try:
            _csr_matvec(rows, cols, matrix.indptr, matrix.indices, matrix.data, probe, out)
        except Exception:  # pragma: no cover - a changed private signature
            return None
        return _csr_matvec if np.allclose(out, matrix @ probe, rtol=1e-12, atol=0) else None

    def __call__(self, x: np.ndarray, out: np.ndarray) -> None:
        if self.dense is not None:
            np.dot(self.dense, x, out)
        elif self.kernel is not None:
            out.fill(0.0)
            self.kernel(*self.kernel_args, x, out)
        else:  # pragma: no cover
            out[:] = self.matrix @ x


class ChordNewton:
    """Newton-Raphson with a kept Jacobian for ``V conj(Ybus V) = S`` at non-slack buses.

    Args:
        ybus: Admittance matrix [p.u.] with buses numbered [PV, PQ, slack] and an explicit
            (possibly zero) diagonal entry in every row.
        n_pv: Number of PV buses (the first ones).
        n_pvpq: Number of non-slack buses.
        v_init: Starting voltages [p.u.]; slack and PV magnitudes are held at these values.
        linear_solver: ``"dense"`` (explicit inverse), ``"sparse"`` (sparse LU) or ``"auto"``
            (dense up to 250 unknowns).

    Attributes:
        v: Bus voltages [p.u.]: the warm start, and the solution after a converged call.
        s: Bus powers at ``v`` [p.u.] after a converged call (the slack's included).
    """

    def __init__(
        self, ybus: Any, n_pv: int, n_pvpq: int, v_init: np.ndarray, linear_solver: str
    ) -> None:
        self.ybus = MatVec(ybus)
        n = self.ybus.shape[0]
        self.n_pv, self.n_pvpq = n_pv, n_pvpq
        self.v_init = np.asarray(v_init, dtype=np.complex128).copy()
        self._vm2_pv = np.abs(self.v_init[:n_pv]) ** 2
        self._build_jacobian_map(self.ybus.matrix, linear_solver)
        self.v = self.v_init.copy()
        self.s = np.empty(n, dtype=np.complex128)
        self._i_bus = np.empty(n, dtype=np.complex128)
        self._mis = np.empty(n_pvpq, dtype=np.complex128)
        self._rhs32 = np.empty(2 * n_pvpq, dtype=np.float32)
        self._dx32 = np.empty(2 * n_pvpq, dtype=np.float32)
        self._jacobian: Any = None
        self._mode = _SOLVE_FLOAT64
        # True while self.s holds the bus powers at self.v: the next call then starts from them
        # instead of multiplying again.
        self._s_current = False
        self._bind_views()

    def _bind_views(self) -> None:
        """Views into ``v``, ``s`` and ``_mis`` that :meth:`iterate` writes through."""
        n_pvpq = self.n_pvpq
        v_nn = self.v[:n_pvpq]
        ybus_product = self.ybus
        self._mis_f = self._mis.view(np.float64)
        self._fixed = (
            self.v,
            v_nn,
            v_nn.view(np.float64),
            self._i_bus,
            self.s,
            self.s[:n_pvpq],
            self._mis,
            self._mis_f,
            self._rhs32,
            self._dx32,
            ybus_product.dense,
            ybus_product.kernel,
            ybus_product.kernel_args,
            ybus_product.matrix,
        )

    # A copy or a pickle holds each array on its own: views would come back as detached arrays,
    # and updates written through them would never reach ``v``. They are rebuilt instead.
    _VIEWS = ("_mis_f", "_fixed")

    def __getstate__(self) -> dict[str, Any]:
        state = {k: v for k, v in self.__dict__.items() if k not in self._VIEWS}
        if state["_jacobian"] is not None and not isinstance(state["_jacobian"], np.ndarray):
            # A sparse LU cannot be pickled: the next call factorises again.
            state["_jacobian"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._bind_views()

    def __deepcopy__(self, memo: dict[int, Any]) -> ChordNewton:
        state = {k: v for k, v in self.__dict__.items() if k not in self._VIEWS}
        jacobian = state["_jacobian"]
        if jacobian is not None and not isinstance(jacobian, np.ndarray):
            # A sparse LU is only ever read: the copy shares it and iterates exactly as this one.
            memo[id(jacobian)] = jacobian
        clone = ChordNewton.__new__(ChordNewton)
        memo[id(self)] = clone
        clone.__setstate__(copy.deepcopy(state, memo))
        return clone

    def _build_jacobian_map(self, ybus: Any, linear_solver: str) -> None:
        nn, n_pv = self.n_pvpq, self.n_pv
        block = sp.coo_array(ybus[:nn, :nn])
        rows, cols = block.row.astype(np.int64), block.col.astype(np.int64)
        self._jac_rows = rows
        self._jac_yconj = np.conj(block.data)
        self._jac_diag = np.empty(nn, dtype=np.int64)
        on_diag = np.flatnonzero(rows == cols)
        self._jac_diag[rows[on_diag]] = on_diag
        # At PV buses the reactive row holds d|V|^2 instead of dQ.
        self._jac_pv_entries = np.flatnonzero(rows < n_pv)
        self._jac_table = np.empty((4, len(rows)))
        # Table rows: Re dS/de, Im dS/de, Re dS/df, Im dS/df.
        jr = np.concatenate([2 * rows, 2 * rows + 1, 2 * rows, 2 * rows + 1])
        jc = np.concatenate([2 * cols, 2 * cols, 2 * cols + 1, 2 * cols + 1])
        m = 2 * nn
        self.n_unknowns = m
        if linear_solver == "auto":
            linear_solver = "dense" if m <= _DENSE_MAX_UNKNOWNS else "sparse"
        self._dense = linear_solver == "dense"
        order = sp.csc_matrix((np.arange(1, len(jr) + 1, dtype=float), (jr, jc)), (m, m))
        self._jac_src = order.data.astype(np.int64) - 1
        self._jac = order
        self._jac_col_of_data = np.repeat(np.arange(m), np.diff(order.indptr))
        self._jac_flat = jr * m + jc

    def reset(self) -> None:
        """Forget the warm start and the Jacobian."""
        self.v[:] = self.v_init
        self._jacobian = None
        self._s_current = False

    def largest_mismatch(self) -> float:
        """Largest entry of the last mismatch [p.u.]."""
        return float(np.abs(self._mis_f).max())

    def iterate(
        self, sbus: np.ndarray, tol: float, max_iterations: int, reuse: bool, contraction: float
    ) -> tuple[bool, int]:
        """Iterate from ``v`` until the largest mismatch to ``sbus`` is below ``tol``.

        Args:
            sbus: Specified bus powers [p.u.] (the slack's are not used).
            tol: Largest mismatch accepted [p.u.].
            max_iterations: Updates before giving up.
            reuse: Keep the Jacobian across iterations and calls.
            contraction: Mismatch ratio between iterations above which the Jacobian is
                refreshed.

        Returns:
            Whether it converged and the number of updates (linear solves).
        """
        (v, v_nn, v_nnf, i_bus, s, s_nn, mis, misf, rhs32, dx32, ydense, kernel, args, ybus) = (
            self._fixed
        )
        n_pv = self.n_pv
        sbus_nn = sbus[: self.n_pvpq]
        tol2 = tol * tol
        near = self.n_unknowns * tol2
        # Refresh when the squared norm shrank by less than this (always without reuse).
        ratio = contraction**2 if reuse else -1.0
        jacobian = self._jacobian if reuse else None
        mode = self._mode
        # Positional outputs and local names: keyword parsing and attribute lookups cost as much
        # as the arithmetic on vectors this short.
        dot, conjugate, multiply, subtract = np.dot, np.conjugate, np.multiply, np.subtract
        # After a converged call S is already known at V: the first mismatch is one subtraction.
        known = self._s_current
        self._s_current = False
        threshold = math.inf
        iterations = 0
        while True:
            if known:
                known = False
            else:
                if ydense is not None:
                    dot(ydense, v, i_bus)
                elif kernel is not None:
                    i_bus.fill(0.0)
                    kernel(*args, v, i_bus)
                else:  # pragma: no cover
                    i_bus[:] = ybus @ v
                conjugate(i_bus, i_bus)
                multiply(v, i_bus, s)
            subtract(s_nn, sbus_nn, mis)
            if n_pv:
                pv = v[:n_pv]
                misf[1 : 2 * n_pv : 2] = pv.real**2 + pv.imag**2 - self._vm2_pv
            # The 2-norm bounds the largest entry from both sides: only between tol and
            # sqrt(2 nn) tol is the largest entry itself needed.
            squared = float(dot(misf, misf))
            if squared < tol2 or (squared < near and np.abs(misf).max() < tol):
                self._jacobian = jacobian if reuse else None
                self._s_current = True
                return True, iterations
            # (NaN and inf fail the comparison too.)
            if iterations >= max_iterations or not squared < math.inf:
                return False, iterations
            if jacobian is None or squared > threshold:
                jacobian = self._refresh(reuse)
                if jacobian is None:
                    return False, iterations
                mode = self._mode
            if mode == _SOLVE_FLOAT64:
                dgemv(-1.0, jacobian, misf, 1.0, v_nnf, overwrite_y=1)
            elif mode == _SOLVE_FLOAT32:
                rhs32[:] = misf
                dot(jacobian, rhs32, dx32)
                v_nnf -= dx32
            else:
                v_nn -= jacobian.solve(misf).view(np.complex128)
            threshold = ratio * squared
            iterations += 1

    def _refresh(self, reuse: bool) -> Any:
        """The Jacobian at ``v``, inverted or factorised; None if singular.

        Uses ``self._i_bus``, which holds ``conj(Ybus @ V)`` from the last mismatch.
        """
        nn, n_pv = self.n_pvpq, self.n_pv
        v = self.v
        conj_i = self._i_bus[:nn]
        # S_i = V_i conj(I_i): dS_i/de_k = V_i conj(Y_ik) + [i=k] conj(I_i), dS_i/df_k = -j of
        # the first term + [i=k] j conj(I_i).
        t = v[self._jac_rows] * self._jac_yconj
        table = self._jac_table
        diag = self._jac_diag
        table[0] = t.real
        table[1] = t.imag
        table[2] = t.imag
        np.negative(t.real, out=table[3])
        table[0, diag] += conj_i.real
        table[1, diag] += conj_i.imag
        table[2, diag] -= conj_i.imag
        table[3, diag] += conj_i.real
        if n_pv:
            table[1, self._jac_pv_entries] = 0.0
            table[3, self._jac_pv_entries] = 0.0
            table[1, diag[:n_pv]] = 2.0 * v[:n_pv].real
            table[3, diag[:n_pv]] = 2.0 * v[:n_pv].imag
        m = self.n_unknowns
        if self._dense and reuse and m <= _LAPACK_MAX_UNKNOWNS:
            return self._small_inverse(table.ravel())
        jac = self._jac
        jac.data = table.ravel()[self._jac_src]
        try:
            lu = splu(jac)
        except RuntimeError:  # singular Jacobian
            return None
        # Without reuse each factorisation serves one update: inverting would not pay.
        if not self._dense or not reuse:
            self._mode = _SOLVE_LU
            return lu
        # The inverse comes from the sparse LU a block of columns at a time (a LAPACK inverse of
        # this size is threaded); Fortran order lets BLAS update V without copying the matrix.
        inverse = np.empty((m, m), order="F")
        for start in range(0, m, _INVERSE_BLOCK):
            stop = min(m, start + _INVERSE_BLOCK)
            unit = np.zeros((m, stop - start))
            unit[np.arange(start, stop), np.arange(stop - start)] = 1.0
            inverse[:, start:stop] = lu.solve(unit)
        column_sums = np.bincount(self._jac_col_of_data, np.abs(jac.data), minlength=m)
        condition = column_sums.max() * np.abs(inverse).sum(axis=0).max()
        if not math.isfinite(condition):
            return None
        if m >= _FLOAT32_MIN_UNKNOWNS and condition <= _FLOAT32_MAX_CONDITION:
            self._mode = _SOLVE_FLOAT32
            return inverse.astype(np.float32)
        self._mode = _SOLVE_FLOAT64
        return inverse

    def _small_inverse(self, values: np.ndarray) -> Any:
        """LAPACK inverse of a small Jacobian (single-threaded at this size)."""
        m = self.n_unknowns
        jac = np.zeros(m * m)
        jac[self._jac_flat] = values
        try:
            inverse = np.linalg.inv(jac.reshape(m, m))
        except np.linalg.LinAlgError:
            return None
        if not np.isfinite(inverse).all():
            return None
        self._mode = _SOLVE_FLOAT64
        return np.asfortranarray(inverse)
