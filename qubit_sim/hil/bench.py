"""The bench file format: which scenario, which physical devices replace which twins, and limits.

A bench YAML lives in ``hil/`` and names a scenario (path relative to the bench file) and, for
each physical device, the asset it replaces, how to reach it, what it must identify itself as,
its safety limits and how each write expires. Every model forbids unknown keys; all problems are
collected and raised once as a :class:`BenchError`, each with its YAML path and line. Field
documentation with units: ``hil/README.md``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from qubit_sim.errors import ConfigIssue, ScenarioError
from qubit_sim.scenario.loader import format_path, nearest_line, parse_yaml_mapping, yaml_line_map

__all__ = [
    "Bench",
    "BenchError",
    "DeviceSpec",
    "Limits",
    "ModbusSpec",
    "OcppSpec",
    "RegisterPoint",
    "RegisterMap",
    "SafeState",
    "load_bench",
    "load_bench_text",
]

RegisterType = Literal["int16", "uint16", "int32", "uint32", "float32", "string"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


class BenchError(ScenarioError):
    """A bench file is invalid; :attr:`issues` holds every problem with its YAML path."""

    def __init__(self, issues: list[ConfigIssue], source: str | None = None) -> None:
        super().__init__(issues, source)
        head = f"{source}: " if source else ""
        count = len(self.issues)
        lines = [f"{head}{count} problem{'s' if count != 1 else ''} in bench"]
        lines += [f"  - {issue}" for issue in self.issues]
        self.args = ("\n".join(lines),)

    def __str__(self) -> str:
        return str(self.args[0])


class RegisterPoint(_Model):
    """One value in a vendor register map (holding registers, big-endian words).

    ``value [unit] = raw * scale``; ``sign: generator`` means the device counts injection as
    positive (the bridge turns it into the load convention).
    """

    address: int = Field(ge=0, le=65535)
    type: RegisterType = "int16"
    scale: float = Field(default=1.0, description="unit per raw count")
    unit: str = Field(default="", description="W, kW, %, fraction, s or text")
    count: int = Field(default=1, ge=1, le=64, description="registers of a string")
    sign: Literal["load", "generator"] = "load"


class RegisterMap(_Model):
    """A non-SunSpec battery or PV inverter: where its identity, measurements and controls live.

    Required: ``p`` (measured power), ``revert_timeout`` (the expiry written before every
    command) and the command register: ``setpoint`` (battery power [W or kW]) or ``limit`` (PV
    output cap [W, kW, or % of the rating ``limits.max_discharge_kw``]). ``soc`` and the identity
    strings are optional.
    """

    manufacturer: RegisterPoint | None = None
    model: RegisterPoint | None = None
    serial: RegisterPoint | None = None
    p: RegisterPoint
    soc: RegisterPoint | None = None
    setpoint: RegisterPoint | None = None
    limit: RegisterPoint | None = None
    revert_timeout: RegisterPoint

    @model_validator(mode="after")
    def _units(self) -> RegisterMap:
        if (self.setpoint is None) == (self.limit is None):
            raise ValueError("give a 'setpoint' (battery) or a 'limit' (PV) register, not both")
        for name in ("p", "setpoint"):
            point = getattr(self, name)
            if point is not None and point.unit not in ("W", "kW"):
                raise ValueError(f"{name}.unit {point.unit!r} must be 'W' or 'kW'")
        if self.limit is not None and self.limit.unit not in ("W", "kW", "%"):
            raise ValueError(f"limit.unit {self.limit.unit!r} must be 'W', 'kW' or '%'")
        if self.soc is not None and self.soc.unit not in ("%", "fraction"):
            raise ValueError(f"soc.unit {self.soc.unit!r} must be '%' or 'fraction'")
        if self.revert_timeout.unit not in ("s", ""):
            raise ValueError(f"revert_timeout.unit {self.revert_timeout.unit!r} must be 's'")
        return self


class ModbusSpec(_Model):
    """How to reach a Modbus TCP device: SunSpec models, or a register map given here."""

    host: str = "127.0.0.1"
    port: int = Field(default=502, ge=1, le=65535)
    unit_id: int = Field(default=1, ge=1, le=247)
    timeout_s: float = Field(default=1.0, gt=0, description="per request [s]")
    sunspec: bool = Field(
        default=False, description="SunSpec models 1/701/702/704 (+713/802); PV 1/101|103/120/123"
    )
    register_map: RegisterMap | None = None

    @model_validator(mode="after")
    def _one_map(self) -> ModbusSpec:
        if self.sunspec == (self.register_map is not None):
            raise ValueError("give either 'sunspec: true' or a 'register_map', not both or none")
        return self


class OcppSpec(_Model):
    """A physical charge point that connects to the stack's CSMS under its own identity."""

    identity: str = Field(pattern=r"^[A-Za-z0-9._:*+|@-]{1,48}$")
    password: str = Field(min_length=16, max_length=40, description="HTTP basic auth password")
    connector: int = Field(default=1, ge=1)
    profile_duration_s: int = Field(
        default=60, gt=0, description="every command profile lapses after this [s]"
    )
    clock_factor: float = Field(
        default=1.0, gt=0, description="device-clock seconds per wall second (1 for hardware)"
    )


