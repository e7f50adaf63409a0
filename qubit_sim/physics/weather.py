"""Weather for the PV model: typical meteorological years shipped with pvlib, and user CSV files.

A weather frame is a :class:`pandas.DataFrame` with columns ``ghi, dni, dhi`` [W/m²],
``temp_air`` [°C] and ``wind_speed`` [m/s], indexed by a tz-aware UTC
:class:`pandas.DatetimeIndex`. Its ``attrs`` say how to read the index:

* ``interval_s`` — length of the interval each row describes [s];
* ``label`` — ``"start"``, ``"center"`` or ``"end"``: which instant of the interval the index
  names (hourly TMY rows hold averages over the hour; they are labelled ``"start"`` here);
* ``typical_year`` — ``True`` when the rows describe a typical year that may be mapped onto any
  calendar year (``tz_offset_h`` then gives the fixed local standard-time offset [h] whose
  calendar the typical year follows);
* ``latitude``, ``longitude``, ``altitude``, ``name`` — site metadata, when known.
"""

from __future__ import annotations

import difflib
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from qubit_sim.core.csv_input import CsvTable, line_list, read_csv_table
from qubit_sim.errors import QubitSimError

__all__ = [
    "WEATHER_COLUMNS",
    "available_weather",
    "decompose_ghi",
    "interval_centre_offset",
    "map_typical_year",
    "relocate_weather",
    "tmy_weather",
    "weather_from_csv",
]

WEATHER_COLUMNS = ("ghi", "dni", "dhi", "temp_air", "wind_speed")

# Used when a CSV omits them: pvlib's own ModelChain defaults are 20 °C and 0 m/s; 1 m/s is a
# gentler assumption for cell cooling and is what PVWatts uses for missing wind data.
_DEFAULT_TEMP_AIR_C = 20.0
_DEFAULT_WIND_SPEED_M_S = 1.0

_LABELS = ("start", "center", "end")

# Unit checks: bounds no honest file crosses, so that only a unit mistake trips them. The solar
# constant is 1,361 W/m²; cloud enhancement lifts short-interval ground measurements above clear
# sky, yet far below 2,000 W/m². GHI x 1000 (mW/m²) exceeds it at any daylight row.
_IRRADIANCE_MAX_W_M2 = 2000.0
# A sun 20° high gives ~250 W/m² under a clear sky and dense overcast still lets more than 5 W/m²
# of it through, while a file in kW/m² never exceeds 1.5.
_GHI_DAYLIGHT_MIN_W_M2 = 5.0
_SUN_UP_DEG = 20.0
# Air temperature records are 56.7 °C and -89.2 °C; kelvin values start near 200.
_TEMP_AIR_MAX_C = 70.0
_TEMP_AIR_MIN_C = -90.0


def _pvlib_data_dir() -> Path:
    import pvlib

    return Path(pvlib.__file__).parent / "data"


def _shipped_files() -> dict[str, Path]:
    files = {}
    for path in sorted(_pvlib_data_dir().iterdir()):
        if path.suffix.lower() == ".tm2" or (
            path.suffix.lower() == ".csv" and path.stem.upper().endswith(("TY", "TYA"))
        ):
            files[path.stem] = path
    return files


def available_weather() -> list[str]:
    """Names of the typical-meteorological-year files shipped with pvlib (TMY3 and TMY2)."""
    return sorted(_shipped_files())


@lru_cache(maxsize=8)
def _read_typical(name: str) -> tuple[pd.DataFrame, dict]:
    """Rows of a TMY file on a tz-naive local-standard-time index of 1990, interval start."""
    import pvlib

    files = _shipped_files()
    if name not in files:
        close = difflib.get_close_matches(name, files, n=3, cutoff=0.4)
        hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else "."
        raise QubitSimError(
            f"unknown weather file {name!r}{hint} Shipped with pvlib: {', '.join(sorted(files))}"
        )
    path = files[name]
    if path.suffix.lower() == ".tm2":
        raw, meta = pvlib.iotools.read_tmy2(str(path))
        # TMY2 keeps the file's units: temperature in 0.1 °C, wind speed in 0.1 m/s. pvlib already
        # labels TMY2 rows with the start of their hour.
        frame = pd.DataFrame(
            {
                "ghi": raw["GHI"].to_numpy(float),
                "dni": raw["DNI"].to_numpy(float),
                "dhi": raw["DHI"].to_numpy(float),
                "temp_air": raw["DryBulb"].to_numpy(float) / 10.0,
                "wind_speed": raw["Wspd"].to_numpy(float) / 10.0,
            }
        )
        stamps = raw.index.tz_localize(None)
        local = pd.DatetimeIndex(
            [ts.replace(year=1990) for ts in stamps.to_pydatetime()], name="time"
        )
    else:
        raw, meta = pvlib.iotools.read_tmy3(str(path), coerce_year=1990, map_variables=True)
        frame = raw[list(WEATHER_COLUMNS)].astype(float).reset_index(drop=True)
        # TMY3 labels each hour by its end, so the last hour of the year reads "24:00" and lands
        # on 1 January of the next year; relabelling by interval start keeps one calendar year.
        local = raw.index.tz_localize(None) - pd.Timedelta(hours=1)
    frame.index = pd.DatetimeIndex(local, name="time")
    frame = frame.sort_index()
    info = {
        "name": name,
        "latitude": float(meta["latitude"]),
        "longitude": float(meta["longitude"]),
        "altitude": float(meta.get("altitude", 0.0)),
        "tz_offset_h": float(meta["TZ"]),
    }
    return frame, info


