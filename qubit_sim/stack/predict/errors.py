"""Errors of the prediction layer (L2)."""

from __future__ import annotations

from qubit_sim.errors import QubitSimError

__all__ = ["InsufficientHistoryError", "PredictionError"]


class PredictionError(QubitSimError):
    """A forecaster got invalid input: times out of order, naive timestamps, bad shapes or slots."""


class InsufficientHistoryError(PredictionError):
    """There are no usable observations before ``now``, so no forecast can be made yet."""