class Limits(_Model):
    """The safety envelope of one device; nothing outside it reaches the device."""

    max_charge_kw: float = Field(ge=0, description="largest draw from the grid [kW]")
    max_discharge_kw: float = Field(default=0.0, ge=0, description="largest injection [kW]")
    soc_min: float = Field(default=0.0, ge=0, le=1)
    soc_max: float = Field(default=1.0, ge=0, le=1)
    max_ramp_kw_per_s: float | None = Field(default=None, gt=0, description="[kW/s]")
    max_curtailment_pct: float = Field(
        default=100.0,
        ge=0,
        le=100,
        description="PV: the deepest curtailment, a cap below (100 - this) % of the rating [%]",
    )
    allowed_commands: list[
        Literal["set_power_limit", "curtail", "start", "stop", "set_availability"]
    ] = ["set_power_limit"]
    on_violation: Literal["clamp", "refuse"] = "clamp"

    @model_validator(mode="after")
    def _window(self) -> Limits:
        if self.soc_min >= self.soc_max:
            raise ValueError(f"soc_min ({self.soc_min}) must be below soc_max ({self.soc_max})")
        return self


class SafeState(_Model):
    """What a device is left in on exit, watchdog expiry or a crash."""

    p_kw: float = Field(default=0.0, description="battery setpoint / charger limit [kW]")
    limit_pct: float | None = Field(
        default=None, ge=0, le=100, description="PV cap [% of rating]; None: no curtailment"
    )
    available: bool | None = Field(
        default=None, description="availability to restore (None: leave as it is)"
    )


