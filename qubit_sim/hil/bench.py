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

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from qubit_sim.errors import ConfigIssue, ScenarioError

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
    """A non-SunSpec battery: where its identity, measurements and controls live.

    Required: ``p`` (measured power), ``setpoint`` (power command) and ``revert_timeout`` (the
    expiry written before every setpoint). ``soc`` and the identity strings are optional.
    """

    manufacturer: RegisterPoint | None = None
    model: RegisterPoint | None = None
    serial: RegisterPoint | None = None
    p: RegisterPoint
    soc: RegisterPoint | None = None
    setpoint: RegisterPoint
    revert_timeout: RegisterPoint

    @model_validator(mode="after")
    def _units(self) -> RegisterMap:
        for name in ("p", "setpoint"):
            unit = getattr(self, name).unit
            if unit not in ("W", "kW"):
                raise ValueError(f"{name}.unit {unit!r} must be 'W' or 'kW'")
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
    sunspec: bool = Field(default=False, description="SunSpec models 1/701/702/704 (+713/802)")
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
    allowed_commands: list[Literal["set_power_limit", "start", "stop", "set_availability"]] = [
        "set_power_limit"
    ]
    on_violation: Literal["clamp", "refuse"] = "clamp"

    @model_validator(mode="after")
    def _window(self) -> Limits:
        if self.soc_min >= self.soc_max:
            raise ValueError(f"soc_min ({self.soc_min}) must be below soc_max ({self.soc_max})")
        return self


class SafeState(_Model):
    """What a device is left in on exit, watchdog expiry or a crash."""

    p_kw: float = Field(default=0.0, description="battery setpoint / charger limit [kW]")
    available: bool | None = Field(
        default=None, description="availability to restore (None: leave as it is)"
    )


class DeviceSpec(_Model):
    """One physical device of the bench."""

    id: str = Field(min_length=1)
    replaces: str = Field(description="asset id of the twin it replaces (charger or battery)")
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
        return self

    @property
    def kind(self) -> str:
        """``"charger"`` (OCPP) or ``"battery"`` (Modbus)."""
        return "charger" if self.protocol == "ocpp" else "battery"


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


def _line_map(text: str) -> dict[tuple[Any, ...], int]:
    lines: dict[tuple[Any, ...], int] = {}
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return lines

    def walk(node: yaml.Node, path: tuple[Any, ...]) -> None:
        lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                lines[path + (key.value,)] = key.start_mark.line + 1
                walk(value, path + (key.value,))
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                walk(item, path + (index,))

    if root is not None:
        walk(root, ())
    return lines


def _issue(loc: tuple[Any, ...], message: str, lines: dict[tuple[Any, ...], int]) -> ConfigIssue:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    line = None
    for cut in range(len(loc), -1, -1):
        if loc[:cut] in lines:
            line = lines[loc[:cut]]
            break
    return ConfigIssue(path, message, line)


def load_bench_text(text: str, *, source: str = "<text>", base_dir: Path | None = None) -> Bench:
    """Validate bench YAML given as text; ``scenario`` is resolved against ``base_dir``.

    Raises:
        BenchError: with every problem found, each with its YAML path and line.
    """
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise BenchError([ConfigIssue("", f"not valid YAML: {problem}", line)], source) from None
    if not isinstance(document, dict):
        raise BenchError(
            [ConfigIssue("", "expected a mapping with 'scenario' and 'devices'")], source
        )
    lines = _line_map(text)
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
