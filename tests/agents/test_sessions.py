"""SessionTable invariants and exact replay of recorded sessions from CSV."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from qubit_sim.agents.sessions import SessionTable
from qubit_sim.errors import QubitSimError

START = "2025-01-06T00:00:00Z"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sessions.csv"
    path.write_text(text)
    return path


def test_replay_is_exact(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "arrival,departure,kwh,vehicle_id,battery_kwh,arrival_soc,max_kw\n"
        "2025-01-06T09:30:00Z,2025-01-06T17:45:10Z,12.345,alice,60,0.4,7.4\n"
        "2025-01-06T08:00:00+01:00,2025-01-06T12:00:00+01:00,3.5,bob,40,,\n"
        "2025-01-07T07:59:59Z,2025-01-07T16:00:00Z,60.0,alice,,,\n",
    )
    table = SessionTable.from_csv(path, START, battery_kwh=80.0, arrival_soc=0.3)
    assert list(table.session_id) == [1, 0, 2]  # data rows, sorted by arrival
    np.testing.assert_array_equal(table.arrival_s, [7 * 3600, 9 * 3600 + 1800, 86400 + 28799])
    np.testing.assert_array_equal(
        table.departure_s, [11 * 3600, 17 * 3600 + 45 * 60 + 10, 86400 + 16 * 3600]
    )
    np.testing.assert_array_equal(table.e_needed_kwh, [3.5, 12.345, 60.0])
    np.testing.assert_array_equal(table.vehicle_id, ["bob", "alice", "alice"])
    np.testing.assert_array_equal(table.capacity_kwh, [40.0, 60.0, 80.0])
    np.testing.assert_array_equal(table.max_ac_kw, [11.0, 7.4, 11.0])
    # bob uses the default SOC; alice's 60 kWh only fit into 80 kWh from SOC 0.25 down.
    np.testing.assert_allclose(table.arrival_soc, [0.3, 0.4, 1 - 60.0 / 80.0])
    assert (table.home_charger == -1).all()


def test_local_times_with_tz(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "arrival,departure,kwh\n2025-01-06 08:00,2025-01-06 17:00,10\n",
    )
    table = SessionTable.from_csv(path, START, tz="Europe/Amsterdam")
    assert table.arrival_s[0] == 7 * 3600
    assert table.departure_s[0] == 16 * 3600
    assert table.vehicle_id[0] == "csv_1"
    with pytest.raises(QubitSimError, match="no UTC offset"):
        SessionTable.from_csv(path, START)


def test_bad_rows_are_reported_with_line_numbers(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "arrival,departure,kwh\n"
        "2025-01-06T09:00Z,2025-01-06T17:00Z,10\n"
        "2025-01-06T17:00Z,2025-01-06T09:00Z,10\n"
        "2025-01-06T09:00Z,2025-01-06T17:00Z,-2\n"
        "soon,2025-01-06T17:00Z,10\n"
        "2025-01-06T09:00Z,2025-01-06T17:00Z,ten\n"
        "2025-01-05T09:00Z,2025-01-06T17:00Z,10\n"
        "2025-01-06T09:00Z,2025-01-06T17:00Z,900\n",
    )
    with pytest.raises(QubitSimError) as caught:
        SessionTable.from_csv(path, START)
    message = str(caught.value)
    assert "6 bad row(s)" in message
    assert "line 3: departure" in message
    assert "line 4: kwh must be a number >= 0" in message
    assert "line 5: unparsable time" in message
    assert "line 6: not a number" in message
    assert "line 7: arrival 2025-01-05 09:00:00+00:00 is before the scenario start" in message
    assert "line 8: kwh 900.0 exceeds the battery" in message


def test_overlapping_sessions_of_one_vehicle_are_rejected(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "arrival,departure,kwh,vehicle_id\n"
        "2025-01-06T09:00Z,2025-01-06T17:00Z,10,v1\n"
        "2025-01-06T16:00Z,2025-01-06T20:00Z,10,v1\n"
        "2025-01-06T17:00Z,2025-01-06T20:00Z,10,v2\n",
    )
    with pytest.raises(QubitSimError, match="lines 2 and 3: sessions of vehicle 'v1' overlap"):
        SessionTable.from_csv(path, START)


def test_explicit_soc_that_cannot_hold_the_energy_is_an_error(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "arrival,departure,kwh,battery_kwh,arrival_soc\n"
        "2025-01-06T09:00Z,2025-01-06T17:00Z,30,50,0.5\n",
    )
    with pytest.raises(QubitSimError, match="line 2: arrival_soc 0.5 leaves 25 kWh"):
        SessionTable.from_csv(path, START)


def test_missing_columns_are_named(tmp_path: Path) -> None:
    path = write(tmp_path, "start,end,kwh\n2025-01-06T09:00Z,2025-01-06T17:00Z,1\n")
    with pytest.raises(QubitSimError, match="lacks column.*arrival, departure"):
        SessionTable.from_csv(path, START)


def columns(**over: object) -> dict:
    base = dict(
        session_id=[0, 1],
        vehicle_id=["a", "b"],
        vehicle_type=["t", "t"],
        arrival_s=[0, 10],
        departure_s=[100, 200],
        e_needed_kwh=[5.0, 5.0],
        arrival_soc=[0.5, 0.5],
        capacity_kwh=[50.0, 50.0],
        max_ac_kw=[11.0, 11.0],
        max_dc_kw=[50.0, 50.0],
        knee_soc=[0.8, 0.8],
        home_charger=[-1, -1],
    )
    base.update(over)
    return base


def test_table_rejects_broken_invariants() -> None:
    SessionTable(**columns())
    with pytest.raises(QubitSimError, match="sorted by arrival"):
        SessionTable(**columns(arrival_s=[10, 0]))
    with pytest.raises(QubitSimError, match="departure_s <= arrival_s"):
        SessionTable(**columns(departure_s=[0, 200]))
    with pytest.raises(QubitSimError, match=r"e_needed_kwh > \(1 - arrival_soc\)"):
        SessionTable(**columns(e_needed_kwh=[5.0, 25.5]))
    with pytest.raises(QubitSimError, match="overlapping"):
        SessionTable(**columns(vehicle_id=["a", "a"]))
    with pytest.raises(QubitSimError, match="has 1 entries, expected 2"):
        SessionTable(**columns(knee_soc=[0.8]))


def test_from_columns_sorts_and_arrays_are_read_only() -> None:
    table = SessionTable.from_columns(
        **{k: np.asarray(v) for k, v in columns(arrival_s=[10, 0], vehicle_id=["a", "b"]).items()}
    )
    np.testing.assert_array_equal(table.session_id, [1, 0])
    with pytest.raises(ValueError):
        table.arrival_s[0] = 5
    frame = table.to_frame()
    assert list(frame.columns)[:5] == [
        "session_id",
        "vehicle_id",
        "vehicle_type",
        "arrival_s",
        "departure_s",
    ]
    assert len(frame) == 2


def test_empty_table() -> None:
    empty = SessionTable.empty()
    assert len(empty) == 0
    assert empty.arrival_s.dtype == np.int64
    assert empty.to_frame().empty