class DeviceSpec(_Model):
    """One physical device of the bench."""

    id: str = Field(min_length=1)
    replaces: str = Field(description="asset id of the twin it replaces (charger, battery, PV)")
    asset: Literal["charger", "battery", "pv"] | None = Field(
        default=None, description="what it replaces; default charger (OCPP) / battery (Modbus)"
    )
    mode: Literal["replace", "shadow"] = "replace"
    protocol: Literal["modbus", "ocpp"]
    modbus: ModbusSpec | None = None
    ocpp: OcppSpec | None = None
    identity: dict[str, str] = Field(
        default={}, description="expected manufacturer/model/serial or vendor/model"
    )
    limits: Limits
    revert_s: int = Field(default=10, gt=0, description="Modbus setpoint expiry [s]")
    safe_state: SafeState = SafeState()

    @model_validator(mode="before")
    @classmethod
    def _pv_defaults(cls, data: Any) -> Any:
        # A PV inverter only injects and its one command is a curtailment: defaults that say so.
        if isinstance(data, dict) and data.get("asset") == "pv":
            limits = data.get("limits")
            if isinstance(limits, dict):
                defaults = {"max_charge_kw": 0.0, "allowed_commands": ["curtail"]}
                data = {**data, "limits": {**defaults, **limits}}
        return data

    @model_validator(mode="after")
    def _protocol_section(self) -> DeviceSpec:
        if self.protocol == "modbus" and (self.modbus is None or self.ocpp is not None):
            raise ValueError("a 'modbus' device needs a 'modbus' section and no 'ocpp' section")
        if self.protocol == "ocpp" and (self.ocpp is None or self.modbus is not None):
            raise ValueError("an 'ocpp' device needs an 'ocpp' section and no 'modbus' section")
        keys = {"modbus": {"manufacturer", "model", "serial"}, "ocpp": {"vendor", "model"}}
        unknown = sorted(set(self.identity) - keys[self.protocol])
        if unknown:
            raise ValueError(
                f"identity keys {unknown} are not checked for {self.protocol}; "
                f"use {sorted(keys[self.protocol])}"
            )
        limits = self.limits
        if not limits.max_charge_kw >= self.safe_state.p_kw >= -limits.max_discharge_kw:
            raise ValueError(
                f"safe_state.p_kw ({self.safe_state.p_kw}) lies outside the limits "
                f"[-{limits.max_discharge_kw}, {limits.max_charge_kw}] kW"
            )
        if self.protocol == "ocpp" and limits.max_discharge_kw:
            raise ValueError("chargers only draw power: set limits.max_discharge_kw to 0")
        wanted = {"ocpp": ("charger",), "modbus": ("battery", "pv")}[self.protocol]
        if self.kind not in wanted:
            raise ValueError(f"asset {self.kind!r} cannot be reached over {self.protocol}")
        if self.kind == "pv":
            self._check_pv()
        else:
            if "curtail" in limits.allowed_commands:
                raise ValueError(f"'curtail' is a PV command; a {self.kind} takes set_power_limit")
            if self.safe_state.limit_pct is not None:
                raise ValueError("safe_state.limit_pct is for PV inverters; use safe_state.p_kw")
        register_map = self.modbus.register_map if self.modbus is not None else None
        if register_map is not None and (register_map.limit is None) == (self.kind == "pv"):
            needed = "'limit'" if self.kind == "pv" else "'setpoint'"
            raise ValueError(f"the register_map of a {self.kind} needs a {needed} register")
        return self

    def _check_pv(self) -> None:
        limits = self.limits
        if limits.max_charge_kw or limits.max_discharge_kw <= 0:
            raise ValueError(
                "a PV inverter only injects: set limits.max_discharge_kw to its AC rating [kW] "
                f"(found {limits.max_discharge_kw:g}) and max_charge_kw to 0 "
                f"(found {limits.max_charge_kw:g})"
            )
        wrong = sorted(set(limits.allowed_commands) - {"curtail", "set_availability"})
        if wrong:
            raise ValueError(
                f"allowed_commands {wrong} do not apply to a PV inverter; use 'curtail' "
                "(or an empty list: no command at all)"
            )
        floor = 100.0 - limits.max_curtailment_pct
        pct = self.safe_state.limit_pct
        if pct is not None and pct < floor:
            raise ValueError(
                f"safe_state.limit_pct ({pct:g} %) curtails deeper than max_curtailment_pct "
                f"allows (a cap of at least {floor:g} %)"
            )
        if self.safe_state.p_kw:
            raise ValueError("a PV safe state is safe_state.limit_pct, not p_kw")

    @property
    def kind(self) -> str:
        """``"charger"``, ``"battery"`` or ``"pv"`` (default: charger for OCPP, else battery)."""
        if self.asset is not None:
            return self.asset
        return "charger" if self.protocol == "ocpp" else "battery"

    @property
    def power_command(self) -> str:
        """The envelope's name for a power command: ``curtail`` (PV) or ``set_power_limit``."""
        return "curtail" if self.kind == "pv" else "set_power_limit"

    @property
    def safe_kw(self) -> float:
        """The power command of the safe state [kW]: a battery setpoint, a charger limit, or a PV
        output cap (its rating when the safe state is no curtailment)."""
        if self.kind != "pv":
            return self.safe_state.p_kw
        rating = self.limits.max_discharge_kw
        pct = self.safe_state.limit_pct
        return rating if pct is None else rating * pct / 100.0


