"""Result plots: files written, valid PNGs, missing columns skipped, long runs bucketed."""

from __future__ import annotations

import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qubit_sim.core import plots as plots_module
from qubit_sim.core.plots import PlotError, bucket_seconds, downsample, write_plots
from qubit_sim.errors import QubitSimError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
ALL_PLOTS = ["site_power.png", "battery_soc.png", "chargers.png", "voltage.png"]


def results(days: float = 2, step_s: int = 300, n_chargers: int = 3, seed: int = 0) -> pd.DataFrame:
    """A plausible results table: daily load, PV, EVs at chargers, a battery, feeder voltages."""
    rng = np.random.default_rng(seed)
    n = int(days * 86400 // step_s)
    time = pd.date_range("2024-06-10T00:00Z", periods=n, freq=f"{step_s}s")
    hour = (time.hour + time.minute / 60).to_numpy()
    load = 30 + 15 * np.exp(-(((hour - 12) / 4) ** 2)) + rng.normal(0, 2, n)
    pv = -np.clip(60 * np.sin((hour - 5) / 14 * np.pi), 0, None) * ((hour > 5) & (hour < 19))
    connected = np.zeros((n_chargers, n))
    for charger in range(n_chargers):
        connected[charger] = ((hour > 7 + charger) & (hour < 15 + charger)).astype(float)
    charger_kw = connected * 11.0
    battery = np.where((hour > 10) & (hour < 14), 20.0, np.where(hour > 17, -25.0, 0.0))
    site = load + pv + charger_kw.sum(0) + battery
    vm_site = 1.0 - 0.0004 * site
    columns = {
        "time": time,
        "site_p_kw": site,
        "load_kw": load,
        "pv_kw": pv,
        "ev_p_kw": charger_kw.sum(0),
        "battery_p_kw": battery,
        "battery_soc": np.clip(0.5 + np.cumsum(battery) * step_s / 3600 / 200, 0.1, 0.9),
        "ev_connected": connected.sum(0),
        "grid_vm_min_pu": vm_site - 0.02,
        "grid_vm_max_pu": vm_site + 0.01,
        "grid_vm_site_pu": vm_site,
        "grid_line_loading_max_pct": 40 + 0.5 * site,
        "grid_trafo_loading_max_pct": 30 + 0.3 * site,
        "price_per_kwh": np.where((hour >= 7) & (hour < 23), 0.25, 0.08),
    }
    for charger in range(n_chargers):
        columns[f"charger_cp{charger + 1}_p_kw"] = charger_kw[charger]
        columns[f"charger_cp{charger + 1}_connected"] = connected[charger]
    return pd.DataFrame(columns)


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from the PNG header, after checking the signature and IHDR chunk."""
    head = path.read_bytes()[:24]
    assert head[:8] == PNG_SIGNATURE
    assert head[12:16] == b"IHDR"
    return struct.unpack(">II", head[16:24])


def assert_sensible_png(path: Path) -> None:
    import matplotlib.image

    width, height = png_size(path)
    assert width == 12 * 110  # 12 in at 110 dpi
    assert 300 <= height <= 1000
    assert 10_000 < path.stat().st_size < 3_000_000
    pixels = matplotlib.image.imread(path)[..., :3]
    # drawn content: many distinct colours, and not all background
    rgb = np.round(pixels * 255).astype(np.uint32)
    assert len(np.unique(rgb[..., 0] << 16 | rgb[..., 1] << 8 | rgb[..., 2])) > 50
    assert (pixels < 0.9).any(axis=-1).mean() > 0.02


@pytest.fixture(scope="module")
def full_plots(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    out = tmp_path_factory.mktemp("plots") / "nested"
    return write_plots(
        results(),
        out,
        "depot",
        tz="Europe/Amsterdam",
        import_limit_kw=100.0,
        export_limit_kw=40.0,
        voltage_limits_pu=(0.9, 1.1),
    )


def test_every_plot_is_written_as_a_valid_png(full_plots: list[Path]) -> None:
    assert [path.name for path in full_plots] == ALL_PLOTS
    assert sorted(p.name for p in full_plots[0].parent.iterdir()) == sorted(ALL_PLOTS)
    for path in full_plots:
        assert_sensible_png(path)


@pytest.mark.parametrize(
    ("columns", "expected"),
    [
        (["site_p_kw"], ["site_power.png"]),
        (["pv_kw", "battery_soc"], ["site_power.png", "battery_soc.png"]),
        (["charger_cp1_connected", "charger_cp2_connected"], ["chargers.png"]),
        (["ev_connected"], ["chargers.png"]),
        (["grid_vm_site_pu"], ["voltage.png"]),
        (
            ["load_kw", "price_per_kwh", "grid_vm_min_pu", "grid_vm_max_pu"],
            ["site_power.png", "voltage.png"],
        ),
        (["price_per_kwh", "grid_trafo_loading_max_pct", "charger_cp1_p_kw_extra"], []),
        ([], []),
    ],
)
def test_missing_columns_skip_their_plots(
    tmp_path: Path, columns: list[str], expected: list[str]
) -> None:
    table = results(days=0.5)
    table = table.assign(charger_cp1_p_kw_extra=1.0)[["time", *columns]]
    written = write_plots(table, tmp_path, "partial")
    assert [path.name for path in written] == expected
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(expected)
    for path in written:
        png_size(path)


def test_time_index_and_utc_axis(tmp_path: Path) -> None:
    table = results(days=0.25)[["time", "battery_soc"]].set_index("time")
    written = write_plots(table, tmp_path, "index")
    assert [path.name for path in written] == ["battery_soc.png"]
    assert_sensible_png(written[0])


def test_a_year_at_one_minute_is_bucketed(tmp_path: Path) -> None:
    n = 366 * 1440
    time = pd.date_range("2024-01-01T00:00Z", periods=n, freq="1min")
    minute = np.arange(n)
    site = 40 + 30 * np.sin(2 * np.pi * minute / 1440) + 20 * np.sin(2 * np.pi * minute / n)
    site[123_456] = 500.0  # one minute spike must survive in the min-max band
    table = pd.DataFrame(
        {"time": time, "site_p_kw": site, "grid_vm_min_pu": 0.97 - site * 1e-4, "ev_connected": 1.0}
    )
    written = write_plots(table, tmp_path, "year", tz="Europe/Amsterdam", import_limit_kw=450)
    assert [path.name for path in written] == ["site_power.png", "chargers.png", "voltage.png"]
    for path in written:
        png_size(path)
    bucket_s = bucket_seconds(366 * 86400, 60, 2000)
    assert bucket_s == 86400
    buckets = downsample(table, bucket_s, align_offset_s=3600, envelope=("site_p_kw",))
    assert len(buckets) == 367  # local days: the last UTC hour falls on 1 Jan 2025 local
    assert buckets["site_p_kw_hi"].max() == 500.0
    assert buckets["grid_vm_min_pu"].min() == pytest.approx(0.97 - 500.0 * 1e-4)


def test_bad_input(tmp_path: Path) -> None:
    table = results(days=0.1)
    with pytest.raises(PlotError, match="no 'time' column"):
        write_plots(table.drop(columns="time"), tmp_path, "x")
    with pytest.raises(PlotError, match="unknown time zone 'Mars/Olympus'"):
        write_plots(table, tmp_path, "x", tz="Mars/Olympus")
    with pytest.raises(QubitSimError, match="empty"):
        write_plots(table.iloc[:0], tmp_path, "x")
    with pytest.raises(PlotError, match="must be positive"):
        bucket_seconds(86400, 60, 0)
    assert list(tmp_path.iterdir()) == []


# --- bucketing ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("span_s", "step_s", "expected"),
    [
        (2 * 86400, 300, 300),  # 576 points fit
        (3 * 86400, 60, 300),
        (30 * 86400, 60, 1800),
        (100 * 86400, 900, 7200),
        (200 * 86400, 60, 86400),  # 2 h .. 1 day would beat against the daily cycle
        (366 * 86400, 3600, 86400),
        (5000 * 7 * 86400, 60, 3 * 7 * 86400),
        (86400 * 10, 7, 434),  # a step dividing none of the round sizes
    ],
)
def test_bucket_seconds(span_s: int, step_s: int, expected: int) -> None:
    assert bucket_seconds(span_s, step_s, 2000) == expected


def test_downsample_aligns_days_to_local_midnight_and_ignores_nan() -> None:
    time = pd.date_range("2024-01-01T20:00Z", periods=10, freq="1h")  # 21:00 .. 06:00 local (+1)
    values = np.arange(10.0)
    values[4] = np.nan
    table = pd.DataFrame({"time": time, "p_kw": values, "grid_vm_max_pu": values})
    out = downsample(table, 86400, align_offset_s=3600)
    assert list(out["time"]) == [
        pd.Timestamp("2023-12-31T23:00Z"),
        pd.Timestamp("2024-01-01T23:00Z"),
    ]
    np.testing.assert_allclose(out["p_kw"], [1.0, (3 + 5 + 6 + 7 + 8 + 9) / 6])
    np.testing.assert_allclose(out["grid_vm_max_pu"], [2.0, 9.0])
    all_nan = downsample(table.assign(p_kw=np.nan), 86400)
    assert all_nan["p_kw"].isna().all()


@settings(max_examples=40, deadline=None)
@given(
    values=st.lists(st.floats(-1e3, 1e3, allow_nan=False), min_size=1, max_size=300),
    bucket_steps=st.integers(1, 50),
    offset_steps=st.integers(0, 49),
)
def test_downsample_keeps_energy_and_extremes(values, bucket_steps, offset_steps) -> None:
    step_s = 60
    time = pd.date_range("2024-03-01T00:00Z", periods=len(values), freq=f"{step_s}s")
    table = pd.DataFrame(
        {"time": time, "site_p_kw": values, "grid_vm_min_pu": values, "grid_vm_max_pu": values}
    )
    out = downsample(
        table, bucket_steps * step_s, align_offset_s=offset_steps * step_s, envelope=("site_p_kw",)
    )
    counts = (
        pd.Series(1, time)
        .groupby((time.as_unit("s").asi8 + offset_steps * step_s) // (bucket_steps * step_s))
        .size()
    )
    assert (out["site_p_kw"].to_numpy() * counts.to_numpy()).sum() == pytest.approx(
        sum(values), abs=1e-6
    )
    assert out["grid_vm_min_pu"].min() == min(values)
    assert out["grid_vm_max_pu"].max() == max(values)
    assert np.all(out["site_p_kw_lo"] <= out["site_p_kw"] + 1e-9)
    assert np.all(out["site_p_kw"] <= out["site_p_kw_hi"] + 1e-9)
    assert out["time"].is_monotonic_increasing


def test_import_is_cheap_and_pyplot_is_never_used(tmp_path: Path) -> None:
    code = (
        "import sys, pandas as pd\n"
        "import qubit_sim.core.plots as plots\n"
        "print('matplotlib' in sys.modules)\n"
        "table = pd.DataFrame({'time': pd.date_range('2024-01-01', periods=3, freq='h', tz='UTC'),"
        " 'site_p_kw': [1.0, 2.0, 3.0]})\n"
        f"print(len(plots.write_plots(table, {str(tmp_path)!r}, 't')))\n"
        "print('matplotlib.pyplot' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.split() == ["False", "1", "False"]


def test_module_exports_are_pinned() -> None:
    assert sorted(plots_module.__all__) == [
        "PlotError",
        "bucket_seconds",
        "downsample",
        "write_plots",
    ]


def test_a_column_without_any_value_draws_no_empty_chart(tmp_path: Path) -> None:
    # A site without a battery records battery_soc as NaN in every row.
    table = results(days=0.5)[["time", "site_p_kw", "battery_soc"]].assign(battery_soc=np.nan)
    written = write_plots(table, tmp_path, "no battery")
    assert [path.name for path in written] == ["site_power.png"]
    table["battery_soc"] = np.where(np.arange(len(table)) == 3, 0.5, np.nan)  # one value is data
    written = write_plots(table, tmp_path / "one", "one value")
    assert [path.name for path in written] == ["site_power.png", "battery_soc.png"]


def test_the_loading_panel_draws_the_scenario_loading_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from matplotlib.axes import Axes

    drawn: list[tuple[float, str]] = []
    real = Axes.axhline

    def spy(self: Axes, y: float = 0, *args: object, **kwargs: object) -> object:
        drawn.append((y, str(kwargs.get("label", ""))))
        return real(self, y, *args, **kwargs)

    monkeypatch.setattr(Axes, "axhline", spy)
    write_plots(results(days=0.5), tmp_path, "limit", loading_limit_pct=60.0)
    assert (60.0, "limit 60 %") in drawn
    assert not [y for y, label in drawn if label.startswith("rating")]
