"""SimpleCharger: the ChargerDevice protocol, its state machine and energy bookkeeping."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qubit_sim.errors import QubitSimError
from qubit_sim.twins.charger_device import ChargerDevice, ConnectorStatus, EvState, SimpleCharger


def test_simple_charger_implements_the_device_protocol() -> None:
    assert isinstance(SimpleCharger(), ChargerDevice)


def test_session_walks_through_the_ocpp_states() -> None:
    charger = SimpleCharger(max_power_kw=22.0)
    assert charger.status(1) is ConnectorStatus.AVAILABLE
    charger.plug_in(1, EvState(capacity_kwh=50.0, soc=0.5, max_power_kw=11.0))
    assert charger.status(1) is ConnectorStatus.PREPARING
    assert charger.start_transaction(1)
    assert charger.status(1) is ConnectorStatus.CHARGING
    charger.set_limit_kw(1, 0.0)
    assert charger.status(1) is ConnectorStatus.SUSPENDED_EVSE
    assert charger.p_kw(1) == 0.0
    charger.set_limit_kw(1, None)
    assert charger.p_kw(1) == pytest.approx(11.0)
    assert charger.stop_transaction(1)
    assert charger.status(1) is ConnectorStatus.FINISHING
    assert charger.unplug(1) is not None
    assert charger.status(1) is ConnectorStatus.AVAILABLE


def test_full_ev_is_suspended_by_the_ev_and_energy_matches_the_soc_gain() -> None:
    charger = SimpleCharger(max_power_kw=22.0, efficiency=0.9)
    ev = EvState(capacity_kwh=10.0, soc=0.7, max_power_kw=7.0, target_soc=0.8)
    charger.plug_in(1, ev)
    charger.start_transaction(1)
    for _ in range(200):
        charger.advance(60.0)
    assert charger.status(1) is ConnectorStatus.SUSPENDED_EV
    assert ev.soc == pytest.approx(0.8)
    # Grid energy = stored energy / efficiency.
    assert charger.session_energy_wh(1) == pytest.approx(0.1 * 10.0 / 0.9 * 1000.0)


def test_unavailable_or_faulted_connectors_deliver_nothing() -> None:
    charger = SimpleCharger(n_connectors=2)
    charger.plug_in(1, EvState(capacity_kwh=40.0, soc=0.1))
    charger.set_available(1, False)
    assert charger.status(1) is ConnectorStatus.UNAVAILABLE
    assert not charger.start_transaction(1)
    charger.set_available(1, True)
    assert charger.start_transaction(1)
    charger.set_fault(1, True)
    assert charger.status(1) is ConnectorStatus.FAULTED
    assert charger.p_kw(1) == 0.0
    assert charger.status(2) is ConnectorStatus.AVAILABLE


@pytest.mark.parametrize(
    "action",
    [
        lambda c: c.status(3),
        lambda c: c.set_limit_kw(1, -1.0),
        lambda c: c.set_voltage(1, (230.0, 0.0, 230.0)),
        lambda c: c.advance(-1.0),
        lambda c: c.plug_in(1, EvState(capacity_kwh=0.0, soc=0.5)),
    ],
)
def test_bad_calls_raise_a_qubit_sim_error(action: object) -> None:
    with pytest.raises(QubitSimError):
        action(SimpleCharger(n_connectors=2))  # type: ignore[operator]


@given(
    p_limit=st.floats(0.5, 22.0),
    volts=st.tuples(*[st.floats(200.0, 250.0)] * 3),
    ev_phases=st.sampled_from([1, 3]),
)
def test_power_equals_the_sum_of_phase_voltage_times_current(
    p_limit: float, volts: tuple[float, float, float], ev_phases: int
) -> None:
    charger = SimpleCharger(max_power_kw=22.0, phases=3)
    charger.set_voltage(1, volts)
    charger.plug_in(1, EvState(capacity_kwh=60.0, soc=0.2, max_power_kw=22.0, phases=ev_phases))
    charger.start_transaction(1)
    charger.set_limit_kw(1, p_limit)
    amps = charger.current_a(1)
    assert sum(v * i for v, i in zip(volts, amps, strict=True)) == pytest.approx(
        charger.p_kw(1) * 1000.0
    )
    assert sum(1 for i in amps if i > 0) == ev_phases


_ops = st.lists(
    st.one_of(
        st.tuples(st.just("plug"), st.floats(0.0, 0.95)),
        st.tuples(st.just("unplug"), st.none()),
        st.tuples(st.just("start"), st.none()),
        st.tuples(st.just("stop"), st.none()),
        st.tuples(st.just("limit"), st.one_of(st.none(), st.floats(0.0, 30.0))),
        st.tuples(st.just("advance"), st.floats(0.0, 3600.0)),
    ),
    max_size=40,
)


@settings(max_examples=100, deadline=None)
@given(ops=_ops)
def test_register_never_decreases_and_counts_every_delivered_watt_hour(
    ops: list[tuple[str, object]],
) -> None:
    charger = SimpleCharger(max_power_kw=11.0)
    register = 0.0
    for op, arg in ops:
        if op == "plug" and not charger.ev_connected(1):
            charger.plug_in(1, EvState(capacity_kwh=40.0, soc=float(arg), max_power_kw=22.0))  # type: ignore[arg-type]
        elif op == "unplug":
            charger.unplug(1)
        elif op == "start":
            charger.start_transaction(1)
        elif op == "stop":
            charger.stop_transaction(1)
        elif op == "limit":
            charger.set_limit_kw(1, arg)  # type: ignore[arg-type]
        elif op == "advance":
            p_kw = charger.p_kw(1)
            limit = charger.limit_kw(1)
            assert 0.0 <= p_kw <= 11.0
            assert limit is None or p_kw <= limit
            before = charger.e_register_wh(1)
            charger.advance(float(arg))  # type: ignore[arg-type]
            delivered = charger.e_register_wh(1) - before
            # Never more than the power held for the step (less only when the EV fills up).
            assert -1e-9 <= delivered <= p_kw * float(arg) / 3.6 + 1e-6  # type: ignore[arg-type]
        assert charger.e_register_wh(1) >= register
        register = charger.e_register_wh(1)
