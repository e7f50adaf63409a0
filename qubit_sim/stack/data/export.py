"""Export a qubit-sim results folder as Qubit v0.1 JSON documents.

Layout written under ``out_dir``::

    organizations/org_<...>.json     the organization operating the site
    sites/sit_<site>.json            location, time zone, grid-connection limits [kW]
    assets/ast_<site>_<kind>_<id>.json    one per charger, battery, PV plant and load
    meters/met_<site>_main.json      the site's main meter; met_<site>_<kind>_<id>.json per asset
    timeseries/tse_<...>_<YYYYMMDD>.json  site power and energy, per-asset power, battery SOC [%],
                                          charger occupancy

Ids are deterministic: the site name and device ids of the scenario with the schema prefixes
(characters outside ``[A-Za-z0-9_-]`` become ``_``); time-series ids end with the run's UTC start
date. Power keeps the load convention of qubit-sim (positive draws from the site bus, PV and
discharging batteries are negative); each series says so in ``measurement.description``.
Timestamps label the start of each interval; power is the interval average, SOC and energy
registers the value at the interval's end (``aggregation: last``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

from qubit_sim.stack.data.errors import ExportError
from qubit_sim.stack.data.models import Asset, Meter, Organization, Site, TimeSeries
from qubit_sim.stack.data.results_reader import Device, RunData, read_results
from qubit_sim.stack.data.series_export import (
    SeriesSpec,
    build_timeseries,
    interval_name,
    interval_seconds,
)
from qubit_sim.stack.data.unit_conversion import power_to_current_a

__all__ = ["QubitExport", "build_qubit_documents", "export_qubit"]

_ASSET_TYPES = {
    "charger": "ev_charger",
    "battery": "battery_storage",
    "pv": "solar_pv",
    "load": "other",
}
_METER_ROLE = {
    "charger": ("consumption", "import"),
    "battery": ("submeter", "bidirectional"),
    "pv": ("generation", "export"),
    "load": ("consumption", "import"),
}
_TITLES = {"charger": "Charger", "battery": "Battery", "pv": "PV plant", "load": "Load"}
_ID_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def _slug(text: str) -> str:
    return _ID_UNSAFE.sub("_", str(text)) or "unnamed"


@dataclass(frozen=True)
class QubitExport:
    """The Qubit documents of one run, before they are written."""

    organization: Organization
    site: Site
    assets: tuple[Asset, ...]
    meters: tuple[Meter, ...]
    timeseries: tuple[TimeSeries, ...]

    def documents(self) -> list[tuple[str, Organization | Site | Asset | Meter | TimeSeries]]:
        """(folder name, document) for every document, in writing order."""
        documents: list[tuple[str, Organization | Site | Asset | Meter | TimeSeries]] = [
            ("organizations", self.organization),
            ("sites", self.site),
        ]
        return (
            documents
            + [("assets", asset) for asset in self.assets]
            + [("meters", meter) for meter in self.meters]
            + [("timeseries", series) for series in self.timeseries]
        )


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _asset(site_id: str, site_slug: str, device: Device) -> dict[str, Any]:
    spec = device.spec
    kind = device.kind
    doc: dict[str, Any] = {
        "id": f"ast_{site_slug}_{kind}_{_slug(device.device_id)}",
        "site_id": site_id,
        "name": f"{_TITLES[kind]} {device.device_id}",
        "type": _ASSET_TYPES[kind],
        "status": "active",
        "metadata": {"qubit_sim_kind": kind, "qubit_sim_id": device.device_id},
    }
    if spec.get("template"):
        doc["metadata"]["template"] = spec["template"]
    if not spec:
        doc["metadata"]["spec"] = "not found in scenario.yaml"
        return doc
    if kind == "charger":
        power_kw = float(spec["power_kw"])
        voltage_v = float(spec.get("voltage_v", 230.0))
        phases = int(spec.get("phases", 3))
        dc = spec.get("kind") == "dc"
        doc.update(
            subtype="dc_fast" if dc else "ac_level_2",
            capacity={"power_kw": power_kw},
            electrical={
                "voltage_v": voltage_v,
                "phases": "three" if phases == 3 else "single",
                "current_a": power_to_current_a(power_kw, voltage=voltage_v, phases=phases),
            },
            efficiency=float(spec.get("efficiency", 0.97)) * 100.0,
            control_system={
                "protocol": {"ocpp2.0.1": "OCPP 2.0.1"}.get(
                    spec.get("protocol", "ocpp1.6"), "OCPP 1.6J"
                )
            },
        )
        doc["metadata"]["connectors_per_charger"] = int(spec.get("connectors", 1))
    elif kind == "battery":
        charge_kw = _float(spec.get("charge_kw") or spec.get("power_kw"))
        discharge_kw = _float(spec.get("discharge_kw") or spec.get("power_kw"))
        eta_c, eta_d = float(spec.get("eta_charge", 0.95)), float(spec.get("eta_discharge", 0.95))
        doc.update(
            subtype="stationary",
            capacity={
                "power_kw": max(charge_kw or 0.0, discharge_kw or 0.0),
                "energy_kwh": float(spec["capacity_kwh"]),
            },
            efficiency=eta_c * eta_d * 100.0,
        )
        doc["metadata"].update(
            max_charge_kw=charge_kw,
            max_discharge_kw=discharge_kw,
            efficiency_charge_percent=eta_c * 100.0,
            efficiency_discharge_percent=eta_d * 100.0,
            soc_min_percent=float(spec.get("soc_min", 0.1)) * 100.0,
            soc_max_percent=float(spec.get("soc_max", 0.9)) * 100.0,
            soc_initial_percent=float(spec.get("soc_initial", 0.5)) * 100.0,
        )
    elif kind == "pv":
        kwp = float(spec["kwp"])
        doc.update(
            subtype="pv_plant", capacity={"power_kw": _float(spec.get("inverter_kw")) or kwp}
        )
        doc["metadata"].update(
            dc_peak_kw=kwp,
            tilt_deg=float(spec.get("tilt_deg", 30.0)),
            azimuth_deg=float(spec.get("azimuth_deg", 180.0)),
            losses_percent=float(spec.get("losses_pct", 14.0)),
        )
    else:
        doc["subtype"] = "building_load"
        if spec.get("peak_kw") is not None:
            doc["capacity"] = {"power_kw": float(spec["peak_kw"])}
        doc["metadata"].update(
            profile=spec.get("profile", "G1-A"), annual_kwh=_float(spec.get("annual_kwh"))
        )
    doc["metadata"] = {k: v for k, v in doc["metadata"].items() if v is not None}
    return doc


def _power_bounds(device: Device) -> tuple[float | None, float | None]:
    spec = device.spec
    if not spec:
        return None, None
    if device.kind == "charger":
        return 0.0, float(spec["power_kw"])
    if device.kind == "battery":
        # a battery gives power_kw, or both charge_kw and discharge_kw (the scenario schema)
        charge = spec.get("charge_kw") or spec["power_kw"]
        discharge = spec.get("discharge_kw") or spec["power_kw"]
        return -float(discharge), float(charge)
    if device.kind == "pv":
        return -float(spec.get("inverter_kw") or spec["kwp"]), 0.0
    return None, None


def _series_specs(
    run: RunData, site_slug: str, asset_ids: list[tuple[Device, str]]
) -> list[SeriesSpec]:
    main = f"met_{site_slug}_main"
    columns = set(run.frame.columns)

    def site(column: str, key: str, parameter: str, unit: str, text: str, **kw: Any) -> SeriesSpec:
        return SeriesSpec(column, key, parameter, unit, meter_id=main, description=text, **kw)

    specs = [
        site("site_p_kw", "main_active_power", "active_power_net", "kW",
             "site net active power; positive imports from the grid"),
        site("grid_import_kw", "main_active_power_import", "active_power_import", "kW",
             "active power imported from the grid", low=0.0),
        site("grid_export_kw", "main_active_power_export", "active_power_export", "kW",
             "active power exported to the grid (magnitude)", low=0.0),
        site("grid_import_kw", "main_active_energy_import", "active_energy_import", "kWh",
             "imported energy register since the run start", register=True),
        site("grid_export_kw", "main_active_energy_export", "active_energy_export", "kWh",
             "exported energy register since the run start", register=True),
    ]  # fmt: skip
    if "grid_vm_site_pu" in columns:
        specs.append(SeriesSpec(
            "grid_vm_site_pu", "site_voltage_pu", "voltage_pu", "dimensionless", meter_id=None,
            description="voltage magnitude at the site bus from the power flow [p.u.]", low=0.0,
        ))  # fmt: skip
    for device, asset_id in asset_ids:
        key = f"{device.kind}_{_slug(device.device_id)}"
        low, high = _power_bounds(device)
        specs.append(SeriesSpec(
            f"{device.kind}_{device.device_id}_p_kw", f"{key}_active_power", "active_power", "kW",
            meter_id=f"met_{site_slug}_{key}", asset_id=asset_id, low=low, high=high,
            description="active power; positive draws from the site bus (load convention)",
        ))  # fmt: skip
        soc = f"battery_{device.device_id}_soc"
        if device.kind == "battery" and soc in columns:
            specs.append(SeriesSpec(
                soc, f"{key}_soc", "state_of_charge", "percent", meter_id=None,
                description="state of charge at the end of the interval", asset_id=asset_id,
                scale=100.0, low=0.0, high=100.0, aggregate="last",
            ))  # fmt: skip
        connected = f"charger_{device.device_id}_connected"
        if device.kind == "charger" and connected in columns:
            specs.append(SeriesSpec(
                connected, f"{key}_connected", "ev_connected", "boolean", meter_id=None,
                description="an EV is plugged in", asset_id=asset_id, aggregate="max",
                boolean=True,
            ))  # fmt: skip
    return specs


def _organization(run: RunData, org_id: str, named: bool) -> Organization:
    tariff = run.scenario.get("tariff") or {}
    return Organization.from_document({
        "id": org_id,
        "name": org_id.removeprefix("org_") if named else f"{run.site['name']} operator",
        "type": "other",
        "timezone": run.location["tz"],
        "currency": tariff.get("currency", "EUR"),
    })  # fmt: skip


def _site(run: RunData, site_id: str, org_id: str, site_type: str) -> Site:
    limits = run.site.get("grid_connection") or {}
    grid = {
        key: float(limits[source])
        for key, source in (("max_import_kw", "import_kw"), ("max_export_kw", "export_kw"))
        if limits.get(source) is not None
    }
    manifest = run.manifest
    metadata = {
        "scenario": manifest.get("scenario", run.site["name"]),
        "seed": manifest.get("seed"),
        "controller": manifest.get("controller"),
        "mode": manifest.get("mode"),
        "run_status": manifest.get("status"),
        "run_start": run.start.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "run_duration_s": run.duration_s,
        "step_s": run.step_s,
        "grid_network": (run.scenario.get("grid") or {}).get("network"),
    }
    location = run.location
    return Site.from_document({
        "id": site_id,
        "organization_id": org_id,
        "name": str(run.site["name"]),
        "type": site_type,
        "location": {
            "latitude": float(location["lat"]),
            "longitude": float(location["lon"]),
            "timezone": location["tz"],
        },
        **({"grid_connection": grid} if grid else {}),
        "status": "active",
        "metadata": {key: value for key, value in metadata.items() if value is not None},
    })  # fmt: skip


def _meters(
    run: RunData, site_id: str, site_slug: str, asset_ids: list[tuple[Device, str]], interval: str
) -> list[Meter]:
    collection = {"interval": interval, "aggregation": "average"}
    meters = [
        Meter.from_document({
            "id": f"met_{site_slug}_main",
            "site_id": site_id,
            "name": f"{run.site['name']} main meter",
            "type": "main",
            "measurement_point": "site connection point",
            "direction": "bidirectional",
            "measurements": [
                {"parameter": "active_power", "unit": "kW"},
                {"parameter": "active_energy", "unit": "kWh"},
            ],
            "data_collection": collection,
            "billing": {"is_billing_meter": True},
            "status": "active",
        })
    ]  # fmt: skip
    for device, asset_id in asset_ids:
        meter_type, direction = _METER_ROLE[device.kind]
        meters.append(Meter.from_document({
            "id": f"met_{site_slug}_{device.kind}_{_slug(device.device_id)}",
            "site_id": site_id,
            "asset_id": asset_id,
            "name": f"Meter of {_TITLES[device.kind].lower()} {device.device_id}",
            "type": meter_type,
            "direction": direction,
            "measurements": [{"parameter": "active_power", "unit": "kW"}],
            "data_collection": collection,
            "status": "active",
        }))  # fmt: skip
    return meters


def build_qubit_documents(
    results_dir: str | Path,
    *,
    organization_id: str | None = None,
    interval: str | None = None,
    decimals: int | None = 6,
    site_type: str = "other",
) -> QubitExport:
    """The Qubit documents of a results folder, validated by the models (see :func:`export_qubit`).

    Raises:
        ExportError: an unreadable results folder, a bad organization id, interval or site type.
        DocumentError: a document failed its model (a defect of the exporter).
    """
    run = read_results(results_dir)
    site_slug = _slug(str(run.site["name"]))
    site_id = f"sit_{site_slug}"
    org_id = organization_id or f"org_{site_slug}"
    if not re.fullmatch(r"org_[A-Za-z0-9_-]+", org_id):
        raise ExportError(
            f"organization_id {org_id!r} must be 'org_' followed by letters, digits, '_' or '-'"
        )
    interval_s = interval_seconds(interval, run.step_s)
    site_types = get_args(Site.model_fields["type"].annotation)
    if site_type not in site_types:
        raise ExportError(f"site_type {site_type!r} is not a Qubit site type; one of {site_types}")

    assets = tuple(
        Asset.from_document(_asset(site_id, site_slug, device)) for device in run.devices
    )
    asset_ids = [(device, asset.id) for device, asset in zip(run.devices, assets, strict=True)]
    meters = _meters(run, site_id, site_slug, asset_ids, interval_name(interval_s))
    date = run.start.strftime("%Y%m%d")
    provenance = {
        k: run.manifest[k] for k in ("scenario", "seed") if run.manifest.get(k) is not None
    }
    series = tuple(
        build_timeseries(
            run, spec, f"tse_{site_slug}_{spec.key}_{date}", site_id, interval_s,
            decimals=decimals, extra_metadata=provenance,
        )
        for spec in _series_specs(run, site_slug, asset_ids)
    )  # fmt: skip
    return QubitExport(
        organization=_organization(run, org_id, named=organization_id is not None),
        site=_site(run, site_id, org_id, site_type),
        assets=assets,
        meters=tuple(meters),
        timeseries=series,
    )


def export_qubit(
    results_dir: Path,
    out_dir: Path,
    *,
    organization_id: str | None = None,
    interval: str | None = None,
    decimals: int | None = 6,
    site_type: str = "other",
) -> list[Path]:
    """Export a run's results folder as Qubit v0.1 JSON documents.

    Reads ``manifest.json``, ``scenario.yaml`` and ``timeseries.parquet`` from RESULTS_DIR and
    writes, under OUT_DIR, one organization, the site (location, time zone, grid-connection
    limits), one asset per charger, battery, PV plant and load, a main meter plus one meter per
    asset, and TimeSeries documents: site net power, grid import and export [kW], import and
    export energy registers [kWh], site voltage [p.u.] when a power flow ran, per-asset power
    [kW], battery state of charge [percent] and charger occupancy [boolean]. Every document
    conforms to the official Qubit v0.1 JSON Schemas; timestamps are UTC (``...Z``) and each data
    point carries a data quality from range checks. Files with the same names are replaced;
    other files in OUT_DIR are left alone.

    Args:
        results_dir: Results folder written by ``qubit-sim run``.
        out_dir: Folder to write into (created if needed).
        organization_id: Id of the operating organization (``org_...``); default
            ``org_<site name>``.
        interval: Qubit data interval of the time series (``"15m"``, ``"1h"``, ...), a multiple of
            the simulation step; default: the step itself.
        decimals: Round values to this many decimals (None keeps full precision).
        site_type: Qubit site type (``commercial_building``, ``warehouse``, ...).

    Returns:
        The files written, in order: organization, site, assets, meters, time series.

    Raises:
        ExportError: the folder lacks a file or column, or an option is invalid.
    """
    export = build_qubit_documents(
        results_dir,
        organization_id=organization_id,
        interval=interval,
        decimals=decimals,
        site_type=site_type,
    )
    root = Path(out_dir)
    written = []
    for folder, document in export.documents():
        path = root / folder / f"{document.id}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        compact = isinstance(document, TimeSeries)
        text = json.dumps(
            document.to_json(),
            indent=None if compact else 2,
            separators=(",", ":") if compact else None,
            allow_nan=False,
        )
        path.write_text(text + "\n", encoding="utf-8")
        written.append(path)
    return written
