"""Physical devices of a bench: identify, read measured power, write setpoints that expire.

* :class:`RegisterMapBattery` — a Modbus TCP battery with a vendor register map from the bench
  file. Every setpoint write is preceded by a write of its revert timeout, so a device left alone
  falls back to 0 kW by itself.
* :class:`SunSpecBattery` — a SunSpec battery through :class:`~qubit_sim.protocols.modbus_link.
  ModbusLink` with ``WSetRvrtTms``; identity from model 1 (``Mn``/``Md``/``SN``).
* :class:`RegisterMapPv` / :class:`SunSpecPv` — a PV inverter. A command is an output cap [kW]:
  the register map's ``limit`` (after its revert timeout), or SunSpec 123 ``WMaxLimPct`` [% of
  the 120 ``WRtg``] with ``WMaxLimPct_RvrtTms`` and ``WMaxLim_Ena``; a cap at the rating releases
  the limit (no curtailment). Left alone, the inverter lifts its limit by itself.
* :class:`OcppCharger` — a charge point connected to the stack's CSMS under its own identity.
  At start it gets a ``TxDefaultProfile`` at stack level 0 holding the safe limit (open-ended);
  commands go out as a ``TxDefaultProfile`` at stack level 2 that is only valid until
  ``validTo = device now + profile_duration_s``, after which the safe limit applies again. The
  device's clock is estimated from the timestamps of its own meter values, so a charger whose
  clock is off still sees a bounded validity.

All values are in qubit-sim units and sign: ``p_kw > 0`` draws from the grid.
"""

from __future__ import annotations

import asyncio
import math
import struct
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException

from qubit_sim.errors import ProtocolError
from qubit_sim.hil.bench import DeviceSpec, RegisterMap, RegisterPoint
from qubit_sim.protocols.csms import Csms
from qubit_sim.protocols.modbus_link import ModbusLink
from qubit_sim.protocols.ocpp_csms_state import CommandResult

__all__ = [
    "DeviceReading",
    "OcppCharger",
    "PhysicalDevice",
    "RegisterMapBattery",
    "RegisterMapPv",
    "SunSpecBattery",
    "SunSpecPv",
    "decode_point",
    "encode_point",
    "make_device",
]

_COMMAND_PROFILE_BASE = 9100
_SAFE_PROFILE_BASE = 9200
_WORDS = {"int16": 1, "uint16": 1, "int32": 2, "uint32": 2, "float32": 2}


@dataclass(frozen=True)
class DeviceReading:
    """One measurement of a physical device.

    Attributes:
        p_kw: Active power [kW], load convention.
        soc: State of charge [fraction 0..1] (battery; ``None`` when not reported).
        wall_s: Monotonic wall time of the reading [s].
        detail: Anything else the device reported.
    """

    p_kw: float
    soc: float | None
    wall_s: float
    detail: dict[str, Any]


class PhysicalDevice(Protocol):
    """What the bridge needs from a physical device."""

    spec: DeviceSpec
    name: str

    async def connect(self) -> None: ...
    async def identify(self) -> dict[str, str]: ...
    async def read(self) -> DeviceReading: ...
    async def write_power(self, p_kw: float) -> None: ...
    async def set_availability(self, available: bool) -> None: ...
    async def close(self) -> None: ...


def encode_point(point: RegisterPoint, value: float | str) -> list[int]:
    """Registers for ``value`` in the point's unit (big-endian words; ``raw = value / scale``).

    Raises:
        ProtocolError: when the value does not fit the register type.
    """
    if point.type == "string":
        data = str(value).encode("ascii", "replace")[: 2 * point.count].ljust(2 * point.count)
        return [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]
    raw_float = float(value) / point.scale
    if point.type == "float32":
        data = struct.pack(">f", raw_float)
        return [int.from_bytes(data[0:2], "big"), int.from_bytes(data[2:4], "big")]
    raw = round(raw_float)
    words = _WORDS[point.type]
    signed = point.type.startswith("int")
    bits = 16 * words
    low, high = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    if not low <= raw <= high:
        raise ProtocolError(f"value {value} does not fit a {point.type} at {point.address}")
    raw &= (1 << bits) - 1
    return [(raw >> (16 * (words - 1 - i))) & 0xFFFF for i in range(words)]


