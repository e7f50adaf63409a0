"""The vectorised in-process setpoint path gives the devices what the per-device links give them."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qubit_sim.assets import BatteryBank, ChargerFleet
from qubit_sim.protocols.sunspec import SunSpecError
from qubit_sim.twins.fleet_devices import SiteDevices
from qubit_sim.twins.links import DirectChargerLink, SetpointRouter
from qubit_sim.twins.quantize import BatteryWire, charger_limit_kw, charger_limits_kw

N_CHARGERS = 5

HELD = (
    "charger_limit_kw",
    "charger_requested_kw",
    "battery_setpoint_kw",
    "battery_requested_kw",
    "pv_limit_kw",
    "pv_curtailment_pct",
)


def _devices(n_batteries: int) -> SiteDevices:
    n = N_CHARGERS
    fleet = ChargerFleet(
        [f"cp{i}" for i in range(n)], np.full(n, 22.0), np.full(n, 0.95), np.zeros(n, dtype=bool)
    )
    ones = np.ones(n_batteries)
    bank = BatteryBank(
        [f"b{j}" for j in range(n_batteries)],
        capacity_kwh=200.0 * ones,
        p_charge_max_kw=np.array([77.77, 5.5, 1234.5][:n_batteries]),
        p_discharge_max_kw=np.array([123.456, 5.5, 99.0][:n_batteries]),
        eta_charge=0.95 * ones,
        eta_discharge=0.95 * ones,
        soc_min=0.1 * ones,
        soc_max=0.9 * ones,
        soc_initial=0.5 * ones,
        self_discharge_per_h=0.0 * ones,
    )
    return SiteDevices(
        fleet,
        bank,
        np.full((4, 1), 20.0),
        60,
        lambda: 0,
        charger_phases=[3] * n,
        charger_voltage_v=[230.0] * n,
        pv_kwp=[33.3],
        pv_inverter_kw=[31.4159],
    )


def _plug(devices: SiteDevices, i: int, session: int) -> None:
    devices.fleet.plug(
        i,
        session,
        soc=0.2,
        e_needed_kwh=10.0,
        capacity_kwh=50.0,
        max_ac_kw=11.0,
        max_dc_kw=50.0,
        knee_soc=0.8,
        departure_s=3600,
    )
    devices.refresh()


charger_values = st.one_of(
    st.floats(-50.0, 400.0),
    st.sampled_from([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-5, -1e-5, 22.00004999]),
)
battery_values = st.one_of(
    st.floats(-2000.0, 2000.0),
    st.sampled_from([0.0, -0.0, 0.0004, -0.0004, 0.0005, 77.77, -123.456, 1e-300]),
)
pv_values = st.one_of(st.floats(-5.0, 50.0), st.sampled_from([np.nan, np.inf, 0.0, -0.0]))
# A device event between two control cycles: (kind, device index, flag).
events = st.tuples(
    st.sampled_from(["fault", "available", "halt", "plug", "battery_fault", "battery_off"]),
    st.integers(0, N_CHARGERS - 1),
    st.booleans(),
)


@settings(max_examples=60, deadline=None)
@given(
    n_batteries=st.integers(1, 3),
    cycles=st.lists(
        st.tuples(
            st.lists(charger_values, min_size=N_CHARGERS, max_size=N_CHARGERS),
            st.lists(battery_values, min_size=3, max_size=3),
            pv_values,
            st.lists(events, max_size=2),
            st.booleans(),
        ),
        min_size=1,
        max_size=8,
    ),
)
def test_apply_direct_equals_the_per_device_links(n_batteries: int, cycles: list) -> None:
    fast, slow = _devices(n_batteries), _devices(n_batteries)
    fast_router, slow_router = SetpointRouter(fast), SetpointRouter(slow)
    session = 0
    for charger_kw, battery_kw, pv_kw, device_events, repeat in cycles:
        for kind, index, flag in device_events:
            for devices in (fast, slow):
                j = index % n_batteries
                if kind == "fault":
                    devices.set_faulted("charger", index, flag)
                elif kind == "available":
                    devices.chargers[index].set_available(1, flag)
                elif kind == "halt" and devices.fleet.session[index] >= 0:
                    devices.chargers[index].start_transaction(1)
                    devices.chargers[index].stop_transaction(1)
                elif kind == "plug" and devices.fleet.session[index] < 0:
                    _plug(devices, index, session)
                elif kind == "battery_fault":
                    devices.set_faulted("battery", j, flag)
                elif kind == "battery_off":
                    devices.batteries[j].set_enabled(flag)
            session += 1
        args = (np.array(charger_kw), np.array(battery_kw[:n_batteries]), np.array([pv_kw]))
        for _ in range(2 if repeat else 1):
            fast_router.apply_direct(*args)
            changes = slow_router.changes(*args)
            if changes is not None:
                slow_router.deliver(changes)
            for name in HELD:
                assert getattr(fast, name).tobytes() == getattr(slow, name).tobytes(), name
            assert fast_router.sent == slow_router.sent


finite_or_nan = st.one_of(
    st.floats(-50.0, 400.0),
    st.sampled_from([np.nan, np.inf, 0.0, -0.0, 1e-5, -1e-5, 22.00004999]),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(finite_or_nan, min_size=1, max_size=40))
def test_the_vectorised_charger_rounding_is_the_scalar_one(values: list[float]) -> None:
    array = charger_limits_kw(np.array(values))
    # Batched rows (many sites) round as one row does.
    assert charger_limits_kw(np.array([values, values])).tobytes() == np.tile(array, 2).tobytes()
    for value, wire in zip(values, array, strict=True):
        scalar = charger_limit_kw(value)
        assert (np.isnan(wire) and scalar is None) or wire == scalar
        # What the link applies to a wire value is that value again (the fast path relies on it).
        assert scalar is None or charger_limit_kw(scalar) == scalar


@settings(max_examples=200, deadline=None)
@given(st.lists(battery_values, min_size=1, max_size=1))
def test_the_single_battery_float_path_is_the_scalar_link(values: list[float]) -> None:
    devices = _devices(1)
    router = SetpointRouter(devices)
    wire = BatteryWire(devices.bank.p_charge_max_kw, devices.bank.p_discharge_max_kw)
    no_caps = (np.full(N_CHARGERS, np.nan), np.full(1, np.nan))
    router.apply_direct(no_caps[0], np.array([1.0]), no_caps[1])
    router.apply_direct(no_caps[0], np.array(values), no_caps[1])
    # Sent again only if the wire value changed; the battery then holds the link's value.
    expected = wire.setpoint_kw(0, values[0] if router.sent == 2 else 1.0)
    held = devices.battery_requested_kw[0]
    assert held == expected and np.signbit(held) == np.signbit(expected)
    assert devices.battery_setpoint_kw[0] == held


class CountingLink(DirectChargerLink):
    calls = 0

    def set_power_limit(self, p_kw: float | None) -> float | None:
        CountingLink.calls += 1
        return super().set_power_limit(p_kw)


def test_a_replaced_link_is_called_per_device() -> None:
    devices = _devices(1)
    router = SetpointRouter(devices)
    router.apply_direct(np.full(N_CHARGERS, 7.0), np.zeros(1), np.full(1, np.nan))
    assert devices.charger_limit_kw.tolist() == [7.0] * N_CHARGERS
    router.charger_links[2] = CountingLink(devices.chargers[2])
    limits = np.array([1.0, 2.0, 3.0, 7.0, 5.0])
    router.apply_direct(limits, np.zeros(1), np.full(1, np.nan))
    # Every changed charger is delivered through its link, the replaced one included.
    assert CountingLink.calls == 1 and devices.charger_limit_kw.tolist() == limits.tolist()
    assert router.sent == N_CHARGERS + 4


def test_non_finite_battery_setpoints_are_refused_as_by_the_link() -> None:
    for n_batteries in (1, 2):
        devices = _devices(n_batteries)
        router = SetpointRouter(devices)
        with pytest.raises(SunSpecError, match="not a finite number"):
            router.apply_direct(
                np.full(N_CHARGERS, np.nan), np.full(n_batteries, np.nan), np.full(1, np.nan)
            )
        assert devices.battery_setpoint_kw.tolist() == [0.0] * n_batteries
