"""EV population on mesa: determinism, invariants, local time and distribution sanity."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from qubit_sim.agents.behaviour import (
    Behaviour,
    DayPattern,
    VehicleType,
    available_behaviours,
    behaviour_preset,
    default_vehicle_types,
)
from qubit_sim.agents.population import Driver, EvPopulation
from qubit_sim.agents.sessions import SessionTable
from qubit_sim.errors import QubitSimError

START = "2025-03-03T00:00:00Z"  # a Monday
FOUR_WEEKS = 28 * 86400


def population(**over) -> EvPopulation:
    args = dict(
        n_vehicles=40,
        behaviour="workplace",
        seed=7,
        tz="UTC",
        start_utc=START,
        duration_s=FOUR_WEEKS,
    )
    args.update(over)
    return EvPopulation(**args)


@pytest.fixture(scope="module")
def tables() -> dict[str, SessionTable]:
    zones = {"workplace": "America/Los_Angeles", "residential": "Europe/Amsterdam"}
    out = {}
    for name in available_behaviours():
        out[name] = population(
            n_vehicles=60, behaviour=name, tz=zones.get(name, "Europe/Berlin")
        ).sessions()
    return out


def local_hours(arrival_s: np.ndarray, tz: str) -> tuple[pd.Series, pd.Series]:
    stamps = (pd.Timestamp(START) + pd.to_timedelta(arrival_s, unit="s")).tz_convert(tz)
    return pd.Series(stamps.hour + stamps.minute / 60.0), pd.Series(stamps.weekday)


def test_presets_exist_and_cite_sources() -> None:
    assert {"workplace", "residential", "depot"} <= set(available_behaviours())
    for name in available_behaviours():
        preset = behaviour_preset(name)
        assert preset.sources, name
        assert preset.weekday.p_plug > preset.weekend.p_plug or name == "residential"
    with pytest.raises(QubitSimError, match="did you mean 'depot'"):
        behaviour_preset("depo")


def test_same_seed_same_sessions_different_seed_different() -> None:
    first = population().sessions()
    again = population().sessions()
    other = population(seed=8).sessions()
    assert len(first) > 100
    assert first.equals(again)
    assert first.to_frame().equals(again.to_frame())
    assert not first.equals(other)


def test_adding_vehicles_keeps_existing_vehicles_sessions() -> None:
    small = population(n_vehicles=10).sessions().to_frame()
    large = population(n_vehicles=30).sessions().to_frame()
    columns = ["vehicle_id", "vehicle_type", "arrival_s", "departure_s", "e_needed_kwh"]
    subset = large[large.vehicle_id.isin(small.vehicle_id)][columns].reset_index(drop=True)
    pd.testing.assert_frame_equal(subset, small[columns].reset_index(drop=True))


def test_one_driver_agent_per_vehicle_and_one_step_per_day() -> None:
    model = population(n_vehicles=12)
    assert len(model.agents_by_type[Driver]) == 12
    model.sessions()
    assert model.steps == len(model.days)
    assert model.days[0] == date(2025, 3, 2)  # one look-back day before the start
    assert not model.running


@pytest.mark.parametrize("name", ["workplace", "residential", "depot"])
def test_session_invariants(tables: dict[str, SessionTable], name: str) -> None:
    table = tables[name]
    frame = table.to_frame()
    assert len(frame) > 200
    assert (np.diff(table.arrival_s) >= 0).all()
    assert (table.departure_s > table.arrival_s).all()
    assert (table.arrival_s >= 0).all() and (table.arrival_s < FOUR_WEEKS).all()
    assert (table.e_needed_kwh > 0).all()
    assert (table.e_needed_kwh <= (1 - table.arrival_soc) * table.capacity_kwh + 1e-12).all()
    assert ((table.arrival_soc >= 0.05) & (table.arrival_soc <= 0.95)).all()
    for _, stays in frame.groupby("vehicle_id"):
        stays = stays.sort_values("arrival_s")
        assert (stays.arrival_s.to_numpy()[1:] >= stays.departure_s.to_numpy()[:-1]).all()


@pytest.mark.parametrize(
    ("name", "tz", "arrival_window", "dwell_window", "kwh_window"),
    [
        ("workplace", "America/Los_Angeles", (8.0, 10.0), (7.0, 10.0), (9.0, 15.0)),
        ("residential", "Europe/Amsterdam", (16.0, 18.5), (11.0, 14.5), (8.0, 14.0)),
        ("depot", "Europe/Berlin", (18.0, 19.5), (10.0, 13.0), (20.0, 32.0)),
    ],
)
def test_weekday_distributions_match_the_preset(
    tables: dict[str, SessionTable],
    name: str,
    tz: str,
    arrival_window: tuple[float, float],
    dwell_window: tuple[float, float],
    kwh_window: tuple[float, float],
) -> None:
    table = tables[name]
    hours, weekday = local_hours(table.arrival_s, tz)
    fresh = (table.arrival_s > 0) & (weekday < 5).to_numpy()
    assert arrival_window[0] <= hours[fresh].mean() <= arrival_window[1]
    dwell_h = (table.departure_s - table.arrival_s)[fresh] / 3600
    assert dwell_window[0] <= dwell_h.mean() <= dwell_window[1]
    assert kwh_window[0] <= table.e_needed_kwh[fresh].mean() <= kwh_window[1]
    weekend = (table.arrival_s > 0) & (weekday >= 5).to_numpy()
    # Per day, far fewer weekend sessions at work than weekday ones.
    if name == "workplace":
        assert weekend.sum() / 8 < 0.25 * fresh.sum() / 20


def test_depot_vehicles_leave_in_the_early_morning(tables: dict[str, SessionTable]) -> None:
    table = tables["depot"]
    hours, _ = local_hours(table.departure_s, "Europe/Berlin")
    assert 5.0 <= hours.mean() <= 7.0


def test_arrival_hours_are_local_wall_clock() -> None:
    # Same local calendar (scenario starts at local midnight in both zones): identical offsets.
    utc = population(tz="UTC", start_utc="2025-01-06T00:00:00Z").sessions()
    new_york = population(tz="America/New_York", start_utc="2025-01-06T05:00:00Z").sessions()
    assert utc.equals(new_york)


def test_clock_change_keeps_local_hours() -> None:
    model = population(tz="Europe/Amsterdam", start_utc="2025-03-29T23:00:00Z")
    # 30 March 2025: clocks jump from 02:00 to 03:00 local.
    before = model.local_to_sim_s(date(2025, 3, 30), 1.0)
    after = model.local_to_sim_s(date(2025, 3, 30), 8.0)
    assert before == 3600 and after == 7 * 3600  # 08:00 CEST = 06:00 UTC
    assert model.local_to_sim_s(date(2025, 3, 30), 2.5) == 3600 + 5400  # gap: lands after it
    assert model.local_to_sim_s(date(2025, 3, 31), 8.0) == 31 * 3600


def test_dedicated_chargers_follow_vehicle_index() -> None:
    table = population(behaviour="residential", n_vehicles=10, n_chargers=4).sessions()
    index = np.array([int(v.split("_")[1]) for v in table.vehicle_id])
    np.testing.assert_array_equal(table.home_charger, index % 4)
    shared = population(behaviour="workplace").sessions()
    assert (shared.home_charger == -1).all()


def test_vehicles_already_plugged_in_at_the_start() -> None:
    tuesday = "2025-03-04T00:00:00Z"
    kept = population(behaviour="depot", tz="UTC", start_utc=tuesday).sessions()
    assert (kept.arrival_s == 0).sum() > 30  # the depot is full at midnight
    dropped = population(
        behaviour="depot", tz="UTC", start_utc=tuesday, plugged_in_at_start=False
    ).sessions()
    assert (dropped.arrival_s == 0).sum() == 0
    assert len(dropped) < len(kept)


def test_custom_vehicle_types_and_behaviour() -> None:
    truck = VehicleType("truck", battery_kwh=300.0, max_ac_kw=22.0, max_dc_kw=350.0, knee_soc=0.7)
    day = DayPattern(
        p_plug=1.0,
        arrival_h=((1.0, 12.0, 0.0),),
        energy_kwh=(500.0, 1.0),
        arrival_soc=(0.5, 0.0),
        dwell_h=(2.0, 0.0, 2.0, 2.0),
    )
    behaviour = Behaviour("noon", weekday=day, weekend=day)
    table = population(n_vehicles=3, vehicle_types=[truck], behaviour=behaviour).sessions()
    assert len(table) == 3 * 28
    assert (table.arrival_s % 86400 == 12 * 3600).all()
    assert (table.departure_s - table.arrival_s == 2 * 3600).all()
    # The need is capped by the room in the battery: (1 - 0.5) * 300 kWh.
    np.testing.assert_allclose(table.e_needed_kwh, 150.0)
    assert set(table.vehicle_type) == {"truck"}


def test_vehicle_mix_follows_shares() -> None:
    table = population(n_vehicles=400, duration_s=86400).sessions()
    shares = {v.name: v.share for v in default_vehicle_types("passenger")}
    counts = pd.Series(table.vehicle_type).value_counts(normalize=True)
    for name, share in shares.items():
        assert abs(counts.get(name, 0.0) - share) < 0.1


def test_bad_arguments_are_named() -> None:
    with pytest.raises(QubitSimError, match="unknown time zone 'Mars/Base'"):
        population(tz="Mars/Base")
    with pytest.raises(QubitSimError, match="has no time zone"):
        population(start_utc="2025-03-03T00:00:00")
    with pytest.raises(QubitSimError, match="seed"):
        population(seed=-1)
    with pytest.raises(QubitSimError, match="knee_soc"):
        VehicleType("x", 50.0, 11.0, 50.0, knee_soc=1.0)
    with pytest.raises(QubitSimError, match="exactly one of dwell_h or departure_h"):
        DayPattern(
            p_plug=0.5, arrival_h=((1.0, 8.0, 1.0),), energy_kwh=(10, 5), arrival_soc=(0.5, 0.1)
        )


def test_target_soc_caps_the_energy_need() -> None:
    full = population(behaviour="residential").sessions()
    capped = population(behaviour="residential", target_soc=0.6).sessions()
    room = np.maximum(0.6 - capped.arrival_soc, 0.0) * capped.capacity_kwh
    assert (capped.e_needed_kwh <= room + 1e-12).all()
    # Same drivers, same days: only the needs shrink.
    np.testing.assert_array_equal(capped.arrival_s, full.arrival_s)
    assert capped.e_needed_kwh.sum() < full.e_needed_kwh.sum()
    with pytest.raises(QubitSimError, match="target_soc"):
        population(target_soc=0.0)
