"""Fixtures of the scenario tests: the office car park served in real time, outside OCPP 1.6
charge points, a CSMS of someone else's, and the check that a faults entry is refused."""

from __future__ import annotations

import asyncio
import base64
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import websockets
from ocpp.v16 import ChargePoint

from qubit_sim.errors import ScenarioError
from qubit_sim.protocols.csms import Csms

# The office car park of workplace_pv_battery without its feeder, served in real time; one outside
# charge point is on the CSMS allow-list.
OFFICE_REALTIME = """
site:
  name: {name}
  location: {{lat: 52.37, lon: 4.90, tz: Europe/Amsterdam}}
  start: {start}
  duration: 1d
  step: 60s
  seed: 7
  grid_connection: {{import_kw: 250, export_kw: 150}}
assets:
  chargers:
    - {{template: ac_22kw, count: 6, id: office}}
  batteries:
    - {{template: battery_200kwh, id: office_battery}}
  pv:
    - {{template: pv_inverter_100kw, id: carport_pv, kwp: 100, inverter_kw: 90}}
  loads:
    - {{id: office_building, profile: G1-A, annual_kwh: 250000}}
evs:
  population: {{behaviour: workplace, vehicles: 12}}
controller:
  name: rule_based
  period: 5min
  params: {{threshold_kw: 60}}
mode: realtime
realtime:
  factor: 60
  charge_points:
    - {{identity: {identity}, password: {password}}}
"""

ChargePointSession = Callable[[str, str, str], AbstractAsyncContextManager[ChargePoint]]


@pytest.fixture(scope="session")
def office_realtime_scenario(
    tmp_path_factory: pytest.TempPathFactory,
) -> Callable[[str, str, str, str], Path]:
    """``(name, start, identity, password)`` -> a file ``<name>.yaml``: the office car park
    served from ``start`` (ISO 8601, UTC), with charge point ``identity`` on the allow-list."""

    def write(name: str, start: str, identity: str, password: str) -> Path:
        path = tmp_path_factory.mktemp(name) / f"{name}.yaml"
        text = OFFICE_REALTIME.format(name=name, start=start, identity=identity, password=password)
        path.write_text(text)
        return path

    return write


@asynccontextmanager
async def _charge_point(url: str, identity: str, password: str) -> AsyncIterator[ChargePoint]:
    token = base64.b64encode(f"{identity}:{password}".encode()).decode()
    async with websockets.connect(
        f"{url}/{identity}",
        subprotocols=["ocpp1.6"],  # type: ignore[list-item]
        additional_headers={"Authorization": f"Basic {token}"},
        open_timeout=10,
    ) as ws:
        cp = ChargePoint(identity, ws)
        receiver = asyncio.create_task(cp.start())
        try:
            yield cp
        finally:
            receiver.cancel()


@pytest.fixture(scope="session")
def charge_point_session() -> ChargePointSession:
    """``(csms_url, identity, password)`` -> an async context: an OCPP 1.6 charge point connected
    to the CSMS with basic auth, answering its calls until the context closes."""
    return _charge_point


@pytest.fixture
def external_csms() -> Iterator[Csms]:
    """A CSMS of someone else's, on its own event loop thread."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    csms = Csms("127.0.0.1", 0)
    asyncio.run_coroutine_threadsafe(csms.start(), loop).result(10)
    try:
        yield csms
    finally:
        asyncio.run_coroutine_threadsafe(csms.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


def _fault_entry_rejected(load: Callable[[str], Any], entry: str, expected: str) -> None:
    with pytest.raises(ScenarioError) as info:
        load(f"faults:\n  - {entry}\n")
    assert any(issue.path.startswith("faults[0]") for issue in info.value.issues)
    assert expected in str(info.value)


@pytest.fixture(scope="session")
def assert_fault_entry_rejected() -> Callable[[Callable[[str], Any], str, str], None]:
    """``(load, entry, expected)``: loading a scenario (``load(faults_yaml)``) whose only faults
    entry is ``entry`` raises a ScenarioError at ``faults[0]`` that mentions ``expected``."""
    return _fault_entry_rejected
