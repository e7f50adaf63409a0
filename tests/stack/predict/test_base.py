"""Forecast container, observation store, slot aggregation, conformal bounds, public API."""

from __future__ import annotations

import importlib
import pkgutil
from datetime import datetime

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import qubit_sim.stack.predict as predict
from qubit_sim.errors import QubitSimError
from qubit_sim.stack.predict import (
    Forecast,
    Forecaster,
    ObservationStore,
    PredictionError,
    aggregate_slots,
    conformal_bounds,
    slot_times,
)

EXPECTED = {
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
    "backtest",
    "backtest_scenario_frame",
    "clear_sky_ac_kw",
    "conformal_bounds",
    "predict_spans",
    "slot_times",
}


def test_all_is_pinned_and_every_module_declares_all() -> None:
    assert set(predict.__all__) == EXPECTED
    assert len(predict.__all__) == len(EXPECTED)
    for name in predict.__all__:
        assert getattr(predict, name) is not None
    for info in pkgutil.iter_modules(predict.__path__):
        module = importlib.import_module(f"{predict.__name__}.{info.name}")
        assert isinstance(module.__all__, list), info.name
        for name in module.__all__:
            assert hasattr(module, name), f"{info.name}.{name}"


def test_every_forecaster_satisfies_the_protocol() -> None:
    times = pd.date_range("2025-01-01", periods=4, freq="15min", tz="UTC")
    instances = [
        predict.LoadForecaster(),
        predict.PvForecaster(52.0, 5.0, 10.0),
        predict.EvDemandForecaster(),
        predict.OracleForecaster(times, np.arange(4.0)),
    ]
    for forecaster in instances:
        assert isinstance(forecaster, Forecaster)


def _forecast(n: int = 3) -> Forecast:
    times = slot_times(0, n, 900)
    mean = np.arange(n, dtype=float)
    return Forecast(
        times, mean, {0.8: mean - 1, 0.95: mean - 2}, {0.8: mean + 1, 0.95: mean + 2}, 900, "x_kw"
    )


def test_forecast_frame_has_one_row_per_slot_and_labelled_bounds() -> None:
    frame = _forecast().to_frame()
    assert list(frame.columns) == ["mean", "lower_80", "upper_80", "lower_95", "upper_95"]
    assert frame.index.name == "time"
    assert str(frame.index.tz) == "UTC"
    assert frame.index[1] - frame.index[0] == pd.Timedelta(minutes=15)
    np.testing.assert_array_equal(frame["upper_95"], [2.0, 3.0, 4.0])
    lower, upper = _forecast().interval(0.8)
    np.testing.assert_array_equal(upper - lower, [2.0, 2.0, 2.0])


def test_forecast_rejects_inconsistent_shapes_and_coverages() -> None:
    times = slot_times(0, 3, 900)
    with pytest.raises(PredictionError, match="mean has shape"):
        Forecast(times, np.zeros(2))
    with pytest.raises(PredictionError, match="differ"):
        Forecast(times, np.zeros(3), {0.8: np.zeros(3)}, {})
    with pytest.raises(PredictionError, match="strictly between"):
        Forecast(times, np.zeros(3), {1.5: np.zeros(3)}, {1.5: np.zeros(3)})
    with pytest.raises(PredictionError, match="no 0.5 interval"):
        _forecast().interval(0.5)


def test_slot_grid_is_anchored_at_the_epoch() -> None:
    times = slot_times(4 * 24 * 20_000 + 1, 2, 900)
    assert times[0] == pd.Timestamp("2024-10-04 00:15", tz="UTC")
    assert times[1] == pd.Timestamp("2024-10-04 00:30", tz="UTC")


def test_store_refuses_time_going_back_naive_times_and_bad_shapes() -> None:
    store = ObservationStore()
    times = pd.date_range("2025-01-01", periods=3, freq="1h", tz="UTC")
    store.append(times, [1.0, 2.0, 3.0])
    store.append(times[-1:], [4.0])  # an equal time is not going back
    assert len(store) == 4
    with pytest.raises(PredictionError, match="before the last one"):
        store.append(times[:1], [0.0])
    with pytest.raises(PredictionError, match="go back at position 1"):
        store.append(times[::-1] + pd.Timedelta("1D"), [1.0, 2.0, 3.0])
    with pytest.raises(PredictionError, match="naive"):
        store.append(pd.date_range("2026-01-01", periods=2, freq="1h"), [1.0, 2.0])
    with pytest.raises(PredictionError, match="2 times but 1 values"):
        store.append(times[:2] + pd.Timedelta("2D"), [1.0])
    with pytest.raises(PredictionError, match="infinities"):
        store.append(times + pd.Timedelta("3D"), [1.0, np.inf, 2.0])
    assert len(store) == 4
    assert issubclass(PredictionError, QubitSimError)


