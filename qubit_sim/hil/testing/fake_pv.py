"""A stand-in physical PV inverter: the project's SunSpec PV twin served as its own process.

Run it as its own process::

    python -m qubit_sim.hil.testing.fake_pv --port 0 --available-kw 8

It prints ``listening on <host>:<port>`` once it serves SunSpec models 1, 103, 120 and 123 (unit
id ``--unit-id``). The modules deliver ``--available-kw`` all the time; the inverter (rating
``--inverter-kw``) caps its output at 123 ``WMaxLimPct`` while ``WMaxLim_Ena`` is ENABLED. Its
revert timers run on the wall clock: when ``WMaxLimPct_RvrtTms`` passes without a new limit, the
limit is lifted by itself — so it reverts when whoever commands it dies.
"""

from __future__ import annotations

import argparse
import asyncio
import time

from qubit_sim.hil.testing.standin import run_stand_in, stand_in_parser
from qubit_sim.twins.der_device import SimplePv
from qubit_sim.twins.sunspec_server import SunSpecServer

__all__ = ["main"]

_TICK_S = 0.1


async def _serve(args: argparse.Namespace) -> None:
    pv = SimplePv(
        kwp=max(args.available_kw, args.inverter_kw),
        inverter_kw=args.inverter_kw,
        available_kw=args.available_kw,
    )
    server = SunSpecServer(
        pv,
        "pv",
        host=args.host,
        port=args.port,
        unit_id=args.unit_id,
        clock=time.monotonic,
        identity=(args.manufacturer, args.model, args.serial, "1.0"),
    )
    # The tick checks the revert timers even when nobody reads the inverter.
    await server.start(tick_interval_s=_TICK_S)
    print(f"listening on {args.host}:{server.port}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await server.stop()


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point (see the module docstring)."""
    identity = ("Sol Lab", "SL-10", "PV-0001")
    parser = stand_in_parser(__doc__.splitlines()[0], unit_id=1, identity=identity)
    parser.add_argument("--inverter-kw", type=float, default=10.0)
    parser.add_argument("--available-kw", type=float, default=8.0)
    run_stand_in(_serve, parser, argv)


if __name__ == "__main__":
    main()
