"""Granular energy certificates: one per PV asset per hour of generation, signed by the site.

Energies in a certificate are magnitudes [Wh] >= 0 — at the site bus PV power is negative (load
convention), a certificate counts the energy the asset *produced*. Of that energy,
``wh_exported`` went to the grid and ``wh_consumed_on_site = wh_produced - wh_exported`` was used
behind the meter; the split is exact in integer Wh.

``carbon_intensity_g_per_kwh`` is the grid's carbon intensity of that hour [gCO2/kWh] as a
one-decimal string, the figure a buyer of hourly-matched energy needs.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from qubit_sim.stack.settle.canonical import decimal_text, to_wh
from qubit_sim.stack.settle.errors import SettlementError
from qubit_sim.stack.settle.keys import SiteKey
from qubit_sim.stack.settle.records import (
    check_fields,
    derived_id,
    iso_utc,
    parse_iso_utc,
    sign_fields,
)

__all__ = [
    "CERTIFICATE_CONTEXT",
    "HOURLY_COLUMNS",
    "EnergyCertificate",
    "certificate_id",
    "hourly_pv_table",
    "issue_certificates",
]

CERTIFICATE_CONTEXT = "qubit-sim/energy-certificate/v1"
HOURLY_COLUMNS = (
    "period_start",
    "asset_id",
    "e_produced_kwh",
    "e_exported_kwh",
    "carbon_intensity_g_per_kwh",
)
_RECORD_TYPE = "energy_certificate"
_TECHNOLOGY = "solar_pv"
_HOUR = timedelta(hours=1)
_ISO_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
_CARBON = re.compile(r"^\d+\.\d$")
# Rounding noise tolerated when checking exported <= produced and energies >= 0 [kWh].
_TOLERANCE_KWH = 1e-9


def certificate_id(site_id: str, asset_id: str, period_start: str) -> str:
    """``cert_<32 hex>``, derived from site, asset and period start (``...Z``) only."""
    return derived_id("cert", site_id, asset_id, period_start)


@dataclass(frozen=True)
class EnergyCertificate:
    """One hour of one PV asset's generation [Wh], signed (field meanings in the module doc)."""

    certificate_id: str
    site_id: str
    asset_id: str
    technology: str
    period_start: str
    period_end: str
    wh_produced: int
    wh_consumed_on_site: int
    wh_exported: int
    carbon_intensity_g_per_kwh: str
    issued_at: str
    public_key_id: str
    signature: str

    kind = "certificate"

    @property
    def item_id(self) -> str:
        """The identifier verification reports name."""
        return self.certificate_id

    @property
    def settled_at(self) -> datetime:
        """The instant that decides the settlement period: the start of the hour."""
        return parse_iso_utc(self.period_start)

    def to_dict(self) -> dict[str, Any]:
        """The JSON record, with its ``type`` field."""
        return {"type": _RECORD_TYPE, **asdict(self)}

    @classmethod
    def from_dict(cls, data: Any) -> EnergyCertificate:
        """Read a record strictly: exact field set and types.

        Raises:
            SettlementError: naming the first bad field.
        """
        types: dict[str, type | tuple[type, ...]] = {"type": str}
        types.update({name: (int if name.startswith("wh_") else str) for name in _FIELDS})
        check_fields(data, types, "certificate")
        if data["type"] != _RECORD_TYPE:
            raise SettlementError(f"certificate type {data['type']!r} is not {_RECORD_TYPE!r}")
        return cls(**{name: data[name] for name in _FIELDS})

    def problems(self) -> list[str]:
        """Inconsistencies between the fields, none if the certificate is well formed."""
        found = []
        if self.certificate_id != certificate_id(self.site_id, self.asset_id, self.period_start):
            found.append("certificate_id does not derive from site, asset and period")
        if self.technology != _TECHNOLOGY:
            found.append(f"technology {self.technology!r} is not {_TECHNOLOGY!r}")
        try:
            start = parse_iso_utc(self.period_start)
            end = parse_iso_utc(self.period_end)
            issued = parse_iso_utc(self.issued_at)
        except SettlementError as exc:
            return [*found, str(exc)]
        if start.minute or start.second or end - start != _HOUR:
            found.append("period is not one whole UTC hour")
        if issued < end:
            found.append("issued before the end of its period")
        if min(self.wh_produced, self.wh_exported, self.wh_consumed_on_site) < 0:
            found.append("negative energy")
        if self.wh_produced != self.wh_consumed_on_site + self.wh_exported:
            found.append("wh_produced != wh_consumed_on_site + wh_exported")
        if self.wh_produced == 0:
            found.append("no generation in the hour")
        if not _CARBON.match(self.carbon_intensity_g_per_kwh):
            found.append("carbon_intensity_g_per_kwh is not a one-decimal non-negative number")
        return found


