"""The L2 look-ahead's hour buckets start at the observation's instant, as the oracle's do, also
between the forecasters' 15-min grid slots (steps shorter than 15 min)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from qubit_sim.rl.horizon import Horizon

SMALL_SITE = Path(__file__).parent / "scenarios" / "small_site.yaml"


class _Forecast:
    def __init__(self, mean: np.ndarray) -> None:
        self.mean = mean


class _GridRamp:
    """A stand-in forecaster: the mean of epoch-grid slot ``g`` is ``g`` (a linear ramp)."""

    def predict(self, now_utc: Any, horizon_slots: int, slot_s: int = 900) -> _Forecast:
        first = int(pd.Timestamp(now_utc).value // 1_000_000_000) // slot_s
        return _Forecast(first + np.arange(horizon_slots, dtype=float))


class _Zero:
    def predict(self, now_utc: Any, horizon_slots: int, slot_s: int = 900) -> _Forecast:
        return _Forecast(np.zeros(horizon_slots))


@pytest.fixture(scope="module")
def horizon() -> Horizon:
    horizon = Horizon(
        SMALL_SITE,
        forecast="l2",
        power_flow=False,
        overrides={"site": {"step": "5min", "duration": "3d"}, "controller": {"period": "5min"}},
    )
    lookahead = horizon._l2
    lookahead.load = _GridRamp()
    lookahead.pv = [_Zero() for _ in lookahead.pv]
    return horizon


@pytest.mark.parametrize("k", [0, 1, 2, 3, 100, 101])
def test_hour_buckets_start_at_the_instant_between_grid_slots(horizon: Horizon, k: int) -> None:
    horizon.exo_rows(k)  # computes the row
    h = horizon.lookahead_h
    col = horizon.exo_names.index("load_h1")
    load = horizon.exo[k, col : col + h] * horizon.power_scale_kw
    now_s = int(horizon._l2.times[k].value // 1_000_000_000)
    first, offset = divmod(now_s, 900)
    # Bucket b averages the four 15-min spans from now + b hours; on the ramp the span starting
    # `offset` into grid slot g has the mean g + offset / 900.
    expected = first + 4 * np.arange(h) + 1.5 + offset / 900
    np.testing.assert_allclose(load, expected, rtol=1e-12, atol=0)
