"""Certificates and invoices: fields, exact arithmetic, signatures, clear input errors."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from qubit_sim.stack.settle import (
    HOURLY_COLUMNS,
    ChargingSession,
    EnergyCertificate,
    SettlementError,
    certificate_id,
    hourly_pv_table,
    invoice_id,
    issue_certificates,
    issue_invoices,
    session_from_meter_values,
)
from qubit_sim.stack.settle.certificates import CERTIFICATE_CONTEXT
from qubit_sim.stack.settle.invoices import INVOICE_CONTEXT
from qubit_sim.stack.settle.records import signature_valid

HOUR = pd.Timestamp("2024-06-01T10:00:00Z")


def one_row(**overrides: object) -> pd.DataFrame:
    row = {
        "period_start": HOUR,
        "asset_id": "ast_pv_roof",
        "e_produced_kwh": 41.2346,
        "e_exported_kwh": 10.0004,
        "carbon_intensity_g_per_kwh": 231.45,
    }
    row.update(overrides)
    return pd.DataFrame([row])


def test_certificate_fields(site_key) -> None:
    (cert,) = issue_certificates(one_row(), site_key, "sit_depot")
    assert cert.certificate_id == certificate_id("sit_depot", "ast_pv_roof", "2024-06-01T10:00:00Z")
    assert cert.certificate_id.startswith("cert_") and len(cert.certificate_id) == 5 + 32
    assert (cert.period_start, cert.period_end) == ("2024-06-01T10:00:00Z", "2024-06-01T11:00:00Z")
    assert (cert.wh_produced, cert.wh_exported, cert.wh_consumed_on_site) == (41235, 10000, 31235)
    assert cert.technology == "solar_pv"
    assert cert.carbon_intensity_g_per_kwh == "231.5"
    assert cert.issued_at == cert.period_end  # simulated time, never the wall clock
    assert cert.public_key_id == site_key.key_id
    assert cert.problems() == []
    assert signature_valid(cert.to_dict(), site_key.public_key, CERTIFICATE_CONTEXT)
    assert not signature_valid(cert.to_dict(), site_key.public_key, INVOICE_CONTEXT)
    assert EnergyCertificate.from_dict(cert.to_dict()) == cert


def test_changed_field_breaks_the_signature(site_key) -> None:
    (cert,) = issue_certificates(one_row(), site_key, "sit_depot")
    forged = replace(cert, wh_exported=cert.wh_exported + 1, wh_consumed_on_site=31234)
    assert forged.problems() == []  # still self-consistent ...
    assert not signature_valid(forged.to_dict(), site_key.public_key, CERTIFICATE_CONTEXT)


def test_explicit_issue_time_and_its_bounds(site_key) -> None:
    late = datetime(2024, 6, 30, tzinfo=UTC)
    (cert,) = issue_certificates(one_row(), site_key, "sit_depot", issued_at=late)
    assert cert.issued_at == "2024-06-30T00:00:00Z"
    with pytest.raises(SettlementError, match="before the end of hour"):
        issue_certificates(one_row(), site_key, "sit_depot", issued_at=HOUR.to_pydatetime())


def test_no_pv_gives_no_certificates(site_key) -> None:
    index = pd.date_range("2024-06-01", periods=8, freq="15min", tz="UTC")
    empty = hourly_pv_table(index, 900, {}, np.zeros(8), np.zeros(8))
    assert list(empty.columns) == list(HOURLY_COLUMNS) and empty.empty
    assert issue_certificates(empty, site_key, "sit_depot") == []


def test_hours_without_generation_get_no_certificate(site_key) -> None:
    table = pd.concat([one_row(), one_row(period_start=HOUR + pd.Timedelta(hours=1),
                                          e_produced_kwh=0.0004, e_exported_kwh=0.0)])  # fmt: skip
    assert len(issue_certificates(table, site_key, "sit_depot")) == 1


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"e_exported_kwh": 50.0}, "exports"),
        ({"e_produced_kwh": -3.0}, "magnitude"),
        ({"period_start": HOUR + pd.Timedelta(minutes=15)}, "whole hour"),
        ({"period_start": pd.Timestamp("2024-06-01T10:00:00")}, "timezone"),
        ({"carbon_intensity_g_per_kwh": float("nan")}, "carbon"),
    ],
)
def test_bad_hourly_rows_are_refused(site_key, overrides: dict, match: str) -> None:
    with pytest.raises(SettlementError, match=match):
        issue_certificates(one_row(**overrides), site_key, "sit_depot")


def test_bad_hourly_tables_are_refused(site_key) -> None:
    with pytest.raises(SettlementError, match="lacks columns"):
        issue_certificates(one_row().drop(columns="e_exported_kwh"), site_key, "sit_depot")
    with pytest.raises(SettlementError, match="two rows"):
        issue_certificates(pd.concat([one_row(), one_row()]), site_key, "sit_depot")
    with pytest.raises(SettlementError, match="cannot sign for site"):
        issue_certificates(one_row(), site_key, "sit_elsewhere")


def test_sample_site_certificates(items, hourly) -> None:
    certificates, _ = items
    producing = hourly[hourly["e_produced_kwh"] >= 0.0005]
    assert len(certificates) == len(producing) > 0
    assert all(cert.problems() == [] for cert in certificates)
    total_wh = sum(cert.wh_produced for cert in certificates)
    assert abs(total_wh - 1000 * producing["e_produced_kwh"].sum()) <= 0.5 * len(certificates)
    assert any(cert.wh_exported > 0 for cert in certificates)
    assert any(cert.wh_consumed_on_site > 0 for cert in certificates)
    assert len({cert.certificate_id for cert in certificates}) == len(certificates)


@settings(max_examples=40, deadline=None)
@given(
    pv=arrays(float, (2, 24), elements=st.floats(-80, 2)),
    load=arrays(float, 24, elements=st.floats(-30, 80)),
)
def test_hourly_table_conserves_energy(pv: np.ndarray, load: np.ndarray) -> None:
    step_s = 900
    index = pd.date_range("2024-06-01", periods=24, freq="15min", tz="UTC")
    site = load + pv.sum(axis=0)
    table = hourly_pv_table(index, step_s, {"a": pv[0], "b": pv[1]}, site, np.full(24, 200.0))
    assert list(table.columns) == list(HOURLY_COLUMNS)
    assert len(table) == 2 * 6
    produced = np.clip(-pv, 0, None).sum() * step_s / 3600
    assert table["e_produced_kwh"].sum() == pytest.approx(produced, abs=1e-9)
    exported = np.minimum(np.clip(-site, 0, None), np.clip(-pv, 0, None).sum(axis=0))
    assert table["e_exported_kwh"].sum() == pytest.approx(exported.sum() * step_s / 3600, abs=1e-9)
    assert (table["e_exported_kwh"] <= table["e_produced_kwh"] + 1e-12).all()
    assert (table["carbon_intensity_g_per_kwh"] == 200.0).all()


def test_hourly_table_input_errors() -> None:
    index = pd.date_range("2024-06-01", periods=4, freq="15min", tz="UTC")
    with pytest.raises(SettlementError, match="divide one hour"):
        hourly_pv_table(index, 7 * 60, {"a": np.zeros(4)}, np.zeros(4), np.zeros(4))
    with pytest.raises(SettlementError, match="shape"):
        hourly_pv_table(index, 900, {"a": np.zeros(3)}, np.zeros(4), np.zeros(4))
    with pytest.raises(SettlementError, match="timezone"):
        hourly_pv_table(index.tz_localize(None), 900, {}, np.zeros(4), np.zeros(4))


START = datetime(2024, 6, 1, tzinfo=UTC)


def session(**overrides: object) -> ChargingSession:
    fields = dict(
        session_id="tx_1",
        charger_id="cp_1",
        vehicle_id="ev_7",
        start_s=3600,
        stop_s=3 * 3600 + 59,
        meter_start_wh=100_000,
        meter_stop_wh=112_345,
    )
    fields.update(overrides)
    return ChargingSession(**fields)  # type: ignore[arg-type]


def test_invoice_fields_and_exact_cost(site_key) -> None:
    (invoice,) = issue_invoices(
        [session()],
        site_key,
        "sit_depot",
        scenario_start=START,
        price_per_kwh=0.285,
        currency="EUR",
    )
    assert invoice.invoice_id == invoice_id("sit_depot", "tx_1")
    assert (invoice.started_at, invoice.stopped_at) == (
        "2024-06-01T01:00:00Z",
        "2024-06-01T03:00:59Z",
    )
    assert invoice.issued_at == invoice.stopped_at
    assert (invoice.wh_delivered, invoice.kwh, invoice.price_per_kwh) == (
        12345,
        "12.345",
        "0.28500",
    )
    assert invoice.cost == "3.52"  # 12.345 kWh x 0.285 = 3.518325
    assert invoice.problems() == []
    assert signature_valid(invoice.to_dict(), site_key.public_key, INVOICE_CONTEXT)


def test_invoice_price_per_session_currency_decimals_and_credits(site_key) -> None:
    sessions = [session(), session(session_id="tx_2", meter_stop_wh=100_500)]
    prices = {"tx_1": Decimal("31"), "tx_2": "-20"}
    invoices = issue_invoices(
        sessions,
        site_key,
        "sit_depot",
        scenario_start=START,
        price_per_kwh=lambda s: prices[s.session_id],
        currency="JPY",
        price_decimals=0,
        cost_decimals=0,
    )
    by_session = {inv.session_id: inv for inv in invoices}
    assert by_session["tx_1"].cost == "383"  # 12.345 x 31 = 382.695
    assert by_session["tx_2"].cost == "-10"  # negative price: a credit
    assert all(inv.problems() == [] for inv in invoices)


def test_invoice_arithmetic_is_rechecked(site_key) -> None:
    (invoice,) = issue_invoices(
        [session()],
        site_key,
        "sit_depot",
        scenario_start=START,
        price_per_kwh=0.285,
        currency="EUR",
    )
    assert replace(invoice, cost="3.51").problems() == ["cost 3.51 != kwh * price_per_kwh = 3.52"]
    assert "kwh" in replace(invoice, kwh="12.346").problems()[0]
    assert "wh_delivered" in replace(invoice, wh_delivered=1).problems()[0]


@pytest.mark.parametrize(
    ("sessions", "currency", "match"),
    [
        ([session(), session()], "EUR", "appears twice"),
        ([session(meter_stop_wh=1)], "EUR", "falls"),
        ([session()], "euro", "ISO 4217"),
    ],
)
def test_bad_sessions_are_refused(site_key, sessions, currency: str, match: str) -> None:
    with pytest.raises(SettlementError, match=match):
        issue_invoices(
            sessions,
            site_key,
            "sit_depot",
            scenario_start=START,
            price_per_kwh=0.3,
            currency=currency,
        )


def test_session_from_meter_values() -> None:
    values = [(600, 5000.4), (1200, 7000.0), (1800, 9999.6)]
    built = session_from_meter_values("tx_9", "cp_2", None, values)
    assert built == ChargingSession("tx_9", "cp_2", None, 600, 1800, 5000, 10000)
    with pytest.raises(SettlementError, match="must not decrease"):
        session_from_meter_values("tx_9", "cp_2", None, [(0, 10.0), (60, 9.0)])
    with pytest.raises(SettlementError, match="at least"):
        session_from_meter_values("tx_9", "cp_2", None, [(0, 10.0)])


def test_sample_invoices(items, sessions) -> None:
    _, invoices = items
    assert len(invoices) == len(sessions)
    assert all(inv.problems() == [] for inv in invoices)
    assert [inv.stopped_at for inv in invoices] == sorted(inv.stopped_at for inv in invoices)
    assert any(inv.vehicle_id is None for inv in invoices)
