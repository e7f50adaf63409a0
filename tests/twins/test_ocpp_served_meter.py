"""A fleet charger's meter reads what its physics draws, in served runs too.

The physics fixes a step's power when the step runs; a twin sampled at the step's first instant,
before it has run, must report that power, not the last step's. Checked on the device view
against the physics it predicts, and end to end: a served run whose charger twin connects to an
external CSMS obeys each charging profile from the step of the first meter value that follows
it, and every meter value equals the power the run recorded for its step.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qubit_sim.protocols.csms import Csms
from qubit_sim.protocols.ocpp_csms_state import CsmsState
from qubit_sim.protocols.ocpp_meter import MeterSample
from qubit_sim.scenario.build import build_site
from qubit_sim.scenario.loader import load_scenario_text
from qubit_sim.scenario.realtime import ServeOptions, serve
from qubit_sim.scenario.simulation import Simulation
from qubit_sim.twins.ocpp_meter_view import StepMeteredCharger

STEP_S = 60
SITE = """
site:
  name: served_meter
  location: {lat: 52.37, lon: 4.90, tz: Europe/Amsterdam}
  start: 2025-06-02T08:00:00Z
  duration: 1d
  step: 60s
  seed: 5
assets:
  chargers:
    - {template: ac_22kw, count: 2, id: CP}
evs:
  sessions_csv: sessions.csv
controller:
  name: uncontrolled
