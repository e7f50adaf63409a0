"""Qubit v0.1 Organization, Site and Asset, field by field after the official JSON Schemas."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field, StrictStr

from qubit_sim.stack.data.schema_types import (
    AssetId,
    AssetType,
    Capacity,
    CommissioningInfo,
    ConnectionType,
    Contact,
    Date,
    Description,
    Efficiency,
    Fraction,
    Integer,
    Ipv4,
    Location,
    MaintenanceInfo,
    ManufacturerInfo,
    Metadata,
    Name,
    NonNegative,
    Number,
    OrganizationId,
    Phase,
    QubitEntity,
    QubitModel,
    SiteId,
    Status,
    Timestamp,
    Uri,
)

__all__ = [
    "Asset",
    "AssetLocation",
    "Certification",
    "ControlSystem",
    "Electrical",
    "EnergyGoals",
    "EnergyProfile",
    "GridConnectionInfo",
    "Interconnection",
    "Occupancy",
    "OperatingHours",
    "OperationalLimits",
    "Organization",
    "OrganizationIdentifiers",
    "Performance",
    "RenewableResources",
    "Site",
    "SolarResource",
    "Warranty",
    "WindResource",
]


# --- Organization ----------------------------------------------------------------------------------


class OrganizationIdentifiers(QubitModel):
    """External identifiers of an organization."""

    tax_id: StrictStr | None = None
    duns: Annotated[StrictStr, Field(pattern=r"^[0-9]{9}$")] | None = None
    lei: Annotated[StrictStr, Field(pattern=r"^[A-Z0-9]{20}$")] | None = None
    utility_id: StrictStr | None = None


class Certification(QubitModel):
    """An environmental or energy certification."""

    type: StrictStr
    issuer: StrictStr
    issued_date: Date | None = None
    expiry_date: Date | None = None


class EnergyGoals(QubitModel):
    """Sustainability targets [percent, years]."""

    renewable_target_percent: Annotated[Number, Field(ge=0, le=100)] | None = None
    carbon_neutral_target_year: Annotated[Integer, Field(ge=2020, le=2100)] | None = None
    energy_reduction_target_percent: Number | None = None
    baseline_year: Annotated[Integer, Field(ge=1990, le=2100)] | None = None


class Organization(QubitEntity):
    """An entity that owns or operates energy assets."""

    SCHEMA_NAME: ClassVar[str] = "organization"
    id: OrganizationId
    name: Name
    description: Description | None = None
    type: Literal[
        "utility", "ipp", "commercial", "industrial", "residential", "government", "nonprofit",
        "aggregator", "retailer", "other",
    ]  # fmt: skip
    industry: StrictStr | None = None
    headquarters: Location | None = None
    contact: Contact | None = None
    identifiers: OrganizationIdentifiers | None = None
    certifications: list[Certification] | None = None
    parent_organization_id: OrganizationId | None = None
    website: Uri | None = None
    timezone: StrictStr | None = None
    currency: Annotated[StrictStr, Field(pattern=r"^[A-Z]{3}$")] | None = None
    fiscal_year_start: (
        Annotated[StrictStr, Field(pattern=r"^(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$")] | None
    ) = None
    energy_goals: EnergyGoals | None = None
    status: Status | None = None
    metadata: Metadata | None = None
    created_at: Timestamp | None = None
    updated_at: Timestamp | None = None


# --- Site ------------------------------------------------------------------------------------------


class Occupancy(QubitModel):
    """Typical and maximum number of occupants."""

    typical: Annotated[Integer, Field(ge=0)] | None = None
    maximum: Annotated[Integer, Field(ge=0)] | None = None
    schedule: StrictStr | None = None


class GridConnectionInfo(QubitModel):
    """The site's grid connection: voltage [kV] and import/export limits [kW]."""

    utility: StrictStr | None = None
    utility_account_id: StrictStr | None = None
    connection_type: ConnectionType | None = None
    voltage_level_kv: NonNegative | None = None
    max_import_kw: NonNegative | None = None
    max_export_kw: NonNegative | None = None
    interconnection_date: Date | None = None


class SolarResource(QubitModel):
    """Annual irradiation [kWh/m2] and shading factor 0..1."""

    annual_ghi_kwh_m2: NonNegative | None = None
    annual_dni_kwh_m2: NonNegative | None = None
    shading_factor: Fraction | None = None


class WindResource(QubitModel):
    """Mean wind speed [m/s] at a measurement height [m]."""

    average_speed_ms: NonNegative | None = None
    measurement_height_m: NonNegative | None = None
    wind_class: StrictStr | None = None


class RenewableResources(QubitModel):
    """Solar and wind resource at the site."""

    solar: SolarResource | None = None
    wind: WindResource | None = None


