"""Oracle forecaster: the future truth, optionally with seeded multiplicative noise.

For experiments - the "MPC with an oracle" bound, and forecasts of controlled quality. It reads
the truth it was built with and ignores what it observes (it still checks that observations come
in time order, like every forecaster).

With ``noise_std_frac = s > 0`` each slot's mean is ``truth x (1 + e)``, ``e ~ N(0, s)`` drawn
from the passed-in generator, independent across slots and calls. The intervals are exact under
that model: the truth lies in ``[mean / (1 + z s), mean / (1 - z s)]`` (swapped for a negative
mean) exactly when ``|e| <= z s``, with ``z`` the normal quantile of the coverage; both ends
are infinite once ``z s >= 1``. Without noise the intervals collapse onto the truth.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from scipy.stats import norm

from qubit_sim.stack.predict.base import (
    COVERAGES,
    Forecast,
    ObservationStore,
    TimeLike,
    TimesLike,
    aggregate_slots,
    check_slots,
    instant_ns,
    slot_times,
    to_utc_ns,
)
from qubit_sim.stack.predict.errors import PredictionError

__all__ = ["OracleForecaster"]

_NS = 1_000_000_000


class OracleForecaster:
    """Returns the truth (slot means, or slot sums for event series), optionally noisy.

    Args:
        truth_times: Times of the true series (tz-aware UTC or numpy ``datetime64``).
        truth_values: True values [unit].
        noise_std_frac: Standard deviation of the multiplicative noise (0.1 = 10 %).
        rng: Generator of the noise; required when ``noise_std_frac > 0``.
        coverages: Interval coverages.
        aggregate: ``"mean"`` (rates such as kW) or ``"sum"`` (events such as kWh per session).
        pad: Slots outside the truth: ``"raise"`` a :class:`PredictionError`, or ``"nan"``.
        quantity: Label of the forecast series.
    """

    name = "oracle"

    def __init__(
        self,
        truth_times: TimesLike,
        truth_values: Any,
        noise_std_frac: float = 0.0,
        rng: np.random.Generator | None = None,
        *,
        coverages: Sequence[float] = COVERAGES,
        aggregate: Literal["mean", "sum"] = "mean",
        pad: Literal["raise", "nan"] = "raise",
        quantity: str = "",
    ) -> None:
        if noise_std_frac < 0:
            raise PredictionError(f"noise_std_frac={noise_std_frac} must be >= 0")
        if noise_std_frac > 0 and rng is None:
            raise PredictionError(
                "noise_std_frac > 0 needs a seeded generator: pass rng=np.random.default_rng(seed)"
            )
        if aggregate not in ("mean", "sum") or pad not in ("raise", "nan"):
            raise PredictionError(
                f"aggregate={aggregate!r} must be 'mean' or 'sum', pad={pad!r} 'raise' or 'nan'"
            )
        truth = ObservationStore()
        truth.append(truth_times, truth_values)
        if not len(truth):
            raise PredictionError("the oracle needs a non-empty truth series")
        self._truth_ns, self._truth_values = truth.between(None, np.iinfo(np.int64).max)
        self.noise_std_frac = float(noise_std_frac)
        self.rng = rng
        self.coverages = tuple(sorted(float(c) for c in coverages))
        self.aggregate = aggregate
        self.pad = pad
        self.quantity = quantity
        self._last_observed: int | None = None
        self._grids: dict[int, tuple[int, np.ndarray]] = {}

    def observe(self, times_utc: TimesLike, values: Any) -> None:
        """Check the time order of the observations; the oracle has no use for them."""
        times_ns = to_utc_ns(times_utc)
        if len(times_ns) != np.asarray(values).reshape(-1).shape[0]:
            raise PredictionError(f"{len(times_ns)} times but {np.size(values)} values")
        if not len(times_ns):
            return
        ordered = (np.diff(times_ns) >= 0).all()
        if not ordered or (self._last_observed is not None and times_ns[0] < self._last_observed):
            raise PredictionError("observation times go back; observations must be in time order")
        self._last_observed = int(times_ns[-1])

    def truth(self, first_slot: int, n_slots: int, slot_s: int) -> np.ndarray:
        """True slot values of ``n_slots`` slots from epoch-grid slot ``first_slot``."""
        if slot_s not in self._grids:
            start = int(self._truth_ns[0] // (slot_s * _NS))
            end = int(self._truth_ns[-1] // (slot_s * _NS)) + 1
            grid = aggregate_slots(
                self._truth_ns, self._truth_values, slot_s, start, end, self.aggregate
            )
            self._grids[slot_s] = (start, grid)
        start, grid = self._grids[slot_s]
        offset = first_slot - start + np.arange(n_slots)
        inside = (offset >= 0) & (offset < len(grid))
        if not inside.all() and self.pad == "raise":
            raise PredictionError(
                f"the forecast reaches {int((~inside).sum())} slot(s) beyond the oracle's truth "
                f"({slot_times(start, 1, slot_s)[0]} .. {slot_times(start + len(grid) - 1, 1, slot_s)[0]}); "
                "shorten the horizon or build the oracle with pad='nan'"
            )
        out = np.full(n_slots, np.nan)
        out[inside] = grid[offset[inside]]
        return out

    def predict(self, now_utc: TimeLike, horizon_slots: int, slot_s: int = 900) -> Forecast:
        """The truth of the slots from the one containing ``now_utc`` (noisy if configured)."""
        check_slots(horizon_slots, slot_s)
        slot_s, horizon_slots = int(slot_s), int(horizon_slots)
        issue = instant_ns(now_utc) // (slot_s * _NS)
        truth = self.truth(issue, horizon_slots, slot_s)
        sigma = self.noise_std_frac
        if sigma == 0 or self.rng is None:
            mean = truth
            lower = {c: truth.copy() for c in self.coverages}
            upper = {c: truth.copy() for c in self.coverages}
        else:
            mean = truth * (1.0 + self.rng.normal(0.0, sigma, horizon_slots))
            lower, upper = {}, {}
            for c in self.coverages:
                half = float(norm.ppf((1 + c) / 2)) * sigma
                if half >= 1:
                    # 1 + e can reach 0: the truth is unbounded unless the mean is exactly 0.
                    lower[c] = np.where(mean == 0, 0.0, -np.inf)
                    upper[c] = np.where(mean == 0, 0.0, np.inf)
                    continue
                near, far = mean / (1 + half), mean / (1 - half)
                lower[c] = np.minimum(near, far)
                upper[c] = np.maximum(near, far)
        return Forecast(
            slot_times(issue, horizon_slots, slot_s), mean, lower, upper, slot_s, self.quantity
        )
