"""A served site with many charge point twins: the small version of ``bench_realtime.py``.

50 OCPP twins (25 OCPP 1.6J, 25 OCPP 2.0.1) on the stack's CSMS, paced by the wall clock, with
EVs plugged in at the start and two minutes in. Claims checked: every charge point connected
and booted once; every transaction sent its meter values exactly at the configured interval
(120 s on 60 s steps) up to and including the end of the horizon; the energy the CSMS holds for
each transaction equals the twin's meter; the CSMS's traffic counter counts exactly the messages
that arrived. No wall-clock timings are asserted.
"""

from __future__ import annotations

from typing import Any

import pytest

from qubit_sim.protocols.ocpp_common import iso_to_sim
from qubit_sim.scenario.build import build_site
from qubit_sim.scenario.loader import load_scenario
from qubit_sim.scenario.realtime import RealtimeSimulation

N_PER_VERSION = 25
HORIZON_S = 600
METER_INTERVAL_S = 120
LATE_ARRIVAL_S = 120

SCENARIO = """
site:
  name: realtime_scale
  location: {lat: 52.37, lon: 4.90, tz: Europe/Amsterdam}
  start: 2025-03-03T06:00:00Z
  duration: 2h
  step: 60s
  seed: 3
assets:
  chargers:
    - {template: ac_22kw, count: %(n)d, id: v16_}
    - {template: ac_22kw, count: %(n)d, id: v201_, protocol: ocpp2.0.1}
evs:
  sessions_csv: sessions.csv
controller:
  name: uncontrolled
mode: realtime
"""


def _sessions_csv(n_chargers: int) -> str:
    """Every charger gets an EV: even ones at the start, odd ones two minutes in."""
    rows = ["arrival,departure,kwh,battery_kwh,arrival_soc,max_kw,charger"]
    for charger in range(n_chargers):
        arrival_s = 0 if charger % 2 == 0 else LATE_ARRIVAL_S
        arrival = f"2025-03-03T06:{arrival_s // 60:02d}:00Z"
        rows.append(f"{arrival},2025-03-03T07:50:00Z,{30 + charger % 20},80,0.2,22,{charger}")
    return "\n".join(rows) + "\n"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> RealtimeSimulation:
    folder = tmp_path_factory.mktemp("realtime_scale")
    (folder / "sessions.csv").write_text(_sessions_csv(2 * N_PER_VERSION))
    path = folder / "realtime_scale.yaml"
    path.write_text(SCENARIO % {"n": N_PER_VERSION})
    site = build_site(load_scenario(path), until_s=HORIZON_S)
    sim = RealtimeSimulation(
        site,
        factor=600,
        csms_port=0,
        modbus_base_port=0,
        lag="warn",
        meter_interval_s=METER_INTERVAL_S,
    )
    sim.run()
    return sim


def _transactions(sim: RealtimeSimulation) -> list[tuple[Any, Any, Any]]:
    """``(twin, twin transaction, CSMS record)`` of every transaction, one per charger."""
    csms = sim.csms
    assert csms is not None
    out = []
    for twin in sim.twins:
        assert list(twin.transactions) == [1], f"{twin.identity} has no running transaction"
        records = csms.transactions(twin.identity)
        assert len(records) == 1, f"{twin.identity}: {len(records)} transactions at the CSMS"
        out.append((twin, twin.transactions[1], records[0]))
    return out


def test_every_charge_point_connected_and_booted_once(served: RealtimeSimulation) -> None:
    csms = served.csms
    assert csms is not None
    ids = {twin.identity for twin in served.twins}
    assert len(ids) == 2 * N_PER_VERSION
    assert set(csms.state.charge_points) == ids
    versions = {cp.version for cp in csms.state.charge_points.values()}
    assert versions == {"1.6", "2.0.1"}
    for cp in csms.state.charge_points.values():
        assert (cp.boots, cp.connects, cp.vendor) == (1, 1, "QubitSim"), cp.cp_id
    assert all(twin.booted and twin.connects == 1 for twin in served.twins)
    assert csms.traffic.calls["BootNotification"] == 2 * N_PER_VERSION
    assert served.engine.finished and not served.stopped_early


def test_meter_values_arrive_at_the_configured_interval_to_the_end(
    served: RealtimeSimulation,
) -> None:
    start_utc = served.site.clock.start
    starts = set()
    for twin, tx, record in _transactions(served):
        start_s = iso_to_sim(start_utc, record.start_time)
        assert start_s == tx.start_s
        starts.add(start_s)
        times = sorted(iso_to_sim(start_utc, stamp) for stamp in record.samples)
        periodic = [t for t in times if t != start_s]
        expected = list(range(int(start_s) + METER_INTERVAL_S, HORIZON_S + 1, METER_INTERVAL_S))
        assert periodic == expected, twin.identity
    # Both arrival groups are there, so the interval is checked from two different starts.
    assert starts == {0.0, float(LATE_ARRIVAL_S)}


def test_the_csms_holds_the_energy_of_the_twins(served: RealtimeSimulation) -> None:
    total_wh = 0.0
    for twin, tx, record in _transactions(served):
        twin_wh = twin.device.e_register_wh(1) - tx.meter_start_wh
        assert twin_wh > 0
        # 1.6 meterStart is whole Wh, meter values carry 0.1 Wh.
        assert record.energy_wh == pytest.approx(twin_wh, abs=1.0), twin.identity
        total_wh += twin_wh
    # 50 EVs at up to 22 kW for 8 or 10 minutes.
    assert total_wh > 50 * 22_000 * (8 / 60) * 0.5


def test_the_traffic_counter_counts_every_message(served: RealtimeSimulation) -> None:
    csms = served.csms
    assert csms is not None
    calls = csms.traffic.calls
    v16 = [twin for twin in served.twins if twin.version == "1.6"]
    v201 = [twin for twin in served.twins if twin.version == "2.0.1"]
    assert len(v16) == len(v201) == N_PER_VERSION
    periodic_16 = sum(
        (HORIZON_S - int(twin.transactions[1].start_s)) // METER_INTERVAL_S for twin in v16
    )
    assert calls["MeterValues"] == periodic_16
    assert calls["StartTransaction"] == len(v16)
    # 2.0.1 transaction messages carry sequence numbers; none was sent twice.
    seq_nos = sum(len(csms.transactions(twin.identity)[0].seq_nos) for twin in v201)
    assert calls["TransactionEvent"] == seq_nos
    assert calls["StatusNotification"] >= 2 * len(served.twins)  # Available, then Preparing...
    assert csms.traffic.malformed == 0
    assert csms.traffic.received == sum(calls.values()) + csms.traffic.results