class EnergyProfile(QubitModel):
    """Annual energy [kWh], demand [kW] and load factor 0..1."""

    annual_consumption_kwh: NonNegative | None = None
    annual_generation_kwh: NonNegative | None = None
    peak_demand_kw: NonNegative | None = None
    base_load_kw: NonNegative | None = None
    load_factor: Fraction | None = None


class OperatingHours(QubitModel):
    """Free-text opening hours per weekday."""

    monday: StrictStr | None = None
    tuesday: StrictStr | None = None
    wednesday: StrictStr | None = None
    thursday: StrictStr | None = None
    friday: StrictStr | None = None
    saturday: StrictStr | None = None
    sunday: StrictStr | None = None
    holidays: StrictStr | None = None


class Site(QubitEntity):
    """A physical location where energy assets are installed and operated."""

    SCHEMA_NAME: ClassVar[str] = "site"
    id: SiteId
    organization_id: OrganizationId
    name: Name
    description: Description | None = None
    type: Literal[
        "generation", "transmission", "distribution", "commercial_building",
        "industrial_facility", "residential_complex", "data_center", "hospital", "school",
        "warehouse", "retail", "mixed_use", "substation", "microgrid", "other",
    ]  # fmt: skip
    location: Location
    area_m2: NonNegative | None = None
    building_area_m2: NonNegative | None = None
    occupancy: Occupancy | None = None
    grid_connection: GridConnectionInfo | None = None
    renewable_resources: RenewableResources | None = None
    energy_profile: EnergyProfile | None = None
    operating_hours: OperatingHours | None = None
    contact: Contact | None = None
    commissioning_date: Date | None = None
    status: Status | None = None
    metadata: Metadata | None = None
    created_at: Timestamp | None = None
    updated_at: Timestamp | None = None


# --- Asset -----------------------------------------------------------------------------------------


class AssetLocation(QubitModel):
    """Where in the site an asset sits."""

    building: StrictStr | None = None
    floor: StrictStr | None = None
    room: StrictStr | None = None
    rack: StrictStr | None = None
    coordinates: Location | None = None


class Electrical(QubitModel):
    """Nominal voltage [V], current [A], phases, frequency [Hz] and power factor."""

    voltage_v: NonNegative | None = None
    current_a: NonNegative | None = None
    phases: Phase | None = None
    frequency_hz: Literal[50, 60] | None = None
    power_factor: Annotated[Number, Field(ge=-1, le=1)] | None = None


class Performance(QubitModel):
    """Degradation [%/year], temperature coefficient [%/degC], response [s], ramp [kW/min]."""

    degradation_rate_percent_year: NonNegative | None = None
    temperature_coefficient_percent_c: Number | None = None
    response_time_s: NonNegative | None = None
    ramp_rate_kw_min: NonNegative | None = None


class OperationalLimits(QubitModel):
    """Operating temperature [degC], humidity [%] and altitude [m] limits."""

    min_operating_temp_c: Number | None = None
    max_operating_temp_c: Number | None = None
    max_humidity_percent: Annotated[Number, Field(ge=0, le=100)] | None = None
    max_altitude_m: Number | None = None


class Warranty(QubitModel):
    """Warranty period, type and provider."""

    start_date: Date | None = None
    end_date: Date | None = None
    type: StrictStr | None = None
    provider: StrictStr | None = None


class Interconnection(QubitModel):
    """Electrical connection point, breaker and upstream transformer/inverter assets."""

    connection_point: StrictStr | None = None
    breaker_id: StrictStr | None = None
    transformer_id: AssetId | None = None
    inverter_id: AssetId | None = None


class ControlSystem(QubitModel):
    """How the asset is controlled: system, protocol, address."""

    type: StrictStr | None = None
    protocol: StrictStr | None = None
    ip_address: Ipv4 | None = None
    modbus_address: Integer | None = None


class Asset(QubitEntity):
    """A physical energy asset (charger, battery, PV plant, ...)."""

    SCHEMA_NAME: ClassVar[str] = "asset"
    id: AssetId
    site_id: SiteId
    name: Name
    description: Description | None = None
    type: AssetType
    subtype: StrictStr | None = None
    location: AssetLocation | None = None
    capacity: Capacity | None = None
    electrical: Electrical | None = None
    efficiency: Efficiency | None = None
    performance: Performance | None = None
    operational_limits: OperationalLimits | None = None
    manufacturer_info: ManufacturerInfo | None = None
    warranty: Warranty | None = None
    commissioning_info: CommissioningInfo | None = None
    maintenance_info: MaintenanceInfo | None = None
    interconnection: Interconnection | None = None
    control_system: ControlSystem | None = None
    parent_asset_id: AssetId | None = None
    status: Status | None = None
    metadata: Metadata | None = None
    created_at: Timestamp | None = None
    updated_at: Timestamp | None = None
