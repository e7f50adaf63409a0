"""A site modelled with one's own CSV files: one time rule for every file, the whole run checked by
``validate``, unit mistakes and spreadsheet dialects named with their line and fix."""

from __future__ import annotations

import inspect
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from qubit_sim.agents.csv_replay import SESSION_DEFAULTS
from qubit_sim.agents.sessions import SessionTable
from qubit_sim.cli import app
from qubit_sim.core.csv_input import parse_times, read_csv_table
from qubit_sim.errors import QubitSimError, ScenarioError
from qubit_sim.scenario.build import build_site
from qubit_sim.scenario.loader import load_scenario_text

TZ = "Europe/Amsterdam"
# Two days over the spring-forward night of 30 March 2025 (02:00 -> 03:00 in Amsterdam).
SCENARIO = """\
site:
  name: own
  location: {lat: 52.0, lon: 5.1, tz: Europe/Amsterdam}
  start: 2025-03-29T00:00:00Z
  duration: 2d
  step: 15min
  grid_connection: {import_kw: 120}
assets:
  chargers:
    - {template: ac_22kw, count: 3, id: cp}
  pv:
    - {kwp: 20, id: roof, weather: weather.csv}
  loads:
    - {id: building, profile: "csv:load.csv"}
evs:
  sessions_csv: sessions.csv
tariff:
  carbon: {csv: carbon.csv}
controller:
  name: rule_based
  params: {threshold_kw: 80}
"""
# The files cover the run with a margin: 28 March 22:00Z to 31 March 02:00Z.
TIMES = pd.date_range("2025-03-28T22:00:00Z", "2025-03-31T02:00:00Z", freq="15min")
SESSIONS = pd.DataFrame(
    {
        "arrival": pd.to_datetime(["2025-03-29T06:00:00Z", "2025-03-30T00:30:00Z"]),
        "departure": pd.to_datetime(["2025-03-29T15:00:00Z", "2025-03-30T09:00:00Z"]),
        "kwh": [12.5, 20.0],
        "vehicle_id": ["van1", "van2"],
    }
)


def stamps(times: pd.Series | pd.DatetimeIndex, style: str) -> list[str]:
    """Times as a file would write them: UTC with Z, local with offset, or naive local."""
    index = pd.DatetimeIndex(times)
    if style == "utc":
        return list(index.strftime("%Y-%m-%dT%H:%M:%SZ"))
    local = index.tz_convert(TZ)
    if style == "offset":
        return [stamp.isoformat() for stamp in local]
    return list(local.strftime("%Y-%m-%d %H:%M:%S"))


def write_site(folder: Path, style: str = "utc", **files: str) -> Path:
    """The scenario and its four files; ``files`` replaces a file's text by name."""
    step = np.arange(len(TIMES), dtype=float)
    hours = (TIMES.hour + TIMES.minute / 60).to_numpy()
    ghi = np.clip(650 * np.sin(np.pi * (hours - 5.5) / 13), 0, None).round(1)
    when = stamps(TIMES, style)
    pd.DataFrame({"time": when, "p_kw": 20 + step % 37}).to_csv(folder / "load.csv", index=False)
    pd.DataFrame({"time": when, "ghi": ghi, "temp_air": 9.5, "wind_speed": 2.0}).to_csv(
        folder / "weather.csv", index=False
    )
    pd.DataFrame({"time": when, "g_per_kwh": 250 + step % 53}).to_csv(
        folder / "carbon.csv", index=False
    )
    SESSIONS.assign(
        arrival=stamps(SESSIONS["arrival"], style), departure=stamps(SESSIONS["departure"], style)
    ).to_csv(folder / "sessions.csv", index=False)
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    path = folder / "own.yaml"
    path.write_text(SCENARIO, encoding="utf-8")
    return path


def build(folder: Path, text: str = SCENARIO) -> Any:
    return build_site(load_scenario_text(text, base_dir=folder))


def problems(folder: Path, text: str = SCENARIO) -> str:
    with pytest.raises(ScenarioError) as caught:
        build(folder, text)
    return " ".join(str(caught.value).split())


