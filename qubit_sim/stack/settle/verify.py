"""Verify a settlement folder end to end and name the first thing that was tampered with.

Checked, in this order (so the first finding is the root cause, not a consequence):

1. the public key ``keys/site_public.pem`` (canonical PEM, matches ``site_public.hex`` and, when
   given, the fingerprint published in the run manifest);
2. every ledger entry: sequence, link to the previous entry (genesis for the first), entry hash,
   signing key and signature, canonical form; the head against the published head, when given;
3. every certificate, then every invoice: signing key and signature, field consistency (ids,
   energy split, invoice arithmetic), and Merkle inclusion recomputed from the item itself
   against its period's ledger root;
4. per ledger entry: the items on disk are exactly the ones it commits to (no item dropped,
   duplicated or added), and they rebuild its Merkle root.

A tampered item is reported, never raised: the result is a :class:`VerifyReport`.
"""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from qubit_sim.stack.settle.artifacts import (
    CERTIFICATES_FILE,
    INVOICES_FILE,
    LEDGER_FILE,
    PUBLIC_KEY_HEX,
    PUBLIC_KEY_PEM,
)
from qubit_sim.stack.settle.canonical import parse_canonical_line
from qubit_sim.stack.settle.certificates import CERTIFICATE_CONTEXT, EnergyCertificate
from qubit_sim.stack.settle.errors import SettlementError
from qubit_sim.stack.settle.invoices import INVOICE_CONTEXT, ChargingInvoice
from qubit_sim.stack.settle.keys import (
    load_public_key_pem,
    public_key_fingerprint,
    public_key_hex,
    public_key_id,
    public_key_pem,
)
from qubit_sim.stack.settle.ledger import (
    GENESIS_HASH,
    LEDGER_CONTEXT,
    LedgerEntry,
    compute_entry_hash,
)
from qubit_sim.stack.settle.merkle import MerkleProof, MerkleTree, leaf_hash, verify_proof
from qubit_sim.stack.settle.records import INCLUSION_FIELD, record_hash, signature_valid

__all__ = ["Finding", "VerifyReport", "verify_settlement"]


@dataclass(frozen=True)
class Finding:
    """One verification failure.

    Attributes:
        kind: ``certificate``, ``invoice``, ``ledger entry``, ``ledger``, ``public key`` or
            ``file``.
        item_id: Certificate/invoice id, ledger sequence number, or file name.
        problem: What is wrong.
        file: File (relative to the settlement folder) holding the item.
        line: 1-based line in ``file``, when the item is a line.
    """

    kind: str
    item_id: str
    problem: str
    file: str
    line: int | None = None

    def __str__(self) -> str:
        return f"{self.kind} {self.item_id} {self.problem}"


@dataclass(frozen=True)
class VerifyReport:
    """Outcome of :func:`verify_settlement`.

    Attributes:
        ok: True if nothing failed.
        findings: Every failure, in check order; the first is the one to act on.
        certificates: Certificate lines read.
        invoices: Invoice lines read.
        ledger_entries: Ledger lines read.
        public_key_fingerprint: Fingerprint of the folder's public key, if it could be read.
        ledger_head: ``entry_hash`` of the last ledger entry, if it could be read.
    """

    ok: bool
    findings: tuple[Finding, ...]
    certificates: int = 0
    invoices: int = 0
    ledger_entries: int = 0
    public_key_fingerprint: str | None = None
    ledger_head: str | None = None

    @property
    def first(self) -> Finding | None:
        """The first failure, or None."""
        return self.findings[0] if self.findings else None

    @property
    def first_failure(self) -> str | None:
        """The first failure as text, e.g. ``certificate cert_... signature invalid``."""
        return str(self.findings[0]) if self.findings else None

    def __str__(self) -> str:
        if self.ok:
            return (
                f"settlement ok: {self.ledger_entries} ledger entries, {self.certificates} "
                f"certificates, {self.invoices} invoices"
            )
        return f"settlement NOT ok ({len(self.findings)} findings); first: {self.first_failure}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {**asdict(self), "first_failure": self.first_failure}


@dataclass
class _Slot:
    kind: str
    item_id: str
    leaf: bytes


@dataclass
class _State:
    folder: Path
    findings: list[Finding] = field(default_factory=list)
    key: Ed25519PublicKey | None = None
    key_id: str = ""
    site_id: str | None = None
    entries: dict[str, tuple[int, LedgerEntry]] = field(default_factory=dict)
    slots: dict[str, dict[int, list[_Slot]]] = field(default_factory=lambda: defaultdict(dict))

    def add(
        self, kind: str, item_id: str, problem: str, file: str, line: int | None = None
    ) -> None:
        self.findings.append(Finding(kind, item_id, problem, file, line))


def _read_lines(state: _State, name: str) -> list[bytes] | None:
    path = state.folder / name
    if not path.is_file():
        state.add("file", name, "is missing", name)
        return None
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        state.add("file", name, "does not end with a newline (truncated or altered)", name)
    lines = data.split(b"\n")
    return lines[:-1] if lines[-1] == b"" else lines


