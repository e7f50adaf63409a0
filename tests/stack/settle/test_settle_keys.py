"""Site keys on disk: created once with safe permissions, reloaded identically."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from qubit_sim.stack.settle import SettlementError, SiteKey, load_or_create_site_key
from qubit_sim.stack.settle.keys import (
    load_public_key_pem,
    public_key_fingerprint,
    public_key_hex,
    public_key_pem,
    verify_signature,
)

posix_only = pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_first_use_creates_key_files(tmp_path: Path) -> None:
    key_dir = tmp_path / "keys"
    key = load_or_create_site_key(key_dir, "sit_depot")
    assert sorted(p.name for p in key_dir.iterdir()) == [
        "sit_depot.key.pem",
        "sit_depot.pub.hex",
        "sit_depot.pub.pem",
    ]
    assert (key_dir / "sit_depot.pub.hex").read_text() == public_key_hex(key.public_key) + "\n"
    published = load_public_key_pem((key_dir / "sit_depot.pub.pem").read_bytes())
    assert public_key_fingerprint(published) == key.fingerprint
    assert key.fingerprint.startswith("sha256:") and len(key.fingerprint) == 7 + 64
    assert key.key_id == "key_" + key.fingerprint[7:23]


@posix_only
def test_private_key_is_owner_only(tmp_path: Path) -> None:
    key_dir = tmp_path / "keys"
    load_or_create_site_key(key_dir, "sit_depot")
    assert _mode(key_dir / "sit_depot.key.pem") == 0o600
    assert _mode(key_dir) & 0o077 == 0


def test_reload_gives_the_same_key(tmp_path: Path) -> None:
    first = load_or_create_site_key(tmp_path, "sit_depot")
    again = load_or_create_site_key(tmp_path, "sit_depot")
    assert public_key_hex(again.public_key) == public_key_hex(first.public_key)
    assert again.sign(b"same message") == first.sign(b"same message")
    other_site = load_or_create_site_key(tmp_path, "sit_other")
    assert other_site.fingerprint != first.fingerprint


def test_deleted_public_files_are_regenerated(tmp_path: Path) -> None:
    key = load_or_create_site_key(tmp_path, "sit_depot")
    (tmp_path / "sit_depot.pub.pem").unlink()
    (tmp_path / "sit_depot.pub.hex").unlink()
    again = load_or_create_site_key(tmp_path, "sit_depot")
    assert again.fingerprint == key.fingerprint
    assert (tmp_path / "sit_depot.pub.hex").read_text().strip() == public_key_hex(key.public_key)


def test_public_file_of_another_key_is_refused(tmp_path: Path) -> None:
    load_or_create_site_key(tmp_path, "sit_depot")
    stranger = SiteKey.generate("sit_depot")
    (tmp_path / "sit_depot.pub.hex").write_text(public_key_hex(stranger.public_key) + "\n")
    with pytest.raises(SettlementError, match="does not hold the public key"):
        load_or_create_site_key(tmp_path, "sit_depot")


@posix_only
def test_private_key_readable_by_others_is_refused(tmp_path: Path) -> None:
    load_or_create_site_key(tmp_path, "sit_depot")
    os.chmod(tmp_path / "sit_depot.key.pem", 0o644)
    with pytest.raises(SettlementError, match="chmod 600"):
        load_or_create_site_key(tmp_path, "sit_depot")


def test_password_protected_key(tmp_path: Path) -> None:
    key = load_or_create_site_key(tmp_path, "sit_depot", password=b"correct horse")
    assert b"ENCRYPTED" in (tmp_path / "sit_depot.key.pem").read_bytes()
    again = load_or_create_site_key(tmp_path, "sit_depot", password=b"correct horse")
    assert again.fingerprint == key.fingerprint
    with pytest.raises(SettlementError, match="password"):
        load_or_create_site_key(tmp_path, "sit_depot", password=b"wrong")


@pytest.mark.parametrize("site_id", ["", "../escape", "a/b", ".hidden"])
def test_unusable_site_ids_are_refused(tmp_path: Path, site_id: str) -> None:
    with pytest.raises(SettlementError, match="site id"):
        load_or_create_site_key(tmp_path, site_id)


def test_signatures_are_deterministic_and_strictly_encoded() -> None:
    key = SiteKey.from_private_bytes("sit_depot", bytes(range(32)))
    signature = key.sign(b"hello")
    assert signature == key.sign(b"hello")
    assert verify_signature(key.public_key, signature, b"hello")
    assert not verify_signature(key.public_key, signature, b"hellO")
    assert not verify_signature(key.public_key, signature.upper(), b"hello")
    assert not verify_signature(key.public_key, signature[:-2], b"hello")
    assert not verify_signature(key.public_key, "zz" + signature[2:], b"hello")
    with pytest.raises(SettlementError, match="32 bytes"):
        SiteKey.from_private_bytes("sit_depot", b"short")


def test_every_altered_byte_of_a_public_pem_is_refused_or_changes_the_key() -> None:
    key = SiteKey.from_private_bytes("sit_depot", bytes(range(32)))
    pem = public_key_pem(key.public_key)
    for position in range(len(pem)):
        for flip in (0x01, 0x20, 0x80):
            altered = bytearray(pem)
            altered[position] ^= flip
            try:
                loaded = load_public_key_pem(bytes(altered))
            except SettlementError:
                continue
            # Accepted only as a different key, or leniently, in a non-canonical form that
            # verification refuses.
            different_key = public_key_hex(loaded) != public_key_hex(key.public_key)
            assert different_key or public_key_pem(loaded) != bytes(altered)