def map_typical_year(local: pd.DataFrame, year: int) -> pd.DataFrame:
    """Move a typical year (tz-naive local index) onto calendar ``year``.

    Month, day and time of day are kept. A source without 29 February gets one for a leap
    ``year`` by repeating 28 February; a source with 29 February drops it for a common year.
    Rows of the source's following year (early hours of 1 January after a time-zone shift) move to
    ``year + 1`` alike.
    """
    index = pd.DatetimeIndex(local.index)
    base_year = int(np.bincount(index.year - index.year.min()).argmax() + index.year.min())
    years = index.year - base_year + year
    leap_day = (index.month == 2) & (index.day == 29)
    target_leap = (years % 4 == 0) & ((years % 100 != 0) | (years % 400 == 0))
    keep = ~leap_day | target_leap
    frame = local[keep]
    index, years = index[keep], years[keep]
    time_of_day = index - index.normalize()
    days = pd.to_datetime(
        {"year": years, "month": index.month, "day": index.day}, errors="raise"
    ).to_numpy()
    moved = frame.set_axis(pd.DatetimeIndex(days + time_of_day.to_numpy(), name="time"))
    feb28 = (index.month == 2) & (index.day == 28) & np.asarray(target_leap[keep])
    has_feb29 = (
        pd.Series((moved.index.month == 2) & (moved.index.day == 29), index=np.asarray(years))
        .groupby(level=0)
        .any()
    )
    fill = feb28 & ~has_feb29.reindex(np.asarray(years)).to_numpy()
    if fill.any():
        extra = moved[fill].copy()
        extra.index = extra.index + pd.Timedelta(days=1)
        moved = pd.concat([moved, extra]).sort_index()
    return moved


def tmy_weather(name: str = "723170TYA", year: int = 2021) -> pd.DataFrame:
    """A typical meteorological year shipped with pvlib, placed on calendar ``year``.

    Rows are hourly averages labelled by the start of their hour, in UTC. The TMY calendar is
    local standard time (fixed offset ``attrs["tz_offset_h"]``), so the frame covers the local
    year ``year``, i.e. a few hours of the neighbouring UTC year at one end.

    Args:
        name: File name without extension, one of :func:`available_weather` (default: TMY3
            Greensboro, NC).
        year: Calendar year to place the typical year on (29 February is repeated from the 28th
            in leap years).

    Returns:
        Weather frame (see module doc) with ``attrs`` ``latitude``, ``longitude``, ``altitude``,
        ``tz_offset_h``, ``name``, ``interval_s=3600``, ``label="start"``, ``typical_year=True``.

    Raises:
        QubitSimError: unknown ``name`` (with close matches).
    """
    local, info = _read_typical(name)
    frame = map_typical_year(local, int(year))
    offset = pd.Timedelta(hours=info["tz_offset_h"])
    frame.index = (frame.index - offset).tz_localize("UTC")
    frame.attrs.update(info, interval_s=3600, label="start", typical_year=True)
    return frame


def decompose_ghi(
    times_utc: pd.DatetimeIndex, ghi: np.ndarray, latitude: float, longitude: float
) -> tuple[np.ndarray, np.ndarray]:
    """Split global horizontal irradiance into DNI and DHI [W/m²] with the Erbs model.

    ``times_utc`` should be the instants the values represent (interval centres for averages).
    """
    import pvlib

    position = pvlib.solarposition.get_solarposition(times_utc, latitude, longitude)
    parts = pvlib.irradiance.erbs(ghi, position["zenith"].to_numpy(), times_utc)
    return np.asarray(parts["dni"], dtype=float), np.asarray(parts["dhi"], dtype=float)


