"""A Modbus TCP holding-register server for one unit, on pymodbus.

The server answers function codes 3 (read holding registers), 6 (write single register) and 16
(write multiple registers) — the set SunSpec devices implement — and every other function code
with exception 1 (ILLEGAL FUNCTION). Register contents belong to the caller: every read asks
``on_read`` for fresh values and every write is offered to ``on_write``, which may reject it with
an exception code. The server answers its configured unit id and the two ids that address a
server directly on TCP, 0 and 255 (Modbus Messaging on TCP/IP Implementation Guide V1.0b, 4.4.2:
the unit id is useless when the IP address names the device; 0xFF is the recommended value and
many clients send 0). Requests for any other unit id are answered with exception 0x0B (gateway
target failed to respond), as a gateway with no such device behind it would.

pymodbus 3.16 answers a request it cannot decode with function code 0x80 instead of the request's
function code + 0x80; the packet hook below restores the request's code (and reports a bad
quantity in a supported request as exception 3, ILLEGAL DATA VALUE, as the Modbus spec asks).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from pymodbus.constants import ExcCodes
from pymodbus.pdu import DecodePDU
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice
from pymodbus.simulator.simcore import SimCore

from qubit_sim.errors import ProtocolError

__all__ = [
    "DIRECT_UNIT_IDS",
    "FC_READ_HOLDING",
    "FC_WRITE_MULTIPLE",
    "FC_WRITE_SINGLE",
    "SUPPORTED_FUNCTION_CODES",
    "ModbusRegisterServer",
    "ReadHandler",
    "WriteHandler",
]

FC_READ_HOLDING = 3
FC_WRITE_SINGLE = 6
FC_WRITE_MULTIPLE = 16
SUPPORTED_FUNCTION_CODES = (FC_READ_HOLDING, FC_WRITE_SINGLE, FC_WRITE_MULTIPLE)
#: Unit ids every server also answers as its own: a server addressed directly on TCP.
DIRECT_UNIT_IDS = (0, 255)

#: ``(address, count) -> registers`` for a read, or an exception code to refuse it.
ReadHandler = Callable[[int, int], list[int] | int]
#: ``(address, values) -> None`` to accept a write, or an exception code to refuse it.
WriteHandler = Callable[[int, list[int]], int | None]

_MBAP_FC = 7  # index of the function code in a Modbus TCP frame


class ModbusRegisterServer:
    """Serve a block of holding registers for one unit id over Modbus TCP.

    Args:
        base: Address of the first register.
        writable: One flag per register from ``base``; writes touching a non-writable register
            are refused with exception 2 (ILLEGAL DATA ADDRESS) before ``on_write`` is asked.
        on_read: Supplies current register values.
        on_write: Validates and applies writes.
        host: Interface to bind.
        port: TCP port; 0 picks a free one (see :attr:`port` after :meth:`start`).
        unit_id: The Modbus unit id served (1..247); 0 and 255 are answered as well.
    """

    def __init__(
        self,
        *,
        base: int,
        writable: Sequence[bool],
        on_read: ReadHandler,
        on_write: WriteHandler,
        host: str = "127.0.0.1",
        port: int = 502,
        unit_id: int = 1,
    ) -> None:
        if not 1 <= unit_id <= 247:
            raise ProtocolError(f"Modbus unit id {unit_id} must be in 1..247")
        if base < 0 or base + len(writable) > 0x10000:
            raise ProtocolError(f"{len(writable)} registers at {base} exceed the address space")
        self.base = base
        self.writable = list(writable)
        self.on_read = on_read
        self.on_write = on_write
        self.host = host
        self.unit_id = unit_id
        self._requested_port = port
        self._server: ModbusTcpServer | None = None
        self._last_request = b""

    @property
    def port(self) -> int:
        """The bound TCP port (the requested one until :meth:`start` has run)."""
        if self._server is not None and self._server.transport is not None:
            sockets = getattr(self._server.transport, "sockets", None)
            if sockets:
                return int(sockets[0].getsockname()[1])
        return self._requested_port

    @property
    def running(self) -> bool:
        """True between :meth:`start` and :meth:`stop`."""
        return self._server is not None

    async def start(self) -> None:
        """Bind and serve in the background of the running event loop."""
        if self._server is not None:
            return
        devices = [self._device(), self._other_units()]
        server = ModbusTcpServer(
            devices, address=(self.host, self._requested_port), trace_packet=self._trace_packet
        )
        # pymodbus sends unit 0 to its catch-all device together with every unknown id; the
        # router hands 0 and 255 to the served device before that lookup happens.
        server.context = _UnitRouter(devices, self.unit_id)
        # Restricting the decoder makes every other function code an ILLEGAL FUNCTION answer.
        server.decoder.pdu_table = {fc: DecodePDU.pdu_table[fc] for fc in SUPPORTED_FUNCTION_CODES}
        try:
            await server.serve_forever(background=True)
        except RuntimeError as exc:
            raise ProtocolError(
                f"cannot listen on {self.host}:{self._requested_port}: {exc}; "
                "pick another port or 0 for a free one"
            ) from exc
        self._server = server

    async def stop(self) -> None:
        """Stop listening and close every connection."""
        server, self._server = self._server, None
        if server is not None:
            await server.shutdown()
            await asyncio.sleep(0)

    def _device(self) -> SimDevice:
        runs: list[SimData] = []
        start = 0
        while start < len(self.writable):
            end = start
            while end < len(self.writable) and self.writable[end] == self.writable[start]:
                end += 1
            runs.append(
                SimData(
                    self.base + start,
                    values=[0] * (end - start),
                    datatype=DataType.REGISTERS,
                    readonly=not self.writable[start],
                )
            )
            start = end
        return SimDevice(id=self.unit_id, simdata=runs, action=self._action)

    def _other_units(self) -> SimDevice:
        # Unit id 0 is pymodbus' catch-all: any unit id we do not serve lands here.
        block = SimData(0, count=0x10000, values=0, datatype=DataType.REGISTERS)
        return SimDevice(id=0, simdata=[block], action=_no_such_unit)

    async def _action(
        self,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        registers: list[int],
        values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        if function_code not in SUPPORTED_FUNCTION_CODES:
            return ExcCodes.ILLEGAL_FUNCTION
        offset = address - start_address
        if values is None:
            result = self.on_read(address, count)
            if isinstance(result, int):
                return ExcCodes(result)
            registers[offset : offset + count] = result
            return None
        code = self.on_write(address, [int(v) for v in values])
        return None if code is None else ExcCodes(code)

    def _trace_packet(self, sending: bool, data: bytes) -> bytes:
        if not sending:
            self._last_request = data
            return data
        # Decode failures are answered synchronously while the failing frame is still the last
        # one received, so the request's function code is at hand.
        request = self._last_request
        if len(data) == 9 and data[_MBAP_FC] == 0x80 and len(request) > _MBAP_FC:
            function_code = request[_MBAP_FC]
            code = (
                ExcCodes.ILLEGAL_VALUE
                if function_code in SUPPORTED_FUNCTION_CODES
                else ExcCodes.ILLEGAL_FUNCTION
            )
            return data[:_MBAP_FC] + bytes([function_code | 0x80, code])
        return data


class _UnitRouter(SimCore):
    """pymodbus' device table, with the direct-addressing unit ids routed to ``unit_id``."""

    def __init__(self, devices: list[SimDevice], unit_id: int) -> None:
        super().__init__(devices)
        self._unit_id = unit_id

    def _route(self, device_id: int) -> int:
        return self._unit_id if device_id in DIRECT_UNIT_IDS else device_id

    async def async_getValues(
        self, device_id: int, func_code: int, address: int, count: int = 1
    ) -> list[int] | list[bool] | ExcCodes:
        return await super().async_getValues(self._route(device_id), func_code, address, count)

    async def async_setValues(
        self, device_id: int, func_code: int, address: int, values: list[int] | list[bool]
    ) -> ExcCodes | None:
        return await super().async_setValues(self._route(device_id), func_code, address, values)


async def _no_such_unit(
    function_code: int,
    start_address: int,
    address: int,
    count: int,
    registers: list[int],
    values: list[int] | list[bool] | None,
) -> ExcCodes:
    return ExcCodes.GATEWAY_NO_RESPONSE
