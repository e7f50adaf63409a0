"""Where the stack controllers' forecasts come from.

* ``"oracle"``: the true future load, PV, prices and carbon (slot means) and the sessions that will
  plug in within the horizon, from :class:`~qubit_sim.control.base.Oracle`.
* ``"l2"``: the Qubit L2 forecasters of :mod:`qubit_sim.stack.predict`. Each control call feeds
  them what the controller observes (the building load and each PV plant's output at that
  instant) and asks for the horizon. Until they have history to forecast from, the current value
  is held (persistence). Future EV arrivals are not forecast: the plan covers the plugged EVs.
  Prices, export prices and carbon intensity are published tariff schedules, not forecasts, so they
  come from the scenario's series as in ``"oracle"``.

Both give slot means over slots that start at the scenario start (:class:`Exogenous`). The L2
forecasters forecast slots of the epoch grid (:mod:`qubit_sim.stack.predict`); when the scenario
start is not on that grid (e.g. hour slots from 06:30), each controller slot is the mean of the two
grid slots it overlaps, weighted by the overlap.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import pandas as pd

from qubit_sim.control.base import Observation, Oracle, SiteInfo
from qubit_sim.control.stack_sessions import SessionRows
from qubit_sim.control.stack_site import Exogenous, StackSite
from qubit_sim.errors import ControllerError

__all__ = ["FORECASTS", "ForecastSource", "L2Forecast", "OracleForecast", "make_forecast"]

FORECASTS = ("oracle", "l2")


class ForecastSource(Protocol):
    """What a stack controller needs to know about the future."""

    name: str

    def observe(self, obs: Observation) -> None:
        """Take in what was observed at ``obs.t_s`` (called every control call)."""

    def exogenous(self, obs: Observation, first_slot: int, n_slots: int) -> Exogenous:
        """Load, PV, prices and carbon for ``n_slots`` slots from ``first_slot``."""

    def future_rows(self, t_s: int, n_slots: int) -> SessionRows:
        """EV sessions expected to plug in after ``t_s`` within ``n_slots`` slots."""

    def max_rows(self, n_slots: int) -> int:
        """Most :meth:`future_rows` rows plus plugged EVs any call can have."""


class OracleForecast:
    """Perfect foresight from the scenario's oracle."""

    name = "oracle"

    def __init__(self, site: StackSite, oracle: Oracle) -> None:
        self.site = site
        self.oracle = oracle

    def observe(self, obs: Observation) -> None:
        """Nothing to learn."""

    def exogenous(self, obs: Observation, first_slot: int, n_slots: int) -> Exogenous:
        return self.site.series.window(first_slot, n_slots)

    def future_rows(self, t_s: int, n_slots: int) -> SessionRows:
        return self.site.oracle_rows(self.oracle, t_s, n_slots)

    def max_rows(self, n_slots: int) -> int:
        """Sessions present or arriving within any window of ``n_slots`` slots from a slot start
        (each charger holds one EV at a time, so this bounds plugged + future rows)."""
        oracle = self.oracle
        charger = np.asarray(oracle.session_charger)
        served = charger >= 0
        if not served.any():
            return 0
        arrive = np.asarray(oracle.session_arrive_s)[served]
        depart = np.asarray(oracle.session_depart_s)[served]
        starts = np.arange(self.site.n_slots) * self.site.slot_s
        window = n_slots * self.site.slot_s
        present = (arrive[None, :] < starts[:, None] + window) & (depart[None, :] > starts[:, None])
        return int(present.sum(axis=1).max())


class L2Forecast:
    """Qubit L2 forecasters fed with observations (see the module docstring).

    Args:
        site: The site.
        info: The simulator's site facts (time zone, PV plant order).
        load_method: :class:`~qubit_sim.stack.predict.LoadForecaster` method.
    """

    name = "l2"

    def __init__(self, site: StackSite, info: SiteInfo, load_method: str = "regression") -> None:
        try:
            from qubit_sim.stack.predict import (
                LoadForecaster,
                PvForecaster,
                predict_spans,
            )
        except ImportError as exc:  # pragma: no cover - depends on the installed package
            raise ControllerError(
                f"forecast='l2' is not available ({exc}); use forecast='oracle'"
            ) from None
        self.site = site
        self._predict_spans = predict_spans
        self._load = LoadForecaster(load_method, tz=info.tz)  # type: ignore[arg-type]
        scenario = info.params["scenario"]
        location = scenario.spec.site.location
        self._pv: list[tuple[Any, np.ndarray]] = []
        first = 0
        for entry in scenario.spec.assets.pv:
            plants = np.arange(first, first + entry.count)
            first += entry.count
            forecaster = PvForecaster(
                location.lat,
                location.lon,
                entry.kwp * entry.count,
                tilt_deg=entry.tilt_deg,
                azimuth_deg=entry.azimuth_deg,
                losses_pct=entry.losses_pct,
                inverter_kw=None if entry.inverter_kw is None else entry.inverter_kw * entry.count,
            )
            self._pv.append((forecaster, plants))
        if first != len(info.pv_ids):
            raise ControllerError(
                f"forecast='l2': the scenario lists {first} PV plants but the site has "
                f"{len(info.pv_ids)}"
            )
        self._start = pd.Timestamp(site.times_utc[0])

    def _time(self, t_s: int) -> pd.Timestamp:
        return self._start + pd.Timedelta(seconds=int(t_s))

    def observe(self, obs: Observation) -> None:
        when = [self._time(obs.t_s)]
        self._load.observe(when, [float(obs.load_kw)])
        pv = np.asarray(obs.pv_available_kw, dtype=float)
        for forecaster, plants in self._pv:
            forecaster.observe(when, [float(pv[plants].sum())])

    def _predict(self, forecaster: Any, now: pd.Timestamp, n: int, held: float) -> np.ndarray:
        """Slot means of the ``n`` controller slots from ``now`` (a controller slot start)."""
        return self._predict_spans(forecaster, now, n, self.site.slot_s, held)

    def exogenous(self, obs: Observation, first_slot: int, n_slots: int) -> Exogenous:
        published = self.site.series.window(first_slot, n_slots)
        now = self._time(obs.t_s)
        load = self._predict(self._load, now, n_slots, float(obs.load_kw))
        pv_now = np.asarray(obs.pv_available_kw, dtype=float)
        pv = np.zeros(n_slots)
        for forecaster, plants in self._pv:
            pv += self._predict(forecaster, now, n_slots, float(pv_now[plants].sum()))
        return Exogenous(
            load_kw=np.maximum(load, 0.0),
            pv_kw=np.maximum(pv, 0.0) + np.maximum(-load, 0.0),
            price_per_kwh=published.price_per_kwh,
            export_price_per_kwh=published.export_price_per_kwh,
            carbon_g_per_kwh=published.carbon_g_per_kwh,
        )

    def future_rows(self, t_s: int, n_slots: int) -> SessionRows:
        return SessionRows.empty()

    def max_rows(self, n_slots: int) -> int:
        return len(self.site.charger_efficiency)


def make_forecast(name: str, site: StackSite, info: SiteInfo, controller: str) -> ForecastSource:
    """The forecast source ``name`` (see :data:`FORECASTS`).

    Raises:
        ControllerError: unknown name, or the source cannot run here.
    """
    if name == "oracle":
        if info.oracle is None:
            raise ControllerError(f"controller {controller!r}: forecast='oracle' needs the oracle")
        return OracleForecast(site, info.oracle)
    if name == "l2":
        return L2Forecast(site, info)
    raise ControllerError(
        f"controller {controller!r}: unknown forecast {name!r}; use one of {list(FORECASTS)}"
    )
