"""Qubit v0.1 Meter, Sensor and TimeSeries, field by field after the official JSON Schemas."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, StrictBool, StrictStr, model_serializer

from qubit_sim.stack.data.schema_types import (
    AggregationMethod,
    AssetId,
    DataInterval,
    DataQuality,
    Date,
    Description,
    Integer,
    Location,
    MaintenanceInfo,
    ManufacturerInfo,
    MeasurementUnit,
    Metadata,
    MeterId,
    MeterType,
    Name,
    NonNegative,
    Number,
    Phase,
    QubitEntity,
    QubitModel,
    SensorId,
    SensorType,
    SiteId,
    Status,
    TimeSeriesId,
    Timestamp,
)

__all__ = [
    "Alarms",
    "Billing",
    "DataCollection",
    "DataPoint",
    "DataProcessing",
    "EnvironmentalRating",
    "Installation",
    "Meter",
    "MeterCalibration",
    "MeterCommunication",
    "MeterMeasurement",
    "Orientation",
    "Period",
    "PowerSupply",
    "Sensor",
    "SensorCalibration",
    "SensorCommunication",
    "SensorLocation",
    "SensorMeasurement",
    "Statistics",
    "TimeSeries",
    "TimeSeriesMeasurement",
    "TimeSeriesSource",
    "Validation",
    "VirtualMeter",
]


# --- Meter -----------------------------------------------------------------------------------------


class MeterMeasurement(QubitModel):
    """One measured parameter of a meter and its unit."""

    parameter: Literal[
        "active_power", "reactive_power", "apparent_power", "active_energy", "reactive_energy",
        "voltage", "current", "frequency", "power_factor", "thd_voltage", "thd_current",
    ]  # fmt: skip
    unit: MeasurementUnit
    phases: Phase | None = None
    accuracy_percent: NonNegative | None = None


class MeterCommunication(QubitModel):
    """Protocol, interface and address of a meter."""

    protocol: Literal[
        "modbus_rtu", "modbus_tcp", "bacnet", "mqtt", "opcua", "iec61850", "dlms", "m-bus",
        "pulse", "analog", "other",
    ] | None = None  # fmt: skip
    interface: Literal["rs485", "rs232", "ethernet", "wifi", "cellular", "lora", "other"] | None = (
        None
    )
    address: StrictStr | None = None
    port: Annotated[Integer, Field(ge=1, le=65535)] | None = None
    baud_rate: Integer | None = None


class DataCollection(QubitModel):
    """Recording interval, retention [days], aggregation and last read."""

    interval: DataInterval | None = None
    retention_days: Annotated[Integer, Field(ge=1)] | None = None
    aggregation: AggregationMethod | None = None
    last_read: Timestamp | None = None


class Installation(QubitModel):
    """When, where and by whom a meter was installed."""

    date: Date | None = None
    location: StrictStr | None = None
    installer: StrictStr | None = None


class MeterCalibration(QubitModel):
    """Calibration dates and certificate."""

    last_date: Date | None = None
    next_date: Date | None = None
    certificate_number: StrictStr | None = None


class Billing(QubitModel):
    """Whether a meter is used for billing, and under which schedule."""

    is_billing_meter: StrictBool | None = None
    utility_meter_id: StrictStr | None = None
    rate_schedule: StrictStr | None = None


class VirtualMeter(QubitModel):
    """A calculated meter: formula over source meters (schema default ``is_virtual`` false)."""

    is_virtual: StrictBool | None = None
    formula: StrictStr | None = None
    source_meters: list[MeterId] | None = None


_Ratio = Annotated[StrictStr, Field(pattern=r"^[0-9]+:[0-9]+$")]


class Meter(QubitEntity):
    """An energy measurement device."""

    SCHEMA_NAME: ClassVar[str] = "meter"
    id: MeterId
    site_id: SiteId
    asset_id: AssetId | None = None
    name: Name
    description: Description | None = None
    type: MeterType
    measurement_point: StrictStr | None = None
    direction: Literal["import", "export", "net", "total", "bidirectional"] | None = None
    measurements: list[MeterMeasurement]
    communication: MeterCommunication | None = None
    data_collection: DataCollection | None = None
    accuracy_class: Literal["0.1", "0.2", "0.5", "1.0", "2.0"] | None = None
    ct_ratio: _Ratio | None = None
    vt_ratio: _Ratio | None = None
    multiplier: NonNegative | None = None  # schema default 1
    manufacturer_info: ManufacturerInfo | None = None
    installation: Installation | None = None
    calibration: MeterCalibration | None = None
    billing: Billing | None = None
    virtual_meter: VirtualMeter | None = None
    status: Status | None = None
    metadata: Metadata | None = None
    created_at: Timestamp | None = None
    updated_at: Timestamp | None = None


# --- Sensor ----------------------------------------------------------------------------------------


class SensorMeasurement(QubitModel):
    """What a sensor measures, its unit, range, accuracy and response time [ms]."""

    parameter: StrictStr
    unit: MeasurementUnit
    min_value: Number | None = None
    max_value: Number | None = None
    accuracy: Number | None = None
    accuracy_unit: StrictStr | None = None
    resolution: Number | None = None
    response_time_ms: NonNegative | None = None


class Orientation(QubitModel):
    """Azimuth 0..360 and tilt -90..90 [deg]."""

    azimuth: Annotated[Number, Field(ge=0, le=360)] | None = None
    tilt: Annotated[Number, Field(ge=-90, le=90)] | None = None


class SensorLocation(QubitModel):
    """Mounting, height [m], orientation and coordinates of a sensor."""

    description: StrictStr | None = None
    mounting: Literal[
        "wall", "ceiling", "floor", "pole", "roof", "outdoor", "indoor", "duct", "pipe", "panel"
    ] | None = None  # fmt: skip
    height_m: NonNegative | None = None
    orientation: Orientation | None = None
    coordinates: Location | None = None


class SensorCommunication(QubitModel):
    """Protocol, interface, address and polling interval [s] of a sensor."""

    protocol: Literal[
        "analog_4_20ma", "analog_0_10v", "digital", "modbus", "bacnet", "mqtt", "lora", "zigbee",
        "wifi", "bluetooth", "other",
    ] | None = None  # fmt: skip
    interface: StrictStr | None = None
    address: StrictStr | None = None
    polling_interval_s: NonNegative | None = None


class DataProcessing(QubitModel):
    """Averaging [s], filter, calibration (schema default multiplier 1) and deadband."""

    averaging_period_s: NonNegative | None = None
    filter_type: StrictStr | None = None
    calibration_offset: Number | None = None
    calibration_multiplier: Number | None = None
    deadband: NonNegative | None = None


class PowerSupply(QubitModel):
    """How a sensor is powered: type, voltage [V], battery life [days]."""

    type: Literal["external", "battery", "solar", "energy_harvesting", "loop_powered"] | None = None
    voltage_v: Number | None = None
    battery_type: StrictStr | None = None
    battery_life_days: NonNegative | None = None


class EnvironmentalRating(QubitModel):
    """IP rating, operating temperature [degC] and humidity [%]."""

    ip_rating: Annotated[StrictStr, Field(pattern=r"^IP[0-9]{2}$")] | None = None
    operating_temp_min_c: Number | None = None
    operating_temp_max_c: Number | None = None
    operating_humidity_max_percent: Annotated[Number, Field(ge=0, le=100)] | None = None


class SensorCalibration(QubitModel):
    """Calibration dates, method and certificate."""

    last_date: Date | None = None
    next_date: Date | None = None
    method: StrictStr | None = None
    certificate_number: StrictStr | None = None


class Alarms(QubitModel):
    """Alarm thresholds in the sensor's unit."""

    high_threshold: Number | None = None
    high_high_threshold: Number | None = None
    low_threshold: Number | None = None
    low_low_threshold: Number | None = None
    rate_of_change_threshold: Number | None = None


