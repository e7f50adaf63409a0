"""PV plant AC output with pvlib's PVWatts model chain.

:func:`pv_ac_power_kw` returns generation as a positive number [kW AC]; the site bus sees it with
a negative sign (load convention). Weather comes from :func:`tmy_weather` (typical years shipped
with pvlib) or :func:`weather_from_csv`; see :mod:`qubit_sim.physics.weather` for the frame format.

Weather rows are averages over intervals (hourly for TMY). They are placed at their interval
centres and linearly interpolated onto the requested times; the sun's position is computed at
those times, and output is zero whenever the sun is below the horizon. Sub-5-minute requests are
evaluated on a 5-minute grid and interpolated, which keeps a year of 1-minute steps to about a
second; interpolating hourly weather any finer adds no information.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from qubit_sim.core.csv_input import gap_needed
from qubit_sim.errors import QubitSimError
from qubit_sim.physics.weather import (
    WEATHER_COLUMNS,
    available_weather,
    decompose_ghi,
    interval_centre_offset,
    map_typical_year,
    tmy_weather,
    weather_from_csv,
)

__all__ = [
    "SUPPORTED_PV_MODELS",
    "available_weather",
    "pv_ac_power_kw",
    "tmy_weather",
    "weather_from_csv",
]

SUPPORTED_PV_MODELS = ("pvwatts",)

_GRID_S = 300
_NS = 1_000_000_000
# PVWatts v5 defaults: nominal inverter efficiency and DC temperature coefficient [1/°C].
_ETA_INV_NOM = 0.96
_GAMMA_PDC = -0.0047


def _as_utc(times: pd.DatetimeIndex) -> pd.DatetimeIndex:
    index = pd.DatetimeIndex(times).as_unit("ns")
    return index.tz_localize("UTC") if index.tz is None else index.tz_convert("UTC")


def _typical_on_years(weather: pd.DataFrame, first_year: int, last_year: int) -> pd.DataFrame:
    """Repeat a typical-year frame over local calendar years ``first_year..last_year``."""
    offset = pd.Timedelta(hours=float(weather.attrs.get("tz_offset_h", 0.0)))
    local = weather.set_axis(weather.index.tz_convert("UTC").tz_localize(None) + offset)
    parts = [map_typical_year(local, year) for year in range(first_year, last_year + 1)]
    frame = pd.concat(parts).sort_index()
    frame = frame[~frame.index.duplicated(keep="first")]
    frame.index = (frame.index - offset).tz_localize("UTC")
    frame.attrs = dict(weather.attrs)
    return frame


def _weather_at(
    weather: pd.DataFrame,
    at_ns: np.ndarray,
    latitude: float,
    longitude: float,
    wanted_ns: tuple[int, int],
) -> pd.DataFrame:
    """Weather interpolated onto instants ``at_ns`` (int64 ns since epoch, UTC).

    ``wanted_ns`` is the span the caller needs; it must lie within the weather's intervals.
    """
    missing = [c for c in ("ghi",) if c not in weather.columns]
    if missing or not isinstance(weather.index, pd.DatetimeIndex) or weather.empty:
        raise QubitSimError(
            "weather must be a non-empty DataFrame on a DatetimeIndex with at least a 'ghi' "
            f"column (got columns {list(weather.columns)}); build it with tmy_weather() or "
            "weather_from_csv()"
        )
    frame = weather.set_axis(_as_utc(weather.index))
    frame.attrs = dict(weather.attrs)
    if frame.attrs.get("typical_year", False):
        offset = pd.Timedelta(hours=float(frame.attrs.get("tz_offset_h", 0.0)))
        lo = (pd.Timestamp(int(at_ns.min()), tz="UTC") + offset).year - 1
        hi = (pd.Timestamp(int(at_ns.max()), tz="UTC") + offset).year + 1
        frame = _typical_on_years(frame, lo, hi)
    centres = frame.index + interval_centre_offset(frame.attrs)
    centre_ns = centres.as_unit("ns").asi8
    half_ns = int(frame.attrs.get("interval_s", 0)) * _NS // 2
    if wanted_ns[0] < centre_ns[0] - half_ns or wanted_ns[1] > centre_ns[-1] + half_ns:
        raise QubitSimError(
            f"weather covers {centres[0]} .. {centres[-1]} but PV output is wanted for "
            f"{pd.Timestamp(wanted_ns[0], tz='UTC')} .. {pd.Timestamp(wanted_ns[1], tz='UTC')}; "
            "supply weather for the whole scenario "
            "or mark a typical year with weather.attrs['typical_year'] = True"
        )
    gap = None if frame.attrs.get("typical_year", False) else gap_needed(centre_ns, at_ns)
    if gap is not None:
        before, after = (pd.Timestamp(ns, tz="UTC") for ns in gap)
        raise QubitSimError(
            f"weather has no rows between {before} and {after} (interval centres), more than "
            "twice its usual spacing, and PV output is wanted in that gap; write the missing "
            "rows (weather is interpolated only between neighbouring rows)"
        )
    if "dni" not in frame.columns or "dhi" not in frame.columns:
        dni, dhi = decompose_ghi(centres, frame["ghi"].to_numpy(float), latitude, longitude)
        frame = frame.assign(dni=dni, dhi=dhi)
    x = centre_ns.astype(np.float64)
    at = at_ns.astype(np.float64)
    columns = {}
    for column in WEATHER_COLUMNS:
        if column in frame.columns:
            columns[column] = np.interp(at, x, frame[column].to_numpy(np.float64))
    return pd.DataFrame(columns, index=pd.DatetimeIndex(at_ns.astype("datetime64[ns]"), tz="UTC"))


def _model_chain(
    latitude: float,
    longitude: float,
    altitude: float,
    kwp: float,
    tilt_deg: float,
    azimuth_deg: float,
    inverter_kw: float,
    losses_pct: float,
):
    from pvlib import location, pvsystem, temperature
    from pvlib.modelchain import ModelChain

    array = pvsystem.Array(
        mount=pvsystem.FixedMount(surface_tilt=tilt_deg, surface_azimuth=azimuth_deg),
        module_parameters={"pdc0": kwp * 1000.0, "gamma_pdc": _GAMMA_PDC},
        temperature_model_parameters=temperature.TEMPERATURE_MODEL_PARAMETERS["sapm"][
            "open_rack_glass_polymer"
        ],
    )
    # All system losses go into one PVWatts category so that the total equals losses_pct.
    losses = dict.fromkeys(
        ("soiling", "shading", "snow", "mismatch", "wiring", "connections", "lid"), 0.0
    )
    losses.update(nameplate_rating=0.0, age=0.0, availability=0.0, soiling=losses_pct)
    system = pvsystem.PVSystem(
        arrays=[array],
        inverter_parameters={"pdc0": inverter_kw * 1000.0 / _ETA_INV_NOM},
        losses_parameters=losses,
    )
    site = location.Location(latitude, longitude, tz="UTC", altitude=altitude)
    return ModelChain.with_pvwatts(system, site)


def pv_ac_power_kw(
    times_utc: pd.DatetimeIndex,
    weather: pd.DataFrame,
    latitude: float,
    longitude: float,
    kwp: float,
    tilt_deg: float,
    azimuth_deg: float,
    inverter_kw: float | None = None,
    losses_pct: float = 14.0,
    model: str = "pvwatts",
    interval_s: float | None = None,
) -> np.ndarray:
    """AC output of a fixed-tilt PV plant at each of ``times_utc`` [kW], >= 0.

    PVWatts DC model (temperature coefficient -0.47 %/°C), cell temperature from the SAPM model
    (open rack, glass/polymer), Perez transposition, PVWatts inverter (nominal efficiency 0.96)
    and a flat system loss of ``losses_pct``.

    Args:
        times_utc: Instants to evaluate (tz-aware, or naive meaning UTC); any spacing, any span
            the weather covers. A typical-year frame (``attrs["typical_year"]``) covers every
            year: each calendar year of the request gets the same typical year.
        weather: Weather frame from :func:`tmy_weather` or :func:`weather_from_csv`.
        latitude: Site latitude [deg north].
        longitude: Site longitude [deg east].
        kwp: DC nameplate [kWp].
        tilt_deg: Module tilt from horizontal [deg].
        azimuth_deg: Module azimuth [deg clockwise from north; 180 = south].
        inverter_kw: AC rating of the inverter [kW]; ``None`` sizes it to ``kwp`` (no clipping).
        losses_pct: Total DC system losses [%] (PVWatts default 14).
        model: Only ``"pvwatts"``.
        interval_s: If given, ``times_utc`` are starts of intervals of this length [s] and the
            result is the output at each interval's centre, approximating its mean over the
            interval (what a step held for ``interval_s`` should use).

    Returns:
        AC power [kW], one value per time, 0 at night.

    Raises:
        QubitSimError: unsupported model, invalid plant parameters, or weather that does not
            cover the requested times.
    """
    if model not in SUPPORTED_PV_MODELS:
        raise QubitSimError(
            f"PV model {model!r} is not supported; supported: {', '.join(SUPPORTED_PV_MODELS)}"
        )
    checks = [
        (kwp > 0, f"kwp must be > 0, got {kwp}"),
        (0 <= tilt_deg <= 90, f"tilt_deg must be within 0..90, got {tilt_deg}"),
        (0 <= azimuth_deg <= 360, f"azimuth_deg must be within 0..360, got {azimuth_deg}"),
        (0 <= losses_pct < 100, f"losses_pct must be within 0..100, got {losses_pct}"),
        (inverter_kw is None or inverter_kw > 0, f"inverter_kw must be > 0, got {inverter_kw}"),
        (-90 <= latitude <= 90, f"latitude must be within -90..90, got {latitude}"),
        (-180 <= longitude <= 180, f"longitude must be within -180..180, got {longitude}"),
    ]
    for ok, message in checks:
        if not ok:
            raise QubitSimError(message)
    times = _as_utc(times_utc)
    if len(times) == 0:
        return np.zeros(0)
    at_ns = times.asi8.copy()
    if interval_s is not None:
        at_ns += int(round(interval_s * _NS / 2))
    grid_ns = at_ns
    if len(at_ns) > 1 and np.median(np.diff(at_ns)) < _GRID_S * _NS:
        step = _GRID_S * _NS
        grid_ns = np.arange(at_ns.min() // step * step, at_ns.max() + 2 * step, step)

    wanted = (int(at_ns.min()), int(at_ns.max()))
    frame = _weather_at(weather, grid_ns, latitude, longitude, wanted)
    chain = _model_chain(
        latitude,
        longitude,
        float(weather.attrs.get("altitude", 0.0)),
        float(kwp),
        float(tilt_deg),
        float(azimuth_deg),
        float(kwp if inverter_kw is None else inverter_kw),
        float(losses_pct),
    )
    chain.run_model(frame)
    ac_kw = np.nan_to_num(np.asarray(chain.results.ac, dtype=float) / 1000.0, nan=0.0)
    sun_down = chain.results.solar_position["apparent_zenith"].to_numpy() >= 90.0
    ac_kw = np.where(sun_down, 0.0, np.maximum(ac_kw, 0.0))
    if grid_ns is at_ns:
        return ac_kw
    return np.interp(at_ns.astype(np.float64), grid_ns.astype(np.float64), ac_kw)
