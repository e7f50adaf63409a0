"""Power-flow result types, the pinned pandapower options, and the plain-pandapower reference.

:func:`runpp_reference` computes a step the slow, obvious way (write the injections into the net
and call :func:`pandapower.runpp`); tests and benchmarks compare
:class:`~qubit_sim.grid.powerflow.FastPowerFlow` against it.
"""

from __future__ import annotations

import copy
import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from qubit_sim.errors import GridError

if TYPE_CHECKING:  # pragma: no cover
    from pandapower.auxiliary import pandapowerNet

__all__ = [
    "RUNPP_OPTIONS",
    "SITE_LOAD_PREFIX",
    "PowerFlowResult",
    "StepSummary",
    "runpp_reference",
]

#: Options every pandapower call here uses, so that both solvers solve the same model. The
#: backends are pinned because pandapower silently switches to lightsim2grid when it is installed.
RUNPP_OPTIONS: dict[str, Any] = {
    "algorithm": "nr",
    "calculate_voltage_angles": True,
    "init": "auto",
    "trafo_model": "t",
    "trafo_loading": "current",
    "enforce_q_lims": False,
    "voltage_depend_loads": False,
    "distributed_slack": False,
    "check_connectivity": True,
    "lightsim2grid": False,
    "numba": importlib.util.find_spec("numba") is not None,
}

#: Name prefix of the loads :func:`runpp_reference` adds for the sites.
SITE_LOAD_PREFIX = "qubit_site@"


@dataclass(frozen=True, slots=True)
class PowerFlowResult:
    """Solution of one power flow step.

    Attributes:
        vm_pu: Voltage magnitude per bus in ``net.bus`` order [p.u.]; NaN for out-of-service or
            isolated buses.
        va_degree: Voltage angle per bus [deg], including transformer phase shifts.
        line_loading_pct: Loading per line in ``net.line`` order [%]: larger end current over
            ``max_i_ka * df * parallel``.
        trafo_loading_pct: Loading per two-winding transformer in ``net.trafo`` order [%]: larger
            end current over rated current, divided by ``parallel * df``.
        losses_kw: Active power lost in lines, transformers and impedances [kW]. Bus shunts
            (shunt, ward impedances) count as consumption, not losses; without them, losses are
            the sum of all bus injections, so ``ext_grid_p_kw`` = loads - generation + losses.
        ext_grid_p_kw: Active power the feeder draws from the slack (upstream grid) [kW];
            positive = import.
        ext_grid_q_kvar: Reactive power drawn from the slack [kvar].
        converged: Whether Newton-Raphson met the tolerance.
        iterations: Newton-Raphson iterations (linear solves) used [-].
    """

    vm_pu: np.ndarray
    va_degree: np.ndarray
    line_loading_pct: np.ndarray
    trafo_loading_pct: np.ndarray
    losses_kw: float
    ext_grid_p_kw: float
    ext_grid_q_kvar: float
    converged: bool
    iterations: int


class StepSummary(NamedTuple):
    """What :meth:`~qubit_sim.grid.powerflow.FastPowerFlow.step` reports about one step.

    Each field is the reduction of the matching :class:`PowerFlowResult` array, taken over the
    buses, lines and transformers that pandapower reports a number for (NaN entries skipped).

    Attributes:
        vm_min_pu: Lowest bus voltage magnitude [p.u.].
        vm_max_pu: Highest bus voltage magnitude [p.u.].
        line_loading_max_pct: Highest line loading [%]; 0 without lines.
        trafo_loading_max_pct: Highest two-winding transformer loading [%]; 0 without any.
        losses_kw: Active power lost in lines, transformers and impedances [kW].
        ext_grid_p_kw: Active power drawn from the slack, positive = import [kW].
        ext_grid_q_kvar: Reactive power drawn from the slack [kvar].
        converged: Whether Newton-Raphson met the tolerance (False only without
            ``raise_on_divergence``; every other field is then NaN).
        iterations: Newton-Raphson iterations (linear solves) used [-].
    """

    vm_min_pu: float
    vm_max_pu: float
    line_loading_max_pct: float
    trafo_loading_max_pct: float
    losses_kw: float
    ext_grid_p_kw: float
    ext_grid_q_kvar: float
    converged: bool
    iterations: int


def site_bus_array(net: Any, site_buses: Sequence[int]) -> np.ndarray:
    """``site_buses`` as an int64 array, checked against ``net.bus.index``.

    Raises:
        GridError: a bus is not an integer index or not in the net.
    """
    buses = np.asarray(list(site_buses))
    if buses.ndim != 1 or (buses.size and not np.issubdtype(buses.dtype, np.integer)):
        raise GridError(
            f"site_buses must be a sequence of bus indices (int), got {list(site_buses)!r}; "
            "resolve names first with qubit_sim.grid.resolve_bus"
        )
    missing = [int(b) for b in buses if b not in net.bus.index]
    if missing:
        raise GridError(f"site bus(es) {missing} are not in the network (net.bus.index)")
    return buses.astype(np.int64)