"""
# Two EVs that fill up within the hour (the taper and the end of the need are crossed), one of
# them limited by its on-board charger, and a third that arrives later on the first charger.
SESSIONS = (
    "arrival,departure,kwh,battery_kwh,max_kw\n"
    "2025-06-02T08:00:00Z,2025-06-02T08:40:00Z,9,12,22\n"
    "2025-06-02T08:00:00Z,2025-06-02T10:00:00Z,30,40,11\n"
    "2025-06-02T08:50:00Z,2025-06-02T10:00:00Z,60,80,22\n"
)


@pytest.fixture(scope="module")
def site_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("served_meter")
    (folder / "sessions.csv").write_text(SESSIONS)
    (folder / "site.yaml").write_text(SITE)
    return folder


# ------------------------------------------------------------------------ the device view

limits_kw = st.one_of(st.none(), st.sampled_from([0.0, 1.4, 3.7, 7.0, 11.0, 16.5, 40.0]))


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plan=st.lists(st.tuples(limits_kw, limits_kw), min_size=90, max_size=90))
def test_a_step_start_reading_is_the_power_the_step_then_draws(
    site_dir: Path, plan: list[tuple[float | None, float | None]]
) -> None:
    loaded = load_scenario_text(SITE, base_dir=site_dir)
    sim = Simulation(build_site(loaded, until_s=len(plan) * STEP_S))
    engine, devices = sim.engine, sim.devices
    views = [StepMeteredCharger(devices, i, engine, len(plan)) for i in range(devices.fleet.n)]
    engine.run_until(1)  # step 0: the EVs plugged in at the very start are there
    for k, limits in enumerate(plan[1:], start=1):
        engine.run_until(k * STEP_S)  # the instant of step k; its physics has not run
        for view, limit in zip(views, limits, strict=True):
            view.set_limit_kw(1, limit)
        register_wh = [view.e_register_wh(1) for view in views]
        foreseen_kw = [view.p_kw(1) for view in views]
        for view, p_kw in zip(views, foreseen_kw, strict=True):
            volts, amps = view.voltage_v(1), view.current_a(1)
            assert sum(v * a for v, a in zip(volts, amps, strict=True)) == pytest.approx(
                p_kw * 1000.0, abs=1e-6
            )
        engine.run_until(k * STEP_S + 1)  # step k has run
        drawn_kw = devices.fleet.p_grid_kw
        assert foreseen_kw == list(drawn_kw)  # bit for bit: the physics' own arithmetic
        assert [view.p_kw(1) for view in views] == foreseen_kw  # unchanged over the step
        for view, before_wh, p_kw in zip(views, register_wh, foreseen_kw, strict=True):
            # The register grows by exactly the power read at the step's start.
            assert view.e_register_wh(1) - before_wh == pytest.approx(p_kw * STEP_S / 3.6, abs=1e-6)


# ------------------------------------------------------------------ served, external CSMS


class _RecordingState(CsmsState):
    """Keeps the meter values of one charge point, with their transaction, in arrival order."""

    def __init__(self, cp_id: str) -> None:
        super().__init__()
        self.cp_id = cp_id
        self.received: list[tuple[str | None, MeterSample]] = []

    def meter_values(
        self, cp_id: str, connector: int, tx_id: str | None, samples: list[MeterSample]
    ) -> None:
        if cp_id == self.cp_id:
            self.received.extend((tx_id, sample) for sample in samples)
        super().meter_values(cp_id, connector, tx_id, samples)


def _t_s(stamp: str) -> float:
    return (pd.Timestamp(stamp) - pd.Timestamp("2025-06-02T08:00:00Z")).total_seconds()


def _profile(profile_id: int, stack_level: int, limit_w: float) -> dict[str, Any]:
    return {
        "chargingProfileId": profile_id,
        "stackLevel": stack_level,
        "chargingProfilePurpose": "TxDefaultProfile",
        "chargingProfileKind": "Relative",
        "chargingSchedule": {
            "chargingRateUnit": "W",
            "chargingSchedulePeriod": [{"startPeriod": 0, "limit": limit_w}],
        },
    }


async def _drive(csms: Csms, state: _RecordingState) -> list[tuple[float, float, float]]:
    """A meter value on demand, then two profiles, each followed by a trigger. Returns per
    profile: its limit [kW], the charger time of the last meter value received before it was
    sent and of the first one after [s]."""
    cp_id = state.cp_id

    async def wait_for(condition: Any, what: str) -> None:
        await csms.wait_until(condition, 60.0, what)

    await wait_for(
        lambda: csms.is_connected(cp_id) and csms.state.charge_points[cp_id].boots > 0, "boot"
    )

    async def fresh_sample() -> MeterSample:
        seen = len(state.received)
        result = await csms.trigger_message(cp_id, "MeterValues", 1)
        assert result.accepted, result
        await wait_for(lambda: len(state.received) > seen, "a meter value")
        return state.received[seen][1]

    await fresh_sample()
    applied: list[tuple[float, float, float]] = []
    for profile_id, (limit_w, after_s) in enumerate(((0.0, 300), (7000.0, 900)), start=1):
        await wait_for(
            lambda after_s=after_s: any(_t_s(s.timestamp) >= after_s for _, s in state.received),
            f"charger time {after_s} s",
        )
        before_s = max(_t_s(s.timestamp) for _, s in state.received)
        profile = _profile(profile_id, profile_id, limit_w)
        result = await csms.set_charging_profile(cp_id, 1, profile)
        assert result.accepted, result
        sample = await fresh_sample()
        applied.append((limit_w / 1000.0, before_s, _t_s(sample.timestamp)))
    return applied


@pytest.fixture(scope="module")
def served(site_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    csms = Csms("127.0.0.1", 0)
    state = csms.state = _RecordingState("CP1")
    asyncio.run_coroutine_threadsafe(csms.start(), loop).result(10)
    driver = asyncio.run_coroutine_threadsafe(_drive(csms, state), loop)
    try:
        result = serve(
            site_dir / "site.yaml",
            ServeOptions(factor=900, csms_port=0, modbus_base_port=0, csms_url=csms.url),
            out=tmp_path_factory.mktemp("served_out"),
            until_s=2400,
            plots=False,
            settle=False,
            twin_tick_s=0.1,
        )
        applied = driver.result(10)
    finally:
        driver.cancel()
        asyncio.run_coroutine_threadsafe(csms.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
    yield {"result": result, "samples": list(state.received), "applied": applied}


def test_the_next_recorded_step_obeys_a_profile_from_an_external_csms(
    served: dict[str, Any],
) -> None:
    p_kw = served["result"].timeseries()["charger_CP1_p_kw"].to_numpy()
    (off_kw, off_before_s, off_s), (on_kw, on_before_s, on_s) = served["applied"]
    steps = [int(t_s // STEP_S) for t_s in (off_before_s, off_s, on_before_s, on_s)]
    off_before_k, off_k, on_before_k, on_k = steps
    assert off_before_k >= 5 and off_k < on_before_k <= on_k < len(p_kw) - 1, steps
    # On its own the EV draws the full rating until the profile (which may land at the very
    # instant of the last reading before it). A profile lands before the first meter value
    # after it, so the step after that reading's at the latest obeys it, until the next one.
    assert np.all(p_kw[:off_before_k] == 22.0), (steps, p_kw)
    assert np.all(p_kw[off_k + 1 : on_before_k] == off_kw), (steps, p_kw)
    assert np.all(p_kw[on_k + 1 :] == pytest.approx(on_kw, abs=1e-9)), (steps, p_kw)


def test_every_meter_value_is_the_power_recorded_for_its_step(served: dict[str, Any]) -> None:
    frame = served["result"].timeseries()
    p_kw = frame["charger_CP1_p_kw"].to_numpy()
    # Within the transaction: a reading taken at the very start, before the EV's arrival at
    # that instant is processed, rightly finds no EV and no transaction (0 kW).
    samples = [s for tx_id, s in served["samples"] if tx_id is not None]
    assert all(s.power_w is not None for s in samples)
    stamps = sorted({_t_s(s.timestamp) for s in samples})
    # Periodic ones at step starts and the triggered ones (the first arrives at once).
    assert stamps[0] == STEP_S and len(stamps) > 30
    assert {after_s for _, _, after_s in served["applied"]} <= set(stamps)
    # A profile sent on seeing a step's first reading may land at that same instant, before
    # the step's physics: the reading was true when taken, and the step obeys the profile.
    landed_at = {before_s: limit_kw for limit_kw, before_s, _ in served["applied"]}
    checked = 0
    for sample in samples:
        t_s = _t_s(sample.timestamp)
        k = int(t_s // STEP_S)
        if k >= len(p_kw):
            continue  # the closing reading at the end of the horizon has no step
        read_kw = sample.power_w / 1000.0
        if t_s in landed_at and read_kw != pytest.approx(p_kw[k], abs=1e-4):
            assert t_s == k * STEP_S and p_kw[k] == pytest.approx(landed_at[t_s], abs=1e-9)
            assert read_kw == pytest.approx(p_kw[k - 1], abs=1e-4), (sample, k)
        else:
            assert read_kw == pytest.approx(p_kw[k], abs=1e-4), (sample, k)
        checked += 1
    assert checked == len([s for s in samples if _t_s(s.timestamp) < len(p_kw) * STEP_S])
