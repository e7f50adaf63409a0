"""The settlement folder of a run, written in one go.

Layout (``folder`` is normally ``<results>/settlement``)::

    certificates.jsonl     one signed EnergyCertificate per line + its merkle_inclusion
    invoices.jsonl         one signed ChargingInvoice per line + its merkle_inclusion
    ledger.jsonl           one signed LedgerEntry per settlement period, hash-chained
    keys/site_public.pem   the site's Ed25519 public key (SubjectPublicKeyInfo PEM)
    keys/site_public.hex   the same key, raw, as 64 hex characters

``merkle_inclusion`` is ``{"period", "index", "tree_size", "path"}``: the item's leaf position in
its period's tree and the audit path to the ledger entry's ``merkle_root``.

**The private key is never written here.** A results folder is meant to be shared, and whoever
holds the private key can re-sign a forged settlement; it stays in the key folder given to
:func:`~qubit_sim.stack.settle.keys.load_or_create_site_key`, outside the results. The public key is
*published* by its fingerprint: put :attr:`SettlementSummary.public_key_fingerprint` (and the
ledger head) into the run manifest and pass them to
:func:`~qubit_sim.stack.settle.verify.verify_settlement`; a verifier then knows the folder was
signed by that site key and not re-signed by someone else.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qubit_sim.stack.settle.certificates import EnergyCertificate
from qubit_sim.stack.settle.errors import SettlementError
from qubit_sim.stack.settle.invoices import ChargingInvoice
from qubit_sim.stack.settle.keys import SiteKey, public_key_hex, public_key_pem
from qubit_sim.stack.settle.ledger import GENESIS_HASH, make_ledger_entry, write_ledger
from qubit_sim.stack.settle.merkle import MerkleTree
from qubit_sim.stack.settle.records import INCLUSION_FIELD, record_hash, write_jsonl

__all__ = [
    "CERTIFICATES_FILE",
    "INVOICES_FILE",
    "KEYS_DIR",
    "LEDGER_FILE",
    "PUBLIC_KEY_HEX",
    "PUBLIC_KEY_PEM",
    "SettlementItem",
    "SettlementSummary",
    "daily_period",
    "monthly_period",
    "write_settlement_artifacts",
]

CERTIFICATES_FILE = "certificates.jsonl"
INVOICES_FILE = "invoices.jsonl"
LEDGER_FILE = "ledger.jsonl"
KEYS_DIR = "keys"
PUBLIC_KEY_PEM = "keys/site_public.pem"
PUBLIC_KEY_HEX = "keys/site_public.hex"

SettlementItem = EnergyCertificate | ChargingInvoice


def daily_period(item: SettlementItem) -> str:
    """UTC day ``YYYY-MM-DD`` of an item (hour start of a certificate, stop of a session)."""
    return item.settled_at.strftime("%Y-%m-%d")


def monthly_period(item: SettlementItem) -> str:
    """UTC month ``YYYY-MM`` of an item."""
    return item.settled_at.strftime("%Y-%m")


@dataclass(frozen=True)
class SettlementSummary:
    """What a run manifest should record about its settlement.

    Attributes:
        folder: The settlement folder written.
        site_id: The settling site.
        public_key_fingerprint: ``sha256:<hex>`` of the site public key — publish it.
        public_key_id: ``key_<hex>`` stamped into every record.
        ledger_head: ``entry_hash`` of the last ledger entry (genesis hash if none) — publish it.
        periods: Settlement periods in ledger order.
        certificate_count: Certificates written.
        invoice_count: Invoices written.
    """

    folder: Path
    site_id: str
    public_key_fingerprint: str
    public_key_id: str
    ledger_head: str
    periods: tuple[str, ...]
    certificate_count: int
    invoice_count: int

    def to_manifest(self) -> dict[str, Any]:
        """JSON-ready dict for the run manifest."""
        return {
            "site_id": self.site_id,
            "public_key_fingerprint": self.public_key_fingerprint,
            "public_key_id": self.public_key_id,
            "ledger_head": self.ledger_head,
            "ledger_entries": len(self.periods),
            "certificates": self.certificate_count,
            "invoices": self.invoice_count,
        }


def _check_items(items: Sequence[SettlementItem], key: SiteKey) -> None:
    seen: set[str] = set()
    for item in items:
        if item.public_key_id != key.key_id or item.site_id != key.site_id:
            raise SettlementError(
                f"{item.kind} {item.item_id} was signed by {item.public_key_id} for site "
                f"{item.site_id!r}; this settlement is signed by {key.key_id} for {key.site_id!r}"
            )
        if item.item_id in seen:
            raise SettlementError(f"{item.kind} {item.item_id} appears twice")
        seen.add(item.item_id)


def write_settlement_artifacts(
    folder: str | os.PathLike[str],
    certificates: Sequence[EnergyCertificate],
    invoices: Sequence[ChargingInvoice],
    period_of: Callable[[SettlementItem], str],
    key: SiteKey,
    *,
    overwrite: bool = False,
) -> SettlementSummary:
    """Write certificates, invoices, ledger and public key into ``folder`` (layout above).

    Items are grouped by ``period_of(item)``; periods go into the ledger in sorted label order,
    so labels must sort chronologically (ISO labels such as :func:`daily_period` do). Within a
    period the Merkle leaves are the certificates by (hour, asset), then the invoices by
    (stop, session). The same inputs and key always give the same bytes.

    Args:
        folder: The settlement folder, normally ``<results>/settlement``; created if missing.
        certificates: Certificates signed with ``key``.
        invoices: Invoices signed with ``key``.
        period_of: Settlement period label of an item, e.g. :func:`daily_period`.
        key: The site key (only its public half is written).
        overwrite: Replace settlement files already in ``folder``. Off by default: a ledger
            is append-only and an existing one is never silently replaced.

    Raises:
        SettlementError: for items signed by another key or site, duplicate ids, an empty
            period label, or existing files without ``overwrite``.
    """
    folder = Path(folder)
    _check_items([*certificates, *invoices], key)
    targets = [CERTIFICATES_FILE, INVOICES_FILE, LEDGER_FILE, PUBLIC_KEY_PEM, PUBLIC_KEY_HEX]
    existing = [name for name in targets if (folder / name).exists()]
    if existing and not overwrite:
        raise SettlementError(
            f"{folder} already holds {existing}; write settlement into a fresh results folder "
            "or pass overwrite=True"
        )
    certificates_of: dict[str, list[EnergyCertificate]] = defaultdict(list)
    invoices_of: dict[str, list[ChargingInvoice]] = defaultdict(list)
    all_items: list[SettlementItem] = [*certificates, *invoices]
    for item in all_items:
        period = period_of(item)
        if not isinstance(period, str) or not period:
            raise SettlementError(f"period_of gave {period!r} for {item.kind} {item.item_id}")
        if isinstance(item, EnergyCertificate):
            certificates_of[period].append(item)
        else:
            invoices_of[period].append(item)
    periods = sorted(set(certificates_of) | set(invoices_of))

    cert_lines: list[dict[str, Any]] = []
    invoice_lines: list[dict[str, Any]] = []
    entries = []
    prev_hash = GENESIS_HASH
    for sequence, period in enumerate(periods, start=1):
        period_certs = sorted(
            certificates_of[period], key=lambda c: (c.period_start, c.asset_id, c.item_id)
        )
        period_invoices = sorted(
            invoices_of[period], key=lambda i: (i.stopped_at, i.session_id, i.item_id)
        )
        period_items: list[SettlementItem] = [*period_certs, *period_invoices]
        records = [item.to_dict() for item in period_items]
        tree = MerkleTree([record_hash(record) for record in records])
        for index, record in enumerate(records):
            record[INCLUSION_FIELD] = {"period": period, **tree.proof(index).to_dict()}
        cert_lines += records[: len(period_certs)]
        invoice_lines += records[len(period_certs) :]
        entry = make_ledger_entry(
            sequence=sequence,
            period=period,
            merkle_root=tree.root,
            certificate_count=len(period_certs),
            invoice_count=len(period_invoices),
            prev_entry_hash=prev_hash,
            key=key,
        )
        entries.append(entry)
        prev_hash = entry.entry_hash

    (folder / KEYS_DIR).mkdir(parents=True, exist_ok=True)
    for name in existing:
        (folder / name).unlink()
    write_jsonl(folder / CERTIFICATES_FILE, cert_lines)
    write_jsonl(folder / INVOICES_FILE, invoice_lines)
    (folder / PUBLIC_KEY_PEM).write_bytes(public_key_pem(key.public_key))
    (folder / PUBLIC_KEY_HEX).write_bytes((public_key_hex(key.public_key) + "\n").encode())
    # The ledger goes last: it commits to everything above.
    write_ledger(folder / LEDGER_FILE, entries)
    return SettlementSummary(
        folder=folder,
        site_id=key.site_id,
        public_key_fingerprint=key.fingerprint,
        public_key_id=key.key_id,
        ledger_head=prev_hash,
        periods=tuple(periods),
        certificate_count=len(cert_lines),
        invoice_count=len(invoice_lines),
    )
