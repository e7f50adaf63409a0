"""Dynamic prices from a CSV (``tariff.price_csv``): the step function, every controller, the KPIs,
the RL environment and settlement follow the series; mistakes in the file are named with the fix."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import qubit_sim
from qubit_sim.cli import app
from qubit_sim.core.price_series import PRICE_SERIES_RATE_NAME, PriceSeries, read_price_csv
from qubit_sim.core.results import RunResult
from qubit_sim.core.tariff import Tariff, TariffError, bill, energy_price_series, rate_names
from qubit_sim.errors import ScenarioError
from qubit_sim.scenario.build import build_site
from qubit_sim.scenario.loader import load_scenario, load_scenario_text
from qubit_sim.stack.settle.run import settle_results, verify_results

TZ = "Europe/Amsterdam"
DT_H = 0.25
# Two local days (Mon 2 and Tue 3 June 2025, CEST = UTC+2) at 15-min steps; one EV plugged in
# from 18:00 to 07:00 wanting 15 kWh; one block of negative prices from 02:00 to 04:00.
SCENARIO = """\
site:
  name: spot
  location: {{lat: 52.0, lon: 5.1, tz: Europe/Amsterdam}}
  start: 2025-06-01T22:00:00Z
  duration: 2d
  step: {step}
  seed: 3
  grid_connection: {{import_kw: 60}}
assets:
  chargers:
    - {{template: ac_22kw, count: 1, id: cp}}
  batteries:
    - {{id: store, capacity_kwh: 20, power_kw: 5}}
  pv:
    - {{kwp: 30, id: roof}}
  loads:
    - {{id: office, profile: G1-A, annual_kwh: 20000}}
evs:
  sessions_csv: sessions.csv
tariff:
{tariff}
controller:
  name: uncontrolled
"""
TARIFF = """\
  price_csv: prices.csv
  export_price_per_kwh: 0.03
  billing_period: day
"""
HOURS = pd.date_range("2025-06-02 00:00", periods=48, freq="h")  # naive: local time
CHEAP = (HOURS >= "2025-06-03 02:00") & (HOURS < "2025-06-03 04:00")
PRICE = np.where(CHEAP, -0.02, (0.30 + 0.05 * np.sin(np.arange(48) / 24 * 2 * np.pi)).round(4))
EXPORT_PRICE = 0.02 + 0.01 * (np.arange(48) % 3)
CONTROLLERS = ("uncontrolled", "rule_based", "qubit_greedy", "mpc", "offline_optimal")


def price_table(**columns: object) -> pd.DataFrame:
    table = pd.DataFrame(
        {
            "time": HOURS.strftime("%Y-%m-%d %H:%M"),
            "price_per_kwh": PRICE,
            "export_price_per_kwh": EXPORT_PRICE,
        }
    )
    for name, value in columns.items():
        table[name] = value
    return table


def write_site(
    folder: Path,
    prices: pd.DataFrame | str | None = None,
    tariff: str = TARIFF,
    step: str = "15min",
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sessions.csv").write_text(
        "arrival,departure,kwh,max_kw\n2025-06-02 18:00,2025-06-03 07:00,15,11\n"
    )
    prices = price_table() if prices is None else prices
    if isinstance(prices, str):
        (folder / "prices.csv").write_text(prices)
    else:
        prices.to_csv(folder / "prices.csv", index=False)
    path = folder / "scenario.yaml"
    path.write_text(SCENARIO.format(tariff=tariff, step=step))
    return path


def expected_prices(times_utc: pd.Series | pd.DatetimeIndex) -> tuple[np.ndarray, np.ndarray]:
    """The CSV's prices at each instant, looked up by local hour (the file is hourly, local)."""
    local_hour = pd.DatetimeIndex(times_utc).tz_convert(TZ).tz_localize(None).floor("h")
    row = pd.Index(HOURS).get_indexer(local_hour)
    assert (row >= 0).all()
    return PRICE[row], EXPORT_PRICE[row]


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_site(tmp_path_factory.mktemp("spot"))