class Bench(_Model):
    """A whole bench file."""

    name: str = Field(min_length=1)
    scenario: str = Field(description="scenario YAML, relative to the bench file")
    factor: float = Field(default=1.0, gt=0, description="simulated s per wall s (1 on hardware)")
    until: str | None = Field(default=None, description="run only this long (simulated), e.g. 2h")
    watchdog_s: float = Field(default=5.0, gt=0, description="longest wall gap between steps [s]")
    lag_threshold_s: float = Field(default=2.0, gt=0, description="stop when behind more [s]")
    identify_timeout_s: float = Field(default=30.0, gt=0, description="wait for devices [s]")
    takeover_timeout_s: float = Field(
        default=15.0, gt=0, description="wait for each device to obey its safe state [s]"
    )
    takeover_tolerance_kw: float = Field(
        default=0.2, ge=0, description="meter margin beyond the limits at takeover [kW]"
    )
    csms_host: str = "127.0.0.1"
    csms_port: int = Field(default=9000, ge=0, le=65535, description="0 picks a free port")
    devices: list[DeviceSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> Bench:
        for attr in ("id", "replaces"):
            values = [getattr(d, attr) for d in self.devices]
            twice = sorted({v for v in values if values.count(v) > 1})
            if twice:
                raise ValueError(f"device {attr} {twice} appear more than once")
        return self


def _issue(loc: tuple[Any, ...], message: str, lines: dict[tuple[Any, ...], int]) -> ConfigIssue:
    return ConfigIssue(format_path(loc), message, nearest_line(lines, loc))


def load_bench_text(text: str, *, source: str = "<text>", base_dir: Path | None = None) -> Bench:
    """Validate bench YAML given as text; ``scenario`` is resolved against ``base_dir``.

    Raises:
        BenchError: with every problem found, each with its YAML path and line.
    """
    expected = "a mapping with 'scenario' and 'devices'"
    document = parse_yaml_mapping(text, source, expected, BenchError)
    lines = yaml_line_map(text)
    try:
        bench = Bench.model_validate(document)
    except ValidationError as exc:
        issues = []
        for error in exc.errors():
            loc = tuple(p for p in error["loc"] if not str(p).startswith("function-"))
            message = error["msg"].removeprefix("Value error, ")
            if error["type"] == "extra_forbidden":
                message = f"unknown key {loc[-1]!r}; see hil/README.md for the bench fields"
            issues.append(_issue(loc, message, lines))
        raise BenchError(issues, source) from None
    scenario = Path(bench.scenario)
    if not scenario.is_absolute():
        scenario = (base_dir or Path.cwd()) / scenario
    if not scenario.is_file():
        raise BenchError(
            [_issue(("scenario",), f"scenario file {str(scenario)!r} does not exist", lines)],
            source,
        )
    return bench.model_copy(update={"scenario": str(scenario)})


def load_bench(path: str | Path) -> Bench:
    """Read and validate a bench file (see :func:`load_bench_text`).

    Raises:
        BenchError: when the file is missing or invalid.
    """
    file = Path(path)
    if not file.is_file():
        raise BenchError([ConfigIssue("", f"bench file {str(file)!r} does not exist")], str(file))
    return load_bench_text(file.read_text(), source=str(file), base_dir=file.parent)