_FIELDS = tuple(EnergyCertificate.__dataclass_fields__)


def issue_certificates(
    hourly: pd.DataFrame, key: SiteKey, site_id: str, *, issued_at: datetime | None = None
) -> list[EnergyCertificate]:
    """Sign one certificate per PV asset per hour with generation.

    Args:
        hourly: Long table with the columns :data:`HOURLY_COLUMNS`: ``period_start`` (UTC
            hour start, timezone-aware), ``asset_id``, ``e_produced_kwh`` [kWh] >= 0,
            ``e_exported_kwh`` [kWh] in 0..produced, ``carbon_intensity_g_per_kwh``
            [gCO2/kWh]. :func:`hourly_pv_table` builds it from per-step series.
        key: The site's signing key; must belong to ``site_id``.
        site_id: The site issuing the certificates.
        issued_at: Simulated issue instant for every certificate; by default each one is issued
            at the end of its hour. Never the wall clock.

    Returns:
        Certificates sorted by period start, then asset id. Rows whose production rounds to
        0 Wh give none.

    Raises:
        SettlementError: for missing columns, duplicate (asset, hour) rows, misaligned or naive
            timestamps, negative energies, or export above production.
    """
    if key.site_id != site_id:
        raise SettlementError(f"key of site {key.site_id!r} cannot sign for site {site_id!r}")
    missing = [column for column in HOURLY_COLUMNS if column not in hourly.columns]
    if missing:
        raise SettlementError(f"hourly table lacks columns {missing}; expected {HOURLY_COLUMNS}")
    if hourly.empty:
        return []
    starts = pd.to_datetime(hourly["period_start"])
    if starts.dt.tz is None:
        raise SettlementError("hourly period_start must be timezone-aware UTC timestamps")
    duplicated = hourly.assign(period_start=starts).duplicated(["period_start", "asset_id"])
    if duplicated.any():
        row = hourly[duplicated.to_numpy()].iloc[0]
        raise SettlementError(
            f"hourly table has two rows for asset {row['asset_id']!r} at {row['period_start']}"
        )
    starts = starts.dt.tz_convert("UTC")
    misaligned = (starts != starts.dt.floor("h")).to_numpy()
    if misaligned.any():
        row = hourly[misaligned].iloc[0]
        raise SettlementError(
            f"hourly row for asset {row['asset_id']!r} at {row['period_start']} does not start "
            "on a whole hour"
        )
    issue_text = iso_utc(issued_at) if issued_at is not None else None
    if issued_at is not None and len(starts) and issued_at < starts.max() + _HOUR:
        raise SettlementError(f"issued_at {issue_text} is before the end of hour {starts.max()}")
    certificates = []
    columns = zip(
        starts.dt.strftime(_ISO_FORMAT).tolist(),
        (starts + _HOUR).dt.strftime(_ISO_FORMAT).tolist(),
        hourly["asset_id"].astype(str).tolist(),
        hourly["e_produced_kwh"].astype(float).tolist(),
        hourly["e_exported_kwh"].astype(float).tolist(),
        hourly["carbon_intensity_g_per_kwh"].astype(float).tolist(),
        strict=True,
    )
    for period_start, period_end, asset_id, produced_kwh, exported_kwh, carbon in columns:
        where = f"asset {asset_id!r} at {period_start}"
        if produced_kwh < -_TOLERANCE_KWH or exported_kwh < -_TOLERANCE_KWH:
            raise SettlementError(
                f"negative energy for {where}: certificates count produced energy as a "
                "magnitude; pass -p_kw of the PV (negative at the site bus)"
            )
        if exported_kwh > produced_kwh + _TOLERANCE_KWH:
            raise SettlementError(
                f"{where} exports {exported_kwh} kWh but produced only {produced_kwh} kWh"
            )
        wh_produced = max(to_wh(produced_kwh), 0)
        if wh_produced == 0:
            continue
        wh_exported = min(max(to_wh(exported_kwh), 0), wh_produced)
        if not math.isfinite(carbon) or carbon < 0:
            raise SettlementError(f"carbon intensity {carbon!r} for {where} must be >= 0")
        fields: dict[str, Any] = {
            "type": _RECORD_TYPE,
            "certificate_id": certificate_id(site_id, asset_id, period_start),
            "site_id": site_id,
            "asset_id": asset_id,
            "technology": _TECHNOLOGY,
            "period_start": period_start,
            "period_end": period_end,
            "wh_produced": wh_produced,
            "wh_consumed_on_site": wh_produced - wh_exported,
            "wh_exported": wh_exported,
            "carbon_intensity_g_per_kwh": decimal_text(carbon, 1),
            "issued_at": issue_text or period_end,
            "public_key_id": key.key_id,
        }
        fields["signature"] = sign_fields(fields, key, CERTIFICATE_CONTEXT)
        certificates.append(EnergyCertificate.from_dict(fields))
    certificates.sort(key=lambda cert: (cert.period_start, cert.asset_id))
    return certificates


