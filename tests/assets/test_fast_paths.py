"""The fleet's and the bank's fast paths give the physics functions' values bit for bit."""

from __future__ import annotations

import heapq

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from qubit_sim.assets import BatteryBank, ChargerFleet, assign_chargers
from qubit_sim.physics.ev import ev_charge_step, ev_max_power_kw

N = 5
EDGE_LIMITS = [np.nan, np.inf, -np.inf, 0.0, -0.0, -3.0, 1e-12, 7.4, 22.0, 500.0]


def _bits(value: np.ndarray | float) -> bytes:
    return np.asarray(value, dtype=float).tobytes()


class Reference:
    """The fleet's state advanced with :func:`ev_charge_step` as the plain formulas read."""

    def __init__(self, rated_kw: np.ndarray, efficiency: np.ndarray) -> None:
        self.rated_kw = rated_kw
        self.efficiency = efficiency
        self.soc = np.zeros(N)
        self.e_needed_kwh = np.zeros(N)
        self.capacity_kwh = np.ones(N)
        self.ev_max_kw = np.zeros(N)
        self.knee_soc = np.full(N, 0.8)
        self.p_grid_kw = np.zeros(N)
        self.e_register_kwh = np.zeros(N)
        self.e_session_kwh = np.zeros(N)

    def max_grid_kw(self, dt_s: float) -> np.ndarray:
        taper = ev_max_power_kw(self.soc, self.ev_max_kw, self.knee_soc)
        need = self.e_needed_kwh * 3600.0 / dt_s
        p_ev = np.minimum(np.minimum(taper, need), self.rated_kw * self.efficiency)
        return p_ev / self.efficiency

    def step(self, limit_kw: np.ndarray, dt_s: float) -> np.ndarray:
        grid_limit = np.maximum(np.fmin(limit_kw, self.rated_kw), 0.0)
        result = ev_charge_step(
            self.soc,
            self.e_needed_kwh,
            self.capacity_kwh,
            grid_limit * self.efficiency,
            self.ev_max_kw,
            self.knee_soc,
            dt_s,
        )
        self.soc = result.soc
        self.e_needed_kwh = result.e_needed_kwh
        self.p_grid_kw = result.p_kw / self.efficiency
        self.e_session_kwh += result.e_kwh
        self.e_register_kwh += self.p_grid_kw * (dt_s / 3600.0)
        return result.e_kwh


plug = st.tuples(
    st.integers(0, N - 1),
    st.one_of(st.sampled_from([0.0, 0.5, 0.8, 0.999, 1.0]), st.floats(0.0, 1.0)),
    st.one_of(st.sampled_from([0.0, 1e-9, 80.0]), st.floats(0.0, 120.0)),
    st.floats(10.0, 120.0),
    st.floats(1.0, 22.0),
    st.floats(0.0, 0.95),
)
action = st.one_of(
    st.tuples(st.just("plug"), plug),
    st.tuples(st.just("unplug"), st.integers(0, N - 1)),
    st.tuples(
        st.just("step"),
        st.lists(
            st.one_of(st.sampled_from(EDGE_LIMITS), st.floats(-30.0, 60.0)),
            min_size=N,
            max_size=N,
        ),
        st.booleans(),  # observe max_grid_kw first, as a control cycle does
    ),
)


@settings(max_examples=200, deadline=None)
@given(actions=st.lists(action, min_size=1, max_size=25), dt_s=st.sampled_from([1, 60, 900]))
def test_fleet_step_is_ev_charge_step_bit_for_bit(actions: list, dt_s: int) -> None:
    rated = np.array([3.7, 7.4, 11.0, 22.0, 50.0])
    efficiency = np.array([0.9, 0.95, 0.97, 1.0, 0.93])
    fleet = ChargerFleet([f"c{i}" for i in range(N)], rated, efficiency, np.zeros(N, dtype=bool))
    ref = Reference(rated, efficiency)
    for kind, arg, *rest in actions:
        if kind == "plug":
            i, soc, need, capacity, max_kw, knee = arg
            if fleet.connected[i]:
                continue
            fleet.plug(i, 0, soc, need, capacity, max_kw, 150.0, knee, 3600)
            ref.soc[i], ref.e_needed_kwh[i], ref.capacity_kwh[i] = soc, need, capacity
            ref.ev_max_kw[i], ref.knee_soc[i], ref.e_session_kwh[i] = max_kw, knee, 0.0
        elif kind == "unplug":
            fleet.unplug(arg)
            ref.e_needed_kwh[arg] = ref.ev_max_kw[arg] = ref.p_grid_kw[arg] = 0.0
        else:
            limit = np.array(arg)
            if rest[0]:
                expected_max = _bits(ref.max_grid_kw(dt_s))
                assert _bits(fleet.max_grid_kw(dt_s)) == expected_max
                assert _bits(fleet.max_grid_kw(dt_s)) == expected_max  # a second look
            e_kwh = fleet.step(limit, dt_s)
            expected = ref.step(limit, dt_s)
            if fleet.n_connected:  # with nobody plugged in the fleet skips the arithmetic
                assert _bits(e_kwh) == _bits(expected)
                assert _bits(fleet.p_grid_kw) == _bits(ref.p_grid_kw)
                assert _bits(fleet.p_grid_total_kw) == _bits(ref.p_grid_kw.sum())
            else:
                assert not e_kwh.any() and fleet.p_grid_total_kw == 0.0
        assert _bits(fleet.soc) == _bits(ref.soc)
        assert _bits(fleet.e_needed_kwh) == _bits(ref.e_needed_kwh)
        assert _bits(fleet.e_register_kwh) == _bits(ref.e_register_kwh)
        assert _bits(fleet.e_session_kwh) == _bits(ref.e_session_kwh)
    assert _bits(fleet.max_grid_kw(dt_s)) == _bits(ref.max_grid_kw(dt_s))


