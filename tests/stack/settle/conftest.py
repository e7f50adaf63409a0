"""Shared settlement inputs: three days of a two-array PV site and a day-and-a-half of sessions."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from qubit_sim.core.rng import RngTree
from qubit_sim.stack.settle import (
    ChargingInvoice,
    ChargingSession,
    EnergyCertificate,
    SiteKey,
    hourly_pv_table,
    issue_certificates,
    issue_invoices,
)

SITE_ID = "sit_depot"
START = datetime(2024, 6, 1, tzinfo=UTC)
STEP_S = 900
N_DAYS = 3


def make_key(site_id: str = SITE_ID, seed: int = 1) -> SiteKey:
    """A fixed key, so that tests are reproducible without touching a key folder."""
    raw = RngTree(seed).generator("settle-test-key").integers(0, 256, 32, dtype=np.uint8)
    return SiteKey.from_private_bytes(site_id, raw.tobytes())


def make_hourly(seed: int = 7) -> pd.DataFrame:
    rng = RngTree(seed).generator("settle-test-site")
    n_steps = N_DAYS * 86400 // STEP_S
    index = pd.date_range(START, periods=n_steps, freq=pd.Timedelta(seconds=STEP_S))
    hour_of_day = np.arange(n_steps) * STEP_S / 3600 % 24
    sun = np.clip(np.sin((hour_of_day - 6) / 12 * np.pi), 0.0, None)
    pv_p_kw = {
        "ast_pv_roof": -60.0 * sun * rng.uniform(0.6, 1.0, n_steps),
        "ast_pv_carport": -25.0 * sun * rng.uniform(0.6, 1.0, n_steps),
    }
    load_p_kw = 20.0 + 30.0 * rng.random(n_steps)
    site_p_kw = load_p_kw + pv_p_kw["ast_pv_roof"] + pv_p_kw["ast_pv_carport"]
    carbon = 180.0 + 120.0 * rng.random(n_steps)
    return hourly_pv_table(index, STEP_S, pv_p_kw, site_p_kw, carbon)


def make_sessions(seed: int = 7) -> list[ChargingSession]:
    rng = RngTree(seed).generator("settle-test-sessions")
    sessions = []
    register_wh = {f"cp_{i}": int(rng.integers(0, 100_000)) for i in range(4)}
    for number in range(30):
        charger = f"cp_{number % 4}"
        start_s = int(number * 7200 + rng.integers(0, 3600))
        stop_s = start_s + int(rng.integers(1800, 4 * 3600))
        delivered = int(rng.integers(0, 60_000))
        sessions.append(
            ChargingSession(
                session_id=f"tx_{number:03d}",
                charger_id=charger,
                vehicle_id=None if number == 4 else f"ev_{number % 9}",
                start_s=start_s,
                stop_s=stop_s,
                meter_start_wh=register_wh[charger],
                meter_stop_wh=register_wh[charger] + delivered,
            )
        )
        register_wh[charger] += delivered
    return sessions


def make_items(key: SiteKey) -> tuple[list[EnergyCertificate], list[ChargingInvoice]]:
    certificates = issue_certificates(make_hourly(), key, SITE_ID)
    invoices = issue_invoices(
        make_sessions(), key, SITE_ID, scenario_start=START, price_per_kwh=0.285, currency="EUR"
    )
    return certificates, invoices


@pytest.fixture(scope="session")
def site_key() -> SiteKey:
    return make_key()


@pytest.fixture(scope="session")
def hourly() -> pd.DataFrame:
    return make_hourly()


@pytest.fixture(scope="session")
def sessions() -> list[ChargingSession]:
    return make_sessions()


@pytest.fixture(scope="session")
def items(site_key: SiteKey) -> tuple[list[EnergyCertificate], list[ChargingInvoice]]:
    return make_items(site_key)


@pytest.fixture(scope="session")
def factory() -> SimpleNamespace:
    """The builders above, for tests that need fresh or differently seeded inputs."""
    return SimpleNamespace(
        site_id=SITE_ID,
        start=START,
        make_key=make_key,
        make_hourly=make_hourly,
        make_sessions=make_sessions,
        make_items=make_items,
    )