def decode_point(point: RegisterPoint, registers: list[int]) -> float | str:
    """The value [point unit] held in ``registers`` (inverse of :func:`encode_point`)."""
    if point.type == "string":
        data = b"".join(int(r).to_bytes(2, "big") for r in registers[: point.count])
        return data.decode("ascii", "replace").rstrip("\x00 ")
    if point.type == "float32":
        data = b"".join(int(r).to_bytes(2, "big") for r in registers[:2])
        return float(struct.unpack(">f", data)[0]) * point.scale
    words = _WORDS[point.type]
    raw = 0
    for register in registers[:words]:
        raw = (raw << 16) | (int(register) & 0xFFFF)
    bits = 16 * words
    if point.type.startswith("int") and raw >= 1 << (bits - 1):
        raw -= 1 << bits
    return raw * point.scale


def _point_len(point: RegisterPoint) -> int:
    return point.count if point.type == "string" else _WORDS[point.type]


def _to_kw(point: RegisterPoint, value: float) -> float:
    kw = value / 1000.0 if point.unit == "W" else value
    return -kw if point.sign == "generator" else kw


def _from_kw(point: RegisterPoint, p_kw: float) -> float:
    value = -p_kw if point.sign == "generator" else p_kw
    return value * 1000.0 if point.unit == "W" else value


class RegisterMapBattery:
    """A Modbus TCP battery with the register map given in the bench file.

    Args:
        spec: The bench device (protocol ``modbus`` with a ``register_map``).
    """

    def __init__(self, spec: DeviceSpec) -> None:
        assert spec.modbus is not None and spec.modbus.register_map is not None
        self.spec = spec
        self.modbus = spec.modbus
        self.map: RegisterMap = spec.modbus.register_map
        self.name = f"{spec.id} (modbus://{self.modbus.host}:{self.modbus.port} unit "
        self.name += f"{self.modbus.unit_id})"
        self._client: AsyncModbusTcpClient | None = None
        self._lock = asyncio.Lock()

    async def connect(self) -> None:
        """Open the connection.

        Raises:
            ProtocolError: when the device does not answer.
        """
        if self._client is None:
            self._client = AsyncModbusTcpClient(
                self.modbus.host, port=self.modbus.port, timeout=self.modbus.timeout_s, retries=1
            )
        if not self._client.connected:
            ok = await self._client.connect()
            if not ok:
                raise ProtocolError(f"{self.name}: not reachable")

    async def close(self) -> None:
        """Close the connection."""
        client, self._client = self._client, None
        if client is not None:
            client.close()

    async def _read_point(self, point: RegisterPoint) -> float | str:
        client = self._client
        if client is None:
            raise ProtocolError(f"{self.name}: not connected; call connect() first")
        try:
            response = await client.read_holding_registers(
                point.address, count=_point_len(point), device_id=self.modbus.unit_id
            )
        except (TimeoutError, ModbusException, OSError) as exc:
            raise ProtocolError(f"{self.name}: reading register {point.address}: {exc}") from exc
        if response.isError():
            raise ProtocolError(f"{self.name}: reading register {point.address}: {response}")
        return decode_point(point, list(response.registers))

    async def _write_point(self, point: RegisterPoint, value: float) -> None:
        client = self._client
        if client is None:
            raise ProtocolError(f"{self.name}: not connected; call connect() first")
        words = encode_point(point, value)
        try:
            response = await client.write_registers(
                point.address, words, device_id=self.modbus.unit_id
            )
        except (TimeoutError, ModbusException, OSError) as exc:
            raise ProtocolError(f"{self.name}: writing register {point.address}: {exc}") from exc
        if response.isError():
            raise ProtocolError(f"{self.name}: writing register {point.address}: {response}")

    async def identify(self) -> dict[str, str]:
        """Manufacturer, model and serial as the device reports them (those in the map)."""
        found: dict[str, str] = {}
        async with self._lock:
            for key in ("manufacturer", "model", "serial"):
                point = getattr(self.map, key)
                if point is not None:
                    found[key] = str(await self._read_point(point))
        return found

    async def read(self) -> DeviceReading:
        """Measured power [kW] and SOC [fraction]."""
        async with self._lock:
            p_value = await self._read_point(self.map.p)
            soc_point = self.map.soc
            soc_value = None if soc_point is None else await self._read_point(soc_point)
        soc = None
        if soc_point is not None:
            soc = float(soc_value) / (100.0 if soc_point.unit == "%" else 1.0)  # type: ignore[arg-type]
        p_kw = _to_kw(self.map.p, float(p_value))
        return DeviceReading(p_kw, soc, time.monotonic(), {})

    async def write_power(self, p_kw: float) -> None:
        """Write the revert timeout, then the setpoint [kW, + charge]."""
        assert self.map.setpoint is not None
        async with self._lock:
            await self._write_point(self.map.revert_timeout, float(self.spec.revert_s))
            await self._write_point(self.map.setpoint, _from_kw(self.map.setpoint, p_kw))

    async def set_availability(self, available: bool) -> None:
        """A register-map battery has no availability control; its safe state is 0 kW."""


