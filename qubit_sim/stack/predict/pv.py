"""PV forecast: a clear-sky model of the plant times a clear-sky index learned from its output.

1. **Clear-sky output** ``c(t)`` [kW AC] of the plant: pvlib solar position, Ineichen clear sky
   (a fixed Linke turbidity, so no data file is read), isotropic transposition to the module plane,
   ``kwp x POA / 1000 x (1 - losses) x inverter efficiency``, capped at the inverter rating.
   Each slot takes the mean over sub-samples every 5 min, so slots around sunrise are not lost.
2. **Clear-sky index** ``k`` for each target slot: the ratio of sums ``sum w y / sum w c`` over
   the history slots of the last ``history_days`` with the sun above ``min_elevation_deg``, with
   weights ``0.5 ** (age / halflife_days)`` x a Gaussian kernel in sun elevation (width
   ``elevation_width_deg``) x same half of the day (morning/afternoon, by the hour angle). Sums
   are shrunk towards the all-history ratio (and that towards ``default_clear_sky_index``), so a
   target elevation seen rarely does not rest on one noisy slot.
3. **Nowcast**: the index of the latest daylight slot(s) blends in with weight
   ``0.5 ** (lead / nowcast_halflife_s)``: clouds now say most about the next hour.
4. ``mean = clip(k x c, 0, ac_max)``; 0 whenever the sun is down all slot long.

Intervals: split conformal on residuals normalised by ``max(c, 5 % of ac_max)`` (0 at night),
so bounds scale with the sun and are exactly 0 at night. Values are PV *generation* as a
magnitude (>= 0) [kW], the ``pv_available_kw`` of the results; the site bus sees it negative.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pvlib

from qubit_sim.stack.predict.base import DAY_S, SlotHistory
from qubit_sim.stack.predict.errors import PredictionError
from qubit_sim.stack.predict.series import SeriesForecaster

__all__ = ["PvForecaster", "clear_sky_ac_kw"]

_NS = 1_000_000_000
_SUBSAMPLE_S = 300
_ETA_INVERTER = 0.96


def clear_sky_ac_kw(
    times_utc: pd.DatetimeIndex,
    latitude: float,
    longitude: float,
    kwp: float,
    *,
    tilt_deg: float = 20.0,
    azimuth_deg: float = 180.0,
    losses_pct: float = 14.0,
    inverter_kw: float | None = None,
    altitude_m: float = 0.0,
    linke_turbidity: float = 3.0,
) -> pd.DataFrame:
    """Clear-sky AC output of a plant at instants ``times_utc``.

    Returns:
        Frame with ``p_kw`` (clear-sky AC output [kW], 0 with the sun down), ``elevation_deg``
        (apparent sun elevation [deg]) and ``morning`` (hour angle < 0).
    """
    solpos = pvlib.solarposition.get_solarposition(times_utc, latitude, longitude, altitude_m)
    airmass = pvlib.atmosphere.get_relative_airmass(solpos["apparent_zenith"])
    airmass_abs = pvlib.atmosphere.get_absolute_airmass(
        airmass, pvlib.atmosphere.alt2pres(altitude_m)
    )
    dni_extra = pvlib.irradiance.get_extra_radiation(times_utc)
    sky = pvlib.clearsky.ineichen(
        solpos["apparent_zenith"], airmass_abs, linke_turbidity, altitude_m, dni_extra
    )
    poa = pvlib.irradiance.get_total_irradiance(
        tilt_deg,
        azimuth_deg,
        solpos["apparent_zenith"],
        solpos["azimuth"],
        sky["dni"],
        sky["ghi"],
        sky["dhi"],
        dni_extra=dni_extra,
        model="isotropic",
    )["poa_global"]
    p_kw = kwp * poa.to_numpy(dtype=float) / 1000.0 * (1 - losses_pct / 100.0) * _ETA_INVERTER
    p_kw = np.nan_to_num(p_kw, nan=0.0)
    elevation = solpos["apparent_elevation"].to_numpy(dtype=float)
    p_kw = np.where(elevation > 0, np.clip(p_kw, 0.0, inverter_kw), 0.0)
    hour_angle = pvlib.solarposition.hour_angle(
        times_utc, longitude, solpos["equation_of_time"].to_numpy(dtype=float)
    )
    return pd.DataFrame(
        {"p_kw": p_kw, "elevation_deg": elevation, "morning": np.asarray(hour_angle) < 0},
        index=times_utc,
    )


class PvForecaster(SeriesForecaster):
    """Clear-sky x learned-index PV forecaster (see the module docstring).

    Args:
        latitude: Site latitude [deg].
        longitude: Site longitude [deg].
        kwp: DC peak power [kWp].
        tilt_deg: Module tilt [deg].
        azimuth_deg: Module azimuth [deg], 180 = south.
        losses_pct: DC system losses [%].
        inverter_kw: AC rating [kW]; ``None`` = no cap.
        altitude_m: Site altitude [m].
        linke_turbidity: Linke turbidity of the clear-sky model.
        history_days: History the index is learned from [days].
        halflife_days: Age at which a history slot weighs half [days].
        elevation_width_deg: Width of the sun-elevation kernel [deg].
        min_elevation_deg: History slots with the sun lower than this are not used [deg].
        nowcast_halflife_s: Lead time at which the current index weighs half [s].
        default_clear_sky_index: Index used before any daylight was observed.
        **calibration: Keyword arguments of
            :class:`~qubit_sim.stack.predict.series.SeriesForecaster`.
    """

    name = "pv_clearsky"
    quantity = "pv_available_kw"

    def __init__(
        self,
        latitude: float,
        longitude: float,
        kwp: float,
        *,
        tilt_deg: float = 20.0,
        azimuth_deg: float = 180.0,
        losses_pct: float = 14.0,
        inverter_kw: float | None = None,
        altitude_m: float = 0.0,
        linke_turbidity: float = 3.0,
        history_days: float = 7.0,
        halflife_days: float = 2.0,
        elevation_width_deg: float = 5.0,
        min_elevation_deg: float = 5.0,
        nowcast_halflife_s: float = 3600.0,
        default_clear_sky_index: float = 0.75,
        **calibration: Any,
    ) -> None:
        if not -90.0 <= latitude <= 90.0 or not -180.0 <= longitude <= 180.0:
            raise PredictionError(f"latitude {latitude} / longitude {longitude} out of range")
        if kwp <= 0:
            raise PredictionError(f"kwp={kwp} must be positive [kWp]")
        if inverter_kw is not None and inverter_kw <= 0:
            raise PredictionError(f"inverter_kw={inverter_kw} must be positive or None")
        if history_days <= 0 or halflife_days <= 0 or elevation_width_deg <= 0:
            raise PredictionError(
                "history_days, halflife_days and elevation_width_deg must be positive"
            )
        self.ac_max_kw = float(
            inverter_kw if inverter_kw is not None else kwp * (1 - losses_pct / 100.0)
        )
        super().__init__(lower_bound=0.0, upper_bound=self.ac_max_kw, **calibration)
        self.latitude, self.longitude, self.kwp = float(latitude), float(longitude), float(kwp)
        self.tilt_deg, self.azimuth_deg = float(tilt_deg), float(azimuth_deg)
        self.losses_pct, self.inverter_kw = float(losses_pct), inverter_kw
        self.altitude_m, self.linke_turbidity = float(altitude_m), float(linke_turbidity)
        self.history_days = float(history_days)
        self.halflife_days = float(halflife_days)
        self.elevation_width_deg = float(elevation_width_deg)
        self.min_elevation_deg = float(min_elevation_deg)
        self.nowcast_halflife_s = float(nowcast_halflife_s)
        self.default_clear_sky_index = float(default_clear_sky_index)
        # (slot_s, day number since epoch) -> (clear-sky kW, elevation, morning) per slot.
        self._sun_days: dict[tuple[int, int], tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    def clear_sky(
        self, slots: np.ndarray, slot_s: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per epoch-grid slot: mean clear-sky output [kW], mid-slot elevation [deg], morning."""
        slots = np.asarray(slots, dtype=np.int64)
        spd = DAY_S // slot_s
        days = slots // spd
        missing = [d for d in np.unique(days).tolist() if (slot_s, d) not in self._sun_days]
        if missing:
            self._compute_days(missing, slot_s)
        power = np.empty(len(slots))
        elevation = np.empty(len(slots))
        morning = np.empty(len(slots), dtype=bool)
        for day in np.unique(days).tolist():
            where = days == day
            p, e, m = self._sun_days[(slot_s, day)]
            offset = slots[where] - day * spd
            power[where], elevation[where], morning[where] = p[offset], e[offset], m[offset]
        return power, elevation, morning

    def _compute_days(self, days: list[int], slot_s: int) -> None:
        spd = DAY_S // slot_s
        n_sub = max(slot_s // _SUBSAMPLE_S, 1)
        sub_offsets = (np.arange(n_sub) + 0.5) * slot_s / n_sub
        starts = (np.asarray(days, dtype=np.int64)[:, None] * spd + np.arange(spd)) * slot_s
        instants = starts[..., None] + sub_offsets  # days x slots x samples [s]
        mids = starts + slot_s / 2
        ns = np.concatenate([instants.ravel(), mids.ravel()]) * _NS
        times = pd.DatetimeIndex(ns.astype("datetime64[ns]")).tz_localize("UTC")
        frame = clear_sky_ac_kw(
            times,
            self.latitude,
            self.longitude,
            self.kwp,
            tilt_deg=self.tilt_deg,
            azimuth_deg=self.azimuth_deg,
            losses_pct=self.losses_pct,
            inverter_kw=self.inverter_kw,
            altitude_m=self.altitude_m,
            linke_turbidity=self.linke_turbidity,
        )
        n_samples = instants.size
        power = frame["p_kw"].to_numpy()[:n_samples].reshape(instants.shape).mean(axis=-1)
        elevation = frame["elevation_deg"].to_numpy()[n_samples:].reshape(mids.shape)
        morning = frame["morning"].to_numpy()[n_samples:].reshape(mids.shape)
        for row, day in enumerate(days):
            self._sun_days[(slot_s, day)] = (power[row], elevation[row], morning[row])

    def _lookback_slots(self, slot_s: int) -> int:
        return int(np.ceil(self.history_days * DAY_S / slot_s))

    def _point(self, history: SlotHistory, horizon_slots: int) -> tuple[np.ndarray, np.ndarray]:
        slot_s, issue = history.slot_s, history.end_slot
        targets = issue + np.arange(horizon_slots)
        c_target, e_target, m_target = self.clear_sky(targets, slot_s)
        index = self._index(history, e_target, m_target, targets)
        mean = np.clip(index * c_target, 0.0, self.ac_max_kw)
        scale = np.where(c_target > 0, np.maximum(c_target, 0.05 * self.ac_max_kw), 0.0)
        return mean, scale

    def _index(
        self, history: SlotHistory, e_target: np.ndarray, m_target: np.ndarray, targets: np.ndarray
    ) -> np.ndarray:
        """Clear-sky index per target slot, learned from the history."""
        slot_s, issue = history.slot_s, history.end_slot
        slots = np.arange(history.first_slot, issue)
        c_hist, e_hist, m_hist = self.clear_sky(slots, slot_s)
        day = np.isfinite(history.values) & (e_hist > self.min_elevation_deg) & (c_hist > 0)
        if not day.any():
            return np.full(len(targets), self.default_clear_sky_index)
        obs, c_day, e_day, m_day = history.values[day], c_hist[day], e_hist[day], m_hist[day]
        age_days = (issue - slots[day]) * slot_s / DAY_S
        w_age = 0.5 ** (age_days / self.halflife_days)
        # Pseudo-observations: one slot at a fifth of the rating, at the prior index.
        prior = 0.2 * self.ac_max_kw
        k_all = (w_age @ obs + prior * self.default_clear_sky_index) / (w_age @ c_day + prior)
        kernel = np.exp(
            -0.5 * ((e_target[:, None] - e_day[None, :]) / self.elevation_width_deg) ** 2
        )
        weights = w_age[None, :] * kernel * (m_target[:, None] == m_day[None, :])
        index = (weights @ obs + prior * k_all) / (weights @ c_day + prior)

        # Nowcast from the latest daylight slots, if they are recent.
        recent = slots[day] >= issue - max(3600 // slot_s, 1)
        if recent.any():
            k_now = (obs[recent].sum() + prior * index[0]) / (c_day[recent].sum() + prior)
            lead_s = (targets - slots[day][recent].max()) * slot_s
            blend = 0.5 ** (lead_s / self.nowcast_halflife_s)
            index = blend * k_now + (1 - blend) * index
        return np.clip(index, 0.0, 2.0)