def runpp_reference(
    net: pandapowerNet,
    site_buses: Sequence[int],
    site_p_kw: np.ndarray,
    site_q_kvar: np.ndarray | None = None,
    load_p_mw: np.ndarray | None = None,
    load_q_mvar: np.ndarray | None = None,
    sgen_p_mw: np.ndarray | None = None,
    *,
    inplace: bool = False,
    tolerance_mva: float = 1e-9,
) -> PowerFlowResult:
    """The same step as :meth:`FastPowerFlow.solve`, computed by a plain ``pandapower.runpp``.

    Writes the injections into ``net.load`` / ``net.sgen``, adds one load per site (named
    ``"qubit_site@<k>"``, reused on later calls with ``inplace=True``) and runs ``runpp`` with
    :data:`RUNPP_OPTIONS`. Losses are the sum of line, transformer and impedance losses.

    Args:
        net: The feeder.
        site_buses: ``net.bus`` index of each site.
        site_p_kw: Active power per site, load convention [kW].
        site_q_kvar: Reactive power per site, load convention [kvar]; None = 0.
        load_p_mw: ``net.load.p_mw`` values [MW]; None = keep.
        load_q_mvar: ``net.load.q_mvar`` values [Mvar]; None = keep.
        sgen_p_mw: ``net.sgen.p_mw`` values [MW]; None = keep.
        inplace: Modify ``net`` itself (faster when called repeatedly) instead of a deep copy.
        tolerance_mva: ``runpp`` convergence tolerance [MVA].

    Raises:
        GridError: the power flow does not converge.
    """
    import pandapower as pp

    buses = site_bus_array(net, site_buses)
    work = net if inplace else copy.deepcopy(net)
    # Site loads added by an earlier in-place call are not part of the caller's load order.
    own = ~work.load["name"].astype(str).str.startswith(SITE_LOAD_PREFIX).to_numpy()
    if load_p_mw is not None:
        work.load.loc[own, "p_mw"] = np.asarray(load_p_mw, dtype=np.float64)
    if load_q_mvar is not None:
        work.load.loc[own, "q_mvar"] = np.asarray(load_q_mvar, dtype=np.float64)
    if sgen_p_mw is not None:
        work.sgen["p_mw"] = np.asarray(sgen_p_mw, dtype=np.float64)
    site_p = np.asarray(site_p_kw, dtype=np.float64).reshape(-1) * 1e-3
    site_q = (
        np.zeros(len(site_p))
        if site_q_kvar is None
        else np.asarray(site_q_kvar, dtype=np.float64).reshape(-1) * 1e-3
    )
    if site_p.shape != buses.shape or site_q.shape != buses.shape:
        raise GridError(f"site powers need one value per site bus ({len(buses)})")
    for k, bus in enumerate(buses):
        name = f"{SITE_LOAD_PREFIX}{k}"
        existing = work.load.index[work.load["name"].astype(str) == name]
        if len(existing):
            work.load.loc[existing[0], ["bus", "p_mw", "q_mvar"]] = [bus, site_p[k], site_q[k]]
        else:
            pp.create_load(work, int(bus), p_mw=site_p[k], q_mvar=site_q[k], name=name)
    try:
        pp.runpp(work, tolerance_mva=tolerance_mva, **RUNPP_OPTIONS)
    except Exception as exc:  # pandapower raises its own LoadflowNotConverged and others
        raise GridError(f"pandapower runpp failed: {exc}") from exc
    losses_mw = sum(
        float(work[f"res_{table}"]["pl_mw"].sum())
        for table in ("line", "trafo", "trafo3w", "impedance")
        if table in work and len(work[table])
    )
    return PowerFlowResult(
        vm_pu=work.res_bus["vm_pu"].to_numpy(dtype=np.float64).copy(),
        va_degree=work.res_bus["va_degree"].to_numpy(dtype=np.float64).copy(),
        line_loading_pct=work.res_line["loading_percent"].to_numpy(dtype=np.float64).copy(),
        trafo_loading_pct=work.res_trafo["loading_percent"].to_numpy(dtype=np.float64).copy(),
        losses_kw=losses_mw * 1e3,
        ext_grid_p_kw=float(work.res_ext_grid["p_mw"].sum()) * 1e3,
        ext_grid_q_kvar=float(work.res_ext_grid["q_mvar"].sum()) * 1e3,
        converged=bool(work.converged),
        iterations=int(work._ppc["iterations"]),
    )