def line_of(text: str, needle: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), 1) if needle in line)


def validate(*args: str) -> Any:
    return CliRunner().invoke(app, ["validate", *args], env={"COLUMNS": "400"})


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Any:
    folder = tmp_path_factory.mktemp("utc")
    write_site(folder, "utc")
    return build(folder)


def series_of(site: Any) -> dict[str, np.ndarray]:
    return {
        "load_kw": site.load_kw,
        "pv_available_kw": site.pv_available_kw,
        "carbon_g_per_kwh": site.carbon_g_per_kwh,
        "arrival_s": site.sessions.arrival_s,
        "departure_s": site.sessions.departure_s,
    }


# ---------------------------------------------------------------- one time rule for every file


@pytest.mark.parametrize("style", ["offset", "naive"])
def test_every_file_reads_naive_times_as_local_time_of_the_site(
    reference: Any, tmp_path: Path, style: str
) -> None:
    write_site(tmp_path, style)
    site = build(tmp_path)
    expected = series_of(reference)
    for name, values in series_of(site).items():
        np.testing.assert_array_equal(values, expected[name], err_msg=name)
    # The data vary from row to row, so reading local times as UTC would have shown.
    assert len(np.unique(reference.load_kw)) > 30 and reference.pv_available_kw.max() > 5
    assert list(reference.sessions.arrival_s) == [6 * 3600, 24 * 3600 + 1800]


def test_a_local_meter_clock_that_skips_the_spring_hour_is_read_without_a_gap(
    tmp_path: Path,
) -> None:
    wall = pd.date_range("2025-03-28 00:00", "2025-04-01 00:00", freq="15min")
    wall = wall[~((wall.normalize() == pd.Timestamp("2025-03-30")) & (wall.hour == 2))]
    meter = pd.DataFrame({"time": wall.strftime("%Y-%m-%d %H:%M"), "p_kw": 30.0})
    write_site(tmp_path, **{"load.csv": meter.to_csv(index=False)})
    site = build(tmp_path)
    assert (site.load_kw == 30.0).all()


def test_a_session_in_the_skipped_hour_is_an_error_naming_file_line_time_and_fix(
    tmp_path: Path,
) -> None:
    text = (
        "arrival,departure,kwh\n"
        "2025-03-29 09:00,2025-03-29 12:00,5\n"
        "2025-03-30 02:30,2025-03-30 10:00,8\n"
    )
    write_site(tmp_path, **{"sessions.csv": text})
    message = problems(tmp_path)
    assert f"evs.sessions_csv (line {line_of(SCENARIO, 'sessions_csv')})" in message
    assert (
        "sessions.csv" in message
        and "line 3: local time 2025-03-30 02:30:00 does not exist" in message
    )
    assert "2025-03-30T02:30:00+01:00" in message and "2025-03-30T01:30:00Z" in message
    assert "pytz" not in message and "NonExistentTimeError" not in message
    result = validate(str(tmp_path / "own.yaml"))
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert "does not exist in Europe/Amsterdam" in result.output


def test_a_repeated_autumn_hour_written_naive_is_ambiguous(tmp_path: Path) -> None:
    wall = pd.date_range("2025-10-26 00:00", "2025-10-26 05:00", freq="30min")
    table = pd.DataFrame({"time": wall.strftime("%Y-%m-%d %H:%M"), "p_kw": 1.0})
    path = tmp_path / "autumn.csv"
    table.to_csv(path, index=False)
    csv = read_csv_table(path, "load CSV")
    expected = r"line 6 \(and 1 more: lines 6, 7\): local time 2025-10-26 02:00:00 occurs twice"
    with pytest.raises(QubitSimError, match=expected) as caught:
        csv.times("time", TZ)
    assert "2025-10-26T02:00:00+02:00 or 2025-10-26T02:00:00+01:00" in str(caught.value)


