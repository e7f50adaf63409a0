"""CSMS bookkeeping: transactions are idempotent under repeated messages."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from qubit_sim.protocols.ocpp_csms_state import CsmsState
from qubit_sim.protocols.ocpp_meter import MeterSample


def stamp(minute: int) -> str:
    return f"2025-01-01T00:{minute:02d}:00.000Z"


def test_repeated_v16_start_and_stop_change_nothing() -> None:
    state = CsmsState()
    first = state.start_16("CP1", 1, "TAG", 100, stamp(0))
    assert state.start_16("CP1", 1, "TAG", 100, stamp(0)) == first
    assert len(state.transactions) == 1
    samples = [MeterSample(stamp(1), energy_wh=160.0, power_w=3600.0)]
    state.meter_values("CP1", 1, first, samples)
    state.meter_values("CP1", 1, first, samples)
    record = state.transactions[("CP1", first)]
    assert len(record.samples) == 1 and record.energy_wh == 60.0
    assert state.stop_16("CP1", first, 250, stamp(2), "Local", [])
    assert state.stop_16("CP1", first, 999, stamp(3), "Other", [])  # a late repeat
    assert record.energy_wh == 150.0 and record.stop_reason == "Local"
    assert not state.stop_16("CP1", "77", 1, stamp(3), None, [])
    # A different start (other meter value) is a new transaction with a new id.
    second = state.start_16("CP1", 1, "TAG", 250, stamp(4))
    assert second != first and state.active_transaction("CP1", 1).transaction_id == second


def _event(state: CsmsState, kind: str, seq: int, energy: float, minute: int) -> None:
    state.transaction_event(
        "CS",
        event_type=kind,
        seq_no=seq,
        tx_id="T1",
        evse_id=2,
        id_token="TAG",
        timestamp=stamp(minute),
        charging_state="Charging" if kind != "Ended" else "Idle",
        stopped_reason="EVDisconnected" if kind == "Ended" else None,
        offline=False,
        samples=[MeterSample(stamp(minute), energy_wh=energy)],
    )


@given(repeats=st.lists(st.integers(0, 3), min_size=4, max_size=4))
def test_repeated_v201_events_are_counted_once(repeats: list[int]) -> None:
    state = CsmsState()
    events = [
        ("Started", 0, 10.0, 0),
        ("Updated", 1, 40.0, 1),
        ("Updated", 2, 70.0, 2),
        ("Ended", 3, 90.5, 3),
    ]
    for (kind, seq, energy, minute), extra in zip(events, repeats, strict=True):
        for _ in range(1 + extra):
            _event(state, kind, seq, energy, minute)
    record = state.transactions[("CS", "T1")]
    assert record.seq_nos == {0, 1, 2, 3}
    assert record.energy_wh == 80.5 and not record.active
    assert record.connector == 2 and len(record.samples) == 4
    assert state.read("CS", 2).status == "Finishing"


def test_read_maps_201_states_and_zeroes_power_outside_charging() -> None:
    state = CsmsState()
    state.charge_point("CS", "2.0.1").online = True
    state.status_201("CS", 1, "Occupied")
    assert state.read("CS", 1).status == "Preparing"
    state.transaction_event(
        "CS",
        event_type="Started",
        seq_no=0,
        tx_id="T",
        evse_id=1,
        id_token="A",
        timestamp=stamp(0),
        charging_state="SuspendedEVSE",
        stopped_reason=None,
        offline=True,
        samples=[MeterSample(stamp(0), energy_wh=5.0, power_w=7000.0)],
    )
    reading = state.read("CS", 1)
    assert reading.status == "SuspendedEVSE" and reading.p_kw == 7.0 and reading.online
    assert state.transactions[("CS", "T")].offline_messages == 1
    state.transaction_event(
        "CS",
        event_type="Ended",
        seq_no=1,
        tx_id="T",
        evse_id=1,
        id_token=None,
        timestamp=stamp(1),
        charging_state=None,
        stopped_reason="Remote",
        offline=False,
        samples=[MeterSample(stamp(1), energy_wh=6.0)],
    )
    assert state.read("CS", 1).status == "Finishing" and state.read("CS", 1).p_kw == 0.0
    state.status_201("CS", 1, "Available")
    assert state.read("CS", 1).status == "Available"
    state.status_201("CS", 1, "Occupied")
    assert state.read("CS", 1).status == "Preparing"
