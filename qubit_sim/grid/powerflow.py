"""AC power flow that builds the feeder model once and re-solves it every step.

:class:`FastPowerFlow` runs :func:`pandapower.runpp` once to take pandapower's own internal model
of the feeder: admittance matrices after closed bus-bus switches have fused buses and open line
switches have cut lines, out-of-service elements removed, bus types and slack. Each step then only
rebuilds the bus injections from the new load/PV/site powers and runs Newton-Raphson from the
previous solution. Results are mapped back to every pandapower bus, line and transformer and follow
pandapower's definitions, so :func:`runpp_reference` (a plain ``runpp`` with the same injections)
gives the same numbers to solver tolerance.

Newton-Raphson works in rectangular coordinates (``V = e + jf``), where each bus power is a
quadratic function of the unknowns and an update is one subtraction; at PV buses the reactive
power equation is replaced by ``e^2 + f^2 = vm_set^2``. The Jacobian's inverse (or its sparse LU
on large feeders) is kept across iterations and steps while it still contracts the mismatch fast;
every step still iterates until the largest mismatch is below the tolerance, so the answer does
not depend on how old the Jacobian is.

Two ways to solve a step:

* :meth:`FastPowerFlow.solve` checks its inputs and returns every bus, line and transformer result
  (:class:`PowerFlowResult`).
* :meth:`FastPowerFlow.step` is the unchecked path for loops that solve thousands of steps (the
  site simulation): it takes an injection vector from :meth:`FastPowerFlow.injections` (which
  checks its inputs, for one step or a block of steps at once) plus the site powers, and returns a
  :class:`StepSummary` (voltage and loading extremes, losses, slack power), optionally writing the
  bus voltages into a caller's array. Inputs of the wrong shape or dtype give wrong answers or
  numpy errors there, not :class:`GridError`.

Sign conventions: site powers use the load convention (``p_kw > 0`` draws from the grid); loads are
``net.load.p_mw`` values and static generators ``net.sgen.p_mw`` values, both before pandapower's
``scaling`` column, which is applied here as pandapower applies it. ``ext_grid_p_kw > 0`` means the
feeder imports from the upstream grid.

Held at their values in the net (not per step): storage, ``gen``, wards, shunts, sgen reactive
power, transformer taps (no controllers run). Voltage-dependent (ZIP) loads and FACTS devices are
rejected rather than solved differently from pandapower.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp
from scipy.linalg.blas import dgemv
from scipy.sparse.linalg import splu

try:  # scipy's compiled kernel behind `csr @ vector`, without ~1.5 us of checks per call
    from scipy.sparse._sparsetools import csr_matvec as _csr_matvec
except ImportError:  # pragma: no cover - private module; _Product then falls back to `@`
    _csr_matvec = None

from qubit_sim.errors import GridError
from qubit_sim.grid.reference import (
    RUNPP_OPTIONS,
    PowerFlowResult,
    StepSummary,
    runpp_reference,
    site_bus_array,
)

if TYPE_CHECKING:  # pragma: no cover
    from pandapower.auxiliary import pandapowerNet

__all__ = [
    "RUNPP_OPTIONS",
    "FastPowerFlow",
    "PowerFlowResult",
    "StepSummary",
    "runpp_reference",
]

# A dense inverse Jacobian turns each linear solve into one matrix-vector product (200 unknowns:
# 1.6 us in float32 against ~10 us for a sparse LU solve); past a few hundred unknowns the
# inversion, memory and product grow too fast and the sparse LU wins.
_DENSE_MAX_UNKNOWNS = 250
# Complex matrix-vector products with at most this many entries are done dense: faster than
# scipy's sparse product at this size, and below the size at which OpenBLAS spreads a complex
# product over threads (which costs 10-100x when the cores are busy).
_DENSE_COMPLEX_MAX_ENTRIES = 2500
# A float32 inverse halves the cost of the product on larger feeders (200 unknowns: 1.7 us
# against 3.3 us) and perturbs each Newton update by about cond(J) * 6e-8 relative: harmless for
# the contraction up to here; worse-conditioned Jacobians keep a float64 inverse.
_FLOAT32_MIN_UNKNOWNS = 100
_FLOAT32_MAX_CONDITION = 1e5
# How a Newton update applies the kept Jacobian.
_SOLVE_FLOAT64, _SOLVE_FLOAT32, _SOLVE_LU = 0, 1, 2
# Columns of the inverse per sparse triangular solve (larger blocks go multi-threaded).
_INVERSE_BLOCK = 32
# Up to this many unknowns LAPACK inverts in one thread, faster than the sparse LU route.
_LAPACK_MAX_UNKNOWNS = 64
_SQRT3 = math.sqrt(3.0)
_FACTS_TABLES = ("svc", "tcsc", "ssc", "vsc")
_LINEAR_SOLVERS = ("auto", "dense", "sparse")


class _Product:
    """``out[:] = matrix @ x`` for a fixed complex matrix, chosen per size, without allocating.

    Small matrices are multiplied dense; larger ones through scipy's compiled CSR kernel when it
    gives the same product as ``@`` on a test vector (else through ``@``).
    """

    def __init__(self, matrix: sp.csr_array) -> None:
        matrix = sp.csr_array(matrix, dtype=np.complex128)
        matrix.sum_duplicates()
        self.shape = matrix.shape
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


def _check_supported(net: Any) -> None:
    zip_columns = [c for c in net.load.columns if c.startswith(("const_z", "const_i"))]
    if zip_columns and len(net.load) and (net.load[zip_columns].fillna(0).to_numpy() != 0).any():
        raise GridError(
            "voltage-dependent (ZIP) loads are not supported by FastPowerFlow: set "
            f"{zip_columns} to 0 in net.load"
        )
    facts = [name for name in _FACTS_TABLES if name in net and len(net[name])]
    if facts:
        raise GridError(f"FACTS devices {facts} are not supported by FastPowerFlow; remove them")


def _column(table: Any, name: str, default: float) -> np.ndarray:
    if name in table.columns:
        return table[name].fillna(default).to_numpy(dtype=np.float64)
    return np.full(len(table), default)


class FastPowerFlow:
    """Newton-Raphson AC power flow on a fixed feeder with per-step injections.

    The feeder's topology and parameters (switch states, in-service flags, tap positions, line and
    transformer data) are read once at construction; to change them build a new instance.

    With ``reuse_jacobian`` the Jacobian (its inverse or LU factors) is kept across iterations and
    steps and refreshed only when the mismatch stops shrinking fast (its 2-norm by
    ``contraction`` per iteration). The answer is the same: every step iterates until the largest
    mismatch is below ``tolerance_mva``.

    Args:
        net: The feeder. It is not modified.
        site_buses: ``net.bus`` index of each site connection point (a bus may repeat).
        tolerance_mva: Largest bus power mismatch accepted [MVA].
        max_iterations: Newton-Raphson iterations per step before giving up [-]; steps with a
            reused Jacobian count too, hence a higher default than pandapower's 10.
        raise_on_divergence: Raise :class:`GridError` on non-convergence; if False, return a
            result with ``converged=False`` and NaN voltages, loadings and powers instead.
        reuse_jacobian: Keep the Jacobian while it still contracts the mismatch.
        contraction: Mismatch ratio between iterations above which the Jacobian is refreshed [-].
        linear_solver: ``"dense"`` (explicit inverse), ``"sparse"`` (sparse LU) or ``"auto"``
            (dense up to 250 unknowns, twice the number of non-slack buses).

    Raises:
        GridError: unknown or isolated site bus, unsupported elements, a bad option, or the base
            case fails.
    """

    def __init__(
        self,
        net: pandapowerNet,
        site_buses: Sequence[int],
        *,
        tolerance_mva: float = 1e-9,
        max_iterations: int = 20,
        raise_on_divergence: bool = True,
        reuse_jacobian: bool = True,
        contraction: float = 0.05,
        linear_solver: str = "auto",
    ) -> None:
        import pandapower as pp

        self.site_buses = site_bus_array(net, site_buses)
        _check_supported(net)
        if not tolerance_mva > 0:
            raise GridError(f"tolerance_mva must be > 0, got {tolerance_mva!r}")
        if linear_solver not in _LINEAR_SOLVERS:
            raise GridError(
                f"linear_solver must be one of {list(_LINEAR_SOLVERS)}, got {linear_solver!r}"
            )
        self.tolerance_mva = float(tolerance_mva)
        self.max_iterations = int(max_iterations)
        self.raise_on_divergence = bool(raise_on_divergence)
        self.reuse_jacobian = bool(reuse_jacobian)
        self.contraction = float(contraction)
        self.bus_index = net.bus.index.to_numpy(dtype=np.int64)
        self.line_index = net.line.index.to_numpy(dtype=np.int64)
        self.trafo_index = net.trafo.index.to_numpy(dtype=np.int64)
        self.n_load = len(net.load)
        self.n_sgen = len(net.sgen)
        self._default_load_p = net.load["p_mw"].to_numpy(dtype=np.float64).copy()
        self._default_load_q = net.load["q_mvar"].to_numpy(dtype=np.float64).copy()
        self._default_sgen_p = net.sgen["p_mw"].to_numpy(dtype=np.float64).copy()

        # Solve the base case without loads and PV: what remains in the bus injections is what a
        # step never changes (storage, shunts, wards, sgen Q, gens).
        work = copy.deepcopy(net)
        work.load["p_mw"] = 0.0
        work.load["q_mvar"] = 0.0
        work.sgen["p_mw"] = 0.0
        try:
            pp.runpp(work, **RUNPP_OPTIONS)
        except Exception as exc:  # pandapower raises many types; report them as one
            raise GridError(f"base-case power flow of the feeder failed: {exc}") from exc
        self._build_model(work)
        self._build_injections(net)
        self._build_jacobian_map(linear_solver)
        self._build_branch_maps(net, work)
        self._build_buffers()

    # -- model ------------------------------------------------------------------------------
    def _build_model(self, work: Any) -> None:
        from pandapower.pypower.idx_bus import GS
        from pandapower.pypower.idx_gen import GEN_BUS, PG, QG
        from pandapower.pypower.makeSbus import makeSbus

        internal = work._ppc["internal"]
        self.base_mva = float(internal["baseMVA"])
        ybus = sp.csr_matrix(internal["Ybus"], dtype=np.complex128)
        n = ybus.shape[0]
        self.n_internal_bus = n
        ref = np.asarray(internal["ref"], dtype=np.int64)
        pv = np.asarray(internal["pv"], dtype=np.int64)
        pq = np.asarray(internal["pq"], dtype=np.int64)
        # Renumber buses as [PV, PQ, slack] so that the Newton loop works on slices.
        order = np.r_[pv, pq, ref]
        if len(order) != n or len(np.unique(order)) != n:
            raise GridError("pandapower's bus types do not cover every bus once; cannot solve")
        self._new_of_old = np.empty(n, dtype=np.int64)
        self._new_of_old[order] = np.arange(n)
        self.n_pv, self.n_pvpq = len(pv), len(pv) + len(pq)
        ybus = ybus[order][:, order]
        # An explicit diagonal entry in every row keeps the Jacobian pattern fixed.
        ybus = (ybus + sp.csr_matrix((np.zeros(n), (np.arange(n), np.arange(n))), (n, n))).tocsr()
        ybus.sum_duplicates()
        ybus.sort_indices()
        self._ybus = sp.csr_array(ybus)
        self._ybus_product = _Product(self._ybus)
        gen = internal["gen"].copy()
        at_ref = np.isin(gen[:, GEN_BUS].astype(np.int64), ref)
        gen[at_ref, PG] = 0.0
        gen[at_ref, QG] = 0.0
        s_fixed = makeSbus(self.base_mva, internal["bus"], gen)
        self._s_fixed = np.asarray(s_fixed, np.complex128)[order]
        # Bus shunts consume power that is not a loss: subtracted from the network's intake.
        g_shunt = internal["bus"][:, GS].real[order] / self.base_mva
        self._g_shunt = g_shunt if np.any(g_shunt != 0) else None
        self._v_init = np.asarray(internal["V"], dtype=np.complex128)[order].copy()
        self._vm2_pv = np.abs(self._v_init[: self.n_pv]) ** 2
        # pandapower bus -> our bus number; n and above mean out of service or isolated.
        lookup = np.asarray(work._pd2ppc_lookups["bus"], dtype=np.int64)
        self._lookup = np.where(lookup < n, self._new_of_old[np.minimum(lookup, n - 1)], n)
        # Index n of the padded voltage vectors holds NaN, for dead buses.
        self._bus_gather = self._lookup[self.bus_index]
        self._dead_buses = bool((self._bus_gather >= n).any())

    def _build_injections(self, net: Any) -> None:
        n = self.n_internal_bus
        bus_lookup = self._lookup

        def placement(table: Any) -> tuple[np.ndarray, np.ndarray]:
            if not len(table):
                return np.zeros(0, dtype=np.int64), np.zeros(0)
            pos = bus_lookup[table["bus"].to_numpy(dtype=np.int64)]
            weight = _column(table, "scaling", 1.0) * table["in_service"].to_numpy(dtype=float)
            return np.where(pos < n, pos, 0), np.where(pos < n, weight, 0.0)

        load_pos, load_w = placement(net.load)
        sgen_pos, sgen_w = placement(net.sgen)
        site_pos = bus_lookup[self.site_buses]
        dead = self.site_buses[site_pos >= n]
        if dead.size:
            raise GridError(
                f"site bus(es) {dead.tolist()} are out of service or cut off from the slack by "
                "open switches; connect the site to a live bus"
            )
        self.n_site = len(site_pos)
        # One sparse map from the input vector [load P, load Q, sgen P, site P, site Q] to the
        # injections [p.u.]: loads and sites draw from their bus, generators feed in.
        site_w = np.full(self.n_site, 1e-3)
        rows = np.concatenate([load_pos, load_pos, sgen_pos, site_pos, site_pos])
        values = np.concatenate([-load_w, -1j * load_w, sgen_w, -site_w, -1j * site_w])
        self._n_inputs = len(rows)
        self._input_map = sp.csr_matrix(
            (values / self.base_mva, (rows, np.arange(self._n_inputs))), (n, self._n_inputs)
        )
        site_map = np.zeros((self.n_site, n))
        np.add.at(site_map, (np.arange(self.n_site), site_pos), -1e-3 / self.base_mva)
        self._site_map = site_map
        # One site: its power lands on a single bus, a scalar update.
        self._site_single = int(site_pos[0]) if self.n_site == 1 else -1
        self._site_coef = -1e-3 / self.base_mva

    def _build_jacobian_map(self, linear_solver: str) -> None:
        nn, n_pv = self.n_pvpq, self.n_pv
        block = self._ybus[:nn, :nn].tocoo()
        rows, cols = block.row.astype(np.int64), block.col.astype(np.int64)
        self._jac_rows = rows
        self._jac_yconj = np.conj(block.data)
        self._jac_diag = np.empty(nn, dtype=np.int64)
        on_diag = np.flatnonzero(rows == cols)
        self._jac_diag[rows[on_diag]] = on_diag
        # At PV buses the reactive row holds d|V|^2 instead of dQ.
        self._jac_pv_entries = np.flatnonzero(rows < n_pv)
        self._jac_table = np.empty((4, len(rows)))
        # Table rows: Re dS/de, Im dS/de, Re dS/df, Im dS/df; Jacobian rows and columns alternate
        # (real, imaginary) per bus so that the mismatch and the update are complex vectors.
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

    def _build_branch_maps(self, net: Any, work: Any) -> None:
        from pandapower.pypower.idx_brch import F_BUS, T_BUS
        from pandapower.pypower.idx_bus import BASE_KV

        ppc = work._ppc
        internal = ppc["internal"]
        n = self.n_internal_bus
        branch = internal["branch"]
        n_branch = branch.shape[0]
        base_kv = internal["bus"][:, BASE_KV].real
        fbus = branch[:, F_BUS].real.astype(np.int64)
        tbus = branch[:, T_BUS].real.astype(np.int64)
        # One sparse product gives both end currents [p.u.]; the factors turn them into [kA].
        yft = sp.vstack(
            [sp.csr_matrix(internal["Yf"]), sp.csr_matrix(internal["Yt"])], format="csc"
        )
        self._yft = sp.csr_matrix(yft[:, np.argsort(self._new_of_old)], dtype=np.complex128)
        self._ka = np.r_[
            self.base_mva / (_SQRT3 * base_kv[fbus]), self.base_mva / (_SQRT3 * base_kv[tbus])
        ]
        # Padded current vector: [from ends, to ends, 0.0, NaN]. pandapower reports zero current
        # on unsolved branches, or NaN where that zero is divided by a dead bus's voltage.
        zero_slot, nan_slot = 2 * n_branch, 2 * n_branch + 1
        branch_is = np.asarray(internal["branch_is"], dtype=bool)
        ppci_row = np.where(branch_is, np.cumsum(branch_is) - 1, -1)
        ppc_f = ppc["branch"][:, F_BUS].real.astype(np.int64)
        ppc_t = ppc["branch"][:, T_BUS].real.astype(np.int64)
        lookups = work._pd2ppc_lookups["branch"]

        def gather(element: str, count: int) -> tuple[np.ndarray, np.ndarray]:
            span = lookups.get(element)
            if span is None or count == 0:
                return np.full(count, zero_slot), np.full(count, zero_slot)
            rows = ppci_row[span[0] : span[1]]
            dead_from = ppc_f[span[0] : span[1]] >= n
            dead_to = ppc_t[span[0] : span[1]] >= n
            idle_from = np.where(dead_from, nan_slot, zero_slot)
            idle_to = np.where(dead_to, nan_slot, zero_slot)
            return (
                np.where(rows >= 0, rows, idle_from),
                np.where(rows >= 0, n_branch + rows, idle_to),
            )

        self._line_from, self._line_to = gather("line", len(net.line))
        self._trafo_from, self._trafo_to = gather("trafo", len(net.trafo))
        line = net.line
        i_max = (
            line["max_i_ka"].to_numpy(np.float64)
            * _column(line, "df", 1.0)
            * _column(line, "parallel", 1.0)
        )
        # pandapower reports an unrated line (max_i_ka = 0) as infinitely loaded.
        self._line_scale = np.divide(
            100.0, i_max, out=np.full(len(i_max), np.inf), where=i_max != 0
        )
        trafo = net.trafo
        if len(trafo) and (_column(trafo, "df", 1.0) <= 0).any():
            raise GridError("transformer rating factor df must be positive in net.trafo")
        rated = trafo["sn_mva"].to_numpy(np.float64) if len(trafo) else np.zeros(0)
        denom = rated * _column(trafo, "parallel", 1.0) * _column(trafo, "df", 1.0)
        vn_hv = trafo["vn_hv_kv"].to_numpy(np.float64) if len(trafo) else np.zeros(0)
        vn_lv = trafo["vn_lv_kv"].to_numpy(np.float64) if len(trafo) else np.zeros(0)
        self._trafo_scale_hv = vn_hv * _SQRT3 * 100.0 / denom
        self._trafo_scale_lv = vn_lv * _SQRT3 * 100.0 / denom
        self._i_pad = np.r_[np.zeros(2 * n_branch), 0.0, np.nan]
        self._build_loading_rows(n_branch)

    def _build_loading_rows(self, n_branch: int) -> None:
        """Rows of the end-current matrix pre-scaled to [%], for :meth:`step`'s maxima."""
        ends = [
            (np.r_[self._line_from, self._line_to], np.r_[self._line_scale, self._line_scale]),
            (
                np.r_[self._trafo_from, self._trafo_to],
                np.r_[self._trafo_scale_hv, self._trafo_scale_lv],
            ),
        ]
        picks, scales, self._loading_idle = [], [], []
        for slots, scale in ends:
            live = slots < 2 * n_branch
            picks.append(slots[live])
            scales.append(scale[live] * self._ka[slots[live]])
            idle = self._i_pad[slots[~live]]
            # With no solved element the maximum is that of the idle ones (0, or NaN if all are
            # dead); with one, idle zeros never exceed it and NaN ones are skipped.
            self._loading_idle.append(
                0.0 if not len(slots) else (float(np.nanmax(idle)) if live.sum() == 0 else None)
            )
        self._n_line_ends = len(picks[0])
        scale = np.concatenate(scales)
        # An unrated line's loading is inf or NaN in pandapower: those nets take the full path.
        self._loading_rows_ok = bool(np.isfinite(scale).all())
        self._n_trafo_ends = len(picks[1])
        rows = sp.csr_array(self._yft[np.concatenate(picks)].multiply(scale[:, None]))
        self._loading_product = _Product(rows)

    def _build_buffers(self) -> None:
        n, nn = self.n_internal_bus, self.n_pvpq
        self._v = self._v_init.copy()
        self._v_nn = self._v[:nn]
        self._i_bus = np.empty(n, dtype=np.complex128)
        self._s = np.empty(n, dtype=np.complex128)
        self._s_nn = self._s[:nn]
        self._mis = np.empty(nn, dtype=np.complex128)
        self._misf = self._mis.view(np.float64)
        self._sbus = np.empty(n, dtype=np.complex128)
        self._site_buf = np.empty(n)
        self._vm_pad = np.full(n + 1, np.nan)
        self._vm_int = self._vm_pad[:n]
        # step() reduces everything in one call: the maxima of [vm, -vm, line loadings at both
        # ends, transformer loadings at both ends], NaN (dead) entries skipped.
        n_bus = len(self.bus_index)
        n_line, n_trafo = self._n_line_ends, self._n_trafo_ends
        if not self._loading_rows_ok:
            n_line = n_trafo = 0
        self._stats = np.empty(2 * n_bus + n_line + n_trafo)
        self._stats_vm = self._stats[:n_bus]
        self._stats_neg_vm = self._stats[n_bus : 2 * n_bus]
        self._stats_loading = self._stats[2 * n_bus :]
        starts = [0, n_bus]
        self._stats_line = self._stats_trafo = -1
        if n_line:
            self._stats_line = len(starts)
            starts.append(2 * n_bus)
        if n_trafo:
            self._stats_trafo = len(starts)
            starts.append(2 * n_bus + n_line)
        self._stats_starts = np.array(starts)
        self._loading = np.empty(n_line + n_trafo, dtype=np.complex128)
        self._v_pad = np.full(n + 1, np.nan, dtype=np.complex128)
        self._one_slack = n - nn == 1
        self._real_parts = np.tile([1.0, 0.0], n)
        self._kw_per_pu = self.base_mva * 1e3
        self._jacobian: Any = None
        # True while self._s holds the bus powers at self._v: the next step then starts from
        # them instead of multiplying again.
        self._s_current = False
        self._solve_mode = _SOLVE_FLOAT64
        self._rhs32 = np.empty(2 * nn, dtype=np.float32)
        self._dx32 = np.empty(2 * nn, dtype=np.float32)
        self._v_nnf = self._v_nn.view(np.float64)
        product = self._ybus_product
        self._newton_fixed = (
            product.dense,
            product.kernel,
            product.matrix,
            product.matrix.indptr,
            product.matrix.indices,
            product.matrix.data,
            n,
            self.n_pv,
            nn,
        )
        self._newton_buffers = (
            self._v,
            self._v_nn,
            self._v_nnf,
            self._i_bus,
            self._s,
            self._s_nn,
            self._mis,
            self._misf,
            self._rhs32,
            self._dx32,
        )

    # -- inputs -----------------------------------------------------------------------------
    def injections(
        self,
        site_p_kw: np.ndarray | None = None,
        site_q_kvar: np.ndarray | None = None,
        load_p_mw: np.ndarray | None = None,
        load_q_mvar: np.ndarray | None = None,
        sgen_p_mw: np.ndarray | None = None,
    ) -> np.ndarray:
        """Bus injections for one step, or for a block of steps at once, for :meth:`step`.

        Each argument is one value per element (1-D) or one row per step (2-D, steps x
        elements); 1-D arguments and defaults hold for every step of a block.

        Args:
            site_p_kw: Active power per site bus, load convention [kW]; None = 0.
            site_q_kvar: Reactive power per site bus, load convention [kvar]; None = 0.
            load_p_mw: ``net.load.p_mw`` per load [MW]; None = the values in the net.
            load_q_mvar: ``net.load.q_mvar`` per load [Mvar]; None = the values in the net.
            sgen_p_mw: ``net.sgen.p_mw`` per static generator [MW]; None = the values in the net.

        Returns:
            Complex injections [p.u.] in the solver's internal bus order: shape
            ``(n_internal_bus,)``, or ``(steps, n_internal_bus)`` if any argument is 2-D.

        Raises:
            GridError: inputs of the wrong shape, disagreeing step counts, or NaN/inf values.
        """
        zeros = np.zeros(self.n_site)
        given = [
            ("site_p_kw", site_p_kw, zeros, self.n_site),
            ("site_q_kvar", site_q_kvar, zeros, self.n_site),
            ("load_p_mw", load_p_mw, self._default_load_p, self.n_load),
            ("load_q_mvar", load_q_mvar, self._default_load_q, self.n_load),
            ("sgen_p_mw", sgen_p_mw, self._default_sgen_p, self.n_sgen),
        ]
        arrays = [
            default if value is None else np.asarray(value, dtype=np.float64)
            for _, value, default, _ in given
        ]
        steps = {a.shape[0] for a in arrays if a.ndim == 2}
        if len(steps) > 1 or any(
            a.ndim not in (1, 2) or a.shape[-1] != count
            for a, (_, _, _, count) in zip(arrays, given, strict=True)
        ):
            shapes = ", ".join(
                f"{name} {a.shape}" for a, (name, _, _, _) in zip(arrays, given, strict=True)
            )
            raise GridError(
                f"power flow inputs have shapes {shapes}; expected ({self.n_site},) per site, "
                f"({self.n_load},) per load and ({self.n_sgen},) per sgen, or (steps, count) "
                "with the same number of steps for all"
            )
        # Site P and Q come after the loads and generators in the input vector.
        order = [2, 3, 4, 0, 1]
        n_steps = steps.pop() if steps else 1
        inputs = np.empty((n_steps, self._n_inputs))
        start = 0
        for k in order:
            count = given[k][3]
            inputs[:, start : start + count] = arrays[k]
            start += count
        if not math.isfinite(float(inputs.sum())):
            raise GridError("power flow inputs contain NaN or infinite values")
        sbus = np.ascontiguousarray((self._input_map @ inputs.T).T) + self._s_fixed
        return sbus if any(a.ndim == 2 for a in arrays) else sbus[0]

    # -- solving ----------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget the warm start and Jacobian; the next solve starts from the base case."""
        self._v[:] = self._v_init
        self._jacobian = None
        self._s_current = False

    def _refresh_jacobian(self) -> Any:
        """The Jacobian at the current voltages, inverted or factorised; None if singular.

        Uses ``self._i_bus``, which holds ``conj(Ybus @ V)`` from the last mismatch.
        """
        nn, n_pv = self.n_pvpq, self.n_pv
        v = self._v
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
        if self._dense and self.reuse_jacobian and m <= _LAPACK_MAX_UNKNOWNS:
            return self._small_inverse(table.ravel())
        jac = self._jac
        jac.data = table.ravel()[self._jac_src]
        try:
            lu = splu(jac)
        except RuntimeError:  # singular Jacobian
            return None
        # Without reuse each factorisation serves one update: inverting would not pay.
        if not self._dense or not self.reuse_jacobian:
            self._solve_mode = _SOLVE_LU
            return lu
        # The inverse comes from the sparse LU, a block of columns at a time: a LAPACK inverse
        # of this size runs multi-threaded in OpenBLAS and takes 10-100x longer when the cores
        # are busy.
        # Fortran order lets BLAS update V in place without copying the matrix.
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
            self._solve_mode = _SOLVE_FLOAT32
            return inverse.astype(np.float32)
        self._solve_mode = _SOLVE_FLOAT64
        return inverse

    def _small_inverse(self, values: np.ndarray) -> Any:
        """LAPACK inverse of a small Jacobian (single-threaded at this size), for dgemv."""
        m = self.n_unknowns
        jac = np.zeros(m * m)
        jac[self._jac_flat] = values
        try:
            inverse = np.linalg.inv(jac.reshape(m, m))
        except np.linalg.LinAlgError:
            return None
        if not np.isfinite(inverse).all():
            return None
        self._solve_mode = _SOLVE_FLOAT64
        return np.asfortranarray(inverse)

    def _newton(self, sbus: np.ndarray) -> tuple[bool, int]:
        """Iterate from the last solution to ``sbus``; leaves V and S in ``self._v``/``_s``."""
        (v, v_nn, v_nnf, i_bus, s, s_nn, mis, misf, rhs32, dx32) = self._newton_buffers
        ydense, kernel, ybus, indptr, indices, data, n, n_pv, nn = self._newton_fixed
        sbus_nn = sbus[:nn]
        tol = self.tolerance_mva / self.base_mva
        tol2 = tol * tol
        near = 2 * nn * tol2
        max_iterations = self.max_iterations
        reuse = self.reuse_jacobian
        # Refresh when the squared mismatch norm shrank by less than this ratio (always without
        # reuse: the threshold is then negative).
        ratio = self.contraction**2 if reuse else -1.0
        jacobian = self._jacobian if reuse else None
        mode = self._solve_mode
        # Positional outputs and local names: keyword parsing and attribute lookups cost as much
        # as the arithmetic on vectors this short.
        dot, conjugate, multiply, subtract = np.dot, np.conjugate, np.multiply, np.subtract
        # After a converged step S is already known at V: the first mismatch is one subtraction.
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
                    kernel(n, n, indptr, indices, data, v, i_bus)
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
                jacobian = self._refresh_jacobian()
                if jacobian is None:
                    return False, iterations
                mode = self._solve_mode
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

    def _diverged(self, iterations: int, context: str) -> None:
        worst_mva = float(np.abs(self._misf).max()) * self.base_mva
        self.reset()
        if self.raise_on_divergence:
            where = f" at {context}" if context else ""
            raise GridError(
                f"power flow did not converge{where} after {iterations} iterations "
                f"(largest mismatch {worst_mva:.3g} MVA); the feeder is probably loaded "
                "beyond voltage collapse: check the site and load powers"
            )

    def solve(
        self,
        site_p_kw: np.ndarray,
        site_q_kvar: np.ndarray | None = None,
        load_p_mw: np.ndarray | None = None,
        load_q_mvar: np.ndarray | None = None,
        sgen_p_mw: np.ndarray | None = None,
        *,
        context: str = "",
    ) -> PowerFlowResult:
        """Solve one step, with checked inputs and every result.

        Args:
            site_p_kw: Active power per site bus, load convention [kW].
            site_q_kvar: Reactive power per site bus, load convention [kvar]; None = 0.
            load_p_mw: ``net.load.p_mw`` per load [MW]; None = the values in the net.
            load_q_mvar: ``net.load.q_mvar`` per load [Mvar]; None = the values in the net.
            sgen_p_mw: ``net.sgen.p_mw`` per static generator [MW]; None = the values in the net.
            context: Where the step is (e.g. ``"t=3600 s"``), quoted in errors.

        Raises:
            GridError: inputs of the wrong shape or not finite, or no convergence (when
                ``raise_on_divergence``).
        """
        site_p = np.asarray(site_p_kw, dtype=np.float64).reshape(-1)
        sbus = self.injections(site_p, site_q_kvar, load_p_mw, load_q_mvar, sgen_p_mw)
        if sbus.ndim != 1:
            raise GridError(
                "solve() takes the inputs of one step (1-D arrays); use step() for more"
            )
        converged, iterations = self._newton(sbus)
        if not converged:
            self._diverged(iterations, context)
            return self._failed(iterations)
        return self._results(sbus, iterations)

    def step(
        self,
        injection: np.ndarray,
        site_p_kw: np.ndarray,
        vm_out: np.ndarray | None = None,
        *,
        context: str = "",
    ) -> StepSummary:
        """Solve one step on the unchecked fast path and summarise it.

        Args:
            injection: One row of :meth:`injections` (background loads and generators, and
                any site power given there) [p.u.].
            site_p_kw: Active power per site bus added to ``injection``, load convention [kW]:
                a float64 array of shape ``(n_site,)``.
            vm_out: Float64 array of shape ``(len(net.bus),)`` to receive the bus voltage
                magnitudes in ``net.bus`` order [p.u.] (NaN for dead buses); None = not kept.
            context: Where the step is (e.g. ``"t=3600 s"``), quoted in errors.

        Raises:
            GridError: no convergence (when ``raise_on_divergence``).
        """
        sbus = self._sbus
        if self._site_single >= 0:
            sbus[:] = injection
            sbus[self._site_single] += self._site_coef * site_p_kw[0]
        else:
            np.dot(site_p_kw, self._site_map, out=self._site_buf)
            np.add(injection, self._site_buf, out=sbus)
        converged, iterations = self._newton(sbus)
        if not converged:
            self._diverged(iterations, context)
            nan = math.nan
            if vm_out is not None:
                vm_out[:] = nan
            return StepSummary(nan, nan, nan, nan, nan, nan, nan, False, iterations)
        return self._summary(sbus, iterations, vm_out)

    # -- results ----------------------------------------------------------------------------
    def _slack_and_losses(self, sbus: np.ndarray) -> tuple[complex, float]:
        """Power drawn from the slack and branch losses [p.u.] of the solved step."""
        s, nn = self._s, self.n_pvpq
        if self._one_slack:
            slack = s[nn] - sbus[nn]
        else:
            slack = np.add.reduce(s[nn:]) - np.add.reduce(sbus[nn:])
        # What the network takes in is its branch losses plus what bus shunts consume (the dot
        # with [1, 0, 1, 0, ...] sums the real parts).
        losses = np.dot(self._real_parts, s.view(np.float64))
        if self._g_shunt is not None:
            vm = np.abs(self._v)
            losses -= float(np.dot(self._g_shunt, vm * vm))
        return slack, losses

    def _summary(self, sbus: np.ndarray, iterations: int, vm_out: np.ndarray | None) -> StepSummary:
        v = self._v
        np.absolute(v, self._vm_int)
        # The method: np.take() adds ~0.5 us of dispatch; every index is valid, so "clip".
        self._vm_pad.take(self._bus_gather, out=self._stats_vm, mode="clip")
        np.negative(self._stats_vm, self._stats_neg_vm)
        if self._loading_rows_ok:
            loading = self._loading
            product = self._loading_product
            if product.dense is not None:
                np.dot(product.dense, v, loading)
            else:
                product(v, loading)
            np.absolute(loading, self._stats_loading)
        maxima = np.fmax.reduceat(self._stats, self._stats_starts)
        if self._loading_rows_ok:
            line_idle, trafo_idle = self._loading_idle
            line_max = line_idle if line_idle is not None else maxima[self._stats_line]
            trafo_max = trafo_idle if trafo_idle is not None else maxima[self._stats_trafo]
        else:
            line, trafo = self._loadings()
            line_max = float(np.nanmax(line)) if len(line) else 0.0
            trafo_max = float(np.nanmax(trafo)) if len(trafo) else 0.0
        if vm_out is not None:
            vm_out[:] = self._stats_vm
        if self._one_slack and self._g_shunt is None:
            nn = self.n_pvpq
            slack = self._s[nn] - sbus[nn]
            losses = np.dot(self._real_parts, self._s.view(np.float64))
        else:
            slack, losses = self._slack_and_losses(sbus)
        scale = self._kw_per_pu
        # numpy float64 scalars are floats: no conversions needed.
        return StepSummary(
            -maxima[1],
            maxima[0],
            line_max,
            trafo_max,
            losses * scale,
            slack.real * scale,
            slack.imag * scale,
            True,
            iterations,
        )

    def _loadings(self) -> tuple[np.ndarray, np.ndarray]:
        """Line and transformer loadings [%] in ``net`` order."""
        i_ka = self._i_pad
        np.multiply(np.abs(self._yft @ self._v), self._ka, out=i_ka[:-2])
        line = np.maximum(i_ka[self._line_from], i_ka[self._line_to]) * self._line_scale
        trafo = np.maximum(
            i_ka[self._trafo_from] * self._trafo_scale_hv,
            i_ka[self._trafo_to] * self._trafo_scale_lv,
        )
        return line, trafo

    def _results(self, sbus: np.ndarray, iterations: int) -> PowerFlowResult:
        self._v_pad[:-1] = self._v
        v_padded = self._v_pad[self._bus_gather]
        line, trafo = self._loadings()
        slack, losses = self._slack_and_losses(sbus)
        scale = self._kw_per_pu
        return PowerFlowResult(
            vm_pu=np.abs(v_padded),
            va_degree=np.angle(v_padded, deg=True),
            line_loading_pct=line,
            trafo_loading_pct=trafo,
            losses_kw=float(losses * scale),
            ext_grid_p_kw=float(slack.real * scale),
            ext_grid_q_kvar=float(slack.imag * scale),
            converged=True,
            iterations=iterations,
        )

    def _failed(self, iterations: int) -> PowerFlowResult:
        nan = float("nan")
        return PowerFlowResult(
            vm_pu=np.full(len(self.bus_index), nan),
            va_degree=np.full(len(self.bus_index), nan),
            line_loading_pct=np.full(len(self.line_index), nan),
            trafo_loading_pct=np.full(len(self.trafo_index), nan),
            losses_kw=nan,
            ext_grid_p_kw=nan,
            ext_grid_q_kvar=nan,
            converged=False,
            iterations=iterations,
        )
