"""AC power flow that builds the feeder model once and re-solves it every step.

:class:`FastPowerFlow` runs :func:`pandapower.runpp` once to take pandapower's own internal model
of the feeder: admittance matrices after closed bus-bus switches have fused buses and open line
switches have cut lines, out-of-service elements removed, bus types and slack. Each step then only
rebuilds the bus injections from the new load/PV/site powers and runs Newton-Raphson from the
previous solution. Results are mapped back to every pandapower bus, line and transformer and follow
pandapower's definitions, so :func:`runpp_reference` (a plain ``runpp`` with the same injections)
gives the same numbers to solver tolerance.

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
from scipy.linalg import get_lapack_funcs
from scipy.sparse.linalg import splu

from qubit_sim.errors import GridError
from qubit_sim.grid.reference import (
    RUNPP_OPTIONS,
    PowerFlowResult,
    runpp_reference,
    site_bus_array,
)

if TYPE_CHECKING:  # pragma: no cover
    from pandapower.auxiliary import pandapowerNet

__all__ = [
    "RUNPP_OPTIONS",
    "FastPowerFlow",
    "PowerFlowResult",
    "runpp_reference",
]

# Above this many unknowns a sparse LU beats a dense one (measured: 200 unknowns, 70 us sparse vs
# 180 us dense; 28 unknowns, dense is ~5x faster than sparse).
_DENSE_MAX_UNKNOWNS = 80
_SQRT3 = math.sqrt(3.0)
_FACTS_TABLES = ("svc", "tcsc", "ssc", "vsc")
_GETRF, _GETRS = get_lapack_funcs(("getrf", "getrs"), (np.zeros(1),))


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

    With ``reuse_jacobian`` the LU factors of the Jacobian are kept across iterations and steps and
    refreshed only when the mismatch stops shrinking fast (by ``contraction`` per iteration). The
    answer is the same: every step iterates until the mismatch is below ``tolerance_mva``.

    Args:
        net: The feeder. It is not modified.
        site_buses: ``net.bus`` index of each site connection point (a bus may repeat).
        tolerance_mva: Largest bus power mismatch accepted [MVA].
        max_iterations: Newton-Raphson iterations per step before giving up [-]; steps with a
            reused Jacobian count too, hence a higher default than pandapower's 10.
        raise_on_divergence: Raise :class:`GridError` on non-convergence; if False, return a
            result with ``converged=False`` and NaN voltages, loadings and powers instead.
        reuse_jacobian: Keep Jacobian factors while they still contract the mismatch.
        contraction: Mismatch ratio between iterations above which the Jacobian is refreshed [-].

    Raises:
        GridError: unknown or isolated site bus, unsupported elements, or the base case fails.
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
    ) -> None:
        import pandapower as pp

        self.site_buses = site_bus_array(net, site_buses)
        _check_supported(net)
        if not tolerance_mva > 0:
            raise GridError(f"tolerance_mva must be > 0, got {tolerance_mva!r}")
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
        self._build_injections(net, work)
        self._build_jacobian_map()
        self._build_branch_maps(net, work)
        self._lu: Any = None

    # -- model ------------------------------------------------------------------------------
    def _build_model(self, work: Any) -> None:
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
        self._pv = np.arange(self.n_pv)
        self._pq = np.arange(self.n_pv, self.n_pvpq)
        self._pvpq = np.arange(self.n_pvpq)
        self._ref = np.arange(self.n_pvpq, n)
        ybus = ybus[order][:, order]
        # An explicit diagonal entry in every row keeps the Jacobian pattern fixed.
        ybus = (ybus + sp.csr_matrix((np.zeros(n), (np.arange(n), np.arange(n))), (n, n))).tocsr()
        ybus.sum_duplicates()
        ybus.sort_indices()
        self._ybus = ybus
        gen = internal["gen"].copy()
        at_ref = np.isin(gen[:, GEN_BUS].astype(np.int64), ref)
        gen[at_ref, PG] = 0.0
        gen[at_ref, QG] = 0.0
        s_fixed = makeSbus(self.base_mva, internal["bus"], gen)
        self._s_fixed = np.asarray(s_fixed, np.complex128)[order]
        self._v_init = np.asarray(internal["V"], dtype=np.complex128)[order].copy()
        self._v = self._v_init.copy()
        # pandapower bus -> our bus number; n and above mean out of service or isolated.
        lookup = np.asarray(work._pd2ppc_lookups["bus"], dtype=np.int64)
        self._lookup = np.where(lookup < n, self._new_of_old[np.minimum(lookup, n - 1)], n)
        # Index n of the padded voltage vector holds NaN, for dead buses.
        self._bus_gather = self._lookup[self.bus_index]

    def _build_injections(self, net: Any, work: Any) -> None:
        n = self.n_internal_bus
        bus_lookup = self._lookup

        def placement(table: Any) -> tuple[np.ndarray, np.ndarray]:
            if not len(table):
                return np.zeros(0, dtype=np.int64), np.zeros(0)
            pos = bus_lookup[table["bus"].to_numpy(dtype=np.int64)]
            weight = _column(table, "scaling", 1.0) * table["in_service"].to_numpy(dtype=float)
            return np.where(pos < n, pos, 0), np.where(pos < n, weight, 0.0)

        load_pos, self._load_w = placement(net.load)
        sgen_pos, self._sgen_w = placement(net.sgen)
        site_pos = bus_lookup[self.site_buses]
        dead = self.site_buses[site_pos >= n]
        if dead.size:
            raise GridError(
                f"site bus(es) {dead.tolist()} are out of service or cut off from the slack by "
                "open switches; connect the site to a live bus"
            )
        # One bincount over loads, generators and sites at once.
        self._inj_pos = np.concatenate([load_pos, sgen_pos, site_pos])
        self.n_site = len(site_pos)

    def _build_jacobian_map(self) -> None:
        ybus = self._ybus
        n = self.n_internal_bus
        nnz = ybus.nnz
        self._rows = np.repeat(np.arange(n), np.diff(ybus.indptr))
        self._cols = ybus.indices.astype(np.int64)
        self._ydata = ybus.data
        self._row_starts = ybus.indptr[:-1].astype(np.int64)
        self._diag = np.flatnonzero(self._rows == self._cols)
        n_pvpq = len(self._pvpq)
        pos_pvpq = np.full(n, -1)
        pos_pvpq[self._pvpq] = np.arange(n_pvpq)
        pos_pq = np.full(n, -1)
        pos_pq[self._pq] = np.arange(len(self._pq))
        r_a, c_a = pos_pvpq[self._rows], pos_pvpq[self._cols]
        r_q, c_q = pos_pq[self._rows], pos_pq[self._cols]
        edges = np.arange(nnz)
        # Rows of the derivative table: 0 Re dS/dVa, 1 Re dS/dVm, 2 Im dS/dVa, 3 Im dS/dVm.
        blocks = [
            (0, (r_a >= 0) & (c_a >= 0), r_a, c_a),
            (1, (r_a >= 0) & (c_q >= 0), r_a, n_pvpq + c_q),
            (2, (r_q >= 0) & (c_a >= 0), n_pvpq + r_q, c_a),
            (3, (r_q >= 0) & (c_q >= 0), n_pvpq + r_q, n_pvpq + c_q),
        ]
        src = np.concatenate([block * nnz + edges[mask] for block, mask, _, _ in blocks])
        jr = np.concatenate([r[mask] for _, mask, r, _ in blocks])
        jc = np.concatenate([c[mask] for _, mask, _, c in blocks])
        m = n_pvpq + len(self._pq)
        self.n_unknowns = m
        self._dense = m <= _DENSE_MAX_UNKNOWNS
        if self._dense:
            self._jac_src = src
            self._jac_flat = jc * m + jr  # column-major, as LAPACK wants it
            self._jac_buf = np.zeros(m * m)
        else:
            order = sp.csc_matrix((np.arange(1, len(src) + 1, dtype=float), (jr, jc)), (m, m))
            self._jac_src = src[order.data.astype(np.int64) - 1]
            self._jac = order
        self._table = np.empty((4, nnz))

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
        self._branch_ends = self._new_of_old[np.r_[fbus, tbus]]
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
        self._v_pad = np.full(n + 1, np.nan, dtype=np.complex128)
        self._i_pad = np.r_[np.zeros(2 * n_branch), 0.0, np.nan]

    # -- solving ----------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget the warm start and Jacobian; the next solve starts from the base case."""
        self._v = self._v_init.copy()
        self._lu = None

    def _injections(
        self,
        site_p_kw: np.ndarray,
        site_q_kvar: np.ndarray | None,
        load_p_mw: np.ndarray | None,
        load_q_mvar: np.ndarray | None,
        sgen_p_mw: np.ndarray | None,
    ) -> np.ndarray:
        site_p = np.asarray(site_p_kw, dtype=np.float64).reshape(-1)
        site_q = (
            np.zeros(self.n_site)
            if site_q_kvar is None
            else np.asarray(site_q_kvar, dtype=np.float64).reshape(-1)
        )
        load_p = self._default_load_p if load_p_mw is None else np.asarray(load_p_mw, np.float64)
        load_q = (
            self._default_load_q if load_q_mvar is None else np.asarray(load_q_mvar, np.float64)
        )
        sgen_p = self._default_sgen_p if sgen_p_mw is None else np.asarray(sgen_p_mw, np.float64)
        if (
            site_p.shape != (self.n_site,)
            or site_q.shape != (self.n_site,)
            or load_p.shape != (self.n_load,)
            or load_q.shape != (self.n_load,)
            or sgen_p.shape != (self.n_sgen,)
        ):
            raise GridError(
                f"power flow inputs have shapes site_p_kw {site_p.shape}, site_q_kvar "
                f"{site_q.shape}, load_p_mw {load_p.shape}, load_q_mvar {load_q.shape}, "
                f"sgen_p_mw {sgen_p.shape}; expected ({self.n_site},) per site, "
                f"({self.n_load},) per load and ({self.n_sgen},) per sgen"
            )
        # Powers drawn from each bus [MW]: loads and sites draw, generators feed in.
        p_draw = np.concatenate([load_p * self._load_w, -sgen_p * self._sgen_w, site_p * 1e-3])
        q_draw = np.concatenate([load_q * self._load_w, np.zeros(self.n_sgen), site_q * 1e-3])
        if not math.isfinite(p_draw.sum() + q_draw.sum()):
            raise GridError("power flow inputs contain NaN or infinite values")
        n = self.n_internal_bus
        p = np.bincount(self._inj_pos, weights=p_draw, minlength=n)
        q = np.bincount(self._inj_pos, weights=q_draw, minlength=n)
        return self._s_fixed - (p + 1j * q) / self.base_mva

    def _factorize(self, table: np.ndarray) -> Any:
        values = table.ravel()[self._jac_src]
        if self._dense:
            buf = self._jac_buf
            buf[self._jac_flat] = values
            m = self.n_unknowns
            lu, piv, info = _GETRF(buf.reshape((m, m), order="F"))
            return None if info != 0 else (lu, piv)
        self._jac.data = values
        try:
            return splu(self._jac)
        except RuntimeError:  # singular Jacobian
            return None

    def _lu_solve(self, lu: Any, f: np.ndarray) -> np.ndarray:
        if self._dense:
            dx, _ = _GETRS(lu[0], lu[1], f)
            return dx
        return lu.solve(f)

    def _newton(self, sbus: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool, int, float]:
        v = self._v.copy()
        vm = np.abs(v)
        va = np.angle(v)
        n_pv, n_pvpq = self.n_pv, self.n_pvpq
        rows, cols, ydata, diag = self._rows, self._cols, self._ydata, self._diag
        table = self._table
        tol = self.tolerance_mva / self.base_mva
        lu = self._lu if self.reuse_jacobian else None
        previous = math.inf
        iterations = 0
        while True:
            # t_ik = V_i conj(Y_ik V_k); its row sums are the bus injections S_i.
            t = v[rows] * np.conj(ydata * v[cols])
            s = np.add.reduceat(t, self._row_starts)
            mis = s - sbus
            f = np.concatenate((mis.real[:n_pvpq], mis.imag[n_pv:n_pvpq]))
            worst = float(np.abs(f).max()) if f.size else 0.0
            if worst < tol:
                self._lu = lu if self.reuse_jacobian else None
                return v, s, True, iterations, worst * self.base_mva
            if iterations >= self.max_iterations or not math.isfinite(worst):
                return v, s, False, iterations, worst * self.base_mva
            if lu is None or worst > self.contraction * previous:
                inv_vm = 1.0 / vm
                table[0] = t.imag
                table[1] = t.real * inv_vm[cols]
                table[2] = -t.real
                table[3] = t.imag * inv_vm[cols]
                table[0, diag] -= s.imag
                table[1, diag] += s.real * inv_vm
                table[2, diag] += s.real
                table[3, diag] += s.imag * inv_vm
                lu = self._factorize(table)
                if lu is None:
                    return v, s, False, iterations, worst * self.base_mva
            dx = self._lu_solve(lu, f)
            va[:n_pvpq] -= dx[:n_pvpq]
            vm[n_pv:n_pvpq] -= dx[n_pvpq:]
            v = vm * np.exp(1j * va)
            previous = worst
            iterations += 1

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
        """Solve one step.

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
        sbus = self._injections(site_p_kw, site_q_kvar, load_p_mw, load_q_mvar, sgen_p_mw)
        v, s, converged, iterations, worst_mva = self._newton(sbus)
        if not converged:
            self.reset()
            if self.raise_on_divergence:
                where = f" at {context}" if context else ""
                raise GridError(
                    f"power flow did not converge{where} after {iterations} iterations "
                    f"(largest mismatch {worst_mva:.3g} MVA); the feeder is probably loaded "
                    "beyond voltage collapse: check the site and load powers"
                )
            return self._failed(iterations)
        self._v = v
        return self._results(v, s, sbus, iterations)

    def _results(
        self, v: np.ndarray, s: np.ndarray, sbus: np.ndarray, iterations: int
    ) -> PowerFlowResult:
        self._v_pad[:-1] = v
        v_padded = self._v_pad[self._bus_gather]
        i_ft = self._yft @ v
        i_ka = self._i_pad
        np.multiply(np.abs(i_ft), self._ka, out=i_ka[:-2])
        # Losses are what flows into branches from both ends; bus shunts are consumption.
        branch_loss = np.vdot(i_ft, v[self._branch_ends]).real
        line_loading = np.maximum(i_ka[self._line_from], i_ka[self._line_to]) * self._line_scale
        trafo_loading = np.maximum(
            i_ka[self._trafo_from] * self._trafo_scale_hv,
            i_ka[self._trafo_to] * self._trafo_scale_lv,
        )
        slack = (s[self._ref] - sbus[self._ref]).sum() * (self.base_mva * 1e3)
        return PowerFlowResult(
            vm_pu=np.abs(v_padded),
            va_degree=np.angle(v_padded, deg=True),
            line_loading_pct=line_loading,
            trafo_loading_pct=trafo_loading,
            losses_kw=float(branch_loss * self.base_mva * 1e3),
            ext_grid_p_kw=float(slack.real),
            ext_grid_q_kvar=float(slack.imag),
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
