"""What every signed settlement record shares: UTC timestamps, signing, hashing, strict reading.

A record is a flat JSON object with a ``type`` field, a ``public_key_id`` and a ``signature``.

* The **signature** is Ed25519 over ``<context> 0x00 <canonical JSON of the record without
  signature and merkle_inclusion>``; the context string (e.g. ``qubit-sim/energy-certificate/v1``)
  keeps a signature made for one kind of record from being valid for another.
* The **item hash** (the Merkle leaf data) is SHA-256 of the canonical JSON of the record *with*
  its signature and without ``merkle_inclusion``. The inclusion proof is written next to the record
  but is covered by the ledger's Merkle root, not by the record's own signature.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from qubit_sim.stack.settle.canonical import canonical_json, sha256, sha256_hex
from qubit_sim.stack.settle.errors import SettlementError
from qubit_sim.stack.settle.keys import SiteKey, verify_signature

__all__ = [
    "INCLUSION_FIELD",
    "SIGNATURE_FIELD",
    "check_fields",
    "derived_id",
    "iso_utc",
    "parse_iso_utc",
    "read_jsonl_lines",
    "record_hash",
    "sign_fields",
    "signature_valid",
    "signing_bytes",
    "write_jsonl",
]

SIGNATURE_FIELD = "signature"
INCLUSION_FIELD = "merkle_inclusion"
_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")


def iso_utc(moment: datetime) -> str:
    """``YYYY-MM-DDTHH:MM:SSZ`` of a timezone-aware instant (also a pandas Timestamp).

    Raises:
        SettlementError: for a naive datetime or one with sub-second precision.
    """
    if moment.tzinfo is None:
        raise SettlementError(f"timestamp {moment!r} has no time zone; give UTC instants")
    moment = moment.astimezone(UTC)
    if moment.microsecond or getattr(moment, "nanosecond", 0):
        raise SettlementError(f"timestamp {moment!r} is not a whole second")
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso_utc(text: str) -> datetime:
    """Inverse of :func:`iso_utc`; accepts only that exact form.

    Raises:
        SettlementError: for any other form.
    """
    if not isinstance(text, str) or not _ISO.match(text):
        raise SettlementError(f"timestamp {text!r} is not of the form YYYY-MM-DDTHH:MM:SSZ")
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError as exc:
        raise SettlementError(f"timestamp {text!r} is not a valid date and time") from exc


def derived_id(prefix: str, *parts: str) -> str:
    """``<prefix>_<32 hex>``: a deterministic identifier from the canonical JSON of ``parts``."""
    return f"{prefix}_{sha256_hex(canonical_json([prefix, *parts]))[:32]}"


def _without(record: Mapping[str, Any], *names: str) -> dict[str, Any]:
    return {key: value for key, value in record.items() if key not in names}


def signing_bytes(record: Mapping[str, Any], context: str) -> bytes:
    """The bytes a record's signature covers (see the module docstring)."""
    body = canonical_json(_without(record, SIGNATURE_FIELD, INCLUSION_FIELD))
    return context.encode("utf-8") + b"\x00" + body


def sign_fields(fields: Mapping[str, Any], key: SiteKey, context: str) -> str:
    """Signature (128 hex) of ``fields`` under ``context`` with ``key``."""
    return key.sign(signing_bytes(fields, context))


def signature_valid(record: Mapping[str, Any], public_key: Ed25519PublicKey, context: str) -> bool:
    """Whether ``record[SIGNATURE_FIELD]`` is a valid signature of ``record`` under ``context``."""
    signature = record.get(SIGNATURE_FIELD)
    if not isinstance(signature, str):
        return False
    return verify_signature(public_key, signature, signing_bytes(record, context))


def record_hash(record: Mapping[str, Any]) -> bytes:
    """The item hash of a signed record: the data of its Merkle leaf (32 bytes)."""
    return sha256(canonical_json(_without(record, INCLUSION_FIELD)))


def check_fields(
    data: Any, field_types: Mapping[str, type | tuple[type, ...]], kind: str
) -> dict[str, Any]:
    """Check that ``data`` has exactly the fields ``field_types`` with those types.

    ``bool`` is not accepted where ``int`` is asked for.

    Raises:
        SettlementError: naming the first missing, unexpected or mistyped field.
    """
    if not isinstance(data, dict):
        raise SettlementError(f"{kind} is not a JSON object")
    missing = [name for name in field_types if name not in data]
    if missing:
        raise SettlementError(f"{kind} lacks field {missing[0]!r}")
    extra = sorted(set(data) - set(field_types))
    if extra:
        raise SettlementError(f"{kind} has unexpected field {extra[0]!r}")
    for name, expected in field_types.items():
        value = data[name]
        if isinstance(value, bool) and bool not in (
            expected if isinstance(expected, tuple) else (expected,)
        ):
            raise SettlementError(f"{kind} field {name!r} is a boolean")
        if not isinstance(value, expected):
            raise SettlementError(
                f"{kind} field {name!r} is {type(value).__name__}, expected {expected}"
            )
    return data


def write_jsonl(path: Path, records: Iterable[Mapping[str, Any]]) -> None:
    """Write ``records`` as canonical JSON lines, each ending in ``\\n``."""
    with open(path, "wb") as handle:
        for record in records:
            handle.write(canonical_json(record) + b"\n")


def read_jsonl_lines(path: Path) -> list[bytes]:
    """The lines of a JSONL file without their ``\\n``; a missing final newline keeps the last line.

    Raises:
        SettlementError: if the file cannot be read.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SettlementError(f"cannot read {path}: {exc}") from exc
    if not data:
        return []
    lines = data.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    return lines