def hourly_pv_table(
    step_start: pd.DatetimeIndex,
    step_s: int,
    pv_p_kw: Mapping[str, Any],
    site_p_kw: Any,
    carbon_intensity_g_per_kwh: Any,
) -> pd.DataFrame:
    """Aggregate per-step series into the hourly table :func:`issue_certificates` reads.

    Per step, each asset produces ``max(-p_kw, 0)``; the site exports ``max(-site_p_kw, 0)``, of
    which at most the total PV production counts as PV export (the rest came from a
    discharging battery), shared between assets pro rata to their production. The hour's carbon
    intensity is the time average of the step values.

    Args:
        step_start: UTC start of every step.
        step_s: Step length [s]; must divide 3600.
        pv_p_kw: Per PV asset id, its power per step [kW], load convention (negative = producing).
        site_p_kw: Site net power at the grid connection per step [kW], load convention.
        carbon_intensity_g_per_kwh: Grid carbon intensity per step [gCO2/kWh].

    Returns:
        One row per (hour, asset) with the columns :data:`HOURLY_COLUMNS`.

    Raises:
        SettlementError: for mismatched lengths, a naive index or a step not dividing an hour.
    """
    if step_start.tz is None:
        raise SettlementError("step_start must be a timezone-aware (UTC) DatetimeIndex")
    if step_s <= 0 or 3600 % step_s:
        raise SettlementError(f"step {step_s} s must divide one hour so steps fall in one hour")
    n_steps = len(step_start)
    asset_ids = sorted(pv_p_kw)
    series = {"site_p_kw": site_p_kw, "carbon_intensity_g_per_kwh": carbon_intensity_g_per_kwh}
    series.update({f"pv_p_kw[{asset}]": pv_p_kw[asset] for asset in asset_ids})
    for name, values in series.items():
        if np.shape(values) != (n_steps,):
            raise SettlementError(f"{name} has shape {np.shape(values)}, expected ({n_steps},)")
    hours_per_step = step_s / 3600.0
    produced_kw = np.clip(-np.array([pv_p_kw[a] for a in asset_ids], dtype=float), 0.0, None)
    produced_kw = produced_kw.reshape(len(asset_ids), n_steps)
    total_kw = produced_kw.sum(axis=0)
    pv_export_kw = np.minimum(np.clip(-np.asarray(site_p_kw, dtype=float), 0.0, None), total_kw)
    share = np.divide(produced_kw, total_kw, out=np.zeros_like(produced_kw), where=total_kw > 0)
    exported_kw = share * pv_export_kw
    hour = step_start.tz_convert("UTC").floor("h")
    carbon = pd.Series(np.asarray(carbon_intensity_g_per_kwh, dtype=float)).groupby(hour).mean()
    frames = []
    for row, asset_id in enumerate(asset_ids):
        energy = (
            pd.DataFrame(
                {
                    "e_produced_kwh": produced_kw[row] * hours_per_step,
                    "e_exported_kwh": exported_kw[row] * hours_per_step,
                }
            )
            .groupby(hour)
            .sum()
        )
        energy["carbon_intensity_g_per_kwh"] = carbon
        energy.insert(0, "asset_id", asset_id)
        frames.append(energy)
    if not frames:
        return pd.DataFrame(columns=list(HOURLY_COLUMNS))
    table = pd.concat(frames).rename_axis("period_start").reset_index()
    return table.sort_values(["period_start", "asset_id"], ignore_index=True)[list(HOURLY_COLUMNS)]
