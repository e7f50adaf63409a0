"""Feeder limits for the LP controllers, linearised from the scenario's own feeder.

For every slot the feeder is solved twice with :class:`~qubit_sim.grid.FastPowerFlow` (its own
loads and generators at the slot's first step, the site at 0 kW and at a reference import), which
gives each monitored quantity's value with the site idle (``base``) and its change per kW of site
import (the sensitivity, averaged over the slots). Monitored: every transformer's loading, the
lines whose loading the site moves most, and the site bus voltage. The plans then keep
``lower <= base + sensitivity * p_site <= upper`` softly (a
:class:`~qubit_sim.stack.optimize.LinearGridConstraint`). The limits are the scenario's
``grid.loading_limit_pct`` and ``grid.voltage_limits_pu`` tightened by ``margin``, which absorbs
the linearisation error: loadings are not linear in power (and turn around when the site exports).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from qubit_sim.errors import ControllerError

__all__ = ["MONITORED_LINES", "feeder_constraint", "feeder_window"]

#: Lines monitored at most: the ones whose loading the site moves most (its path to the substation).
MONITORED_LINES = 10


def feeder_constraint(
    grid: Any,
    n_slots: int,
    slot_s: int,
    step_s: int,
    reference_kw: float,
    margin: float,
    name: str,
) -> Any:
    """The feeder limits of a run's ``n_slots`` slots, as a ``LinearGridConstraint``.

    Args:
        grid: The site's :class:`~qubit_sim.scenario.build.GridModel` (``SiteInfo.params["grid"]``).
        n_slots / slot_s / step_s: The controller's slots and the simulation step [s].
        reference_kw: Site import the sensitivity is taken at [kW] (linearised from 0 to it).
        margin: Share of the room to each limit kept free, 0..0.5 (loadings: of the limit;
            voltages: of the distance from 1 p.u. to the limit).
        name: The controller, for errors.

    Raises:
        ControllerError: no feeder in the scenario, a bad margin, or a power flow that fails.
    """
    from qubit_sim.errors import GridError
    from qubit_sim.grid import FastPowerFlow
    from qubit_sim.stack.optimize import LinearGridConstraint

    if grid is None:
        raise ControllerError(
            f"controller {name!r}: feeder_limits needs a scenario with a `grid:` section"
        )
    if not 0.0 <= margin <= 0.5:
        raise ControllerError(
            f"controller {name!r}: feeder_margin = {margin!r} must be within 0..0.5 (a share)"
        )
    flow = FastPowerFlow(grid.net, grid.site_buses)
    background = grid.background
    n_sites = len(grid.site_buses)
    site_v = grid.site_bus_index_in_results
    # The step at each slot's start (background rows exist for the simulated steps only).
    steps = np.arange(n_slots) * slot_s // step_s
    if background is not None:
        steps = np.minimum(steps, len(background.load_p_mw) - 1)
    rows: dict[float, list[np.ndarray]] = {0.0: [], reference_kw: []}
    try:
        for k in steps:
            loads = (
                {}
                if background is None
                else {
                    "load_p_mw": background.load_p_mw[k],
                    "load_q_mvar": background.load_q_mvar[k],
                    "sgen_p_mw": background.sgen_p_mw[k],
                }
            )
            for p_kw in rows:
                result = flow.solve(np.full(n_sites, p_kw / n_sites), **loads)
                rows[p_kw].append(
                    np.concatenate(
                        [result.trafo_loading_pct, result.line_loading_pct, [result.vm_pu[site_v]]]
                    )
                )
    except GridError as exc:
        raise ControllerError(f"controller {name!r}: feeder_limits: {exc}") from None
    idle = np.array(rows[0.0]).T  # (quantities, slots)
    loaded = np.array(rows[reference_kw]).T
    sensitivity = np.nanmean(loaded - idle, axis=1) / reference_kw
    n_trafo = len(grid.net.trafo)
    n_line = len(grid.net.line)
    line_sens = np.nan_to_num(np.abs(sensitivity[n_trafo : n_trafo + n_line]))
    lines = n_trafo + np.argsort(-line_sens, kind="stable")[:MONITORED_LINES]
    lines = lines[line_sens[lines - n_trafo] > 0]
    chosen = np.concatenate([np.arange(n_trafo), lines, [n_trafo + n_line]]).astype(np.int64)
    base = np.nan_to_num(idle[chosen], nan=0.0)
    limit = grid.loading_limit_pct * (1.0 - margin)
    v_low, v_high = grid.voltage_limits_pu
    n_loading = len(chosen) - 1
    lower = np.concatenate([np.full(n_loading, -1e6), [v_low + margin * (1.0 - v_low)]])
    upper = np.concatenate([np.full(n_loading, limit), [v_high - margin * (v_high - 1.0)]])
    return LinearGridConstraint(base, np.nan_to_num(sensitivity[chosen]), lower, upper)


def feeder_window(constraint: Any, first: int, n: int) -> Any:
    """``constraint`` for the ``n`` slots from ``first`` (a rolling controller's horizon)."""
    from dataclasses import replace

    return replace(constraint, base=constraint.base[:, first : first + n])