@pytest.fixture(scope="module")
def key_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("keys")


@pytest.fixture(scope="module")
def runs(scenario: Path, key_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("runs")
    return {
        name: qubit_sim.run(scenario, out=out / name, controller=name, plots=False, key_dir=key_dir)
        for name in CONTROLLERS
    }


def ev_kwh(run: RunResult) -> tuple[float, float]:
    """EV energy drawn over the run and inside the cheap block [kWh]."""
    frame = run.timeseries()
    columns = [c for c in frame.columns if c.startswith("charger_") and c.endswith("_p_kw")]
    power = frame[columns].sum(axis=1).to_numpy()
    local = pd.DatetimeIndex(frame["time"]).tz_convert(TZ).tz_localize(None).floor("h")
    cheap = pd.Index(HOURS[CHEAP]).get_indexer(local) >= 0
    return float(power.sum() * DT_H), float(power[cheap].sum() * DT_H)


# ------------------------------------------------------------------------- the series itself
def test_the_run_carries_the_csv_prices_step_by_step(runs: dict) -> None:
    frame = runs["uncontrolled"].timeseries()
    price, export_price = expected_prices(frame["time"])
    np.testing.assert_array_equal(frame["price_per_kwh"].to_numpy(), price)
    np.testing.assert_array_equal(frame["export_price_per_kwh"].to_numpy(), export_price)
    assert (frame["price_per_kwh"] < 0).sum() == 8  # two hours of negative prices, 15-min steps


def test_without_an_export_column_the_constant_export_price_applies(tmp_path: Path) -> None:
    path = write_site(tmp_path, price_table().drop(columns="export_price_per_kwh"))
    site = build_site(qubit_sim.load_scenario(path))
    assert np.all(site.export_price_per_kwh == 0.03)
    assert site.tariff.price_series.export_price_per_kwh is None
    price, _ = expected_prices(site.clock.index())
    np.testing.assert_array_equal(site.price_per_kwh, price)


@pytest.mark.parametrize("name", CONTROLLERS)
def test_kpis_price_every_step_with_the_series(runs: dict, name: str) -> None:
    run = runs[name]
    frame = run.timeseries()
    price, export_price = expected_prices(frame["time"])
    imports = frame["grid_import_kw"].to_numpy()
    exports = frame["grid_export_kw"].to_numpy()
    kpis = run.kpis
    assert imports.sum() > 0 and exports.sum() > 0
    assert kpis["energy_cost"] == pytest.approx((imports * price).sum() * DT_H, rel=1e-12)
    assert kpis["export_credit"] == pytest.approx((exports * export_price).sum() * DT_H, rel=1e-12)
    assert kpis["total_cost"] == pytest.approx(
        kpis["energy_cost"] + kpis["demand_charge"] - kpis["export_credit"], rel=1e-12
    )


def test_price_aware_controllers_charge_the_ev_in_the_cheap_block(runs: dict) -> None:
    total, cheap = ev_kwh(runs["uncontrolled"])
    assert total > 14 and cheap == 0.0  # full power from 18:00: done long before 02:00
    for name in ("qubit_greedy", "mpc", "offline_optimal"):
        total, cheap = ev_kwh(runs[name])
        assert total > 14 and cheap >= 0.99 * total, name
        assert runs[name].kpis["energy_cost"] < runs["uncontrolled"].kpis["energy_cost"], name
    # the LPs also move the battery's charging into the negative prices
    for name in ("mpc", "offline_optimal"):
        assert runs[name].kpis["objective_cost"] < runs["rule_based"].kpis["objective_cost"] / 10


def test_rl_environment_observes_and_is_rewarded_with_the_series(scenario: Path) -> None:
    from qubit_sim.rl.envs import SiteDispatchEnv

    env = SiteDispatchEnv(scenario=scenario, episode_length="1d", test_fraction=0.5)
    obs, info = env.reset(seed=0)
    horizon = env.horizon
    start = horizon.block_offset_step[info["block"]] * horizon.site.clock.step_s
    when = horizon.site.clock.start + pd.Timedelta(seconds=int(start))
    price, _ = expected_prices(pd.DatetimeIndex([when]))
    observed = obs[env.layout.names.index("price")] * horizon.price_scale
    assert observed == pytest.approx(price[0], rel=1e-6)
    assert horizon.price_scale == pytest.approx(np.abs(PRICE).max())
    _, _, _, _, step_info = env.step(np.zeros(env.action_space.shape))
    done = env.sim.recorder.frame()  # the steps of the first control period
    assert len(done) > 0
    buy, sell = expected_prices(done["time"])
    imports = done["grid_import_kw"].to_numpy()
    exports = done["grid_export_kw"].to_numpy()
    cost = ((imports * buy - exports * sell) * DT_H).sum()
    assert step_info["cost_energy"] == pytest.approx(cost, rel=1e-9, abs=1e-12)


# ------------------------------------------------------------------------------- settlement
def test_settlement_bills_one_series_line_per_period_and_reconciles(runs: dict) -> None:
    run = runs["mpc"]
    frame = run.timeseries()
    price, export_price = expected_prices(frame["time"])
    day = pd.DatetimeIndex(frame["time"]).tz_convert(TZ).strftime("%Y-%m-%d")
    lines = pd.read_parquet(run.out_dir / "settlement" / "bill_lines.parquet")
    for period in ("2025-06-02", "2025-06-03"):
        mask = np.asarray(day == period)
        imports = frame["grid_import_kw"].to_numpy()[mask] * DT_H
        exports = frame["grid_export_kw"].to_numpy()[mask] * DT_H
        got = lines[lines["period"] == period].set_index("line")
        assert list(got.index) == ["energy", "demand", "export", "total"]
        energy, export = got.loc["energy"], got.loc["export"]
        assert energy["rate"] == export["rate"] == PRICE_SERIES_RATE_NAME
        assert energy["quantity"] == pytest.approx(imports.sum(), rel=1e-12)
        assert energy["amount"] == pytest.approx((imports * price[mask]).sum(), rel=1e-12)
        assert energy["unit_price"] == pytest.approx(energy["amount"] / energy["quantity"])
        assert export["quantity"] == pytest.approx(exports.sum(), rel=1e-12)
        assert -export["amount"] == pytest.approx((exports * export_price[mask]).sum(), rel=1e-12)
        assert export["unit_price"] == pytest.approx(-export["amount"] / export["quantity"])
    section = run.manifest["settlement"]
    assert section["reconciliation"] == "pass"
    assert section["bill_total"] == pytest.approx(run.kpis["total_cost"], rel=1e-9, abs=1e-9)
    assert round(section["bill_total"], 2) == round(run.kpis["total_cost"], 2)
    assert verify_results(run.out_dir).ok
    recorded = json.loads((run.out_dir / "manifest.json").read_text())["tariff"]["price_series"]
    assert recorded == {
        "source": "prices.csv",
        "recorded_in": "timeseries.parquet",
        "export_prices": True,
    }


def test_settle_and_verify_on_the_command_line_per_week(
    runs: dict, key_dir: Path, tmp_path: Path
) -> None:
    import shutil

    folder = shutil.copytree(runs["offline_optimal"].out_dir, tmp_path / "run")
    cli = CliRunner()
    settled = cli.invoke(
        app, ["settle", str(folder), "--period", "week", "--key-dir", str(key_dir)]
    )
    assert settled.exit_code == 0, settled.output
    assert cli.invoke(app, ["verify", str(folder)]).exit_code == 0
    lines = pd.read_csv(folder / "settlement" / "bill_lines.csv")
    energy = lines[lines["line"] == "energy"]
    assert list(energy["rate"]) == [PRICE_SERIES_RATE_NAME]  # one ISO week
    kpis = runs["offline_optimal"].kpis
    assert energy["amount"].sum() == pytest.approx(kpis["energy_cost"], rel=1e-9, abs=1e-12)


def test_settlement_refuses_a_series_tariff_whose_prices_were_not_recorded(
    runs: dict, key_dir: Path, tmp_path: Path
) -> None:
    import shutil

    folder = shutil.copytree(runs["uncontrolled"].out_dir, tmp_path / "run")
    frame = pd.read_parquet(folder / "timeseries.parquet")
    frame.drop(columns="export_price_per_kwh").to_parquet(folder / "timeseries.parquet")
    with pytest.raises(qubit_sim.QubitSimError, match="lacks columns.*export_price_per_kwh"):
        settle_results(folder, key_dir=key_dir)


# ------------------------------------------------------------------------ the core pieces
def test_core_bill_and_rate_names_under_a_series() -> None:
    starts = pd.date_range("2025-01-01T00:00Z", periods=4, freq="h")
    series = PriceSeries.from_steps(starts, 3600, [0.1, -0.2, 0.3, 0.4], [0.01, 0.02, 0.03, 0.04])
    tariff = Tariff(price_series=series, demand_charge_per_kw=0.0)
    times = pd.date_range("2025-01-01T00:00Z", periods=16, freq="15min")
    site_p_kw = np.repeat([4.0, 8.0, -4.0, 2.0], 4)
    assert set(rate_names(tariff, times, TZ)) == {PRICE_SERIES_RATE_NAME}
    np.testing.assert_array_equal(
        energy_price_series(tariff, times, TZ), np.repeat([0.1, -0.2, 0.3, 0.4], 4)
    )
    np.testing.assert_array_equal(
        tariff.export_prices(times), np.repeat([0.01, 0.02, 0.03, 0.04], 4)
    )
    result = bill(tariff, site_p_kw, 900, times, TZ)
    assert [charge.name for charge in result.energy] == [PRICE_SERIES_RATE_NAME]
    assert result.energy_charge == pytest.approx(4 * 0.1 + 8 * -0.2 + 2 * 0.4)
    assert result.export_credit == pytest.approx(4 * 0.03)
    with pytest.raises(TariffError, match="one or the other"):
        Tariff(price_series=series, default_price_per_kwh=0.2)


@settings(max_examples=60, deadline=None)
@given(
    gaps=st.lists(st.integers(1, 7200), min_size=1, max_size=12),
    prices=st.lists(st.floats(-1.0, 1.0, allow_nan=False), min_size=13, max_size=13),
    offsets=st.lists(st.integers(0, 10**9), min_size=1, max_size=20),
)
def test_a_price_holds_from_its_row_until_the_next(
    gaps: list[int], prices: list[float], offsets: list[int]
) -> None:
    starts = np.concatenate([[1_750_000_000], 1_750_000_000 + np.cumsum(gaps)])
    values = np.asarray(prices[: len(starts)])
    end = int(starts[-1]) + 900
    series = PriceSeries(starts, values, end)
    wanted = starts[0] + np.asarray(offsets, dtype=np.int64) % (end - starts[0])
    times = pd.to_datetime(wanted, unit="s", utc=True)
    got = series.import_prices(times)
    for instant, price in zip(wanted, got, strict=True):
        last = max(i for i, start in enumerate(starts) if start <= instant)
        assert price == values[last]
    for outside in (starts[0] - 1, end):
        with pytest.raises(TariffError, match="covers .* but the scenario needs"):
            series.import_prices(pd.to_datetime([outside], unit="s", utc=True))


# ------------------------------------------------------------------------------ mistakes
def scenario_problem(folder: Path, **kwargs: object) -> str:
    path = write_site(folder, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(ScenarioError) as caught:
        build_site(qubit_sim.load_scenario(path))
    return str(caught.value)


def test_price_csv_with_energy_rates_or_default_rate_is_refused(tmp_path: Path) -> None:
    rates = (
        '  energy_rates:\n    - {name: flat, rate: 0.2, start_time: "00:00", end_time: "23:59"}\n'
    )
    with pytest.raises(ScenarioError, match="give energy_rates or price_csv, not both"):
        load_scenario_text(SCENARIO.format(tariff=TARIFF + rates, step="15min"))
    with pytest.raises(ScenarioError, match="default_rate has no meaning with price_csv"):
        load_scenario_text(SCENARIO.format(tariff=TARIFF + "  default_rate: 0.2\n", step="15min"))


def test_a_series_not_covering_the_run_names_the_range_needed(tmp_path: Path) -> None:
    message = scenario_problem(tmp_path, prices=price_table().iloc[:40])
    assert "tariff.price_csv" in message
    assert "covers 2025-06-01T22:00:00Z .. 2025-06-03T14:00:00Z" in message
    assert "needs 2025-06-01T22:00:00Z .. 2025-06-03T21:45:00Z" in message


def test_missing_or_non_numeric_prices_are_named_by_line(tmp_path: Path) -> None:
    table = price_table()
    table.loc[5, "price_per_kwh"] = np.nan
    message = scenario_problem(tmp_path / "empty", prices=table)
    assert "price_per_kwh is not a number at line 7 (the cell is empty)" in message
    table = price_table().astype({"export_price_per_kwh": object})
    table.loc[2, "export_price_per_kwh"] = "n/a"
    message = scenario_problem(tmp_path / "text", prices=table)
    assert "export_price_per_kwh is not a number at line 4" in message


def test_prices_in_currency_per_mwh_are_refused_as_a_unit_mistake(tmp_path: Path) -> None:
    message = scenario_problem(tmp_path, prices=price_table(price_per_kwh=PRICE * 1000))
    assert "EUR/MWh" in message and "divide by 1000" in message


def test_a_price_change_inside_a_step_is_refused(tmp_path: Path) -> None:
    table = price_table()
    table["time"] = (HOURS + pd.Timedelta(minutes=30)).strftime("%Y-%m-%d %H:%M")
    table = pd.concat([table.iloc[:1].assign(time="2025-06-01 23:30"), table])
    message = scenario_problem(tmp_path, prices=table, step="1h")
    assert "changes price at 2025-06-01T22:30:00Z, inside a simulation step of 3600 s" in message
    assert "(e.g. 1800 s)" in message


def test_other_file_mistakes(tmp_path: Path) -> None:
    renamed = price_table().rename(columns={"price_per_kwh": "price_per_mwh"})
    message = scenario_problem(tmp_path / "column", prices=renamed)
    assert "lacks column(s) price_per_kwh" in message and "price_per_mwh" in message
    backwards = price_table().iloc[::-1]
    message = scenario_problem(tmp_path / "order", prices=backwards)
    assert "times must increase strictly" in message
    one_row = "time,price_per_kwh\n2025-06-02 00:00,0.3\n"
    assert "it needs at least two" in scenario_problem(tmp_path / "one", prices=one_row)


def test_semicolon_files_with_decimal_commas_and_dst_repeats(tmp_path: Path) -> None:
    path = tmp_path / "spreadsheet.csv"
    path.write_text("time;price_per_kwh\n2025-06-02 00:00;0,215\n2025-06-02 01:00;-0,01\n")
    series = read_price_csv(path, TZ, "EUR")
    np.testing.assert_array_equal(series.price_per_kwh, [0.215, -0.01])
    assert series.end_s - series.start_s[-1] == 3600
    autumn = tmp_path / "autumn.csv"
    autumn.write_text("time,price_per_kwh\n2025-10-26 01:00,0.2\n2025-10-26 02:00,0.2\n")
    with pytest.raises(TariffError, match="line 3: local time 2025-10-26 02:00:00 occurs twice"):
        read_price_csv(autumn, TZ, "EUR")


def test_a_missing_price_file_is_found_by_the_loader(tmp_path: Path) -> None:
    path = tmp_path / "spot.yaml"
    path.write_text(SCENARIO.format(tariff=TARIFF, step="15min"))
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    assert "tariff.price_csv" in str(caught.value)
    assert f"file not found: prices.csv (looked at {tmp_path / 'prices.csv'})" in str(caught.value)