def test_a_meter_file_repeating_the_autumn_hour_in_order_is_read_by_its_order(
    tmp_path: Path,
) -> None:
    # As a meter writes local time: 02:00..02:45 twice, first in summer time, then in winter time.
    instants = pd.date_range("2025-10-26T00:00:00Z", "2025-10-26T03:00:00Z", freq="15min")
    wall = instants.tz_convert(TZ).strftime("%Y-%m-%d %H:%M")
    assert len(set(wall)) == len(wall) - 4
    path = tmp_path / "meter.csv"
    pd.DataFrame({"time": wall, "p_kw": 1.0}).to_csv(path, index=False)
    read = read_csv_table(path, "load CSV").times("time", TZ)
    assert list(read) == list(instants)
    # The sessions' times are not a series: there a repeated hour stays ambiguous.
    column = read_csv_table(path, "sessions CSV").time_column("time", TZ)
    assert column.ambiguous.sum() == 8


# Up to 2037: pandas resolves zone names with pytz, whose transition tables end there.
@settings(max_examples=200, deadline=None)
@given(
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2037, 12, 31)),
    st.sampled_from(["Europe/Amsterdam", "America/New_York", "Australia/Sydney", "UTC"]),
)
def test_times_round_trip_through_both_spellings(when: datetime, tz: str) -> None:
    instant = when.replace(tzinfo=UTC, microsecond=0)
    local = instant.astimezone(ZoneInfo(tz))
    naive = local.replace(tzinfo=None)
    # A wall time that names two instants cannot be read back; it must be refused instead.
    repeated = any(
        naive.replace(tzinfo=ZoneInfo(tz), fold=fold).astimezone(UTC) != instant for fold in (0, 1)
    )
    texts = pd.Series(
        [local.isoformat(), naive.isoformat(sep=" "), instant.strftime("%Y-%m-%dT%H:%M:%SZ")]
    )
    parsed = parse_times(texts, np.arange(3) + 2, tz)
    assert parsed.utc[0] == instant and parsed.utc[2] == instant
    if repeated:
        assert parsed.ambiguous[1] and pd.isna(parsed.utc[1])
    else:
        assert parsed.utc[1] == instant and not parsed.bad.any()
    nowhere = parse_times(texts[1:2], np.array([2]), None)
    assert nowhere.no_zone[0] and "no UTC offset" in (nowhere.problem() or "")


def test_every_wall_time_inside_a_spring_gap_is_refused() -> None:
    wall = [datetime(2025, 3, 30, 2, 0) + timedelta(minutes=m) for m in range(0, 60, 7)]
    parsed = parse_times(
        pd.Series([w.isoformat(sep=" ") for w in wall]), np.arange(len(wall)) + 2, TZ
    )
    assert parsed.nonexistent.all() and pd.isna(parsed.utc).all()


# ---------------------------------------------------------------- validate checks the whole run


def test_validate_reads_every_step_and_quotes_the_range_needed(tmp_path: Path) -> None:
    one_day = pd.DataFrame({"time": stamps(TIMES[:100], "utc"), "g_per_kwh": 300.0}).to_csv(
        index=False
    )
    path = write_site(tmp_path, **{"carbon.csv": one_day})
    result = validate(str(path))
    assert result.exit_code == 2, result.output
    output = " ".join(result.output.split())
    assert (
        "tariff.carbon (line" in output
        and "covers 2025-03-28T22:00:00Z .. 2025-03-29T22:45:00Z" in output
    )
    assert "the scenario needs 2025-03-29T00:00:00Z .. 2025-03-30T23:45:00Z" in output


def test_a_short_load_file_fails_validate_not_the_run(tmp_path: Path) -> None:
    short = pd.DataFrame({"time": stamps(TIMES[:150], "utc"), "p_kw": 20.0}).to_csv(index=False)
    write_site(tmp_path, **{"load.csv": short})
    message = problems(tmp_path)
    assert "assets.loads[0].profile" in message
    assert "covers 2025-03-28T22:00:00Z .. 2025-03-30T11:30:00Z" in message
    assert "needs 2025-03-29T00:00:00Z .. 2025-03-30T23:45:00Z" in message


