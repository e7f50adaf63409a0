"""Shared fixtures of the RL environment tests: scenario horizons built once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from qubit_sim.rl.horizon import Horizon

SMALL_SITE = Path(__file__).parent / "scenarios" / "small_site.yaml"


@pytest.fixture(scope="session")
def small_horizon() -> Horizon:
    """A week of the small site (no feeder), one-day episodes."""
    return Horizon(SMALL_SITE)
