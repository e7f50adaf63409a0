"""AC power flow that builds the feeder model once and re-solves it every step.

:class:`FastPowerFlow` runs :func:`pandapower.runpp` once to take pandapower's own internal model
of the feeder: admittance matrices after closed bus-bus switches have fused buses and open line
switches have cut lines, out-of-service elements removed, bus types and slack. Each step then only
rebuilds the bus injections from the new load/PV/site powers and runs Newton-Raphson from the
previous solution. Results are mapped back to every pandapower bus, line and transformer and follow
pandapower's definitions, so :func:`runpp_reference` (a plain ``runpp`` with the same injections)
gives the same numbers to solver tolerance.

Newton-Raphson (:class:`~qubit_sim.grid.newton.ChordNewton`) works in rectangular coordinates
and keeps its Jacobian across iterations and steps while it still contracts the mismatch fast;
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

from qubit_sim.errors import GridError
from qubit_sim.grid.newton import LINEAR_SOLVERS, ChordNewton, MatVec
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

_SQRT3 = math.sqrt(3.0)
_FACTS_TABLES = ("svc", "tcsc", "ssc", "vsc")


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
        contraction: float = 0.07,
        linear_solver: str = "auto",
    ) -> None:
        import pandapower as pp

        self.site_buses = site_bus_array(net, site_buses)
        _check_supported(net)
        if not tolerance_mva > 0:
            raise GridError(f"tolerance_mva must be > 0, got {tolerance_mva!r}")
        if linear_solver not in LINEAR_SOLVERS:
            raise GridError(
                f"linear_solver must be one of {list(LINEAR_SOLVERS)}, got {linear_solver!r}"
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
        self._newton = ChordNewton(self._ybus, self.n_pv, self.n_pvpq, self._v_init, linear_solver)
        self.n_unknowns = self._newton.n_unknowns
        self._build_injections(net)
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
        self._loading_product = MatVec(rows)

    def _build_buffers(self) -> None:
        n, nn = self.n_internal_bus, self.n_pvpq
        self._sbus = np.empty(n, dtype=np.complex128)
        self._site_buf = np.empty(n)
        self._vm_pad = np.full(n + 1, np.nan)
        # step() reduces everything in one call: the maxima of [vm, -vm, line loadings at both
        # ends, transformer loadings at both ends], NaN (dead) entries skipped.
        n_bus = len(self.bus_index)
        n_line, n_trafo = self._n_line_ends, self._n_trafo_ends
        if not self._loading_rows_ok:
            n_line = n_trafo = 0
        self._stats = np.empty(2 * n_bus + n_line + n_trafo)
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
        self._bind_views()

    def _bind_views(self) -> None:
        """Views into the buffers that :meth:`step` writes through."""
        n, n_bus = self.n_internal_bus, len(self.bus_index)
        self._vm_int = self._vm_pad[:n]
        self._stats_vm = self._stats[:n_bus]
        self._stats_neg_vm = self._stats[n_bus : 2 * n_bus]
        self._stats_loading = self._stats[2 * n_bus :]

    # A copy or a pickle holds each array on its own: views would come back as detached arrays
    # that step() writes while it reads the originals. They are rebuilt instead (the solver's
    # own, in ChordNewton).
    _VIEWS = ("_vm_int", "_stats_vm", "_stats_neg_vm", "_stats_loading")

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in self._VIEWS}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._bind_views()

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
            ``(n_internal_bus,)``, or ``(steps, n_internal_bus)`` if any argument is 2-D (a
            transposed view: its rows are strided).

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
        # Site P and Q come after the loads and generators in the input vector; one column
        # per step, so that the sparse product needs no copies.
        order = [2, 3, 4, 0, 1]
        n_steps = steps.pop() if steps else 1
        inputs = np.empty((self._n_inputs, n_steps))
        start = 0
        for k in order:
            count = given[k][3]
            inputs[start : start + count] = (
                arrays[k].T if arrays[k].ndim == 2 else arrays[k][:, None]
            )
            start += count
        if not math.isfinite(float(inputs.sum())):
            raise GridError("power flow inputs contain NaN or infinite values")
        sbus = self._input_map @ inputs
        sbus += self._s_fixed[:, None]
        # Rows of the transposed result are strided views; step() copies its row anyway.
        return sbus.T if any(a.ndim == 2 for a in arrays) else sbus[:, 0]

    # -- solving ----------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget the warm start and Jacobian; the next solve starts from the base case."""
        self._newton.reset()

    def _iterate(self, sbus: np.ndarray) -> tuple[bool, int]:
        return self._newton.iterate(
            sbus,
            self.tolerance_mva / self.base_mva,
            self.max_iterations,
            self.reuse_jacobian,
            self.contraction,
        )

    def _diverged(self, iterations: int, context: str) -> None:
        worst_mva = self._newton.largest_mismatch() * self.base_mva
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
        converged, iterations = self._iterate(sbus)
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
        converged, iterations = self._newton.iterate(
            sbus,
            self.tolerance_mva / self.base_mva,
            self.max_iterations,
            self.reuse_jacobian,
            self.contraction,
        )
        if not converged:
            if not np.isfinite(sbus).all():
                self.reset()
                raise GridError(
                    f"power flow inputs contain NaN or infinite values (site_p_kw {site_p_kw})"
                )
            self._diverged(iterations, context)
            nan = math.nan
            if vm_out is not None:
                vm_out[:] = nan
            return StepSummary(nan, nan, nan, nan, nan, nan, nan, False, iterations)
        return self._summary(sbus, iterations, vm_out)

    # -- results ----------------------------------------------------------------------------
    def _slack_and_losses(self, sbus: np.ndarray) -> tuple[complex, float]:
        """Power drawn from the slack and branch losses [p.u.] of the solved step."""
        s, nn = self._newton.s, self.n_pvpq
        if self._one_slack:
            slack = s[nn] - sbus[nn]
        else:
            slack = np.add.reduce(s[nn:]) - np.add.reduce(sbus[nn:])
        # What the network takes in is its branch losses plus what bus shunts consume (the dot
        # with [1, 0, 1, 0, ...] sums the real parts).
        losses = np.dot(self._real_parts, s.view(np.float64))
        if self._g_shunt is not None:
            vm = np.abs(self._newton.v)
            losses -= float(np.dot(self._g_shunt, vm * vm))
        return slack, losses

    def _summary(self, sbus: np.ndarray, iterations: int, vm_out: np.ndarray | None) -> StepSummary:
        v = self._newton.v
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
            nn, s = self.n_pvpq, self._newton.s
            slack = s[nn] - sbus[nn]
            losses = np.dot(self._real_parts, s.view(np.float64))
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
        np.multiply(np.abs(self._yft @ self._newton.v), self._ka, out=i_ka[:-2])
        line = np.maximum(i_ka[self._line_from], i_ka[self._line_to]) * self._line_scale
        trafo = np.maximum(
            i_ka[self._trafo_from] * self._trafo_scale_hv,
            i_ka[self._trafo_to] * self._trafo_scale_lv,
        )
        return line, trafo

    def _results(self, sbus: np.ndarray, iterations: int) -> PowerFlowResult:
        self._v_pad[:-1] = self._newton.v
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
