"""A stand-in physical battery: a Modbus TCP server with a vendor (non-SunSpec) register map.

Run it as its own process::

    python -m qubit_sim.hil.testing.fake_battery --port 0 --log writes.jsonl

It prints ``listening on <host>:<port>`` once it serves. The battery lives on the wall clock:
its power follows the setpoint at ``--ramp-kw-per-s``, its SOC integrates the power, and a
setpoint lapses to 0 kW when its revert timeout (written before it) runs out without a new
setpoint — so it reverts by itself when whoever commands it dies. Every write it receives and
every revert is appended to the ``--log`` file as one JSON line. ``--initial-kw`` starts it
running at that power on its own (no revert timer), as a device its local controller drives;
``--stuck-kw`` makes it ignore every setpoint and hold that power (a device that will not obey).

Register map (holding registers, big-endian words; sign: generator, + = discharging):

=========  =======  ======  ==========================================
address    type     unit    meaning
=========  =======  ======  ==========================================
0..7       string           manufacturer (16 characters)
8..15      string           model
16..23     string           serial number
100..101   int32    W       measured power (+ discharging)
102        uint16   0.1 %   state of charge
200..201   int32    W       power setpoint (+ discharging), writable
202        uint16   s       revert timeout of the next setpoint, writable (0: none)
203        uint16   s       time left before the setpoint reverts
=========  =======  ======  ==========================================
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import time
from pathlib import Path

from qubit_sim.hil.bench import RegisterPoint
from qubit_sim.hil.devices import decode_point, encode_point
from qubit_sim.hil.testing.standin import run_stand_in, stand_in_parser
from qubit_sim.protocols.sunspec.transport import ModbusRegisterServer

__all__ = ["FakeBattery", "REGISTER_MAP", "main"]

#: The map above as bench ``register_map`` entries.
REGISTER_MAP: dict[str, dict[str, object]] = {
    "manufacturer": {"address": 0, "type": "string", "count": 8},
    "model": {"address": 8, "type": "string", "count": 8},
    "serial": {"address": 16, "type": "string", "count": 8},
    "p": {"address": 100, "type": "int32", "unit": "W", "sign": "generator"},
    "soc": {"address": 102, "type": "uint16", "scale": 0.1, "unit": "%"},
    "setpoint": {"address": 200, "type": "int32", "unit": "W", "sign": "generator"},
    "revert_timeout": {"address": 202, "type": "uint16", "unit": "s"},
}
_N_REGISTERS = 204
_WRITABLE = range(200, 203)
_POINTS = {name: RegisterPoint.model_validate(value) for name, value in REGISTER_MAP.items()}


class FakeBattery:
    """The battery model behind the registers (wall clock).

    Args:
        capacity_kwh: Usable capacity [kWh].
        soc: Initial state of charge [fraction].
        ramp_kw_per_s: How fast power follows the setpoint [kW/s].
        max_kw: Rating in both directions [kW]; setpoints beyond it are refused (exception 3).
        identity: Manufacturer, model, serial.
        log: JSON-lines file of writes and reverts (``None``: no log).
        initial_kw: Power and setpoint at start, held without a revert timer [kW, load].
        stuck_kw: Power it holds whatever it is told [kW, load] (``None``: it obeys).
    """

    def __init__(
        self,
        *,
        capacity_kwh: float = 20.0,
        soc: float = 0.5,
        ramp_kw_per_s: float = 20.0,
        max_kw: float = 10.0,
        identity: tuple[str, str, str] = ("Acme Storage", "AB-10", "SN-0001"),
        log: Path | None = None,
        initial_kw: float = 0.0,
        stuck_kw: float | None = None,
    ) -> None:
        self.capacity_kwh = capacity_kwh
        self.soc = soc
        self.ramp_kw_per_s = ramp_kw_per_s
        self.max_kw = max_kw
        self.p_kw = initial_kw  # load convention
        self.setpoint_kw = initial_kw
        self.stuck_kw = stuck_kw
        self.revert_s = 0
        self.deadline: float | None = None
        self.log = log
        self.registers = [0] * _N_REGISTERS
        for key, text in zip(("manufacturer", "model", "serial"), identity, strict=True):
            point = _POINTS[key]
            self.registers[point.address : point.address + point.count] = encode_point(point, text)
        self._last = time.monotonic()

    def _note(self, **event: object) -> None:
        if self.log is not None:
            with self.log.open("a", encoding="utf-8") as file:
                file.write(json.dumps({"wall_s": time.time(), **event}) + "\n")

    def advance(self) -> None:
        """Bring power, SOC and the revert timer up to now."""
        now = time.monotonic()
        dt = max(0.0, now - self._last)
        self._last = now
        if self.deadline is not None and now >= self.deadline:
            self.deadline = None
            self.setpoint_kw = 0.0
            self._note(event="revert", setpoint_kw=0.0)
        target = self.setpoint_kw if self.stuck_kw is None else self.stuck_kw
        if (target < 0 and self.soc <= 0.0) or (target > 0 and self.soc >= 1.0):
            target = 0.0
        step = self.ramp_kw_per_s * dt
        self.p_kw += min(max(target - self.p_kw, -step), step)
        self.soc = min(1.0, max(0.0, self.soc + self.p_kw * dt / 3600.0 / self.capacity_kwh))

    def on_read(self, address: int, count: int) -> list[int] | int:
        """Fresh registers for a read."""
        self.advance()
        regs = self.registers
        p = _POINTS["p"]
        regs[p.address : p.address + 2] = encode_point(p, -self.p_kw * 1000.0)
        regs[102] = round(self.soc * 1000)
        left = 0 if self.deadline is None else math.ceil(self.deadline - time.monotonic())
        regs[203] = max(0, min(left, 0xFFFF))
        if address < 0 or address + count > _N_REGISTERS:
            return 2
        return regs[address : address + count]

    def on_write(self, address: int, values: list[int]) -> int | None:
        """Apply a write of the setpoint and/or revert timeout."""
        self.advance()
        touched = range(address, address + len(values))
        if not all(a in _WRITABLE for a in touched):
            return 2
        staged = list(self.registers)
        staged[address : address + len(values)] = values
        setpoint_point = _POINTS["setpoint"]
        setpoint_kw = -float(decode_point(setpoint_point, staged[200:202])) / 1000.0
        setting = 200 in touched or 201 in touched
        if setting and abs(setpoint_kw) > self.max_kw + 1e-9:
            self._note(event="refused", address=address, values=values)
            return 3
        self.registers = staged
        self.revert_s = staged[202]
        if setting:
            self.setpoint_kw = setpoint_kw
            self.deadline = time.monotonic() + self.revert_s if self.revert_s else None
        self._note(
            event="write",
            address=address,
            values=values,
            setpoint_kw=self.setpoint_kw,
            revert_s=self.revert_s,
        )
        return None


async def _serve(args: argparse.Namespace) -> None:
    battery = FakeBattery(
        capacity_kwh=args.capacity_kwh,
        soc=args.soc,
        ramp_kw_per_s=args.ramp_kw_per_s,
        max_kw=args.max_kw,
        identity=(args.manufacturer, args.model, args.serial),
        log=args.log,
        initial_kw=args.initial_kw,
        stuck_kw=args.stuck_kw,
    )
    server = ModbusRegisterServer(
        base=0,
        writable=[a in _WRITABLE for a in range(_N_REGISTERS)],
        on_read=battery.on_read,
        on_write=battery.on_write,
        host=args.host,
        port=args.port,
        unit_id=args.unit_id,
    )
    await server.start()
    print(f"listening on {args.host}:{server.port}", flush=True)
    while True:
        # The revert timer must lapse even when nobody reads.
        await asyncio.sleep(0.05)
        battery.advance()


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point (see the module docstring)."""
    identity = ("Acme Storage", "AB-10", "SN-0001")
    parser = stand_in_parser(__doc__.splitlines()[0], unit_id=3, identity=identity)
    parser.add_argument("--capacity-kwh", type=float, default=20.0)
    parser.add_argument("--soc", type=float, default=0.5)
    parser.add_argument("--ramp-kw-per-s", type=float, default=20.0)
    parser.add_argument("--max-kw", type=float, default=10.0)
    parser.add_argument("--log", type=Path, default=None)
    parser.add_argument("--initial-kw", type=float, default=0.0)
    parser.add_argument("--stuck-kw", type=float, default=None)
    run_stand_in(_serve, parser, argv)


if __name__ == "__main__":
    main()
