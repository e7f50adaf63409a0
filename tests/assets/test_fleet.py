"""Charger fleet and session-to-charger assignment."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from qubit_sim.assets import ChargerFleet, assign_chargers


def test_home_charger_first_then_lowest_free() -> None:
    arrive = np.array([0, 0, 60, 120])
    depart = np.array([600, 600, 600, 600])
    home = np.array([1, 1, -1, 0])
    assert assign_chargers(arrive, depart, home, 3).tolist() == [1, 0, 2, -1]


def test_a_departure_frees_the_charger_for_an_arrival_at_the_same_instant() -> None:
    arrive = np.array([0, 300])
    depart = np.array([300, 900])
    assert assign_chargers(arrive, depart, np.array([-1, -1]), 1).tolist() == [0, 0]


def test_zero_length_stays_are_turned_away() -> None:
    assert assign_chargers(np.array([60]), np.array([60]), np.array([-1]), 2).tolist() == [-1]


@given(
    st.lists(
        st.tuples(st.integers(0, 50), st.integers(1, 30), st.integers(-1, 3)),
        min_size=1,
        max_size=40,
    ),
    st.integers(1, 4),
)
def test_no_charger_is_ever_double_booked(sessions: list, n_chargers: int) -> None:
    arrive = np.array([a * 60 for a, _, _ in sessions])
    depart = arrive + np.array([d * 60 for _, d, _ in sessions])
    home = np.array([h for _, _, h in sessions])
    charger = assign_chargers(arrive, depart, home, n_chargers)
    for c in range(n_chargers):
        mine = np.flatnonzero(charger == c)
        spans = sorted(zip(arrive[mine], depart[mine], strict=True))
        assert all(spans[i][1] <= spans[i + 1][0] for i in range(len(spans) - 1))


def test_fleet_charges_only_plugged_evs_and_meters_energy() -> None:
    fleet = ChargerFleet(["a", "b"], np.array([11.0, 11.0]), np.array([0.9, 0.9]), np.array([0, 0]))
    fleet.plug(0, 0, soc=0.5, e_needed_kwh=5.0, capacity_kwh=50.0, max_ac_kw=11.0,
               max_dc_kw=50.0, knee_soc=0.8, departure_s=7200)
    e = fleet.step(np.array([np.nan, np.nan]), 3600)
    assert e[1] == 0.0 and fleet.p_grid_kw[1] == 0.0
    assert e[0] == 5.0  # 11 kW * 0.9 = 9.9 kW available, capped by the need
    assert fleet.e_register_kwh[0] == 5.0 / 0.9
    assert fleet.e_session_kwh[0] == 5.0 and fleet.e_needed_kwh[0] == 0.0
    fleet.unplug(0)
    assert fleet.n_connected == 0
    assert fleet.step(np.array([5.0, 5.0]), 60).sum() == 0.0 and fleet.p_grid_total_kw == 0.0
