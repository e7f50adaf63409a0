"""Append-only settlement ledger: one signed entry per settlement period, hash-chained.

Entry ``n`` (``sequence`` counts from 1) commits to the Merkle root of its period's certificates and
invoices and to the hash of entry ``n - 1``; the first entry points at :data:`GENESIS_HASH`
(64 zeros). ``entry_hash`` is SHA-256 over ``qubit-sim/ledger-entry/v1 0x00 <canonical JSON of the
entry without entry_hash and signature>``; the signature covers the entry including its
``entry_hash``. Changing, dropping or reordering any earlier entry breaks every later link.

The file is JSON Lines, one canonical entry per line, and is only ever appended to. The hash of
the last entry (the *head*) pins the whole history: publish it with the run (e.g. in the
manifest) so that cutting entries off the end is detected too.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from qubit_sim.stack.settle.canonical import canonical_json, parse_canonical_line, sha256_hex
from qubit_sim.stack.settle.errors import SettlementError
from qubit_sim.stack.settle.keys import SiteKey
from qubit_sim.stack.settle.records import check_fields, read_jsonl_lines, sign_fields

__all__ = [
    "GENESIS_HASH",
    "LEDGER_CONTEXT",
    "LedgerEntry",
    "append_ledger",
    "compute_entry_hash",
    "make_ledger_entry",
    "read_ledger",
    "write_ledger",
]

GENESIS_HASH = "0" * 64
LEDGER_CONTEXT = "qubit-sim/ledger-entry/v1"
_RECORD_TYPE = "ledger_entry"


@dataclass(frozen=True)
class LedgerEntry:
    """One settlement period committed to the ledger.

    Attributes:
        sequence: Position in the ledger, from 1.
        site_id: The settling site.
        period: Settlement period label, e.g. ``2024-06-01``.
        merkle_root: Root (64 hex) of the period's items, certificates before invoices.
        item_count: Number of items in the period (certificates + invoices).
        certificate_count: Certificates among them.
        invoice_count: Invoices among them.
        prev_entry_hash: ``entry_hash`` of the previous entry, or :data:`GENESIS_HASH`.
        entry_hash: Hash of this entry (module docstring).
        public_key_id: Key that signed the entry.
        signature: Ed25519 signature, 128 hex.
    """

    sequence: int
    site_id: str
    period: str
    merkle_root: str
    item_count: int
    certificate_count: int
    invoice_count: int
    prev_entry_hash: str
    entry_hash: str
    public_key_id: str
    signature: str

    kind = "ledger entry"

    @property
    def item_id(self) -> str:
        """The identifier verification reports name: the sequence number."""
        return str(self.sequence)

    def to_dict(self) -> dict[str, Any]:
        """The JSON record, with its ``type`` field."""
        return {"type": _RECORD_TYPE, **asdict(self)}

    @classmethod
    def from_dict(cls, data: Any) -> LedgerEntry:
        """Read an entry strictly: exact field set and types.

        Raises:
            SettlementError: naming the first bad field.
        """
        types: dict[str, type | tuple[type, ...]] = {"type": str}
        types.update({name: (int if name in _INT_FIELDS else str) for name in _FIELDS})
        check_fields(data, types, "ledger entry")
        if data["type"] != _RECORD_TYPE:
            raise SettlementError(f"ledger entry type {data['type']!r} is not {_RECORD_TYPE!r}")
        return cls(**{name: data[name] for name in _FIELDS})


_FIELDS = tuple(LedgerEntry.__dataclass_fields__)
_INT_FIELDS = {"sequence", "item_count", "certificate_count", "invoice_count"}


def compute_entry_hash(entry: LedgerEntry | dict[str, Any]) -> str:
    """The ``entry_hash`` an entry must carry (64 hex), from its other fields."""
    fields = entry.to_dict() if isinstance(entry, LedgerEntry) else dict(entry)
    fields.pop("entry_hash", None)
    fields.pop("signature", None)
    return sha256_hex(LEDGER_CONTEXT.encode("utf-8") + b"\x00" + canonical_json(fields))


def make_ledger_entry(
    *,
    sequence: int,
    period: str,
    merkle_root: bytes,
    certificate_count: int,
    invoice_count: int,
    prev_entry_hash: str,
    key: SiteKey,
) -> LedgerEntry:
    """Build, hash and sign one entry for ``key``'s site.

    Raises:
        SettlementError: for a sequence below 1, an empty period label or a root that is not
            32 bytes.
    """
    if sequence < 1:
        raise SettlementError(f"ledger sequence numbers start at 1, got {sequence}")
    if not isinstance(period, str) or not period:
        raise SettlementError(f"settlement period label {period!r} must be a non-empty string")
    if len(merkle_root) != 32:
        raise SettlementError(f"Merkle root must be 32 bytes, got {len(merkle_root)}")
    fields: dict[str, Any] = {
        "type": _RECORD_TYPE,
        "sequence": sequence,
        "site_id": key.site_id,
        "period": period,
        "merkle_root": merkle_root.hex(),
        "item_count": certificate_count + invoice_count,
        "certificate_count": certificate_count,
        "invoice_count": invoice_count,
        "prev_entry_hash": prev_entry_hash,
        "public_key_id": key.key_id,
    }
    fields["entry_hash"] = compute_entry_hash(fields)
    fields["signature"] = sign_fields(fields, key, LEDGER_CONTEXT)
    return LedgerEntry.from_dict(fields)


def _check_chain(entries: Sequence[LedgerEntry], prev_hash: str, next_sequence: int) -> None:
    for entry in entries:
        if entry.sequence != next_sequence or entry.prev_entry_hash != prev_hash:
            raise SettlementError(
                f"ledger entry {entry.sequence} does not extend the chain: expected sequence "
                f"{next_sequence} after hash {prev_hash[:16]}..."
            )
        if compute_entry_hash(entry) != entry.entry_hash:
            raise SettlementError(f"ledger entry {entry.sequence} carries a wrong entry_hash")
        prev_hash, next_sequence = entry.entry_hash, next_sequence + 1


def read_ledger(path: str | os.PathLike[str]) -> list[LedgerEntry]:
    """Parse a ledger file (structure only; :func:`~.verify.verify_settlement` checks it).

    Raises:
        SettlementError: naming the first line that is not a well-formed entry.
    """
    entries = []
    for number, line in enumerate(read_jsonl_lines(Path(path)), start=1):
        try:
            data, _ = parse_canonical_line(line)
            entries.append(LedgerEntry.from_dict(data))
        except (ValueError, SettlementError) as exc:
            raise SettlementError(f"{path} line {number}: {exc}") from exc
    return entries


def write_ledger(path: str | os.PathLike[str], entries: Sequence[LedgerEntry]) -> None:
    """Create a ledger file holding ``entries`` (a chain starting at the genesis hash).

    Raises:
        SettlementError: if the file already exists (the ledger is append-only: use
            :func:`append_ledger`) or the entries do not chain.
    """
    _check_chain(entries, GENESIS_HASH, 1)
    payload = b"".join(canonical_json(entry.to_dict()) + b"\n" for entry in entries)
    try:
        with open(path, "xb") as handle:
            handle.write(payload)
    except FileExistsError as exc:
        raise SettlementError(
            f"ledger {path} already exists and is append-only; use append_ledger or a new folder"
        ) from exc


def append_ledger(path: str | os.PathLike[str], entry: LedgerEntry) -> None:
    """Append one entry after checking it extends the chain on file (creating the file if new).

    Raises:
        SettlementError: if ``entry`` does not follow the last entry on file.
    """
    existing = read_ledger(path) if Path(path).exists() else []
    prev_hash = existing[-1].entry_hash if existing else GENESIS_HASH
    _check_chain([entry], prev_hash, len(existing) + 1)
    with open(path, "ab") as handle:
        handle.write(canonical_json(entry.to_dict()) + b"\n")