class RegisterMapPv(RegisterMapBattery):
    """A Modbus TCP PV inverter with the register map given in the bench file.

    Its ``limit`` register caps the output [W, kW, or % of ``limits.max_discharge_kw``]; the
    revert timeout goes out before every limit, so the inverter lifts it by itself.
    """

    async def write_power(self, p_kw: float) -> None:
        """Write the revert timeout, then the output cap ``|p_kw|`` [kW]."""
        point = self.map.limit
        assert point is not None
        cap_kw = abs(p_kw)
        if point.unit == "%":
            value = 100.0 * cap_kw / self.spec.limits.max_discharge_kw
        else:
            value = cap_kw * 1000.0 if point.unit == "W" else cap_kw
        async with self._lock:
            await self._write_point(self.map.revert_timeout, float(self.spec.revert_s))
            await self._write_point(point, value)


class SunSpecBattery:
    """A SunSpec battery (models 1, 701, 702, 704); setpoints carry ``WSetRvrtTms``.

    Args:
        spec: The bench device (protocol ``modbus`` with ``sunspec: true``).
    """

    _kind = "battery"
    _label = "SunSpec"

    def __init__(self, spec: DeviceSpec) -> None:
        assert spec.modbus is not None
        self.spec = spec
        m = spec.modbus
        self.name = f"{spec.id} (modbus://{m.host}:{m.port} unit {m.unit_id}, {self._label})"
        self.link = ModbusLink(
            m.host,
            m.port,
            m.unit_id,
            self._kind,
            timeout_s=m.timeout_s,
            revert_s=spec.revert_s,
            name=self.name,
        )

    async def connect(self) -> None:
        """Connect and walk the SunSpec model chain."""
        await self.link.connect()

    async def close(self) -> None:
        """Close the connection."""
        await self.link.close()

    async def identify(self) -> dict[str, str]:
        """Model 1 ``Mn``, ``Md``, ``SN`` as manufacturer, model, serial."""
        common = await self.link.read_model(1)
        return {
            "manufacturer": str(common.get("Mn") or ""),
            "model": str(common.get("Md") or ""),
            "serial": str(common.get("SN") or ""),
        }

    async def read(self) -> DeviceReading:
        """Measured power [kW] and SOC [fraction]."""
        state = await self.link.read()
        return DeviceReading(float(state["p_kw"] or 0.0), state["soc"], time.monotonic(), state)

    async def write_power(self, p_kw: float) -> None:
        """``WSetRvrtTms`` then ``WSet`` (model 704)."""
        await self.link.set_power_limit(p_kw)

    async def set_availability(self, available: bool) -> None:
        """Connect or disconnect the battery (802 ``SetOp``)."""
        await self.link.set_availability(available)


