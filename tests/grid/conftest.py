"""Shared feeders for the grid tests: each SimBench net is loaded once per session (~3 s each)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from qubit_sim.grid import load_network

LV_CODE = "1-LV-rural1--0-sw"
MV_CODE = "1-MV-rural--0-sw"


@pytest.fixture(scope="session")
def lv_net_shared() -> Any:
    """The LV rural feeder; do not modify (use ``lv_net``)."""
    return load_network(LV_CODE)


@pytest.fixture(scope="session")
def mv_net_shared() -> Any:
    """The MV rural feeder; do not modify (use ``mv_net``)."""
    return load_network(MV_CODE)


@pytest.fixture
def lv_net(lv_net_shared: Any) -> Any:
    """A private copy of the LV rural feeder."""
    return copy.deepcopy(lv_net_shared)


@pytest.fixture
def mv_net(mv_net_shared: Any) -> Any:
    """A private copy of the MV rural feeder."""
    return copy.deepcopy(mv_net_shared)
