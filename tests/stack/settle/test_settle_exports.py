"""The public API of qubit_sim.stack.settle is pinned: changing it is a deliberate act."""

from __future__ import annotations

import importlib

import qubit_sim.stack.settle as settle

EXPORTED = {
    "CERTIFICATES_FILE", "GENESIS_HASH", "HOURLY_COLUMNS", "INVOICES_FILE", "LEDGER_FILE",
    "PUBLIC_KEY_HEX", "PUBLIC_KEY_PEM", "ChargingInvoice", "ChargingSession",
    "EnergyCertificate", "Finding", "LedgerEntry", "MerkleProof", "MerkleTree",
    "SettlementError", "SettlementItem", "SettlementSummary", "SiteKey", "VerifyReport",
    "append_ledger", "canonical_json", "certificate_id", "daily_period", "decimal_text",
    "hourly_pv_table", "invoice_id", "issue_certificates", "issue_invoices", "leaf_hash",
    "load_or_create_site_key", "make_ledger_entry", "monthly_period", "public_key_fingerprint",
    "read_ledger", "session_from_meter_values", "sha256_hex", "to_wh", "verify_proof",
    "verify_settlement", "write_ledger", "write_settlement_artifacts",
}  # fmt: skip
MODULES = [
    "artifacts", "canonical", "certificates", "errors", "invoices", "keys", "ledger", "merkle",
    "records", "verify",
]  # fmt: skip


def test_package_exports_are_pinned() -> None:
    assert set(settle.__all__) == EXPORTED
    assert all(hasattr(settle, name) for name in settle.__all__)


def test_every_module_declares_what_it_exports() -> None:
    for name in MODULES:
        module = importlib.import_module(f"qubit_sim.stack.settle.{name}")
        assert module.__all__, name
        assert all(hasattr(module, attr) for attr in module.__all__), name


def test_settlement_error_is_a_qubit_sim_error() -> None:
    from qubit_sim.errors import QubitSimError

    assert issubclass(settle.SettlementError, QubitSimError)
