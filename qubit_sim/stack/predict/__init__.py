"""Qubit L2 prediction: forecasters with split-conformal prediction intervals.

* :mod:`.base` — the :class:`Forecaster` protocol (``observe`` / ``predict``), :class:`Forecast`.
* :mod:`.pv` — :class:`PvForecaster`: pvlib clear sky x a learned clear-sky index.
* :mod:`.load` — :class:`LoadForecaster`: seasonal naive and ridge regression.
* :mod:`.ev` — :class:`EvDemandForecaster`: EV arrivals and energy per slot.
* :mod:`.oracle` — :class:`OracleForecaster`: the truth, optionally with seeded noise.
* :mod:`.conformal` — :class:`ConformalCalibrator`: intervals from past forecasts vs truth.
* :mod:`.backtest` — :func:`backtest`, :func:`backtest_scenario_frame`, :class:`BacktestReport`.

Every forecaster forecasts from the observations stamped before the issue slot only; times are
UTC, slots lie on a grid anchored at the Unix epoch (15-min slots start at :00, :15, ...).
"""

from __future__ import annotations

from qubit_sim.stack.predict.backtest import BacktestReport, backtest, backtest_scenario_frame
from qubit_sim.stack.predict.base import (
    COVERAGES,
    Forecast,
    Forecaster,
    ObservationStore,
    SlotHistory,
    aggregate_slots,
    predict_spans,
    slot_times,
)
from qubit_sim.stack.predict.conformal import ConformalCalibrator, conformal_bounds
from qubit_sim.stack.predict.errors import InsufficientHistoryError, PredictionError
from qubit_sim.stack.predict.ev import EvDemandForecaster
from qubit_sim.stack.predict.load import LoadForecaster, LoadMethod
from qubit_sim.stack.predict.oracle import OracleForecaster
from qubit_sim.stack.predict.pv import PvForecaster, clear_sky_ac_kw
from qubit_sim.stack.predict.series import SeriesForecaster

__all__ = [
    "COVERAGES",
    "BacktestReport",
    "ConformalCalibrator",
    "EvDemandForecaster",
    "Forecast",
    "Forecaster",
    "InsufficientHistoryError",
    "LoadForecaster",
    "LoadMethod",
    "ObservationStore",
    "OracleForecaster",
    "PredictionError",
    "PvForecaster",
    "SeriesForecaster",
    "SlotHistory",
    "aggregate_slots",
    "predict_spans",
    "backtest",
    "backtest_scenario_frame",
    "clear_sky_ac_kw",
    "conformal_bounds",
    "slot_times",
]