def weather_from_csv(
    path: str | Path,
    latitude: float | None = None,
    longitude: float | None = None,
    label: str = "center",
    tz: str | None = None,
) -> pd.DataFrame:
    """Read measured or forecast weather from a CSV file.

    Columns: ``time``, ``ghi`` [W/m²], and optionally ``dni``, ``dhi`` [W/m²], ``temp_air`` [°C]
    (default 20), ``wind_speed`` [m/s] (default 1), read by the rules of
    :mod:`qubit_sim.core.csv_input`: times with an offset (``Z``, ``+02:00``) are used as
    written, times without one are local time of ``tz`` (``None`` refuses them). Without
    ``dni``/``dhi`` they are decomposed from ``ghi`` with the Erbs model, here when
    ``latitude``/``longitude`` are given, otherwise later by the PV model, which knows the site.
    Small negative irradiance (sensor offsets at night) is clipped to 0.

    Values in a wrong unit are refused: irradiance above 2,000 W/m², air temperature above 70 °C
    or below -90 °C, and (with a location) ``ghi`` that never reaches 5 W/m² although the sun
    stands 20° or more above the horizon at some row.

    Args:
        path: CSV file.
        latitude: Site latitude [deg], needed here to decompose GHI and to check its unit.
        longitude: Site longitude [deg], idem.
        label: Which instant of each row's interval ``time`` names: ``"start"``, ``"center"``
            (also for instantaneous samples) or ``"end"``.
        tz: IANA zone of times written without an offset.

    Raises:
        QubitSimError: unreadable file, missing columns, unparsable, non-existent, ambiguous or
            non-increasing times, non-numeric or implausible values (with line numbers), or a
            bad ``label``.
    """
    if label not in _LABELS:
        raise QubitSimError(f"label {label!r} is not one of {', '.join(_LABELS)}")
    table = read_csv_table(path, "weather CSV")
    source = table.path
    table.require(
        {"time": "", "ghi": "W/m²"},
        {"dni": "W/m²", "dhi": "W/m²", "temp_air": "°C", "wind_speed": "m/s"},
    )
    if table.has("dni") != table.has("dhi"):
        raise QubitSimError(
            f"weather CSV {source} has only one of dni/dhi; give both or neither (then they are "
            "decomposed from ghi)"
        )
    times = table.times("time", tz)
    steps = np.diff(times.as_unit("ns").asi8)
    if (steps <= 0).any():
        bad = np.concatenate([[False], steps <= 0])
        raise table.error(f"times must increase strictly; see {line_list(bad, table.lines)}")
    frame = pd.DataFrame(index=pd.DatetimeIndex(times, name="time"))
    for column in WEATHER_COLUMNS:
        if not table.has(column):
            continue
        values = table.numbers(column)
        if np.isnan(values).any():
            raise table.error(f"column {table.number_problem(column, np.isnan(values))}")
        _check_unit(table, column, values)
        frame[column] = np.maximum(values, 0.0) if column in ("ghi", "dni", "dhi") else values
    frame.attrs.update(
        interval_s=int(np.median(steps) // 10**9) if len(steps) else 3600,
        label=label,
        typical_year=False,
        name=source.stem,
    )
    if latitude is not None and longitude is not None:
        _check_daylight(table, frame, latitude, longitude)
    if "temp_air" not in frame:
        frame["temp_air"] = _DEFAULT_TEMP_AIR_C
    if "wind_speed" not in frame:
        frame["wind_speed"] = _DEFAULT_WIND_SPEED_M_S
    if "dni" not in frame and latitude is not None and longitude is not None:
        centres = frame.index + interval_centre_offset(frame.attrs)
        frame["dni"], frame["dhi"] = decompose_ghi(
            centres, frame["ghi"].to_numpy(), latitude, longitude
        )
    if latitude is not None and longitude is not None:
        frame.attrs.update(latitude=float(latitude), longitude=float(longitude))
    return frame


def _check_unit(table: CsvTable, column: str, values: np.ndarray) -> None:
    """Refuse values no honest file in the documented unit holds (a unit mistake)."""
    if column in ("ghi", "dni", "dhi") and values.max() > _IRRADIANCE_MAX_W_M2:
        row = int(np.argmax(values))
        factor = " (1,000 times too large: mW/m²?)" if values.max() > 100_000 else ""
        raise table.error(
            f"column {column} reaches {values[row]:,.1f} W/m² at line {table.lines[row]}; "
            f"irradiance at the ground stays below {_IRRADIANCE_MAX_W_M2:,.0f} W/m², so the "
            f"column is in another unit{factor}. {column} must be in W/m²"
        )
    if column == "temp_air":
        row = int(np.argmax(values))
        if values[row] > _TEMP_AIR_MAX_C:
            unit = "kelvin (subtract 273.15)" if values[row] > 200 else "°F"
            raise table.error(
                f"column temp_air reaches {values[row]:g} at line {table.lines[row]}, above "
                f"{_TEMP_AIR_MAX_C:g} °C; is it in {unit}? temp_air must be in °C"
            )
        row = int(np.argmin(values))
        if values[row] < _TEMP_AIR_MIN_C:
            raise table.error(
                f"column temp_air falls to {values[row]:g} at line {table.lines[row]}, below "
                f"{_TEMP_AIR_MIN_C:g} °C (colder than ever measured): a missing-data code? "
                "temp_air must be in °C; fill such rows, or leave the column out (20 °C is then "
                "used)"
            )


def _check_daylight(
    table: CsvTable, frame: pd.DataFrame, latitude: float, longitude: float
) -> None:
    """Refuse GHI that stays near zero while the sun is well up: kW/m² under a W/m² header."""
    ghi = frame["ghi"].to_numpy()
    if ghi.max() >= _GHI_DAYLIGHT_MIN_W_M2:
        return
    import pvlib

    centres = frame.index + interval_centre_offset(frame.attrs)
    elevation = pvlib.solarposition.get_solarposition(centres, latitude, longitude)[
        "apparent_elevation"
    ].to_numpy()
    if elevation.max() < _SUN_UP_DEG:
        return
    row = int(np.argmax(elevation))
    raise table.error(
        f"column ghi never reaches {_GHI_DAYLIGHT_MIN_W_M2:g} W/m² (its maximum is "
        f"{ghi.max():g}), although the sun stands {elevation[row]:.0f}° high at line "
        f"{table.lines[row]}; is it in kW/m²? ghi must be in W/m² (multiply by 1000)"
    )


def interval_centre_offset(attrs: dict) -> pd.Timedelta:
    """Offset from a weather frame's index to the centres of its intervals."""
    half = pd.Timedelta(seconds=float(attrs.get("interval_s", 0)) / 2)
    label = attrs.get("label", "center")
    return half if label == "start" else -half if label == "end" else pd.Timedelta(0)


def relocate_weather(
    weather: pd.DataFrame, latitude: float, longitude: float, tolerance_deg: float = 0.5
) -> pd.DataFrame:
    """Carry a weather record from where it was measured to another site.

    A typical year measured elsewhere (e.g. pvlib's Greensboro TMY) cannot be used as is: its
    irradiance follows *its* sun. The record is moved by local solar time (shifted by the
    longitude difference) and its cloudiness is kept as a clear-sky index
    (``ghi / ghi_clear``, Haurwitz clear sky) that is applied to the site's own clear sky; DNI and
    DHI are then re-derived with the Erbs model. Temperature and wind are kept. A record measured
    within ``tolerance_deg`` of the site, or without a location in its ``attrs``, is returned
    unchanged.

    Args:
        weather: Weather frame with ``attrs["latitude"]`` / ``attrs["longitude"]``.
        latitude: Site latitude [deg north].
        longitude: Site longitude [deg east].

    Returns:
        The relocated frame; ``attrs`` name the site and keep the source in ``relocated_from``.
    """
    import pvlib

    lat_w = weather.attrs.get("latitude")
    lon_w = weather.attrs.get("longitude")
    if lat_w is None or lon_w is None:
        return weather
    if abs(lat_w - latitude) <= tolerance_deg and abs(lon_w - longitude) <= tolerance_deg:
        return weather
    attrs = dict(weather.attrs)
    index = pd.DatetimeIndex(weather.index)
    index = index.tz_localize("UTC") if index.tz is None else index.tz_convert("UTC")
    offset = interval_centre_offset(attrs)

    def clear_ghi(times: pd.DatetimeIndex, lat: float, lon: float) -> np.ndarray:
        zenith = pvlib.solarposition.get_solarposition(times, lat, lon)["apparent_zenith"]
        return np.asarray(pvlib.clearsky.haurwitz(zenith)["ghi"], dtype=float)

    ghi = weather["ghi"].to_numpy(float)
    clear_source = clear_ghi(index + offset, lat_w, lon_w)
    # Below ~20 W/m² clear sky (dawn, dusk) the index is noise; the output there is negligible.
    k = np.where(clear_source > 20.0, ghi / np.maximum(clear_source, 1e-9), 0.0)
    k = np.clip(k, 0.0, 1.2)
    shift = pd.Timedelta(seconds=round((longitude - lon_w) / 15.0 * 3600.0))
    new_index = index - shift
    centres = new_index + offset
    ghi_site = k * clear_ghi(centres, latitude, longitude)
    dni, dhi = decompose_ghi(centres, ghi_site, latitude, longitude)
    frame = weather.copy()
    frame.index = new_index.rename(weather.index.name)
    frame["ghi"] = ghi_site
    frame["dni"] = dni
    frame["dhi"] = dhi
    attrs.update(
        latitude=float(latitude),
        longitude=float(longitude),
        tz_offset_h=float(attrs.get("tz_offset_h", 0.0)) + shift / pd.Timedelta(hours=1),
        relocated_from=(float(lat_w), float(lon_w)),
    )
    frame.attrs = attrs
    return frame