def _check_public_key(state: _State, expected_fingerprint: str | None) -> None:
    pem_path = state.folder / PUBLIC_KEY_PEM
    if not pem_path.is_file():
        state.add("public key", PUBLIC_KEY_PEM, "is missing", PUBLIC_KEY_PEM)
        return
    data = pem_path.read_bytes()
    try:
        key = load_public_key_pem(data)
    except SettlementError as exc:
        state.add("public key", PUBLIC_KEY_PEM, f"is unreadable: {exc}", PUBLIC_KEY_PEM)
        return
    state.key, state.key_id = key, public_key_id(key)
    if public_key_pem(key) != data:
        state.add("public key", PUBLIC_KEY_PEM, "is not in canonical PEM form", PUBLIC_KEY_PEM)
    hex_path = state.folder / PUBLIC_KEY_HEX
    if not hex_path.is_file() or hex_path.read_bytes() != f"{public_key_hex(key)}\n".encode():
        state.add("public key", PUBLIC_KEY_HEX, "does not match site_public.pem", PUBLIC_KEY_HEX)
    fingerprint = public_key_fingerprint(key)
    if expected_fingerprint is not None and fingerprint != expected_fingerprint:
        state.add(
            "public key",
            PUBLIC_KEY_PEM,
            f"fingerprint {fingerprint} is not the published {expected_fingerprint}",
            PUBLIC_KEY_PEM,
        )


def _ledger_problem(
    state: _State, entry: LedgerEntry, number: int, prev_hash: str | None, prev_period: str | None
) -> str | None:
    assert state.key is not None
    if entry.sequence != number:
        return f"sequence is {entry.sequence}, expected {number}"
    if prev_hash is not None and entry.prev_entry_hash != prev_hash:
        return "prev hash mismatch"
    if compute_entry_hash(entry) != entry.entry_hash:
        return "entry hash mismatch"
    if entry.public_key_id != state.key_id:
        return f"signed by {entry.public_key_id}, the folder key is {state.key_id}"
    if not signature_valid(entry.to_dict(), state.key, LEDGER_CONTEXT):
        return "signature invalid"
    if state.site_id is not None and entry.site_id != state.site_id:
        return f"is for site {entry.site_id!r}, the ledger for {state.site_id!r}"
    if entry.period in state.entries:
        return f"repeats period {entry.period!r} of entry {state.entries[entry.period][0]}"
    if prev_period is not None and entry.period < prev_period:
        return f"period {entry.period!r} comes after {prev_period!r}"
    if entry.item_count != entry.certificate_count + entry.invoice_count:
        return "item_count != certificate_count + invoice_count"
    return None


def _check_ledger(state: _State, expected_head: str | None) -> tuple[int, str | None]:
    lines = _read_lines(state, LEDGER_FILE)
    if lines is None or state.key is None:
        return 0, None
    prev_hash: str | None = GENESIS_HASH
    prev_period: str | None = None
    for number, line in enumerate(lines, start=1):
        try:
            data, canonical = parse_canonical_line(line)
            entry = LedgerEntry.from_dict(data)
        except (ValueError, SettlementError) as exc:
            state.add("ledger entry", str(number), f"is unreadable: {exc}", LEDGER_FILE, number)
            prev_hash = prev_period = None
            continue
        problem = _ledger_problem(state, entry, number, prev_hash, prev_period)
        if problem is None and not canonical:
            problem = "is not in canonical form"
        if problem:
            state.add("ledger entry", str(number), problem, LEDGER_FILE, number)
        state.site_id = state.site_id or entry.site_id
        state.entries.setdefault(entry.period, (number, entry))
        prev_hash, prev_period = entry.entry_hash, entry.period
    head = prev_hash if lines else GENESIS_HASH
    if expected_head is not None and head != expected_head:
        state.add("ledger", "head", f"{head} is not the published {expected_head}", LEDGER_FILE)
    return len(lines), head


def _item_problem(
    state: _State, item: EnergyCertificate | ChargingInvoice, record: dict[str, Any], context: str
) -> str | None:
    assert state.key is not None
    if item.public_key_id != state.key_id:
        return f"signed by {item.public_key_id}, the folder key is {state.key_id}"
    if not signature_valid(record, state.key, context):
        return "signature invalid"
    if state.site_id is not None and item.site_id != state.site_id:
        return f"is for site {item.site_id!r}, the ledger for {state.site_id!r}"
    problems = item.problems()
    return problems[0] if problems else None