class SunSpecPv(SunSpecBattery):
    """A SunSpec PV inverter (models 1, 101 or 103, 120, 123); caps carry ``WMaxLimPct_RvrtTms``.

    Args:
        spec: The bench device (``asset: pv``, protocol ``modbus`` with ``sunspec: true``).
    """

    _kind = "pv"
    _label = "SunSpec PV"

    async def read(self) -> DeviceReading:
        """Measured power [kW, < 0 while producing] (101/103 ``W`` with its scale factor)."""
        state = await self.link.read()
        return DeviceReading(float(state["p_kw"] or 0.0), None, time.monotonic(), state)

    async def write_power(self, p_kw: float) -> None:
        """Cap the output at ``|p_kw|`` [kW]; a cap at or above the rating lifts the limit."""
        cap_kw = abs(p_kw)
        if cap_kw >= self.spec.limits.max_discharge_kw - 1e-9:
            await self.link.set_power_limit(None)
        else:
            await self.link.set_power_limit(cap_kw)

    async def set_availability(self, available: bool) -> None:
        """Connect or disconnect the inverter (123 ``Conn``)."""
        await self.link.set_availability(available)


class OcppCharger:
    """A physical charge point on the stack's CSMS, reached through its session.

    Args:
        spec: The bench device (protocol ``ocpp``).
        csms: The CSMS the charge point connects to (its identity on the allow-list).
        clock_factor: Device-clock seconds per wall second (1 for hardware; the factor of a
            served twin standing in for one).
    """

    def __init__(self, spec: DeviceSpec, csms: Csms, clock_factor: float = 1.0) -> None:
        assert spec.ocpp is not None
        self.spec = spec
        self.ocpp = spec.ocpp
        self.csms = csms
        self.clock_factor = clock_factor
        self.name = f"{spec.id} (OCPP {spec.ocpp.identity} connector {spec.ocpp.connector})"
        self._device_time: tuple[datetime, float] | None = None

    async def connect(self) -> None:
        """Nothing to open: the charge point connects to the CSMS by itself."""

    async def close(self) -> None:
        """Nothing to close: the CSMS owns the session."""

    async def wait_booted(self, timeout_s: float) -> None:
        """Wait until the charge point is connected and has booted.

        Raises:
            ProtocolError: when it has not within ``timeout_s`` [s, wall clock].
        """
        identity = self.ocpp.identity
        record = self.csms.state.charge_points

        def booted() -> bool:
            found = record.get(identity)
            return self.csms.is_connected(identity) and found is not None and found.boots > 0

        try:
            await self.csms.wait_until(booted, timeout_s, f"charge point {identity} to boot")
        except ProtocolError:
            raise ProtocolError(
                f"{self.name}: did not connect and boot at {self.csms.url}/{identity} within "
                f"{timeout_s:g} s; check its CSMS URL, identity and password"
            ) from None

    async def identify(self) -> dict[str, str]:
        """Vendor and model from its BootNotification."""
        record = self.csms.state.charge_points.get(self.ocpp.identity)
        if record is None or not record.boots:
            raise ProtocolError(f"{self.name}: has not booted")
        return {"vendor": record.vendor or "", "model": record.model or ""}

    async def read(self) -> DeviceReading:
        """Power [kW] of the connector from its last meter value (0 outside a transaction)."""
        reading = self.csms.read(self.ocpp.identity, self.ocpp.connector)
        now = time.monotonic()
        if reading.timestamp is not None:
            stamp = datetime.fromisoformat(reading.timestamp.replace("Z", "+00:00"))
            if self._device_time is None or stamp > self._device_time[0]:
                self._device_time = (stamp, now)
        return DeviceReading(reading.p_kw, reading.ev_soc, now, {"status": reading.status})

    async def fresh_reading(self, timeout_s: float) -> DeviceReading | None:
        """Ask for a meter value now (TriggerMessage ``MeterValues``) and read it once it has
        arrived; ``None`` when none arrived within ``timeout_s`` [s, wall clock] (a charge point
        that refuses the trigger can still send a periodic one in that time).

        Its ``p_kw`` is the power metered in that sample whatever the connector's status: a
        charge point still reporting ``Preparing`` may already draw power.
        """
        before = self._last_sample()
        result = await self.csms.trigger_message(
            self.ocpp.identity, "MeterValues", self.ocpp.connector
        )
        deadline = time.monotonic() + timeout_s
        while (sample := self._last_sample()) is before:
            if time.monotonic() >= deadline:
                return None
            await asyncio.sleep(0.02 if result.accepted else 0.1)
        reading = await self.read()
        metered_w = getattr(sample, "power_w", None)
        if metered_w is None:
            return reading
        return DeviceReading(metered_w / 1000.0, reading.soc, reading.wall_s, reading.detail)

    def _last_sample(self) -> object:
        record = self.csms.state.charge_points.get(self.ocpp.identity)
        connector = None if record is None else record.connectors.get(self.ocpp.connector)
        return None if connector is None else connector.last_sample

    def device_now(self) -> datetime:
        """The charge point's clock, estimated from its latest meter value (wall UTC before)."""
        if self._device_time is None:
            return datetime.now(UTC)
        stamp, seen = self._device_time
        return stamp + timedelta(seconds=(time.monotonic() - seen) * self.clock_factor)

    def profile(self, p_kw: float, *, safe: bool) -> dict[str, Any]:
        """The charging profile for a limit [kW]: the open-ended safe default (stack level 0)
        or a command (stack level 2) valid until device now + ``profile_duration_s``."""
        connector = self.ocpp.connector
        pid = (_SAFE_PROFILE_BASE if safe else _COMMAND_PROFILE_BASE) + connector
        schedule = {
            "chargingRateUnit": "W",
            "chargingSchedulePeriod": [{"startPeriod": 0, "limit": round(p_kw * 1000.0, 1)}],
        }
        profile: dict[str, Any] = {
            "stackLevel": 0 if safe else 2,
            "chargingProfilePurpose": "TxDefaultProfile",
            "chargingProfileKind": "Relative",
        }
        if not safe:
            valid_to = self.device_now() + timedelta(seconds=self.ocpp.profile_duration_s)
            profile["validTo"] = valid_to.isoformat(timespec="seconds").replace("+00:00", "Z")
        record = self.csms.state.charge_points.get(self.ocpp.identity)
        if record is not None and record.version == "2.0.1":
            return {"id": pid, **profile, "chargingSchedule": [{"id": pid, **schedule}]}
        return {"chargingProfileId": pid, **profile, "chargingSchedule": schedule}

    async def install_safe_default(self) -> None:
        """The open-ended safe limit every expired command falls back to."""
        await self._send(self.profile(self.spec.safe_state.p_kw, safe=True))

    async def write_power(self, p_kw: float) -> None:
        """A command profile [kW] valid for ``profile_duration_s`` device seconds."""
        if not math.isfinite(p_kw) or p_kw < 0:
            raise ProtocolError(f"{self.name}: charger limit {p_kw} kW must be >= 0")
        await self._send(self.profile(p_kw, safe=False))

    async def _send(self, profile: dict[str, Any]) -> None:
        result = await self.csms.set_charging_profile(
            self.ocpp.identity, self.ocpp.connector, profile
        )
        if not result.accepted:
            raise ProtocolError(f"{self.name}: refused the charging profile: {result.status}")

    async def start(self) -> CommandResult:
        """RemoteStartTransaction (1.6) / RequestStartTransaction (2.0.1) on the connector."""
        return await self.csms.remote_start(self.ocpp.identity, self.ocpp.connector)

    async def stop(self) -> CommandResult:
        """RemoteStopTransaction (1.6) / RequestStopTransaction (2.0.1) of the connector's
        transaction (``NoTransaction`` when none runs)."""
        return await self.csms.remote_stop(self.ocpp.identity, self.ocpp.connector)

    async def set_availability(self, available: bool) -> None:
        """ChangeAvailability of the connector."""
        result = await self.csms.change_availability(
            self.ocpp.identity, self.ocpp.connector, available
        )
        if not result.accepted:
            raise ProtocolError(f"{self.name}: refused ChangeAvailability: {result.status}")


def make_device(
    spec: DeviceSpec, csms: Csms | None = None, clock_factor: float = 1.0
) -> PhysicalDevice:
    """The device object for a bench entry (OCPP devices need the CSMS they connect to)."""
    if spec.protocol == "ocpp":
        if csms is None:
            raise ProtocolError(f"device {spec.id}: an OCPP device needs the stack's CSMS")
        return OcppCharger(spec, csms, clock_factor)
    assert spec.modbus is not None
    if spec.kind == "pv":
        return SunSpecPv(spec) if spec.modbus.sunspec else RegisterMapPv(spec)
    if spec.modbus.sunspec:
        return SunSpecBattery(spec)
    return RegisterMapBattery(spec)
