"""Qubit L5 settlement core: signed energy certificates and charging invoices, committed per
settlement period to a hash-chained ledger of Merkle roots, and a verifier that names the first
tampered item.

Typical use::

    key = load_or_create_site_key(key_dir, "sit_depot")
    certificates = issue_certificates(hourly_pv_table(...), key, "sit_depot")
    invoices = issue_invoices(sessions, key, "sit_depot", scenario_start=start,
                              price_per_kwh=0.30, currency="EUR")
    summary = write_settlement_artifacts(results / "settlement", certificates, invoices,
                                         daily_period, key)
    report = verify_settlement(results / "settlement",
                               expected_fingerprint=summary.public_key_fingerprint,
                               expected_ledger_head=summary.ledger_head)
"""

from qubit_sim.stack.settle.artifacts import (
    CERTIFICATES_FILE,
    INVOICES_FILE,
    LEDGER_FILE,
    PUBLIC_KEY_HEX,
    PUBLIC_KEY_PEM,
    SettlementItem,
    SettlementSummary,
    daily_period,
    monthly_period,
    write_settlement_artifacts,
)
from qubit_sim.stack.settle.canonical import canonical_json, decimal_text, sha256_hex, to_wh
from qubit_sim.stack.settle.certificates import (
    HOURLY_COLUMNS,
    EnergyCertificate,
    certificate_id,
    hourly_pv_table,
    issue_certificates,
)
from qubit_sim.stack.settle.errors import SettlementError
from qubit_sim.stack.settle.invoices import (
    ChargingInvoice,
    ChargingSession,
    invoice_id,
    issue_invoices,
    session_from_meter_values,
)
from qubit_sim.stack.settle.keys import SiteKey, load_or_create_site_key, public_key_fingerprint
from qubit_sim.stack.settle.ledger import (
    GENESIS_HASH,
    LedgerEntry,
    append_ledger,
    make_ledger_entry,
    read_ledger,
    write_ledger,
)
from qubit_sim.stack.settle.merkle import MerkleProof, MerkleTree, leaf_hash, verify_proof
from qubit_sim.stack.settle.verify import Finding, VerifyReport, verify_settlement

__all__ = [
    "CERTIFICATES_FILE",
    "GENESIS_HASH",
    "HOURLY_COLUMNS",
    "INVOICES_FILE",
    "LEDGER_FILE",
    "PUBLIC_KEY_HEX",
    "PUBLIC_KEY_PEM",
    "ChargingInvoice",
    "ChargingSession",
    "EnergyCertificate",
    "Finding",
    "LedgerEntry",
    "MerkleProof",
    "MerkleTree",
    "SettlementError",
    "SettlementItem",
    "SettlementSummary",
    "SiteKey",
    "VerifyReport",
    "append_ledger",
    "canonical_json",
    "certificate_id",
    "daily_period",
    "decimal_text",
    "hourly_pv_table",
    "invoice_id",
    "issue_certificates",
    "issue_invoices",
    "leaf_hash",
    "load_or_create_site_key",
    "make_ledger_entry",
    "monthly_period",
    "public_key_fingerprint",
    "read_ledger",
    "session_from_meter_values",
    "sha256_hex",
    "to_wh",
    "verify_proof",
    "verify_settlement",
    "write_ledger",
    "write_settlement_artifacts",
]