def _inclusion_problem(state: _State, kind: str, item_id: str, record: dict[str, Any]) -> str:
    inclusion = record.get(INCLUSION_FIELD)
    if not isinstance(inclusion, dict) or not isinstance(inclusion.get("period"), str):
        return "merkle inclusion is missing or has no period"
    period = inclusion["period"]
    try:
        proof = MerkleProof.from_dict({k: v for k, v in inclusion.items() if k != "period"})
    except SettlementError as exc:
        return f"merkle inclusion is malformed: {exc}"
    if period not in state.entries:
        return f"claims period {period!r}, which has no ledger entry"
    number, entry = state.entries[period]
    if proof.tree_size != entry.item_count:
        return f"merkle inclusion tree size {proof.tree_size} != {entry.item_count} items of entry {number}"
    leaf = leaf_hash(record_hash(record))
    state.slots[period].setdefault(proof.index, []).append(_Slot(kind, item_id, leaf))
    try:
        root = bytes.fromhex(entry.merkle_root)
    except ValueError:
        return f"merkle inclusion cannot be checked: ledger entry {number} root is not hex"
    if not verify_proof(leaf, proof, root):
        return f"merkle inclusion invalid against ledger entry {number}"
    return ""


def _check_items(
    state: _State,
    name: str,
    cls: type[EnergyCertificate] | type[ChargingInvoice],
    context: str,
) -> int:
    lines = _read_lines(state, name)
    if lines is None or state.key is None:
        return 0
    kind = cls.kind
    seen: dict[str, int] = {}
    for number, line in enumerate(lines, start=1):
        item_id = f"line {number}"
        try:
            record, canonical = parse_canonical_line(line)
            fields = {k: v for k, v in record.items() if k != INCLUSION_FIELD}
            guess = fields.get(f"{kind}_id")
            item_id = guess if isinstance(guess, str) else item_id
            item: EnergyCertificate | ChargingInvoice = cls.from_dict(fields)
        except (ValueError, SettlementError) as exc:
            state.add(kind, item_id, f"is unreadable: {exc}", name, number)
            continue
        problem = _item_problem(state, item, record, context)
        if problem is None and item_id in seen:
            problem = f"appears twice (lines {seen[item_id]} and {number})"
        seen.setdefault(item_id, number)
        # Inclusion is recorded even for a bad item so that completeness is judged on all lines.
        inclusion = _inclusion_problem(state, kind, item_id, record)
        problem = problem or inclusion or (None if canonical else "is not in canonical form")
        if problem:
            state.add(kind, item_id, problem, name, number)
    return len(lines)


def _check_completeness(state: _State) -> None:
    for period, (number, entry) in state.entries.items():
        slots = state.slots.get(period, {})
        crowded = sorted(index for index, claims in slots.items() if len(claims) > 1)
        missing = [index for index in range(entry.item_count) if index not in slots]
        found = sum(len(claims) for claims in slots.values())
        problem = None
        if crowded:
            ids = ", ".join(slot.item_id for slot in slots[crowded[0]])
            problem = f"leaf {crowded[0]} is claimed by several items ({ids})"
        elif missing or found != entry.item_count:
            problem = (
                f"commits {entry.item_count} items, {found} found (missing leaf {missing[:3]})"
            )
        else:
            kinds = [slots[index][0].kind for index in range(entry.item_count)]
            certs = kinds.count(EnergyCertificate.kind)
            leaves = [slots[index][0].leaf for index in range(entry.item_count)]
            if certs != entry.certificate_count:
                problem = f"commits {entry.certificate_count} certificates, {certs} found"
            elif MerkleTree.from_leaf_hashes(leaves).root.hex() != entry.merkle_root:
                problem = "merkle root does not match its items"
        if problem:
            state.add("ledger entry", str(number), problem, LEDGER_FILE, number)


def verify_settlement(
    folder: str | os.PathLike[str],
    *,
    expected_fingerprint: str | None = None,
    expected_ledger_head: str | None = None,
) -> VerifyReport:
    """Verify every signature, Merkle inclusion, the ledger chain and completeness of ``folder``.

    Args:
        folder: A settlement folder (``<results>/settlement``) as written by
            :func:`~qubit_sim.stack.settle.artifacts.write_settlement_artifacts`.
        expected_fingerprint: The public key fingerprint published in the run manifest. Without
            it the check proves the folder is internally consistent, not who signed it.
        expected_ledger_head: The ledger head published in the run manifest; without it,
            removing whole trailing periods (entries and their items) cannot be detected.

    Returns:
        A report; ``ok`` is True only if nothing failed.
    """
    state = _State(Path(folder))
    if not state.folder.is_dir():
        state.add("file", str(folder), "is not a folder", str(folder))
        return VerifyReport(False, tuple(state.findings))
    _check_public_key(state, expected_fingerprint)
    n_entries, head = _check_ledger(state, expected_ledger_head)
    n_certs = _check_items(state, CERTIFICATES_FILE, EnergyCertificate, CERTIFICATE_CONTEXT)
    n_invoices = _check_items(state, INVOICES_FILE, ChargingInvoice, INVOICE_CONTEXT)
    if state.key is not None:
        _check_completeness(state)
    return VerifyReport(
        ok=not state.findings,
        findings=tuple(state.findings),
        certificates=n_certs,
        invoices=n_invoices,
        ledger_entries=n_entries,
        public_key_fingerprint=public_key_fingerprint(state.key) if state.key else None,
        ledger_head=head,
    )