def test_a_gap_names_its_rows_and_what_the_user_can_do(tmp_path: Path) -> None:
    kept = np.r_[0:120, 140 : len(TIMES)]
    gap = pd.DataFrame({"time": stamps(TIMES[kept], "utc"), "p_kw": 20.0}).to_csv(index=False)
    write_site(tmp_path, **{"load.csv": gap})
    message = problems(tmp_path)
    assert (
        "falls into a gap after line 121 (from 2025-03-30T03:45:00Z to 2025-03-30T09:00:00Z"
        in message
    )
    assert "write the missing rows" in message


# ---------------------------------------------------------------- controllers in validate


@pytest.mark.parametrize(
    ("controller", "path", "needle"),
    [
        (
            "  name: rule_based\n  params: {threshold: 80}\n",
            "controller.params.threshold",
            "threshold:",
        ),
        ("  name: no_such_package.ctl:Ctl\n", "controller.name", "no_such_package"),
    ],
)
def test_validate_reports_a_controller_that_cannot_be_built_at_its_line(
    tmp_path: Path, controller: str, path: str, needle: str
) -> None:
    text = SCENARIO.replace("  name: rule_based\n  params: {threshold_kw: 80}\n", controller)
    write_site(tmp_path)
    (tmp_path / "own.yaml").write_text(text)
    result = validate(str(tmp_path / "own.yaml"))
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert f"{path} (line {line_of(text, needle)})" in result.output
    shallow = validate("--no-deep", str(tmp_path / "own.yaml"))
    assert shallow.exit_code == 0 and "controller not checked" in shallow.output


# ---------------------------------------------------------------- unit mistakes


def test_honest_files_pass_the_unit_checks(reference: Any) -> None:
    assert reference.load_kw.max() < 60 and reference.pv_available_kw.max() > 5


@pytest.mark.parametrize(
    ("file", "edit", "expected"),
    [
        (
            "load.csv",
            lambda t: t.assign(p_kw=t.p_kw * 1000),
            "more than the 2,400 kW this site's load can plausibly draw; is the column in W?",
        ),
        ("weather.csv", lambda t: t.assign(ghi=t.ghi / 1000), "column ghi never reaches 5 W/m²"),
        ("weather.csv", lambda t: t.assign(ghi=t.ghi * 1000), "(1,000 times too large: mW/m²?)"),
        (
            "weather.csv",
            lambda t: t.assign(temp_air=t.temp_air + 273.15),
            "temp_air reaches 282.65 at line 2, above 70 °C; is it in kelvin",
        ),
        (
            "weather.csv",
            lambda t: t.assign(temp_air=np.where(t.index == 5, -999.0, 9.5)),
            "temp_air falls to -999 at line 7",
        ),
    ],
)
def test_values_in_a_wrong_unit_are_refused_naming_file_column_value_and_line(
    tmp_path: Path, file: str, edit: Any, expected: str
) -> None:
    write_site(tmp_path)
    table = pd.read_csv(tmp_path / file)
    edit(table).to_csv(tmp_path / file, index=False)
    message = problems(tmp_path)
    assert file in message and expected in message


# ---------------------------------------------------------------- dialects and small formats


def test_semicolons_with_decimal_commas_read_like_commas(reference: Any, tmp_path: Path) -> None:
    write_site(tmp_path)
    for name in ("load.csv", "weather.csv", "carbon.csv", "sessions.csv"):
        table = pd.read_csv(tmp_path / name)
        table.to_csv(tmp_path / name, sep=";", decimal=",", index=False)
    assert ";" in (tmp_path / "weather.csv").read_text().splitlines()[1]
    site = build(tmp_path)
    expected = series_of(reference)
    for name, values in series_of(site).items():
        np.testing.assert_array_equal(values, expected[name], err_msg=name)
    np.testing.assert_array_equal(site.sessions.e_needed_kwh, [12.5, 20.0])


def test_decimal_commas_in_a_comma_file_get_a_hint(tmp_path: Path) -> None:
    write_site(tmp_path)
    table = pd.read_csv(tmp_path / "load.csv").assign(p_kw=lambda t: t.p_kw + 0.5)
    table.to_csv(tmp_path / "load.csv", index=False, decimal=",", quoting=1)
    message = problems(tmp_path)
    assert (
        "p_kw is not a number at lines 2, 3, 4, 5, 6 ...; values like '20,5' have a decimal comma"
        in message
    )
    assert "separate the fields with ';'" in message


