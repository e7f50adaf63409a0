"""The append-only, hash-chained ledger file."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from qubit_sim.stack.settle import (
    GENESIS_HASH,
    LedgerEntry,
    SettlementError,
    append_ledger,
    make_ledger_entry,
    read_ledger,
    write_ledger,
)
from qubit_sim.stack.settle.ledger import compute_entry_hash


def chain(key, count: int) -> list[LedgerEntry]:
    entries, prev = [], GENESIS_HASH
    for sequence in range(1, count + 1):
        entry = make_ledger_entry(
            sequence=sequence,
            period=f"2024-06-{sequence:02d}",
            merkle_root=bytes([sequence]) * 32,
            certificate_count=sequence,
            invoice_count=2,
            prev_entry_hash=prev,
            key=key,
        )
        entries.append(entry)
        prev = entry.entry_hash
    return entries


def test_entries_chain_from_genesis(site_key) -> None:
    entries = chain(site_key, 3)
    assert entries[0].prev_entry_hash == GENESIS_HASH == "0" * 64
    assert [e.prev_entry_hash for e in entries[1:]] == [e.entry_hash for e in entries[:-1]]
    assert all(compute_entry_hash(e) == e.entry_hash for e in entries)
    assert entries[1].item_count == 4 and entries[1].site_id == site_key.site_id
    # The hash covers every other field.
    assert compute_entry_hash(replace(entries[1], item_count=5)) != entries[1].entry_hash


def test_write_then_read_round_trips(tmp_path: Path, site_key) -> None:
    entries = chain(site_key, 3)
    write_ledger(tmp_path / "ledger.jsonl", entries)
    assert read_ledger(tmp_path / "ledger.jsonl") == entries
    assert (tmp_path / "ledger.jsonl").read_bytes().count(b"\n") == 3


def test_write_never_replaces_a_ledger(tmp_path: Path, site_key) -> None:
    path = tmp_path / "ledger.jsonl"
    write_ledger(path, chain(site_key, 1))
    before = path.read_bytes()
    with pytest.raises(SettlementError, match="append-only"):
        write_ledger(path, chain(site_key, 2))
    assert path.read_bytes() == before


def test_write_refuses_a_broken_chain(tmp_path: Path, site_key) -> None:
    first, second = chain(site_key, 2)
    with pytest.raises(SettlementError, match="does not extend"):
        write_ledger(tmp_path / "ledger.jsonl", [second, first])


def test_append_extends_only_the_last_entry(tmp_path: Path, site_key) -> None:
    path = tmp_path / "ledger.jsonl"
    entries = chain(site_key, 3)
    for entry in entries[:2]:
        append_ledger(path, entry)
    with pytest.raises(SettlementError, match="does not extend"):
        append_ledger(path, entries[0])
    forged = replace(entries[2], item_count=99)  # stale entry_hash
    with pytest.raises(SettlementError, match="wrong entry_hash"):
        append_ledger(path, forged)
    append_ledger(path, entries[2])
    assert read_ledger(path) == entries


def test_read_names_the_bad_line(tmp_path: Path, site_key) -> None:
    path = tmp_path / "ledger.jsonl"
    write_ledger(path, chain(site_key, 2))
    path.write_bytes(path.read_bytes().replace(b'"sequence":2', b'"sequence":"2"'))
    with pytest.raises(SettlementError, match="line 2.*sequence"):
        read_ledger(path)


def test_entry_arguments_are_checked(site_key) -> None:
    with pytest.raises(SettlementError, match="start at 1"):
        make_ledger_entry(sequence=0, period="p", merkle_root=b"\0" * 32, certificate_count=0,
                          invoice_count=0, prev_entry_hash=GENESIS_HASH, key=site_key)  # fmt: skip
    with pytest.raises(SettlementError, match="32 bytes"):
        make_ledger_entry(sequence=1, period="p", merkle_root=b"\0", certificate_count=0,
                          invoice_count=0, prev_entry_hash=GENESIS_HASH, key=site_key)  # fmt: skip
