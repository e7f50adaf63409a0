"""Load and PV look-ahead of the observation from the Qubit L2 forecasters (``forecast="l2"``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from qubit_sim.errors import ConfigIssue, ScenarioError

__all__ = ["L2Lookahead"]


class L2Lookahead:
    """Load and PV look-ahead columns of :attr:`Horizon.exo` from the Qubit L2 forecasters.

    The forecasters are given the whole true series once; by their contract a forecast issued at
    ``t`` uses only observations stamped before ``t``'s slot, so nothing leaks. Until they have
    history the current value is held (persistence). Rows are computed on first use.

    The forecasters forecast 15-min slots of the epoch grid; the look-ahead's hour buckets start
    at the observation's instant, as the oracle's do. At an instant inside a grid slot (steps
    shorter than 15 min) each 15-min span from that instant is the overlap-weighted mean of the
    two grid slots it covers.

    Args:
        horizon: The :class:`~qubit_sim.rl.horizon.Horizon` whose ``exo`` columns to fill.
        times: UTC instants of the horizon's steps plus one.
    """

    def __init__(self, horizon: Any, times: Any) -> None:
        try:
            from qubit_sim.stack.predict import (
                LoadForecaster,
                PvForecaster,
                predict_spans,
            )
        except ImportError as exc:  # pragma: no cover - depends on the installed package
            raise ScenarioError(
                [ConfigIssue("forecast", f"'l2' is not available ({exc}); use 'oracle'")]
            ) from None
        self.horizon = horizon
        self.times = times
        self.predict_spans = predict_spans
        spec = horizon.loaded.spec
        self.load = LoadForecaster("regression", tz=spec.site.location.tz)
        self.load.observe(times[:-1], horizon.load_total_kw)
        self.pv: list[Any] = []
        location = spec.site.location
        for entry in spec.assets.pv:
            inverter = None if entry.inverter_kw is None else entry.inverter_kw * entry.count
            forecaster = PvForecaster(
                location.lat,
                location.lon,
                entry.kwp * entry.count,
                tilt_deg=entry.tilt_deg,
                azimuth_deg=entry.azimuth_deg,
                losses_pct=entry.losses_pct,
                inverter_kw=inverter,
            )
            self.pv.append(forecaster)
        first = 0
        for forecaster, entry in zip(self.pv, spec.assets.pv, strict=True):
            plants = horizon.site.pv_available_kw[:, first : first + entry.count].sum(axis=1)
            forecaster.observe(times[:-1], plants)
            first += entry.count
        self.done = np.zeros(horizon.n_steps + 1, dtype=bool)
        self.slot_s = 900
        self.slots_per_bucket = max(1, round(horizon.bucket_steps * horizon.dt / self.slot_s))

    def _predict(self, forecaster: Any, now: Any, held: float) -> np.ndarray:
        h = self.horizon.lookahead_h
        mean = self.predict_spans(forecaster, now, h * self.slots_per_bucket, self.slot_s, held)
        return mean.reshape(h, self.slots_per_bucket).mean(axis=1)

    def fill(self, steps: np.ndarray) -> None:
        """Compute the look-ahead of horizon steps ``steps`` not computed yet."""
        horizon = self.horizon
        h = horizon.lookahead_h
        if h == 0:
            return
        names = horizon.exo_names
        load_col = names.index("load_h1")
        pv_col = names.index("pv_h1")
        for k in np.unique(steps[~self.done[steps]]):
            now = self.times[k]
            now_step = min(int(k), horizon.n_steps - 1)
            load = self._predict(self.load, now, float(horizon.load_total_kw[now_step]))
            pv = np.zeros(h)
            first = 0
            for forecaster, entry in zip(self.pv, horizon.loaded.spec.assets.pv, strict=True):
                plants = horizon.site.pv_available_kw[now_step, first : first + entry.count]
                held = float(plants.sum())
                pv += self._predict(forecaster, now, held)
                first += entry.count
            horizon.exo[k, load_col : load_col + h] = np.maximum(load, 0.0) / horizon.power_scale_kw
            horizon.exo[k, pv_col : pv_col + h] = np.maximum(pv, 0.0) / horizon.power_scale_kw
            self.done[k] = True
