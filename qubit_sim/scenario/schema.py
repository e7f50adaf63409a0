"""The scenario file format, as pydantic models.

Every model forbids unknown keys, so a misspelt key is an error (with a "did you mean"), not a
silently ignored setting. Field-by-field documentation with units: ``docs/scenario-format.md``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from qubit_sim.core.clock import parse_duration

__all__ = [
    "BatterySpec",
    "CarbonSpec",
    "ChargePointCredential",
    "ChargerSpec",
    "ControllerSpec",
    "DeviceFaultSpec",
    "DeviceFraction",
    "EnergyRateSpec",
    "EvSpec",
    "FaultSpec",
    "FieldError",
    "GridConnection",
    "GridSpec",
    "LatencySpec",
    "LinkDropSpec",
    "LoadSpec",
    "Location",
    "MessageLossSpec",
    "MeterFreezeSpec",
    "ModbusTimeoutSpec",
    "OcppSecuritySpec",
    "PopulationSpec",
    "PvSpec",
    "RealtimeSpec",
    "Scenario",
    "SiteSpec",
    "TariffSpec",
    "TlsClientFiles",
    "TlsFiles",
    "VehicleTypeSpec",
]

Duration = Annotated[int, Field(ge=0)]
Bus = int | str


def _duration(value: Any) -> int:
    return parse_duration(value)


class FieldError(ValueError):
    """A problem a model validator finds that belongs to one field below the model.

    Pydantic reports a model validator's error at the model; the loader adds :attr:`loc` to it
    and reports :attr:`message`, so the problem is given at the field's YAML path and line.

    Args:
        loc: Path of the field relative to the model, e.g. ``("controller", "period")``.
        message: What is wrong and how to fix it.
    """

    def __init__(self, loc: tuple[str | int, ...], message: str) -> None:
        super().__init__(f"{'.'.join(str(part) for part in loc)}: {message}")
        self.loc = loc
        self.message = message


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


class Location(_Model):
    """Site location (WGS84) and its IANA time zone.

    All three keys are required once ``location`` is written: a missing zone would silently put
    tariff windows and EV arrivals in UTC. Without ``location`` the site is in Amsterdam.
    """

    lat: float = Field(ge=-90, le=90, description="latitude [deg]", examples=[52.37])
    lon: float = Field(ge=-180, le=180, description="longitude [deg]", examples=[4.9])
    tz: str = Field(
        description="the site's IANA time zone, in which tariff windows and EV arrivals are local",
        examples=["Europe/Amsterdam"],
    )

    @field_validator("tz")
    @classmethod
    def _known_tz(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r}; use an IANA name such as 'Europe/Amsterdam'"
            ) from None
        return value


class GridConnection(_Model):
    """Limits of the site's connection to the grid [kW]; ``None`` means unlimited."""

    import_kw: float | None = Field(default=None, gt=0)
    export_kw: float | None = Field(default=None, ge=0)


