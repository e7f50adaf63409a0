"""Ed25519 site keys: generated once per site, kept on disk, loaded on every later run.

A key folder holds, per site ``<site_id>``:

* ``<site_id>.key.pem`` — the private key, PKCS#8 PEM, file mode 0600 (optionally encrypted with a
  password);
* ``<site_id>.pub.pem`` — the public key, SubjectPublicKeyInfo PEM;
* ``<site_id>.pub.hex`` — the raw 32-byte public key as 64 hex characters and a newline.

Keys come from the operating system's CSPRNG, not from the run's numpy generator: a signing key must
be unpredictable. Runs stay reproducible because the key persists on disk and Ed25519 signatures are
deterministic (RFC 8032), so the same key and the same record always give the same signature.

A public key is named two ways: its *fingerprint* ``sha256:<hex of SHA-256 of the raw key>`` is what
a run manifest publishes; its *key id* ``key_<first 16 hex of that digest>`` is stamped into every
signed record to say which key signed it.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from qubit_sim.stack.settle.canonical import sha256_hex
from qubit_sim.stack.settle.errors import SettlementError

__all__ = [
    "SiteKey",
    "load_or_create_site_key",
    "load_public_key_pem",
    "public_key_fingerprint",
    "public_key_hex",
    "public_key_id",
    "public_key_pem",
    "verify_signature",
]

_SITE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def public_key_hex(public_key: Ed25519PublicKey) -> str:
    """The raw 32-byte public key as 64 lowercase hex characters."""
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()


def public_key_fingerprint(public_key: Ed25519PublicKey) -> str:
    """``sha256:<64 hex>`` of the raw public key; the value a run manifest publishes."""
    return "sha256:" + sha256_hex(bytes.fromhex(public_key_hex(public_key)))


def public_key_id(public_key: Ed25519PublicKey) -> str:
    """``key_<16 hex>``: the short name of the key stamped into signed records."""
    return "key_" + public_key_fingerprint(public_key)[len("sha256:") :][:16]


def public_key_pem(public_key: Ed25519PublicKey) -> bytes:
    """SubjectPublicKeyInfo PEM bytes of ``public_key``."""
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def load_public_key_pem(data: bytes) -> Ed25519PublicKey:
    """Read an Ed25519 public key from PEM bytes.

    Raises:
        SettlementError: if ``data`` is not a PEM Ed25519 public key.
    """
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise SettlementError(f"not a PEM public key: {exc}") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise SettlementError(f"public key is {type(key).__name__}, expected Ed25519")
    return key


def verify_signature(public_key: Ed25519PublicKey, signature_hex: str, message: bytes) -> bool:
    """Whether ``signature_hex`` (128 hex characters) is a valid signature of ``message``."""
    if not isinstance(signature_hex, str) or len(signature_hex) != 128:
        return False
    try:
        signature = bytes.fromhex(signature_hex)
    except ValueError:
        return False
    # bytes.fromhex accepts upper case and would let a second spelling of a signature verify.
    if signature.hex() != signature_hex:
        return False
    try:
        public_key.verify(signature, message)
    except InvalidSignature:
        return False
    return True


@dataclass(frozen=True)
class SiteKey:
    """The signing key of one site.

    Attributes:
        site_id: The site the key signs for.
        private_key: The Ed25519 private key.
    """

    site_id: str
    private_key: Ed25519PrivateKey

    @classmethod
    def generate(cls, site_id: str) -> SiteKey:
        """A fresh key from the operating system's CSPRNG (not persisted)."""
        return cls(site_id, Ed25519PrivateKey.generate())

    @classmethod
    def from_private_bytes(cls, site_id: str, raw: bytes) -> SiteKey:
        """A key from its raw 32-byte private value, e.g. for fixed test keys.

        Raises:
            SettlementError: if ``raw`` is not 32 bytes.
        """
        if len(raw) != 32:
            raise SettlementError(f"an Ed25519 private key has 32 bytes, got {len(raw)}")
        return cls(site_id, Ed25519PrivateKey.from_private_bytes(raw))

    @property
    def public_key(self) -> Ed25519PublicKey:
        """The matching public key."""
        return self.private_key.public_key()

    @property
    def fingerprint(self) -> str:
        """``sha256:<64 hex>`` of the raw public key (see :func:`public_key_fingerprint`)."""
        return public_key_fingerprint(self.public_key)

    @property
    def key_id(self) -> str:
        """``key_<16 hex>`` (see :func:`public_key_id`)."""
        return public_key_id(self.public_key)

    def sign(self, message: bytes) -> str:
        """Ed25519 signature of ``message`` as 128 lowercase hex characters (deterministic)."""
        return self.private_key.sign(message).hex()


def _key_paths(key_dir: Path, site_id: str) -> tuple[Path, Path, Path]:
    return (
        key_dir / f"{site_id}.key.pem",
        key_dir / f"{site_id}.pub.pem",
        key_dir / f"{site_id}.pub.hex",
    )


def _write_private(path: Path, key: Ed25519PrivateKey, password: bytes | None) -> None:
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )
    # O_EXCL + mode 0600 at creation: the key is never readable by others, not even briefly, and
    # two runs racing to create the same site key cannot overwrite each other.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        if hasattr(os, "fchmod"):
            os.fchmod(fd, 0o600)
        os.write(fd, pem)
    finally:
        os.close(fd)


def _read_private(path: Path, password: bytes | None) -> Ed25519PrivateKey:
    if os.name == "posix":
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            raise SettlementError(
                f"private key {path} has mode {mode:04o} and is readable by others; "
                f"run `chmod 600 {path}`"
            )
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=password or None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise SettlementError(
            f"cannot load private key {path}: {exc}; check the password or restore the file"
        ) from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise SettlementError(f"private key {path} is {type(key).__name__}, expected Ed25519")
    return key


def load_or_create_site_key(
    key_dir: str | os.PathLike[str], site_id: str, *, password: bytes | None = None
) -> SiteKey:
    """Load the key of ``site_id`` from ``key_dir``, creating it (and the folder) on first use.

    The public PEM and hex files are (re)written when missing and checked against the private key
    when present.

    Args:
        key_dir: Folder of site keys; created with mode 0700 if missing. Keep it outside any run
            results folder, which is meant to be shared.
        site_id: Site identifier; letters, digits, ``_``, ``.`` and ``-``.
        password: Optional password encrypting the private key PEM.

    Raises:
        SettlementError: for an unusable site id, a private key readable by others, a wrong
            password, or public files that do not match the private key.
    """
    if not _SITE_ID.match(site_id):
        raise SettlementError(
            f"site id {site_id!r} cannot name a key file; use letters, digits, '_', '.', '-'"
        )
    folder = Path(key_dir)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    private_path, pem_path, hex_path = _key_paths(folder, site_id)
    if not private_path.exists():
        # If another process created it first, load theirs.
        with contextlib.suppress(FileExistsError):
            _write_private(private_path, Ed25519PrivateKey.generate(), password)
    key = SiteKey(site_id, _read_private(private_path, password))
    expected = {
        pem_path: public_key_pem(key.public_key),
        hex_path: (public_key_hex(key.public_key) + "\n").encode("ascii"),
    }
    for path, content in expected.items():
        if not path.exists():
            path.write_bytes(content)
        elif path.read_bytes() != content:
            raise SettlementError(
                f"{path} does not hold the public key of {private_path}; delete {path} to "
                "regenerate it from the private key"
            )
    return key