def test_a_byte_order_mark_and_upper_case_names_are_accepted(
    reference: Any, tmp_path: Path
) -> None:
    write_site(tmp_path)
    text = (tmp_path / "weather.csv").read_text().replace("ghi", "GHI", 1)
    (tmp_path / "weather.csv").write_text("\ufeff" + text, encoding="utf-8")
    np.testing.assert_array_equal(build(tmp_path).pv_available_kw, reference.pv_available_kw)


def test_a_unit_in_the_column_name_is_answered_with_the_unit_wanted(tmp_path: Path) -> None:
    write_site(tmp_path)
    table = pd.read_csv(tmp_path / "load.csv").rename(columns={"p_kw": "p_w"})
    table.to_csv(tmp_path / "load.csv", index=False)
    message = problems(tmp_path)
    assert "lacks column(s) p_kw; it has time, p_w" in message
    assert "if 'p_w' is p_kw in another unit, convert it to kW and name the column p_kw" in message


def test_sessions_name_their_charger_by_id_or_position(tmp_path: Path) -> None:
    text = (
        "arrival,departure,kwh,charger\n"
        "2025-03-29T06:00:00Z,2025-03-29T09:00:00Z,5,cp3\n"
        "2025-03-29T07:00:00Z,2025-03-29T09:00:00Z,5,1\n"
        "2025-03-29T08:00:00Z,2025-03-29T09:00:00Z,5,\n"
    )
    write_site(tmp_path, **{"sessions.csv": text})
    assert list(build(tmp_path).sessions.home_charger) == [2, 1, -1]
    (tmp_path / "sessions.csv").write_text(text.replace("cp3", "cp9").replace(",1\n", ",3\n"))
    message = problems(tmp_path)
    assert (
        "line 2: charger 'cp9' is neither a charger id (cp1, cp2, cp3) nor a position 0..2"
        in message
    )
    assert "line 3: charger '3' is neither" in message


def test_library_sessions_without_charger_ids_want_a_position(tmp_path: Path) -> None:
    path = tmp_path / "s.csv"
    path.write_text("arrival,departure,kwh,charger\n2025-03-29T06:00Z,2025-03-29T09:00Z,5,cp2\n")
    with pytest.raises(QubitSimError, match="charger 'cp2' is not a charger position"):
        SessionTable.from_csv(path, "2025-03-29T00:00:00Z")


def test_session_defaults_are_those_of_from_csv() -> None:
    parameters = inspect.signature(SessionTable.from_csv).parameters
    assert {name: parameters[name].default for name in SESSION_DEFAULTS} == SESSION_DEFAULTS


def test_an_empty_carbon_value_is_printed_as_written(tmp_path: Path) -> None:
    write_site(tmp_path)
    table = pd.read_csv(tmp_path / "carbon.csv")
    table.loc[4, "g_per_kwh"] = np.nan
    table.to_csv(tmp_path / "carbon.csv", index=False)
    message = problems(tmp_path)
    assert "row 6: g_per_kwh (empty) must be a number >= 0" in message
    assert "np.float64" not in message


# ---------------------------------------------------------------- the weather label


def test_weather_label_is_a_yaml_key_that_moves_rows_by_half_an_interval(tmp_path: Path) -> None:
    hourly = pd.date_range("2025-03-28T22:00:00Z", "2025-03-31T02:00:00Z", freq="1h")
    hours = hourly.hour.to_numpy()
    ghi = np.clip(650 * np.sin(np.pi * (hours - 5.5) / 13), 0, None)
    for name, shift in (("start.csv", "0min"), ("center.csv", "30min")):
        when = stamps(hourly + pd.Timedelta(shift), "utc")
        pd.DataFrame({"time": when, "ghi": ghi}).to_csv(tmp_path / name, index=False)
    write_site(tmp_path)
    by_start = SCENARIO.replace(
        "weather: weather.csv}", "weather: start.csv, weather_label: start}"
    )
    by_centre = SCENARIO.replace("weather: weather.csv}", "weather: center.csv}")
    start = build(tmp_path, by_start).pv_available_kw
    centre = build(tmp_path, by_centre).pv_available_kw
    np.testing.assert_allclose(start, centre, rtol=1e-9, atol=1e-9)
    unlabelled = SCENARIO.replace("weather: weather.csv}", "weather: start.csv}")
    assert np.abs(build(tmp_path, unlabelled).pv_available_kw - start).max() > 0.5


