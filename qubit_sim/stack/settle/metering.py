"""What the site's meters counted: PV energy registers per inverter per hour, charger registers
per charging session, and the twins' own energy over the same intervals for reconciliation.

* A PV inverter's energy register counts produced energy in whole Wh, as a SunSpec inverter's
  ``WH`` register does (model 101-103: rounded to the nearest Wh). The energy of an hour is the
  register at the end of the hour minus the register at its start, so the hours of a day add up
  to the day's register difference exactly.
* A charger's register is read at plug-in and unplug in whole Wh (``sessions.parquet``:
  ``meter_start_wh``, ``meter_stop_wh``); the session's billed energy is their difference.
* After a ``wire`` run, sessions are the CSMS's transactions instead
  (``csms_transactions.parquet``): registers as meterStart/meterStop (1.6) or the first and last
  energy register of the TransactionEvents (2.0.1) arrived over OCPP, read in whole Wh (rounded
  down, as the simulator's own meter reads them). The vehicle is the one the simulator plugged
  into that charger at the transaction's start, if any (the CSMS only knows the id tag).
* A served run's CSMS also admits outside charge points (``realtime.charge_points`` in the
  YAML, listed in the manifest's ``realtime.allowed_charge_points``). They have no twin and no
  ``charger_<id>_p_kw`` column: their sessions are billed from their own registers
  (meterStart/meterStop), the vehicle unknown, ``wh_twin`` 0 and ``external`` True. Such a charge
  point stamps its transactions with its own clock, which need not follow simulated time (a
  served run is paced at a factor of the wall clock, and the scenario may be set in another
  year). Its start and stop are therefore clamped into the recorded run, ``[0, n_steps * step_s]``
  with the stop not before the start (whether it ended is read from its stop time, not
  from the sign of ``stop_s``), and ``clock_clamped`` says when that moved either; the
  registers, and so the billed energy, are never changed. Its emissions are that energy times the
  mean grid carbon intensity over the (clamped) session's steps.

A step belongs to the UTC hour of its start; a session spans the steps from its plug-in up to
(excluding) its unplug, or to the end of the run while the EV is still plugged.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from qubit_sim.stack.settle.errors import SettlementError
from qubit_sim.stack.settle.inputs import RunInputs
from qubit_sim.stack.settle.invoices import ChargingSession

__all__ = [
    "PV_HOURLY_COLUMNS",
    "SESSION_COLUMNS",
    "allowed_charge_points",
    "charging_sessions",
    "csms_sessions",
    "metered_sessions",
    "pv_hourly_metered",
]

PV_HOURLY_COLUMNS = (
    "period_start",
    "asset_id",
    "e_produced_kwh",
    "e_exported_kwh",
    "carbon_intensity_g_per_kwh",
    "wh_register",
    "wh_twin",
)
SESSION_COLUMNS = (
    "session_id",
    "charger_id",
    "vehicle_id",
    "start_s",
    "stop_s",
    "is_open",
    "meter_start_wh",
    "meter_stop_wh",
    "wh_metered",
    "wh_twin",
    "co2_kg",
    "external",
    "clock_clamped",
)


def _hour_groups(times: pd.DatetimeIndex) -> tuple[np.ndarray, pd.DatetimeIndex]:
    """Index of the first step of each UTC hour, and those hours."""
    hours = times.floor("h")
    first = np.flatnonzero(np.r_[True, hours[1:] != hours[:-1]])
    return first, hours[first]


def pv_hourly_metered(
    times: pd.DatetimeIndex,
    step_s: int,
    pv_p_kw: dict[str, np.ndarray],
    export_kw: np.ndarray,
    carbon_g_per_kwh: np.ndarray,
) -> pd.DataFrame:
    """Hourly PV energy per inverter as its energy register counts it, ready for certificates.

    Of the site's export, at most the total PV production counts as PV export (the rest came from
    a discharging battery), shared between inverters pro rata to their production per step.

    Args:
        times: UTC start of every step (increasing).
        step_s: Step length [s].
        pv_p_kw: Per inverter id, its power per step [kW], load convention (negative produces).
        export_kw: Site export per step [kW] >= 0 (the site meter's export).
        carbon_g_per_kwh: Grid carbon intensity per step [gCO2/kWh].

    Returns:
        One row per (hour, inverter) with the columns :data:`PV_HOURLY_COLUMNS`:
        ``e_produced_kwh`` is the register difference (whole Wh) / 1000, ``e_exported_kwh`` never
        exceeds it, ``wh_register`` [Wh] is the register difference and ``wh_twin`` [Wh] the
        twin's exact produced energy in the hour.
    """
    ids = sorted(pv_p_kw)
    if not ids or not len(times):
        return pd.DataFrame({name: [] for name in PV_HOURLY_COLUMNS})
    wh_per_kw_step = step_s / 3600.0 * 1000.0
    produced_kw = np.clip(-np.array([pv_p_kw[i] for i in ids], dtype=float), 0.0, None)
    total_kw = produced_kw.sum(axis=0)
    pv_export_kw = np.minimum(np.clip(np.asarray(export_kw, dtype=float), 0.0, None), total_kw)
    share = np.divide(produced_kw, total_kw, out=np.zeros_like(produced_kw), where=total_kw > 0)
    produced_wh = produced_kw * wh_per_kw_step
    exported_wh = share * pv_export_kw * wh_per_kw_step
    register = np.rint(np.concatenate([np.zeros((len(ids), 1)), produced_wh.cumsum(axis=1)], 1))
    first, hours = _hour_groups(times)
    bounds = np.r_[first, len(times)]
    wh_register = (register[:, bounds[1:]] - register[:, bounds[:-1]]).astype(np.int64)
    wh_twin = np.add.reduceat(produced_wh, first, axis=1)
    wh_exported = np.minimum(np.add.reduceat(exported_wh, first, axis=1), wh_register)
    carbon = np.add.reduceat(np.asarray(carbon_g_per_kwh, dtype=float), first) / np.diff(bounds)
    n_hours = len(first)
    table = pd.DataFrame(
        {
            "period_start": hours[np.tile(np.arange(n_hours), len(ids))],
            "asset_id": np.repeat(ids, n_hours),
            "e_produced_kwh": wh_register.ravel() / 1000.0,
            "e_exported_kwh": np.clip(wh_exported.ravel(), 0.0, None) / 1000.0,
            "carbon_intensity_g_per_kwh": np.tile(carbon, len(ids)),
            "wh_register": wh_register.ravel(),
            "wh_twin": wh_twin.ravel(),
        }
    )
    return table.sort_values(["period_start", "asset_id"], ignore_index=True)


def _twin_energy(
    inputs: RunInputs,
    charger_ids: np.ndarray,
    start_s: np.ndarray,
    stop_s: np.ndarray,
    what: str,
    hint: str = "",
) -> tuple[np.ndarray, np.ndarray]:
    """Charger twin energy [Wh] and its emissions [g] over each session's steps."""
    chargers = inputs.devices("charger")
    unknown = sorted(set(charger_ids) - set(chargers))
    if unknown:
        raise SettlementError(
            f"{what} use charger(s) {unknown[:3]} but the time series has no "
            f"charger_<id>_p_kw column for them{hint}"
        )
    n = inputs.n_steps
    wh_per_kw_step = inputs.step_s / 3600.0 * 1000.0
    carbon = inputs.column("carbon_g_per_kwh")
    first = np.minimum(start_s // inputs.step_s, n)
    last = np.where(stop_s >= 0, np.minimum(stop_s // inputs.step_s, n), n)
    wh_twin = np.zeros(len(charger_ids))
    grams = np.zeros(len(charger_ids))
    for charger in np.unique(charger_ids):
        rows = charger_ids == charger
        energy_wh = chargers[charger] * wh_per_kw_step
        cum_wh = np.r_[0.0, energy_wh.cumsum()]
        cum_g = np.r_[0.0, (energy_wh * carbon).cumsum() / 1000.0]
        wh_twin[rows] = cum_wh[last[rows]] - cum_wh[first[rows]]
        grams[rows] = cum_g[last[rows]] - cum_g[first[rows]]
    return wh_twin, grams


def metered_sessions(inputs: RunInputs) -> pd.DataFrame:
    """Every session that plugged in, with its meter registers and the twin's energy.

    Returns:
        One row per session with the columns :data:`SESSION_COLUMNS`: ``session_id`` as text,
        ``stop_s`` = -1 and ``is_open`` while still plugged at the end of the run,
        ``wh_metered`` [Wh] from the registers, ``wh_twin`` [Wh] the integral of the charger's
        ``charger_<id>_p_kw`` over the session's steps, ``co2_kg`` [kg CO2] that energy times the
        grid carbon intensity step by step.

    Raises:
        SettlementError: if a session names a charger the time series has no column for.
    """
    sessions = inputs.sessions
    plugged = sessions[
        (sessions["charger_id"].astype(str) != "")
        & ~sessions["rejected"].astype(bool)
        & (sessions["plugged_s"] >= 0)
        & (sessions["meter_start_wh"] >= 0)
    ]
    if plugged.empty:
        return pd.DataFrame({name: [] for name in SESSION_COLUMNS})
    charger_ids = plugged["charger_id"].astype(str).to_numpy()
    start_s = plugged["plugged_s"].to_numpy(np.int64)
    stop_s = plugged["unplugged_s"].to_numpy(np.int64)
    wh_twin, grams = _twin_energy(inputs, charger_ids, start_s, stop_s, "sessions")
    meter_start = plugged["meter_start_wh"].to_numpy(np.int64)
    meter_stop = plugged["meter_stop_wh"].to_numpy(np.int64)
    vehicles = plugged["vehicle_id"].to_numpy(object)
    return _session_frame(
        session_ids=plugged["session_id"].astype(str).to_numpy(),
        charger_ids=charger_ids,
        vehicles=[None if pd.isna(v) or v == "" else str(v) for v in vehicles],
        start_s=start_s,
        stop_s=stop_s,
        meter_start=meter_start,
        meter_stop=meter_stop,
        wh_twin=wh_twin,
        grams=grams,
        external=np.zeros(len(charger_ids), dtype=bool),
        clamped=np.zeros(len(charger_ids), dtype=bool),
    )


def _session_frame(
    *,
    session_ids: np.ndarray,
    charger_ids: np.ndarray,
    vehicles: list[str | None],
    start_s: np.ndarray,
    stop_s: np.ndarray,
    meter_start: np.ndarray,
    meter_stop: np.ndarray,
    wh_twin: np.ndarray,
    grams: np.ndarray,
    external: np.ndarray,
    clamped: np.ndarray,
) -> pd.DataFrame:
    """Metered sessions in the layout of ``SESSION_COLUMNS``: registers [Wh], emissions [g]."""
    return pd.DataFrame(
        {
            "session_id": session_ids,
            "charger_id": charger_ids,
            "vehicle_id": vehicles,
            "start_s": start_s,
            "stop_s": stop_s,
            "is_open": stop_s < 0,
            "meter_start_wh": meter_start,
            "meter_stop_wh": meter_stop,
            "wh_metered": meter_stop - meter_start,
            "wh_twin": wh_twin,
            "co2_kg": grams / 1000.0,
            "external": external,
            "clock_clamped": clamped,
        }
    )


def _vehicles_at(
    sessions: pd.DataFrame, charger_ids: np.ndarray, start_s: np.ndarray
) -> list[str | None]:
    """The vehicle the simulator plugged into each charger at each instant, None if none."""
    plugged = sessions[sessions["plugged_s"] >= 0]
    by_plug = {
        (str(charger), int(at)): vehicle
        for charger, at, vehicle in zip(
            plugged["charger_id"], plugged["plugged_s"], plugged["vehicle_id"], strict=True
        )
    }
    found = [by_plug.get((str(c), int(s))) for c, s in zip(charger_ids, start_s, strict=True)]
    return [None if v is None or pd.isna(v) or v == "" else str(v) for v in found]


def allowed_charge_points(inputs: RunInputs) -> set[str]:
    """Identities of outside charge points the run's CSMS admitted (manifest ``realtime``)."""
    section = inputs.manifest.get("realtime")
    allowed = section.get("allowed_charge_points") if isinstance(section, dict) else None
    return {str(identity) for identity in allowed or ()}


def _outside_energy(
    inputs: RunInputs,
    start_s: np.ndarray,
    stop_s: np.ndarray,
    ended: np.ndarray,
    wh_metered: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Clamped start and stop [s] (-1 while running), whether clamping moved them, and
    emissions [g] (module doc)."""
    end_s = inputs.n_steps * inputs.step_s
    start_in = np.clip(start_s, 0, end_s)
    stop_in = np.where(ended, np.clip(stop_s, start_in, end_s), -1)
    clamped = (start_in != start_s) | (ended & (stop_in != stop_s))
    carbon = inputs.column("carbon_g_per_kwh")
    grams = np.zeros(len(start_s))
    if len(carbon):
        cum = np.r_[0.0, carbon.cumsum()]
        first = np.minimum(start_in // inputs.step_s, inputs.n_steps - 1)
        last = np.where(stop_in >= 0, stop_in // inputs.step_s, inputs.n_steps)
        last = np.maximum(last, first + 1)  # a session within one step takes that step's value
        mean_g_per_kwh = (cum[last] - cum[first]) / (last - first)
        grams = wh_metered / 1000.0 * mean_g_per_kwh
    return start_in, stop_in, clamped, grams


def csms_sessions(inputs: RunInputs) -> pd.DataFrame:
    """The CSMS's transactions (``inputs.transactions``) as metered sessions.

    Registers are read in whole Wh, rounded down. ``session_id`` is the transaction id.
    Transactions of allow-listed outside charge points are billed from their registers alone,
    with their times clamped into the run (module doc).

    Returns:
        One row per transaction with a start register, in the layout of
        :func:`metered_sessions`; a transaction still running at the end of the run is open,
        its ``meter_stop_wh`` the last register the CSMS received.

    Raises:
        SettlementError: if there are no CSMS records, or a transaction names a charge point
            that is neither a charger twin (a time-series column) nor on the run's allow-list.
    """
    table = inputs.transactions
    if table is None:
        raise SettlementError(f"{inputs.folder} has no CSMS transaction records")
    table = table[table["meter_start_wh"].notna()]
    if table.empty:
        return pd.DataFrame({name: [] for name in SESSION_COLUMNS})
    charger_ids = table["charge_point"].astype(str).to_numpy()
    start_s = table["start_s"].to_numpy(np.int64)
    stop_s = table["stop_s"].to_numpy(np.int64)
    external = ~np.isin(charger_ids, list(inputs.devices("charger"))) & np.isin(
        charger_ids, sorted(allowed_charge_points(inputs))
    )
    twin = ~external
    wh_twin, grams = np.zeros(len(table)), np.zeros(len(table))
    wh_twin[twin], grams[twin] = _twin_energy(
        inputs,
        charger_ids[twin],
        start_s[twin],
        stop_s[twin],
        "CSMS transactions",
        " and they are not on the run's allow-list of outside charge points "
        "(realtime.charge_points in the scenario YAML, manifest realtime.allowed_charge_points)",
    )
    # An outside clock may stamp a stop before simulated time 0: its stop time, not the sign of
    # its stop_s, says that it ended.
    ended = np.where(external, table["stop_time"].fillna("").astype(str) != "", stop_s >= 0)
    start_wh = table["meter_start_wh"].to_numpy(float)
    # While running, the register so far: the last meter value the CSMS received.
    so_far_wh = start_wh + table["energy_wh"].fillna(0.0).to_numpy(float)
    stop_wh = table["meter_stop_wh"].to_numpy(float)
    stop_wh = np.where(ended & ~np.isnan(stop_wh), stop_wh, so_far_wh)
    meter_start = np.floor(start_wh + 1e-6).astype(np.int64)
    meter_stop = np.floor(stop_wh + 1e-6).astype(np.int64)
    vehicles = _vehicles_at(inputs.sessions, charger_ids, start_s)
    clamped = np.zeros(len(table), dtype=bool)
    if external.any():
        start_s, stop_s = start_s.copy(), stop_s.copy()
        start_s[external], stop_s[external], clamped[external], grams[external] = _outside_energy(
            inputs,
            start_s[external],
            stop_s[external],
            ended[external],
            (meter_stop - meter_start)[external].astype(float),
        )
        vehicles = [None if outside else v for v, outside in zip(vehicles, external, strict=True)]
    return _session_frame(
        session_ids=table["transaction_id"].astype(str).to_numpy(),
        charger_ids=charger_ids,
        vehicles=vehicles,
        start_s=start_s,
        stop_s=stop_s,
        meter_start=meter_start,
        meter_stop=meter_stop,
        wh_twin=wh_twin,
        grams=grams,
        external=external,
        clamped=clamped,
    )


def charging_sessions(metered: pd.DataFrame) -> list[ChargingSession]:
    """The finished sessions of :func:`metered_sessions`, as invoices bill them.

    A session still plugged at the end of the run has no stop reading yet and is not invoiced.
    """
    done = metered[~metered["is_open"].astype(bool)]
    return [
        ChargingSession(
            session_id=str(row.session_id),
            charger_id=str(row.charger_id),
            vehicle_id=row.vehicle_id,
            start_s=int(row.start_s),
            stop_s=int(row.stop_s),
            meter_start_wh=int(row.meter_start_wh),
            meter_stop_wh=int(row.meter_stop_wh),
        )
        for row in done.itertuples(index=False)
    ]
