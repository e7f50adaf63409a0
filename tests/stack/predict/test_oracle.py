"""Oracle forecaster: the truth, seeded noise, exact intervals."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from qubit_sim.core.rng import RngTree
from qubit_sim.stack.predict import OracleForecaster, PredictionError


@pytest.fixture(scope="module")
def truth(synth):
    # One-minute truth: the oracle must return 15-min slot means.
    times = pd.date_range(synth.START, periods=3 * 1440, freq="1min")
    values = 20.0 + 10.0 * np.sin(np.arange(len(times)) / 90.0)
    return times, values


def test_oracle_returns_the_slot_means_of_the_truth(truth) -> None:
    times, values = truth
    now = times[0] + pd.Timedelta(hours=5, minutes=20)  # inside the 05:15 slot
    forecast = OracleForecaster(times, values).predict(now, 8)
    assert forecast.times_utc[0] == times[0] + pd.Timedelta(hours=5, minutes=15)
    expected = values[5 * 60 + 15 : 5 * 60 + 15 + 8 * 15].reshape(8, 15).mean(axis=1)
    np.testing.assert_allclose(forecast.mean, expected, rtol=1e-12)
    for c in forecast.coverages:
        np.testing.assert_array_equal(forecast.lower[c], forecast.mean)
        np.testing.assert_array_equal(forecast.upper[c], forecast.mean)


def test_seeded_noise_is_reproducible_and_seed_dependent(truth) -> None:
    times, values = truth
    now = times[0] + pd.Timedelta(hours=1)

    def draw(seed: int) -> np.ndarray:
        oracle = OracleForecaster(times, values, 0.1, RngTree(seed).generator("forecast_noise"))
        return np.concatenate([oracle.predict(now, 96).mean, oracle.predict(now, 96).mean])

    first, again, other = draw(1), draw(1), draw(2)
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, other)
    assert not np.allclose(first[:96], first[96:])  # fresh noise on every call
    exact = OracleForecaster(times, values).predict(now, 96).mean
    relative = first[:96] / exact - 1
    assert 0.07 < relative.std() < 0.13


def test_noisy_intervals_hold_their_nominal_coverage(truth) -> None:
    times, values = truth
    rng = np.random.default_rng(5)
    oracle = OracleForecaster(times, values, 0.2, rng)
    slot_truth = oracle.truth(int(times[0].value // 900e9), 192, 900)
    hits = {0.8: 0, 0.95: 0}
    draws = 200
    for _ in range(draws):
        forecast = oracle.predict(times[0], 192)
        for c in hits:
            hits[c] += int(
                ((slot_truth >= forecast.lower[c]) & (slot_truth <= forecast.upper[c])).sum()
            )
    n = draws * 192
    for c, count in hits.items():
        # Exact under the noise model: binomial sd at n = 38,400 is ~0.2 points.
        assert count / n == pytest.approx(c, abs=0.01)


def test_huge_noise_gives_unbounded_intervals(truth) -> None:
    times, values = truth
    oracle = OracleForecaster(times, values, 0.6, np.random.default_rng(0))
    forecast = oracle.predict(times[0], 4)
    assert np.isinf(forecast.upper[0.95]).all() and np.isinf(forecast.lower[0.95]).all()
    assert np.isfinite(forecast.upper[0.8]).all()  # z(0.9) x 0.6 = 0.77 < 1


def test_beyond_the_truth_raises_or_pads(truth) -> None:
    times, values = truth
    late = times[0] + pd.Timedelta(days=3, hours=-1)  # 4 slots of truth left
    with pytest.raises(PredictionError, match="beyond the oracle's truth"):
        OracleForecaster(times, values).predict(late, 8)
    padded = OracleForecaster(times, values, pad="nan").predict(late, 8)
    assert np.isfinite(padded.mean[:4]).all() and np.isnan(padded.mean[4:]).all()


def test_oracle_refuses_unseeded_noise_and_checks_observation_order(truth) -> None:
    times, values = truth
    with pytest.raises(PredictionError, match="seeded generator"):
        OracleForecaster(times, values, 0.1)
    oracle = OracleForecaster(times, values)
    oracle.observe(times[10:20], values[10:20])
    with pytest.raises(PredictionError, match="go back"):
        oracle.observe(times[:5], values[:5])