def test_weather_label_with_a_typical_year_is_refused_at_its_line() -> None:
    text = SCENARIO.replace("weather: weather.csv}", "weather: tmy:723170TYA, weather_label: end}")
    with pytest.raises(ScenarioError) as caught:
        load_scenario_text(text)
    (issue,) = caught.value.issues
    assert issue.path == "assets.pv[0].weather_label" and "CSV weather only" in issue.message
    assert issue.line == line_of(text, "weather_label")


# ------------------------------------------------------------------ gaps in weather and carbon


def _with_rows_dropped(folder: Path, name: str, first: str, last: str) -> None:
    """Drop the rows of ``name`` from ``first`` to ``last`` (UTC, inclusive)."""
    table = pd.read_csv(folder / name)
    times = pd.to_datetime(table["time"], utc=True)
    keep = (times < pd.Timestamp(first)) | (times > pd.Timestamp(last))
    table[keep.to_numpy()].to_csv(folder / name, index=False)


@pytest.mark.parametrize(
    ("name", "said"),
    [
        ("carbon.csv", "carbon intensity CSV"),
        ("weather.csv", "weather has no rows between"),
    ],
)
def test_a_gap_the_run_passes_through_is_refused_not_interpolated(
    tmp_path: Path, name: str, said: str
) -> None:
    write_site(tmp_path, "utc")
    # Six hours missing in the middle of the run's first day, sunlit hours included.
    _with_rows_dropped(tmp_path, name, "2025-03-29T09:00:00Z", "2025-03-29T15:00:00Z")
    message = problems(tmp_path)
    assert said in message and "write the missing rows" in message
    assert "2025-03-29" in message


def test_a_gap_outside_the_run_is_no_problem(tmp_path: Path, reference: Any) -> None:
    write_site(tmp_path, "utc")
    # Rows missing before the run starts (the files begin at 28 March 22:00Z, the run at 29 March).
    for name in ("carbon.csv", "weather.csv"):
        _with_rows_dropped(tmp_path, name, "2025-03-28T22:15:00Z", "2025-03-28T23:15:00Z")
    site = build(tmp_path)
    np.testing.assert_array_equal(site.carbon_g_per_kwh, reference.carbon_g_per_kwh)
    np.testing.assert_array_equal(site.pv_available_kw, reference.pv_available_kw)


# ----------------------------------------------------------------------------------- feeder


def _feeder_scenario(grid: str) -> str:
    return f"""\
site:
  name: feeder
  location: {{lat: 52.0, lon: 5.1, tz: Europe/Amsterdam}}
  start: 2025-06-02T00:00:00Z
  duration: 1d
  step: 15min
  grid_connection: {{import_kw: 100}}
grid:
{grid}
assets:
  chargers:
    - {{template: ac_22kw, count: 2}}
"""


def test_a_site_on_the_slack_bus_is_refused(tmp_path: Path) -> None:
    import pandapower.networks as pn

    slack = int(pn.create_cigre_network_lv().ext_grid.bus.iloc[0])
    text = _feeder_scenario(f"  network: pandapower:create_cigre_network_lv\n  site_bus: {slack}")
    message = problems(tmp_path, text)
    assert "grid.site_bus" in message and "is the feeder's slack bus" in message


def test_background_scale_without_background_is_refused(tmp_path: Path) -> None:
    grid = "  network: 1-LV-rural1--0-sw\n  site_bus: 5\n  background: false\n"
    message = problems(tmp_path, _feeder_scenario(grid + "  background_scale: 0.5"))
    assert "grid.background_scale" in message and "has no effect with background: false" in message
    build(tmp_path, _feeder_scenario(grid))  # without the scale it builds
