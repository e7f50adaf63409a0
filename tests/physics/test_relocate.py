"""Weather measured elsewhere is carried to the site by solar time and clear-sky index."""

from __future__ import annotations

import numpy as np
import pandas as pd

from qubit_sim.physics.pv import pv_ac_power_kw
from qubit_sim.physics.weather import relocate_weather, tmy_weather

AMSTERDAM = (52.37, 4.90)


def test_relocated_irradiance_follows_the_site_sun() -> None:
    source = tmy_weather("723170TYA", 2025)
    moved = relocate_weather(source, *AMSTERDAM)
    assert moved.attrs["latitude"] == AMSTERDAM[0] and "relocated_from" in moved.attrs
    june = moved.loc["2025-06-10":"2025-06-20"]
    hour_utc = june.index.hour + 0.5  # hourly values centred in their hour
    by_hour = june["ghi"].groupby(hour_utc).mean()
    # Solar noon in Amsterdam is about 11:40 UTC; in Greensboro about 17:20 UTC.
    assert 10.5 <= by_hour.idxmax() <= 13.0
    assert by_hour.loc[[0.5, 1.5, 22.5, 23.5]].max() == 0.0
    assert source.loc["2025-06-10":"2025-06-20", "ghi"].groupby(
        source.loc["2025-06-10":"2025-06-20"].index.hour
    ).mean().idxmax() >= 16


def test_nearby_weather_is_left_alone_and_input_untouched() -> None:
    source = tmy_weather("723170TYA", 2025)
    before = source.copy()
    same = relocate_weather(source, source.attrs["latitude"] + 0.1, source.attrs["longitude"])
    assert same is source
    relocate_weather(source, *AMSTERDAM)
    pd.testing.assert_frame_equal(source, before)


def test_relocated_pv_yield_is_plausible_for_the_netherlands() -> None:
    moved = relocate_weather(tmy_weather("723170TYA", 2025), *AMSTERDAM)
    times = pd.date_range("2025-01-01", "2025-12-31 23:00", freq="1h", tz="UTC")
    kw = pv_ac_power_kw(times, moved, *AMSTERDAM, kwp=1.0, tilt_deg=35, azimuth_deg=180,
                        interval_s=3600)
    annual = kw.sum()
    assert 800 < annual < 1300  # kWh/kWp: Dutch yields are ~900-1,100
    local_hour = times.tz_convert("Europe/Amsterdam").hour
    assert np.all(kw[(local_hour < 4) | (local_hour > 22)] == 0.0)