class SiteSpec(_Model):
    """Where and when the scenario happens."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    location: Location = Location(lat=52.37, lon=4.90, tz="Europe/Amsterdam")
    start: datetime
    duration: Duration = 7 * 86400
    step: Duration = 60
    seed: int = Field(default=0, ge=0)
    grid_connection: GridConnection = GridConnection()

    @field_validator("duration", "step", mode="before")
    @classmethod
    def _parse_duration(cls, value: Any) -> int:
        return _duration(value)

    @field_validator("start")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("start must carry a time zone; write UTC as e.g. 2025-01-06T00:00:00Z")
        return value.astimezone(UTC)

    @model_validator(mode="after")
    def _step_divides(self) -> SiteSpec:
        if self.step <= 0:
            raise ValueError(f"step must be positive, found {self.step} s")
        if self.duration <= 0:
            raise ValueError(f"duration must be positive, found {self.duration} s")
        if self.duration % self.step:
            raise ValueError(
                f"step ({self.step} s) must divide the duration ({self.duration} s) exactly"
            )
        return self


class GridSpec(_Model):
    """The distribution feeder the site sits on."""

    network: str = Field(description="simbench code, or 'pandapower:<network function>'")
    site_bus: Bus = Field(description="bus of the site's connection point (index or name)")
    background: bool = Field(
        default=True, description="drive the feeder's own loads/PV by profiles"
    )
    background_scale: float = Field(default=1.0, ge=0)
    power_flow: bool = True
    voltage_limits_pu: tuple[float, float] = (0.95, 1.05)
    loading_limit_pct: float = Field(default=100.0, gt=0)
    record_bus_voltages: bool = True

    @field_validator("voltage_limits_pu")
    @classmethod
    def _ordered(cls, value: tuple[float, float]) -> tuple[float, float]:
        low, high = value
        if not 0 < low < high:
            raise ValueError(f"voltage limits must satisfy 0 < low < high, found {list(value)}")
        return value


class _AssetBase(_Model):
    template: str | None = Field(default=None, description="twin template in twins/")
    id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]+$")
    bus: Bus | None = Field(default=None, description="bus (default: the site bus)")


class ChargerSpec(_AssetBase):
    """A group of identical chargers."""

    count: int = Field(default=1, ge=1)
    kind: Literal["ac", "dc"] = "ac"
    power_kw: float = Field(gt=0, description="max power per connector [kW]")
    phases: Literal[1, 3] = 3
    connectors: int = Field(default=1, ge=1)
    efficiency: float = Field(default=0.97, gt=0, le=1)
    voltage_v: float = Field(default=230.0, gt=0, description="phase-to-neutral voltage [V]")
    buses: list[Bus] | None = Field(default=None, description="one bus per charger, cycled")
    protocol: Literal["ocpp1.6", "ocpp2.0.1"] = "ocpp1.6"


class BatterySpec(_AssetBase):
    """A stationary battery."""

    capacity_kwh: float = Field(gt=0)
    power_kw: float | None = Field(default=None, gt=0, description="both directions [kW]")
    charge_kw: float | None = Field(default=None, gt=0)
    discharge_kw: float | None = Field(default=None, gt=0)
    eta_charge: float = Field(default=0.95, gt=0, le=1)
    eta_discharge: float = Field(default=0.95, gt=0, le=1)
    soc_min: float = Field(default=0.1, ge=0, le=1)
    soc_max: float = Field(default=0.9, ge=0, le=1)
    soc_initial: float = Field(default=0.5, ge=0, le=1)
    self_discharge_per_h: float = Field(default=0.0, ge=0, lt=1)
    degradation_cost_per_kwh: float = Field(default=0.02, ge=0)

    @model_validator(mode="after")
    def _consistent(self) -> BatterySpec:
        if self.soc_min >= self.soc_max:
            raise ValueError(f"soc_min ({self.soc_min}) must be below soc_max ({self.soc_max})")
        if not self.soc_min <= self.soc_initial <= self.soc_max:
            raise ValueError(
                f"soc_initial ({self.soc_initial}) must lie in the SOC window "
                f"[{self.soc_min}, {self.soc_max}]"
            )
        if self.power_kw is None and (self.charge_kw is None or self.discharge_kw is None):
            raise ValueError("give power_kw, or both charge_kw and discharge_kw")
        return self

    @property
    def p_charge_max_kw(self) -> float:
        return float(self.charge_kw if self.charge_kw is not None else self.power_kw)  # type: ignore[arg-type]

    @property
    def p_discharge_max_kw(self) -> float:
        return float(self.discharge_kw if self.discharge_kw is not None else self.power_kw)  # type: ignore[arg-type]


class PvSpec(_AssetBase):
    """A PV plant (one inverter) modelled with pvlib."""

    kwp: float = Field(gt=0, description="DC peak power [kWp]")
    inverter_kw: float | None = Field(default=None, gt=0, description="AC rating [kW]")
    tilt_deg: float = Field(default=30.0, ge=0, le=90)
    azimuth_deg: float = Field(default=180.0, ge=0, lt=360)
    losses_pct: float = Field(default=14.0, ge=0, lt=100)
    model: Literal["pvwatts"] = "pvwatts"
    weather: str = Field(default="tmy:723170TYA", description="'tmy:<pvlib file>' or a CSV path")
    weather_label: Literal["start", "center", "end"] | None = Field(
        default=None,
        description="which instant of its interval a weather CSV row's time names "
        "(default: center); TMY files are labelled by pvlib",
    )
    count: int = Field(default=1, ge=1, description="identical plants (one per bus in `buses`)")
    buses: list[Bus] | None = None

    @model_validator(mode="after")
    def _label_for_csv(self) -> PvSpec:
        if self.weather_label is not None and self.weather.startswith("tmy:"):
            raise FieldError(
                ("weather_label",),
                "applies to CSV weather only; the rows of a TMY file are labelled by their file "
                "format. Remove weather_label",
            )
        return self


class LoadSpec(_AssetBase):
    """A building load from a simbench profile or a CSV."""

    profile: str = Field(default="G1-A", description="simbench profile name, or 'csv:<path>'")
    annual_kwh: float | None = Field(default=None, gt=0)
    peak_kw: float | None = Field(default=None, gt=0)
    count: int = Field(default=1, ge=1)
    buses: list[Bus] | None = None

    @model_validator(mode="after")
    def _one_scale(self) -> LoadSpec:
        if not self.profile.startswith("csv:") and (self.annual_kwh is None) == (
            self.peak_kw is None
        ):
            raise ValueError("give exactly one of annual_kwh or peak_kw to scale the profile")
        return self


class AssetsSpec(_Model):
    chargers: list[ChargerSpec] = []
    batteries: list[BatterySpec] = []
    pv: list[PvSpec] = []
    loads: list[LoadSpec] = []


class VehicleTypeSpec(_Model):
    name: str
    battery_kwh: float = Field(gt=0)
    max_ac_kw: float = Field(gt=0)
    max_dc_kw: float = Field(gt=0)
    knee_soc: float = Field(default=0.8, gt=0, lt=1)
    share: float = Field(default=1.0, gt=0)


class PopulationSpec(_Model):
    behaviour: Literal["workplace", "residential", "depot"]
    vehicles: int = Field(ge=1)
    dedicated_chargers: bool | None = Field(
        default=None, description="vehicle i always uses charger i (default: depot/residential)"
    )
    vehicle_types: list[VehicleTypeSpec] | None = None


class EvSpec(_Model):
    """The EV population: an agent-based model, or recorded sessions replayed exactly."""

    population: PopulationSpec | None = None
    sessions_csv: str | None = None
    target_soc: float = Field(default=1.0, gt=0, le=1)

    @model_validator(mode="after")
    def _one_source(self) -> EvSpec:
        if (self.population is None) == (self.sessions_csv is None):
            raise ValueError("give exactly one of population or sessions_csv")
        return self


class EnergyRateSpec(_Model):
    """A time-of-use rate; ``end`` is an inclusive minute (07:00-22:59).

    Each field is checked by :class:`qubit_sim.core.tariff.EnergyRate`, the class that prices the
    run, so a value the run would refuse is reported at its own key.
    """

    name: str
    rate: float = Field(description="price [currency/kWh]")
    start_time: str = "00:00"
    end_time: str = "23:59"
    weekdays: list[int | str] | None = None
    months: list[int] | None = None

    @field_validator("start_time", "end_time", "weekdays", "months")
    @classmethod
    def _accepted_by_the_tariff(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None:
            return value
        # pandas comes with the tariff module (0.2 s): import it only when rates are given.
        from qubit_sim.core.tariff import EnergyRate

        field = str(info.field_name)
        keyword = {"start_time": "start", "end_time": "end"}.get(field, field)
        given: dict[str, Any] = {keyword: tuple(value) if isinstance(value, list) else value}
        EnergyRate(name=info.data.get("name") or "rate", price_per_kwh=0.0, **given)
        return value


class CarbonSpec(_Model):
    """Grid carbon intensity [gCO2/kWh]: constant, 24 hourly values (local), or a CSV."""

    constant_g_per_kwh: float | None = Field(default=None, ge=0)
    hourly_g_per_kwh: list[float] | None = None
    csv: str | None = None

    @model_validator(mode="after")
    def _one(self) -> CarbonSpec:
        given = [x is not None for x in (self.constant_g_per_kwh, self.hourly_g_per_kwh, self.csv)]
        if sum(given) != 1:
            raise ValueError("give exactly one of constant_g_per_kwh, hourly_g_per_kwh or csv")
        if self.hourly_g_per_kwh is not None and len(self.hourly_g_per_kwh) != 24:
            raise ValueError(
                f"hourly_g_per_kwh needs 24 values, found {len(self.hourly_g_per_kwh)}"
            )
        return self


class TariffSpec(_Model):
    """Energy prices by time-of-use ``energy_rates`` or by a ``price_csv`` series (one or the
    other), export price, demand charge, carbon intensity and the prices of EV drivers."""

    currency: str = Field(default="EUR", pattern=r"^[A-Z]{3}$")
    energy_rates: list[EnergyRateSpec] = []
    default_rate: float | None = Field(default=0.25, description="price outside all windows")
    price_csv: str | None = Field(
        default=None,
        description="CSV of dynamic prices: time, price_per_kwh [, export_price_per_kwh]",
    )
    export_price_per_kwh: float = 0.0
    demand_charge_per_kw: float = Field(default=0.0, ge=0)
    billing_period: Literal["month", "week", "day"] = "month"
    carbon: CarbonSpec = CarbonSpec(constant_g_per_kwh=300.0)
    unmet_energy_penalty_per_kwh: float = Field(default=1.0, ge=0)
    driver_price_per_kwh: float = Field(
        default=0.39, ge=0, description="price drivers pay per kWh charged (session invoices)"
    )

    @model_validator(mode="after")
    def _one_price_source(self) -> TariffSpec:
        if self.price_csv is None:
            return self
        if self.energy_rates:
            raise ValueError(
                "give energy_rates or price_csv, not both: the price CSV prices every instant"
            )
        if "default_rate" in self.model_fields_set:
            raise ValueError(
                "default_rate has no meaning with price_csv (the CSV prices every instant); "
                "remove it"
            )
        return self


class ControllerSpec(_Model):
    name: str = "uncontrolled"
    period: Duration | None = Field(default=None, description="control period (default: step)")
    params: dict[str, Any] = {}

    @field_validator("period", mode="before")
    @classmethod
    def _parse_period(cls, value: Any) -> int | None:
        return None if value is None else _duration(value)


class DeviceFraction(_Model):
    """A share of the site's chargers, drawn once per run from the ``faults`` random stream."""

    fraction: float = Field(gt=0, le=1, description="share of the chargers (at least one)")


