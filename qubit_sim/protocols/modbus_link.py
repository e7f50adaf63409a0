"""The stack's link to a SunSpec battery or PV inverter over Modbus TCP.

:meth:`ModbusLink.connect` walks the SunSpec model chain from the ``SunS`` marker (trying base
addresses 40000, 0 and 50000), so devices with other bases, other model orders or extra vendor
models work as long as the models the link needs are present. Values come back in qubit-sim
units and sign (load convention: ``p_kw > 0`` draws from the grid). SunSpec's own sign is the
generator convention (701 ``W`` and 704 ``WSet`` are positive when the device injects), hence
``p_kw = -W / 1000`` and ``WSet = -1000 * p_kw``.

Every request has a timeout and is retried (with reconnect) on transport failures; a device
that answers with a Modbus exception is not retried. Failures raise
:class:`~qubit_sim.errors.ProtocolError` naming the device, the point and the register.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException

from qubit_sim.errors import ProtocolError
from qubit_sim.protocols.sunspec import (
    END_MODEL_ID,
    MODELS,
    SUNS_MARKER,
    ModelBlock,
    ModelDef,
    encode_raw,
    to_raw,
)

__all__ = ["DiscoveredModel", "ModbusLink", "ModbusRefused"]

_EXCEPTION_NAMES = {
    1: "ILLEGAL FUNCTION",
    2: "ILLEGAL DATA ADDRESS",
    3: "ILLEGAL DATA VALUE",
    4: "SERVER DEVICE FAILURE",
    6: "SERVER DEVICE BUSY",
    10: "GATEWAY PATH UNAVAILABLE",
    11: "GATEWAY TARGET DEVICE FAILED TO RESPOND",
}
_MAX_READ = 125
_MAX_MODELS = 128
_INVERTER_MODELS = (101, 102, 103)
_REQUIRED = {"battery": (1, 701, 702, 704), "pv": (1, 120, 123)}


class ModbusRefused(ProtocolError):
    """The device answered with a Modbus exception (``exception_code``) instead of doing it."""

    def __init__(self, message: str, exception_code: int) -> None:
        super().__init__(message)
        self.exception_code = exception_code


@dataclass(frozen=True)
class DiscoveredModel:
    """A model found on the device: ID, address of its ``ID`` register and length L."""

    id: int
    address: int
    length: int


class ModbusLink:
    """Client link to one SunSpec battery or PV inverter.

    Args:
        host: Device address.
        port: Modbus TCP port.
        unit_id: Modbus unit id.
        kind: ``"battery"`` or ``"pv"``.
        timeout_s: Timeout of one request [s] (wall clock).
        retries: Extra attempts after a transport failure.
        revert_s: When > 0, setpoints are written with a revert timer of this many simulated
            seconds, so the device falls back if the link stops refreshing them.
        bases: Base addresses tried for the ``SunS`` marker, in order.
        name: Device name used in errors (default ``"<kind> <host>:<port> unit <id>"``).
    """

    def __init__(
        self,
        host: str,
        port: int = 502,
        unit_id: int = 1,
        kind: str = "battery",
        *,
        timeout_s: float = 1.0,
        retries: int = 2,
        revert_s: int = 0,
        bases: Sequence[int] = (40000, 0, 50000),
        name: str | None = None,
    ) -> None:
        if kind not in _REQUIRED:
            raise ProtocolError(f"ModbusLink kind {kind!r} is unknown; use 'battery' or 'pv'")
        if timeout_s <= 0 or retries < 0 or revert_s < 0:
            raise ProtocolError(
                f"timeout_s ({timeout_s}) must be > 0, retries ({retries}) and "
                f"revert_s ({revert_s}) >= 0"
            )
        self.host = host
        self.port = port
        self.unit_id = unit_id
        self.kind = kind
        self.timeout_s = timeout_s
        self.retries = retries
        self.revert_s = revert_s
        self.bases = tuple(bases)
        self.name = name or f"{kind} {host}:{port} unit {unit_id}"
        self.models: list[DiscoveredModel] = []
        self._client: AsyncModbusTcpClient | None = None
        self._static: dict[int, ModelBlock] = {}

    # -- connection ---------------------------------------------------------------------------

    async def connect(self) -> list[DiscoveredModel]:
        """Open the connection and discover the model chain; returns the models found."""
        if self._client is None:
            self._client = AsyncModbusTcpClient(
                self.host, port=self.port, timeout=self.timeout_s, retries=0
            )
        await self._ensure_connected()
        self.models = await self._discover()
        missing = [m for m in _REQUIRED[self.kind] if self._find(m) is None]
        if self.kind == "pv" and not any(self._find(m) for m in _INVERTER_MODELS):
            missing.append(103)
        if missing:
            found = ", ".join(str(m.id) for m in self.models)
            raise ProtocolError(
                f"{self.name}: SunSpec models {missing} needed for a {self.kind} link are "
                f"missing; the device has {found}"
            )
        self._static = {m: await self.read_model(m) for m in self._static_models()}
        return list(self.models)

    async def close(self) -> None:
        """Close the connection."""
        client, self._client = self._client, None
        if client is not None:
            client.close()
            await asyncio.sleep(0)

    # -- the link interface -------------------------------------------------------------------

    async def read(self) -> dict[str, Any]:
        """Current state in qubit-sim units (kW, kWh, SOC 0..1, load-convention sign).

        Battery keys: ``soc``, ``p_kw``, ``capacity_kwh``, ``p_charge_max_kw``,
        ``p_discharge_max_kw``, ``soc_min``, ``soc_max``, ``voltage_v``, ``frequency_hz``,
        ``e_charged_kwh``, ``e_discharged_kwh``, ``faulted``, ``enabled``, ``setpoint_kw``
        (``None`` when released). PV keys: ``p_kw``, ``inverter_kw``, ``voltage_v``,
        ``frequency_hz``, ``e_produced_kwh``, ``faulted``, ``enabled``, ``curtailment_pct``
        (``None`` without a cap). A value the device does not implement reads ``None``; the PV
        models carry neither available power nor kWp, so those are not reported.
        """
        if not self._static:
            raise ProtocolError(f"{self.name}: models not discovered yet; call connect() first")
        return await (self._read_battery() if self.kind == "battery" else self._read_pv())

    async def set_power_limit(self, kw: float | None) -> None:
        """Command the device; ``None`` releases it to its local behaviour.

        Battery: a power setpoint ``kw`` [kW] in load convention (+ charge), written as 704
        ``WSet`` [W] with SunSpec's sign (``WSet = -1000 * kw``) and ``WSetEna`` ENABLED.
        PV: an output cap of ``|kw|`` [kW] (PV only injects, so the sign carries no meaning),
        written as 123 ``WMaxLimPct`` [% of WRtg, capped at 100] and ``WMaxLim_Ena`` ENABLED.
        """
        if self.kind == "battery":
            await self._set_battery(kw)
        else:
            await self._set_pv(kw)

    async def set_enabled(self, enabled: bool) -> None:
        """Connect or disconnect the device (802 ``SetOp`` / 123 ``Conn``)."""
        if self.kind == "battery":
            await self._write_symbol(802, "SetOp", "CONNECT" if enabled else "DISCONNECT")
        else:
            await self._write_symbol(123, "Conn", "CONNECT" if enabled else "DISCONNECT")

    async def set_availability(self, available: bool) -> None:
        """Make the device available (connected) or unavailable; same as :meth:`set_enabled`."""
        await self.set_enabled(available)

    async def start(self) -> None:
        """Bring the device into operation (connect it)."""
        await self.set_enabled(True)

    async def stop(self) -> None:
        """Take the device out of operation (disconnect it)."""
        await self.set_enabled(False)

    # -- model access -------------------------------------------------------------------------

    async def read_model(self, model_id: int) -> ModelBlock:
        """Read the whole model ``model_id`` and decode it with its definition."""
        return (await self.read_models([model_id]))[model_id]

    async def read_models(self, model_ids: Sequence[int]) -> dict[int, ModelBlock]:
        """Read several models; adjacent ones share requests (up to 125 registers each)."""
        found = sorted((self._require(m) for m in model_ids), key=lambda m: m.address)
        spans: list[list[DiscoveredModel]] = []
        for model in found:
            last = spans[-1][-1] if spans else None
            if last is not None and last.address + 2 + last.length == model.address:
                spans[-1].append(model)
            else:
                spans.append([model])
        blocks: dict[int, ModelBlock] = {}
        for span in spans:
            start = span[0].address
            # The last model is read only as far as its definition goes (a newer revision of
            # a model may be longer than the definition we know).
            size = span[-1].address + 2 + MODELS[span[-1].id].length - start
            registers: list[int] = []
            while len(registers) < size:
                count = min(_MAX_READ, size - len(registers))
                what = f"model{'s' if len(span) > 1 else ''} {', '.join(str(m.id) for m in span)}"
                registers += await self._read(start + len(registers), count, what)
            for model in span:
                offset = model.address - start
                definition = MODELS[model.id]
                words = registers[offset : offset + definition.length + 2]
                blocks[model.id] = ModelBlock.from_registers(definition, model.address, words)
        return blocks

    async def write_point(self, model_id: int, name: str, value: float | str | None) -> None:
        """Write engineering ``value`` into point ``name`` of model ``model_id``."""
        block = self._static.get(model_id) or await self.read_model(model_id)
        point = block.model.point(name)
        if point.sf is None or value is None or isinstance(value, str):
            words = encode_raw(point, value)
        else:
            sf = block.get_raw(point.sf)
            if sf is None:
                raise ProtocolError(f"{self.name}: scale factor {point.sf} is not implemented")
            words = encode_raw(point, to_raw(float(value), int(sf)))
        await self._write(block.address_of(name), words, f"{name} (model {model_id})")

    # -- internals ----------------------------------------------------------------------------

    def _static_models(self) -> list[int]:
        if self.kind == "battery":
            return [m for m in (702, 704) if self._find(m)]
        return [m for m in (120, 123) if self._find(m)]

    def _find(self, model_id: int) -> DiscoveredModel | None:
        return next((m for m in self.models if m.id == model_id), None)

    def _require(self, model_id: int) -> DiscoveredModel:
        found = self._find(model_id)
        if found is None:
            raise ProtocolError(
                f"{self.name}: model {model_id} not found (connect() first; device has "
                f"{[m.id for m in self.models]})"
            )
        if model_id not in MODELS:
            raise ProtocolError(f"{self.name}: no definition for SunSpec model {model_id}")
        if found.length < MODELS[model_id].length:
            raise ProtocolError(
                f"{self.name}: model {model_id} at {found.address} has length {found.length}, "
                f"shorter than the {MODELS[model_id].length} registers of its definition"
            )
        return found

    async def _discover(self) -> list[DiscoveredModel]:
        answered = False
        last_error: ProtocolError | None = None
        for base in self.bases:
            try:
                marker = await self._read(base, 2, "SunS marker")
            except ModbusRefused:
                answered = True
                continue
            except ProtocolError as exc:
                last_error = exc
                continue
            answered = True
            if tuple(marker) == SUNS_MARKER:
                return await self._walk(base + 2)
        if not answered and last_error is not None:
            raise last_error
        raise ProtocolError(
            f"{self.name}: no SunSpec 'SunS' marker at any of the base addresses {self.bases}"
        )

    async def _walk(self, address: int) -> list[DiscoveredModel]:
        models: list[DiscoveredModel] = []
        while len(models) <= _MAX_MODELS:
            model_id, length = await self._read(address, 2, "model header")
            if model_id == END_MODEL_ID:
                return models
            if address + 2 + length > 0x10000:
                raise ProtocolError(
                    f"{self.name}: model {model_id} at {address} claims length {length}, "
                    "running past the end of the register space"
                )
            models.append(DiscoveredModel(model_id, address, length))
            address += 2 + length
        raise ProtocolError(f"{self.name}: model chain longer than {_MAX_MODELS} models")

    async def _read_battery(self) -> dict[str, Any]:
        # 702 lies between 701 and 704 in most maps: reading it too saves a request.
        wanted = [m for m in (701, 702, 704, 713, 802) if self._find(m)]
        blocks = await self.read_models(wanted)
        m701, m704 = blocks[701], blocks[704]
        m702 = self._static[702]
        storage, battery = blocks.get(713), blocks.get(802)
        soc_pct = _first(storage and storage.get("SoC"), battery and battery.get("SoC"))
        capacity_wh = _first(storage and storage.get("WHRtg"), battery and battery.get("WHRtg"))
        faulted = (
            m701.symbol("InvSt") == "FAULT"
            or (storage is not None and storage.symbol("Sta") == "ERROR")
            or (battery is not None and battery.symbol("State") == "FAULT")
        )
        if battery is not None:
            enabled = battery.symbol("SetOp") == "CONNECT"
        else:
            enabled = m701.symbol("ConnSt") == "CONNECTED"
        return {
            "soc": _scaled(soc_pct, 100.0),
            "p_kw": _scaled(m701.get("W"), -1000.0),
            "capacity_kwh": _scaled(capacity_wh, 1000.0),
            "p_charge_max_kw": _scaled(
                _first(m702.get("WChaRteMax"), m702.get("WChaRteMaxRtg")), 1000.0
            ),
            "p_discharge_max_kw": _scaled(
                _first(m702.get("WDisChaRteMax"), m702.get("WDisChaRteMaxRtg")), 1000.0
            ),
            "soc_min": _scaled(battery and battery.get("SoCMin"), 100.0),
            "soc_max": _scaled(battery and battery.get("SoCMax"), 100.0),
            "voltage_v": _scaled(m701.get("LNV"), 1.0),
            "frequency_hz": _scaled(m701.get("Hz"), 1.0),
            "e_charged_kwh": _scaled(m701.get("TotWhAbs"), 1000.0),
            "e_discharged_kwh": _scaled(m701.get("TotWhInj"), 1000.0),
            "faulted": faulted,
            "enabled": enabled,
            "setpoint_kw": self._battery_setpoint_kw(m704, m702),
        }

    @staticmethod
    def _battery_setpoint_kw(m704: ModelBlock, m702: ModelBlock) -> float | None:
        if m704.symbol("WSetEna") != "ENABLED":
            return None
        if m704.symbol("WSetMod") == "W_MAX_PCT":
            watts = float(m704.get("WSetPct") or 0.0) / 100.0 * float(m702.get("WMax") or 0.0)
        else:
            watts = float(m704.get("WSet") or 0.0)
        return -watts / 1000.0

    async def _read_pv(self) -> dict[str, Any]:
        inverter_id = next(m for m in _INVERTER_MODELS if self._find(m))
        blocks = await self.read_models([inverter_id, 120, 123])
        inverter, controls = blocks[inverter_id], blocks[123]
        nameplate = self._static[120]
        limited = controls.symbol("WMaxLim_Ena") == "ENABLED"
        return {
            "p_kw": _scaled(inverter.get("W"), -1000.0),
            "inverter_kw": _scaled(nameplate.get("WRtg"), 1000.0),
            "voltage_v": _scaled(inverter.get("PhVphA"), 1.0),
            "frequency_hz": _scaled(inverter.get("Hz"), 1.0),
            "e_produced_kwh": _scaled(inverter.get("WH"), 1000.0),
            "faulted": inverter.symbol("St") == "FAULT",
            "enabled": controls.symbol("Conn") == "CONNECT",
            "curtailment_pct": _scaled(controls.get("WMaxLimPct"), 1.0) if limited else None,
        }

    async def _set_battery(self, kw: float | None) -> None:
        m704 = self._static[704]
        if kw is None:
            await self._write_symbol(704, "WSetEna", "DISABLED")
            return
        if self.revert_s:
            await self.write_point(704, "WSetRvrtTms", self.revert_s)
        definition = m704.model
        sf = m704.get_raw("WSet_SF")
        if sf is None:
            raise ProtocolError(f"{self.name}: WSet_SF of model 704 is not implemented")
        words = [
            *encode_raw(
                definition.point("WSetEna"), definition.point("WSetEna").symbol_value("ENABLED")
            ),
            *encode_raw(
                definition.point("WSetMod"), definition.point("WSetMod").symbol_value("WATTS")
            ),
            *encode_raw(definition.point("WSet"), to_raw(-1000.0 * kw, int(sf))),
        ]
        # WSetEna, WSetMod and WSet are adjacent: one request applies them together.
        await self._write(
            m704.address_of("WSetEna"), words, f"WSet={-1000.0 * kw:.0f} W (model 704)"
        )

    async def _set_pv(self, kw: float | None) -> None:
        if kw is None:
            await self._write_symbol(123, "WMaxLim_Ena", "DISABLED")
            return
        rating_kw = _scaled(self._static[120].get("WRtg"), 1000.0)
        if not rating_kw:
            raise ProtocolError(f"{self.name}: nameplate WRtg (model 120) is not implemented")
        pct = min(100.0, 100.0 * abs(kw) / rating_kw)
        await self.write_point(123, "WMaxLimPct", pct)
        if self.revert_s:
            await self.write_point(123, "WMaxLimPct_RvrtTms", self.revert_s)
        await self._write_symbol(123, "WMaxLim_Ena", "ENABLED")

    async def _write_symbol(self, model_id: int, name: str, symbol: str) -> None:
        definition: ModelDef = MODELS[model_id]
        await self.write_point(model_id, name, definition.point(name).symbol_value(symbol))

    async def _ensure_connected(self) -> AsyncModbusTcpClient:
        if self._client is None:
            raise ProtocolError(f"{self.name}: not connected; call connect() first")
        if not self._client.connected:
            try:
                ok = await asyncio.wait_for(self._client.connect(), self.timeout_s)
            except (TimeoutError, OSError, ModbusException) as exc:
                raise ProtocolError(f"{self.name}: cannot connect: {exc}") from exc
            if not ok:
                raise ProtocolError(f"{self.name}: cannot connect to {self.host}:{self.port}")
        return self._client

    async def _read(self, address: int, count: int, what: str) -> list[int]:
        response = await self._request(
            lambda c: c.read_holding_registers(address, count=count, device_id=self.unit_id),
            f"read {what} ({count} registers at {address})",
        )
        return list(response.registers)

    async def _write(self, address: int, words: Sequence[int], what: str) -> None:
        await self._request(
            lambda c: c.write_registers(address, list(words), device_id=self.unit_id),
            f"write {what} at register {address}",
        )

    async def _request(self, call: Any, what: str) -> Any:
        last_error: BaseException | None = None
        for attempt in range(self.retries + 1):
            try:
                client = await self._ensure_connected()
                response = await asyncio.wait_for(call(client), self.timeout_s)
            except (TimeoutError, OSError, ModbusException, ProtocolError) as exc:
                last_error = exc
                if self._client is not None:
                    with contextlib.suppress(Exception):
                        self._client.close()
                await asyncio.sleep(0.02 * 2**attempt)
                continue
            if response.isError():
                code = int(getattr(response, "exception_code", 0))
                raise ModbusRefused(
                    f"{self.name}: {what} refused with Modbus exception {code} "
                    f"({_EXCEPTION_NAMES.get(code, 'unknown')})",
                    code,
                )
            return response
        raise ProtocolError(
            f"{self.name}: {what} failed after {self.retries + 1} attempts: {last_error}"
        ) from last_error


def _first(*values: Any) -> Any:
    return next((v for v in values if v is not None), None)


def _scaled(value: Any, divisor: float) -> float | None:
    # Dividing (W -> kW by 1000, % -> fraction by 100) keeps round values exact.
    # "+ 0.0" turns a -0.0 (from negating a zero reading) into 0.0.
    return None if value is None else float(value) / divisor + 0.0
