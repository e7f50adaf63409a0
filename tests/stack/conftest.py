"""Fixtures shared by the Qubit stack tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

# The reconciliation of a run with a feeder, charger twins and PV: every check it must carry.
SITE_CHECKS = {
    "site_meter_vs_assets", "feeder_balance", "charging_sessions", "charger_energy",
    "pv_certificates",
}  # fmt: skip


def _every_site_check_passes(checks: dict[str, dict[str, Any]]) -> None:
    assert set(checks) == SITE_CHECKS
    for check in checks.values():
        assert check["status"] == "pass", check
        assert abs(check["difference_wh"]) <= check["tolerance_wh"]


@pytest.fixture(scope="session")
def assert_site_checks_pass() -> Callable[[dict[str, dict[str, Any]]], None]:
    """``(checks)``: a reconciliation's checks by name are exactly the five of a site with a
    feeder, charger twins and PV, and each passes within its tolerance [Wh]."""
    return _every_site_check_passes