class _Window(_Model):
    """When a fault acts: ``count`` windows of ``duration`` (none: to the end), the first at ``at``."""

    at: Duration = 0
    duration: Duration | None = None
    repeat_every: Duration | None = None
    count: int = Field(default=1, ge=1)

    @field_validator("at", "duration", "repeat_every", mode="before")
    @classmethod
    def _parse_duration(cls, value: Any) -> int | None:
        return None if value is None else _duration(value)

    @model_validator(mode="after")
    def _windows(self) -> _Window:
        if self.duration is not None and self.duration <= 0:
            raise ValueError(f"duration must be positive, found {self.duration} s")
        if self.count > 1 and (self.repeat_every is None or self.duration is None):
            raise ValueError(
                f"count is {self.count}: give repeat_every and duration (e.g. '2h', '10min')"
            )
        if (
            self.repeat_every is not None
            and self.duration is not None
            and self.repeat_every < self.duration
        ):
            raise ValueError(
                f"repeat_every ({self.repeat_every} s) must be at least the duration "
                f"({self.duration} s): windows of one fault entry may not overlap"
            )
        return self


class LinkDropSpec(_Window):
    """Charger websockets closed and refused for each window (disconnect storms)."""

    kind: Literal["link_drop"]
    devices: list[str] | DeviceFraction = Field(description="charger ids, or {fraction: x}")