def test_store_accepts_numpy_datetime64_as_utc_and_timezone_aware_other_zones() -> None:
    store = ObservationStore()
    store.append(np.array(["2025-01-01T00:00"], dtype="datetime64[ns]"), [1.0])
    store.append([datetime.fromisoformat("2025-01-01T02:00+01:00")], [2.0])
    times, values = store.between(None, pd.Timestamp("2025-01-02", tz="UTC").value)
    assert times[1] - times[0] == 3600 * 10**9
    np.testing.assert_array_equal(values, [1.0, 2.0])


def test_aggregate_slots_by_hand() -> None:
    ns = 10**9
    times = np.array([0, 300, 600, 1800, 1900, 3600]) * ns
    values = np.array([1.0, 2.0, np.nan, 4.0, 8.0, 100.0])
    means = aggregate_slots(times, values, 900, 0, 4)
    np.testing.assert_array_equal(means[[0, 2]], [1.5, 6.0])
    assert np.isnan(means[1]) and np.isnan(means[3])  # empty slot; slot 4 lies outside
    sums = aggregate_slots(times, values, 900, 0, 4, how="sum")
    np.testing.assert_array_equal(sums, [3.0, 0.0, 12.0, 0.0])


def test_conformal_bounds_use_finite_sample_ranks() -> None:
    residuals = np.arange(1.0, 20.0)  # n = 19: (n + 1) * 0.1 = 2, (n + 1) * 0.9 = 18
    assert conformal_bounds(residuals[::-1], 0.8) == (2.0, 18.0)
    assert conformal_bounds(residuals, 0.95) == (1.0, 19.0)  # ranks 0.5 -> 1 and 19.5 -> 19
    assert all(np.isnan(conformal_bounds(np.empty(0), 0.8)))


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False), min_size=1, max_size=300),
)
def test_conformal_bounds_cover_their_calibration_set_and_nest(residuals: list[float]) -> None:
    values = np.asarray(residuals)
    lo80, hi80 = conformal_bounds(values, 0.8)
    lo95, hi95 = conformal_bounds(values, 0.95)
    assert lo95 <= lo80 <= hi80 <= hi95
    for coverage, (lo, hi) in ((0.8, (lo80, hi80)), (0.95, (lo95, hi95))):
        inside = ((values >= lo) & (values <= hi)).mean()
        # The finite-sample ranks keep at least a share c of the calibration set inside.
        assert inside >= coverage - 1e-12


def test_predict_spans_holds_the_value_without_history_or_a_finite_forecast() -> None:
    import numpy as np
    import pandas as pd

    from qubit_sim.stack.predict import InsufficientHistoryError, predict_spans

    class NoHistory:
        def predict(self, now_utc, horizon_slots, slot_s=900):  # noqa: ANN001, ANN202
            raise InsufficientHistoryError("no history yet")

    class Gaps:
        def predict(self, now_utc, horizon_slots, slot_s=900):  # noqa: ANN001, ANN202
            mean = np.arange(horizon_slots, dtype=float)
            mean[1] = np.nan
            return type("F", (), {"mean": mean})()

    now = pd.Timestamp("2025-06-02T00:05:00Z")  # 300 s into its grid slot
    assert predict_spans(NoHistory(), now, 3, 900, 7.0).tolist() == [7.0, 7.0, 7.0]
    spans = predict_spans(Gaps(), now, 3, 900, 7.0)
    # Grid means [0, 7 (held), 2, 3]; each span takes 2/3 of one slot and 1/3 of the next.
    np.testing.assert_allclose(
        spans, [(0 * 600 + 7 * 300) / 900, (7 * 600 + 2 * 300) / 900, (2 * 600 + 3 * 300) / 900]
    )
