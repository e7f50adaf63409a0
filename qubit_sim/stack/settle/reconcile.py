"""Reconciliation: what was metered and settled against what the twins did.

Settlement bills what the meters counted; the simulation knows what every twin really did. The
checks below compare the two, each with its difference, tolerance and verdict (energies [Wh]):

1. ``site_meter_vs_assets`` — site meter energy (import - export) against the sum of every asset's
   energy at the connection point (loads, chargers, batteries, PV from the per-device columns);
   tolerance 1 Wh for the run.
2. ``feeder_balance`` — with a simulated feeder: the external grid's energy (the power flow's
   slack) against site meter + feeder background + feeder losses, with the feeder's own net draw
   per step from the ``grid_background_kw`` column [kW, load convention: every feeder element
   that is not the site, loads minus generation as the power flow saw them]; tolerance 1 Wh plus
   1e-6 of the external grid's energy (the power flow converges to a power mismatch, not
   exactly). A results folder without that column reports the check as not made, naming the
   column, and it does not count towards the verdict.
3. ``charging_sessions`` — energy invoiced per session (register difference: the CSMS's
   transaction records after a ``wire`` run, the charger registers the run read otherwise)
   against the charger twin's energy over the session's steps; tolerance 1 Wh per session
   (whole-Wh registers).
4. ``charger_energy`` — the charger twins' energy inside the metered sessions (invoiced, or
   still open at the end of the run), against all the energy they delivered in the run: a lost
   transaction leaves energy outside every session, one counted twice counts it twice; tolerance
   1 Wh for the run. With ``charging_sessions`` this ties the invoiced total to everything the
   chargers delivered.
5. ``pv_certificates`` — energy certified per inverter-hour (energy register difference) against
   the PV twin's output in that hour; tolerance 1 Wh per certificate. Hours without a
   certificate count with 0 Wh, so a missing certificate fails too.

6. ``external_sessions`` — only when the run's CSMS admitted outside charge points and they
   ran transactions: informational, always passing. Those charge points have no twin, so there
   is nothing to hold their registers against: the line reports how many sessions they had, the
   energy their registers counted (measured and reference alike), how many were invoiced or still
   open and whose clock had to be clamped into the run. Checks 3 and 4 leave them out.

Each per-item check passes when every item is within its tolerance and the sum is within the
summed tolerance. ``notes`` explains what the checks do not cover: an outside charge point is not
part of the simulated site, so its energy is in neither the site meter nor the feeder balance.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from qubit_sim.stack.settle.certificates import EnergyCertificate
from qubit_sim.stack.settle.inputs import BACKGROUND_COLUMN, DEVICE_KINDS, RunInputs
from qubit_sim.stack.settle.invoices import ChargingInvoice

__all__ = ["BACKGROUND_COLUMN", "ITEM_TOLERANCE_WH", "METER_TOLERANCE_WH", "reconcile"]

#: Where invoiced energy came from, as reported in the ``charging_sessions`` check.
_SOURCES = {True: "csms_transactions", False: "charger_registers"}

METER_TOLERANCE_WH = 1.0
ITEM_TOLERANCE_WH = 1.0
# Float summation noise allowed on top of a tolerance [Wh].
_NOISE_WH = 1e-6
# Relative tolerance of the feeder balance: the power flow converges to a power mismatch, not
# exactly.
_FEEDER_RELATIVE = 1e-6


def _check(
    name: str,
    description: str,
    measured_wh: float,
    reference_wh: float,
    tolerance_wh: float,
    **extra: Any,
) -> dict[str, Any]:
    difference = measured_wh - reference_wh
    items_ok = extra.pop("items_ok", True)
    passed = abs(difference) <= tolerance_wh + _NOISE_WH and items_ok
    return {
        "name": name,
        "description": description,
        "status": "pass" if passed else "fail",
        "passed": bool(passed),
        "measured_wh": float(measured_wh),
        "reference_wh": float(reference_wh),
        "difference_wh": float(difference),
        "tolerance_wh": float(tolerance_wh),
        **extra,
    }


def _site_meter(inputs: RunInputs) -> dict[str, Any]:
    wh = inputs.step_s / 3600.0 * 1000.0
    meter_kw = inputs.column("grid_import_kw") - inputs.column("grid_export_kw")
    by_kind = {}
    assets_kw = np.zeros(inputs.n_steps)
    for kind in DEVICE_KINDS:
        devices = inputs.devices(kind)
        kind_kw = np.sum(list(devices.values()), axis=0) if devices else np.zeros(inputs.n_steps)
        by_kind[f"{kind}_wh"] = float(kind_kw.sum() * wh)
        assets_kw = assets_kw + kind_kw
    step_gap = np.abs(meter_kw - assets_kw)
    return _check(
        "site_meter_vs_assets",
        "site meter (import - export) vs sum of asset energies at the connection point",
        float(meter_kw.sum() * wh),
        float(assets_kw.sum() * wh),
        METER_TOLERANCE_WH,
        assets=by_kind,
        max_step_difference_kw=float(step_gap.max()) if len(step_gap) else 0.0,
    )


def _feeder(inputs: RunInputs) -> dict[str, Any] | None:
    if "grid_ext_p_kw" not in inputs.frame:
        return None
    description = "external grid energy vs site + feeder background + losses"
    if BACKGROUND_COLUMN not in inputs.frame:
        return {
            "name": "feeder_balance",
            "description": description,
            "status": "not_checked",
            "passed": None,
            "reason": (
                f"the time series has no {BACKGROUND_COLUMN} column (feeder loads minus feeder "
                "generation per step [kW]), so the feeder balance cannot be formed"
            ),
        }
    wh = inputs.step_s / 3600.0 * 1000.0
    ext_kw = inputs.column("grid_ext_p_kw")
    background_kw = inputs.column(BACKGROUND_COLUMN)
    site_kw = inputs.column("grid_import_kw") - inputs.column("grid_export_kw")
    losses_kw = inputs.column("grid_losses_kw")
    ext_wh = float(ext_kw.sum() * wh)
    return _check(
        "feeder_balance",
        description,
        ext_wh,
        float((site_kw + background_kw + losses_kw).sum() * wh),
        METER_TOLERANCE_WH + _FEEDER_RELATIVE * float(np.abs(ext_kw).sum() * wh),
        losses_wh=float(losses_kw.sum() * wh),
        background_wh=float(background_kw.sum() * wh),
    )


def _items(
    name: str,
    description: str,
    ids: Sequence[str],
    measured: np.ndarray,
    reference: np.ndarray,
    n_items: int,
) -> dict[str, Any]:
    difference = measured - reference
    outside = np.abs(difference) > ITEM_TOLERANCE_WH + _NOISE_WH
    worst = int(np.argmax(np.abs(difference))) if len(difference) else None
    return _check(
        name,
        description,
        float(measured.sum()),
        float(reference.sum()),
        ITEM_TOLERANCE_WH * n_items,
        items=n_items,
        items_checked=len(ids),
        item_tolerance_wh=ITEM_TOLERANCE_WH,
        items_outside_tolerance=int(outside.sum()),
        worst_item=None
        if worst is None
        else {"id": ids[worst], "difference_wh": float(difference[worst])},
        first_failures=[ids[i] for i in np.flatnonzero(outside)[:10]],
        items_ok=not outside.any(),
    )


def _outside_ids(sessions: pd.DataFrame) -> set[str]:
    """Session ids of outside charge points (no twin)."""
    if "external" not in sessions or not len(sessions):
        return set()
    return set(sessions.loc[sessions["external"].astype(bool), "session_id"].astype(str))


def _sessions(
    sessions: pd.DataFrame, invoices: Sequence[ChargingInvoice], source: str
) -> dict[str, Any]:
    outside = _outside_ids(sessions)
    invoices = [invoice for invoice in invoices if invoice.session_id not in outside]
    twin_wh = dict(zip(sessions["session_id"].astype(str), sessions["wh_twin"], strict=True))
    ids = [invoice.session_id for invoice in invoices]
    check = _items(
        "charging_sessions",
        "invoiced energy per session (metered register difference) vs charger twin energy in "
        "the session",
        ids,
        np.array([invoice.wh_delivered for invoice in invoices], dtype=float),
        np.array([twin_wh[session] for session in ids], dtype=float),
        len(ids),
    )
    check["source"] = source
    return check


def _charger_energy(
    inputs: RunInputs, sessions: pd.DataFrame, invoices: Sequence[ChargingInvoice]
) -> dict[str, Any]:
    wh = inputs.step_s / 3600.0 * 1000.0
    outside = _outside_ids(sessions)
    if outside:
        sessions = sessions[~sessions["session_id"].astype(str).isin(outside)]
        invoices = [invoice for invoice in invoices if invoice.session_id not in outside]
    chargers = inputs.devices("charger")
    twin_wh = float(sum(float(p_kw.sum()) for p_kw in chargers.values()) * wh)
    in_sessions_wh = float(sessions["wh_twin"].sum()) if len(sessions) else 0.0
    still_open = sessions[sessions["is_open"].astype(bool)] if len(sessions) else sessions
    return _check(
        "charger_energy",
        "charger twin energy inside invoiced or open sessions vs all energy the charger twins "
        "delivered",
        in_sessions_wh,
        twin_wh,
        METER_TOLERANCE_WH,
        sessions=len(sessions),
        invoiced_wh=float(sum(invoice.wh_delivered for invoice in invoices)),
        open_sessions=len(still_open),
        open_sessions_wh=float(still_open["wh_metered"].sum()) if len(still_open) else 0.0,
    )


def _external(sessions: pd.DataFrame, invoices: Sequence[ChargingInvoice]) -> dict[str, Any] | None:
    outside = _outside_ids(sessions)
    if not outside:
        return None
    rows = sessions[sessions["session_id"].astype(str).isin(outside)]
    metered_wh = float(rows["wh_metered"].sum())
    invoiced = [invoice for invoice in invoices if invoice.session_id in outside]
    still_open = rows[rows["is_open"].astype(bool)]
    clamped = rows[rows["clock_clamped"].astype(bool)]
    return _check(
        "external_sessions",
        "sessions of allow-listed outside charge points (no twin), from their own registers; "
        "informational",
        metered_wh,
        metered_wh,
        0.0,
        informational=True,
        charge_points=sorted(set(rows["charger_id"].astype(str))),
        sessions=len(rows),
        kwh=metered_wh / 1000.0,
        invoiced=len(invoiced),
        invoiced_wh=float(sum(invoice.wh_delivered for invoice in invoiced)),
        open_sessions=len(still_open),
        open_sessions_wh=float(still_open["wh_metered"].sum()),
        clock_clamped=sorted(clamped["session_id"].astype(str)),
    )


def _certificates(
    pv_hourly: pd.DataFrame, certificates: Sequence[EnergyCertificate]
) -> dict[str, Any]:
    certified = {(c.asset_id, c.period_start): c.wh_produced for c in certificates}
    starts = pd.DatetimeIndex(pv_hourly["period_start"]).strftime("%Y-%m-%dT%H:%M:%SZ")
    keys = list(zip(pv_hourly["asset_id"].astype(str), starts, strict=True))
    ids = [f"{asset}@{start}" for asset, start in keys]
    # The summed tolerance is 1 Wh per certificate; hours without one are checked item by item.
    return _items(
        "pv_certificates",
        "certified PV energy per inverter-hour (energy register) vs PV twin output in the hour",
        ids,
        np.array([certified.get(key, 0) for key in keys], dtype=float),
        pv_hourly["wh_twin"].to_numpy(dtype=float),
        len(certificates),
    )


def reconcile(
    inputs: RunInputs,
    sessions: pd.DataFrame,
    invoices: Sequence[ChargingInvoice],
    pv_hourly: pd.DataFrame,
    certificates: Sequence[EnergyCertificate],
) -> dict[str, Any]:
    """All reconciliation checks (module doc) as a JSON-ready dict.

    Args:
        inputs: The run.
        sessions: Metered sessions (:func:`~qubit_sim.stack.settle.metering.metered_sessions`).
        invoices: The invoices issued for them.
        pv_hourly: Hourly PV table (:func:`~qubit_sim.stack.settle.metering.pv_hourly_metered`).
        certificates: The certificates issued from it.

    Returns:
        ``{"passed": bool, "checks": [...], "notes": [...]}``; ``passed`` is True when no check
        failed (checks that could not be made do not count); ``notes`` are plain sentences.
    """
    checks = [_site_meter(inputs)]
    feeder = _feeder(inputs)
    if feeder is not None:
        checks.append(feeder)
    checks.append(_sessions(sessions, invoices, _SOURCES[inputs.transactions is not None]))
    checks.append(_charger_energy(inputs, sessions, invoices))
    checks.append(_certificates(pv_hourly, certificates))
    external = _external(sessions, invoices)
    notes = []
    if external is not None:
        checks.append(external)
        checks[0]["note"] = "outside charge points are not part of the simulated site power"
        notes.append(
            f"outside charge points {external['charge_points']} are not part of the simulated "
            "site power: their energy is in neither the site meter nor the feeder balance, and "
            "they are left out of charging_sessions and charger_energy (see external_sessions)"
        )
    return {
        "passed": all(check["passed"] is not False for check in checks),
        "checks": checks,
        "notes": notes,
    }