def _assign_reference(
    arrive_s: np.ndarray, depart_s: np.ndarray, home_charger: np.ndarray, n_chargers: int
) -> np.ndarray:
    """The assignment rule written with numpy lookups, one session at a time."""
    charger = np.full(len(arrive_s), -1, dtype=np.int64)
    busy_until: list[tuple[int, int]] = []
    free = np.ones(n_chargers, dtype=bool)
    for s in np.argsort(arrive_s, kind="stable"):
        t = int(arrive_s[s])
        while busy_until and busy_until[0][0] <= t:
            free[heapq.heappop(busy_until)[1]] = True
        if depart_s[s] <= t or n_chargers == 0:
            continue
        preferred = int(home_charger[s])
        if 0 <= preferred < n_chargers and free[preferred]:
            chosen = preferred
        else:
            candidates = np.flatnonzero(free)
            if not len(candidates):
                continue
            chosen = int(candidates[0])
        free[chosen] = False
        charger[s] = chosen
        heapq.heappush(busy_until, (int(depart_s[s]), chosen))
    return charger


@settings(max_examples=200, deadline=None)
@given(
    sessions=st.lists(
        st.tuples(st.integers(0, 30), st.integers(-2, 20), st.integers(-1, 4)), max_size=40
    ),
    n_chargers=st.integers(0, 4),
)
def test_assignment_follows_the_rule(sessions: list, n_chargers: int) -> None:
    arrive = np.array([a * 900 for a, _, _ in sessions], dtype=np.int64)
    depart = arrive + np.array([d * 900 for _, d, _ in sessions], dtype=np.int64)
    home = np.array([h for _, _, h in sessions], dtype=np.int64)
    got = assign_chargers(arrive, depart, home, n_chargers)
    assert got.dtype == np.int64 and got.shape == (len(sessions),)
    assert got.tolist() == _assign_reference(arrive, depart, home, n_chargers).tolist()


BATTERY = {
    "capacity_kwh": [200.0],
    "p_charge_max_kw": [100.0],
    "p_discharge_max_kw": [90.0],
    "eta_charge": [0.95],
    "eta_discharge": [0.96],
    "soc_min": [0.1],
    "soc_max": [0.9],
    "self_discharge_per_h": [1e-4],
}


@settings(max_examples=150, deadline=None)
@given(
    soc=st.one_of(st.sampled_from([0.1, 0.5, 0.9]), st.floats(0.1, 0.9)),
    setpoints=st.lists(
        st.one_of(st.sampled_from([0.0, -0.0, 1e-12, -1e-12, 150.0, -150.0]), st.floats(-150, 150)),
        min_size=1,
        max_size=8,
    ),
    dt_s=st.sampled_from([60, 900]),
)
def test_one_battery_accumulates_as_the_vector_path(
    soc: float, setpoints: list[float], dt_s: int
) -> None:
    one = BatteryBank(["a"], soc_initial=np.array([soc]), **BATTERY)  # type: ignore[arg-type]
    # Two identical batteries take the vector path; the first one is the reference.
    two = BatteryBank(
        ["a", "b"],
        soc_initial=np.array([soc, soc]),
        **{k: v * 2 for k, v in BATTERY.items()},  # type: ignore[arg-type]
    )
    for p_set in setpoints:
        one.step(np.array([p_set]), dt_s)
        two.step(np.array([p_set, p_set]), dt_s)
        assert _bits(one.soc) == _bits(two.soc[:1]) and _bits(one.p_kw) == _bits(two.p_kw[:1])
    assert _bits(one.e_charged_kwh) == _bits(two.e_charged_kwh[:1])
    assert _bits(one.e_discharged_kwh) == _bits(two.e_discharged_kwh[:1])
    assert _bits(one._loss_kwh) == _bits(two._loss_kwh[:1])
    assert _bits(one._throughput_kwh) == _bits(two._throughput_kwh[:1])