class LatencySpec(_Window):
    """Extra delay on every message of the devices' links."""

    kind: Literal["latency"]
    devices: list[str] | DeviceFraction
    delay: Duration

    @field_validator("delay", mode="before")
    @classmethod
    def _parse_delay(cls, value: Any) -> int:
        return _duration(value)


class MessageLossSpec(_Window):
    """Each message of the devices' links lost with a probability."""

    kind: Literal["message_loss"]
    devices: list[str] | DeviceFraction
    probability: float = Field(gt=0, le=1)


class DeviceFaultSpec(_Window):
    """The device faults (OCPP ``Faulted`` / SunSpec alarm) and delivers no power meanwhile."""

    kind: Literal["device_fault"]
    device: str


class ModbusTimeoutSpec(_Window):
    """A SunSpec server stops answering."""

    kind: Literal["modbus_timeout"]
    device: str


class MeterFreezeSpec(_Window):
    """A device's meter readings stop changing."""

    kind: Literal["meter_freeze"]
    device: str


FaultSpec = Annotated[
    LinkDropSpec
    | LatencySpec
    | MessageLossSpec
    | DeviceFaultSpec
    | ModbusTimeoutSpec
    | MeterFreezeSpec,
    Field(discriminator="kind"),
]


class ChargePointCredential(_Model):
    """A charge point that is not a twin, allowed to join the stack's CSMS (security profile 1)."""

    identity: str = Field(pattern=r"^[A-Za-z0-9._:*+|@-]{1,48}$")
    password: str = Field(min_length=16, max_length=40, description="HTTP basic auth password")