class Sensor(QubitEntity):
    """A device measuring an environmental or operational parameter."""

    SCHEMA_NAME: ClassVar[str] = "sensor"
    id: SensorId
    site_id: SiteId
    asset_id: AssetId | None = None
    name: Name
    description: Description | None = None
    type: SensorType
    measurement: SensorMeasurement
    location: SensorLocation | None = None
    communication: SensorCommunication | None = None
    data_processing: DataProcessing | None = None
    power_supply: PowerSupply | None = None
    environmental_rating: EnvironmentalRating | None = None
    manufacturer_info: ManufacturerInfo | None = None
    calibration: SensorCalibration | None = None
    maintenance_info: MaintenanceInfo | None = None
    alarms: Alarms | None = None
    status: Status | None = None
    metadata: Metadata | None = None
    created_at: Timestamp | None = None
    updated_at: Timestamp | None = None


# --- TimeSeries ------------------------------------------------------------------------------------

DataPointFlag = Literal[
    "power_outage", "communication_error", "out_of_range", "frozen_value", "manual_override",
    "interpolated", "estimated", "validated", "billing",
]  # fmt: skip


class TimeSeriesSource(QubitModel):
    """Where a series comes from: a meter, sensor, calculation, forecast or manual entry."""

    type: Literal["meter", "sensor", "calculated", "forecast", "manual"]
    meter_id: MeterId | None = None
    sensor_id: SensorId | None = None
    asset_id: AssetId | None = None
    site_id: SiteId


class TimeSeriesMeasurement(QubitModel):
    """The measured parameter (free name) and its unit."""

    parameter: StrictStr
    unit: MeasurementUnit
    description: StrictStr | None = None


class DataPoint(QubitModel):
    """One timestamped value; ``value`` None is written as JSON null (it is required)."""

    timestamp: Timestamp
    # bool first: a strict int would not take True, but keep True a boolean, not 1
    value: StrictBool | Annotated[int, Field(strict=True)] | Number | StrictStr | None
    quality: DataQuality | None = None
    flags: list[DataPointFlag] | None = None

    @model_serializer(mode="wrap")
    def _keep_null_value(self, handler: Any) -> dict[str, Any]:
        data = handler(self)
        data.setdefault("value", None)
        return data


class Period(QubitModel):
    """Start and end instants of the period a series covers."""

    start: Timestamp
    end: Timestamp


class Statistics(QubitModel):
    """Summary statistics of a series' values."""

    count: Annotated[Integer, Field(ge=0)] | None = None
    missing_count: Annotated[Integer, Field(ge=0)] | None = None
    min: Number | None = None
    max: Number | None = None
    mean: Number | None = None
    median: Number | None = None
    std_dev: Number | None = None
    sum: Number | None = None


class Validation(QubitModel):
    """Outcome of validating a series."""

    method: StrictStr | None = None
    timestamp: Timestamp | None = None
    passed: StrictBool | None = None
    errors: list[StrictStr] | None = None


class TimeSeries(QubitEntity):
    """Time-stamped measurement data from a meter, sensor, calculation or forecast."""

    SCHEMA_NAME: ClassVar[str] = "timeseries"
    id: TimeSeriesId
    source: TimeSeriesSource
    measurement: TimeSeriesMeasurement
    interval: DataInterval
    aggregation: AggregationMethod | None = None
    timezone: StrictStr | None = None  # schema default "UTC"
    data_points: list[DataPoint]
    statistics: Statistics | None = None
    period: Period
    validation: Validation | None = None
    metadata: Metadata | None = None
    created_at: Timestamp | None = None
    updated_at: Timestamp | None = None