class TlsClientFiles(_Model):
    """A charge point's client certificate and key (PEM files; security profile 3)."""

    cert: str
    key: str


class TlsFiles(_Model):
    """PEM files of the CSMS's TLS (security profiles 2 and 3); paths relative to the YAML."""

    ca_cert: str = Field(description="CA the twins trust and the CSMS checks client certs by")
    server_cert: str
    server_key: str
    clients: dict[str, TlsClientFiles] = Field(
        default={}, description="profile 3: client certificate per charger twin id"
    )


class OcppSecuritySpec(_Model):
    """OCPP security profile of the stack's CSMS and the charger twins (``wire``/``realtime``).

    ``None`` keeps the mode's default: no authentication in ``wire`` (loopback only), profile 1
    in ``realtime``.
    """

    security_profile: Literal[0, 1, 2, 3] | None = Field(
        default=None,
        description="0 none, 1 basic auth, 2 TLS + basic auth, 3 TLS with client certificates",
    )
    passwords: Literal["auto"] | dict[str, str] = Field(
        default="auto", description="basic-auth password per charger twin id, or 'auto' (random)"
    )
    certificates: Literal["auto"] | TlsFiles = Field(
        default="auto",
        description="'auto': a throw-away CA and certificates in the results folder",
    )

    @field_validator("passwords")
    @classmethod
    def _password_lengths(cls, value: Any) -> Any:
        if isinstance(value, dict):
            for identity, password in value.items():
                if not 16 <= len(password) <= 40:
                    raise ValueError(
                        f"the password of {identity!r} has {len(password)} characters; OCPP "
                        "basic-auth passwords have 16 to 40"
                    )
        return value


class RealtimeSpec(_Model):
    """``mode: realtime`` / ``qubit-sim serve``: twins on the wall clock, reachable from outside."""

    factor: float = Field(default=1.0, gt=0, description="simulated seconds per wall second")
    host: str = "127.0.0.1"
    csms_port: int = Field(default=9000, ge=0, le=65535, description="0 picks a free port")
    csms_url: str | None = Field(
        default=None, description="external CSMS the charger twins connect to instead"
    )
    modbus_base_port: int = Field(default=5020, ge=0, le=65535, description="+ device index")
    lag: Literal["warn", "strict"] | float = "warn"
    charge_points: list[ChargePointCredential] = []


class Scenario(_Model):
    """A whole scenario file."""

    site: SiteSpec
    grid: GridSpec | None = None
    assets: AssetsSpec = AssetsSpec()
    evs: EvSpec | None = None
    tariff: TariffSpec = TariffSpec()
    controller: ControllerSpec = ControllerSpec()
    mode: Literal["fast", "wire", "realtime"] = "fast"
    realtime: RealtimeSpec = RealtimeSpec()
    ocpp: OcppSecuritySpec = OcppSecuritySpec()
    faults: list[FaultSpec] = []

    @model_validator(mode="after")
    def _cross(self) -> Scenario:
        period, step = self.controller.period, self.site.step
        if period is not None and period % step:
            below, above = period // step * step, (period // step + 1) * step
            closest = " or ".join(f"{p} s" for p in (below, above) if p > 0)
            raise FieldError(
                ("controller", "period"),
                f"must be a multiple of site.step ({step} s), found {period} s; e.g. {closest}",
            )
        if self.evs is not None and not self.assets.chargers:
            raise FieldError(
                ("evs",), "evs are given but assets.chargers is empty: EVs need chargers"
            )
        return self
