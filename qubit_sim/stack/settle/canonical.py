"""Canonical JSON bytes and SHA-256 helpers.

Everything that is signed or hashed in settlement goes through :func:`canonical_json`, so the same
record always gives the same bytes on every machine and Python version:

* objects with string keys sorted by Unicode code point, no whitespace (``,`` and ``:``), UTF-8
  without ``\\u`` escapes for non-ASCII text, strings taken as-is (no Unicode normalisation);
* values may be ``str``, ``int``, ``bool``, ``None``, lists/tuples and dicts of those;
* **floats are refused.** Binary floats have no single textual form that every JSON library
  reproduces, so quantities are stored exactly instead:

  - energy as integer watt-hours ``wh_*`` (:func:`to_wh`, round half to even),
  - money and prices as decimal strings with a fixed number of decimals (:func:`decimal_text`,
    round half up, the commercial rule), e.g. cost ``"12.35"``, price per kWh ``"0.28500"``,
  - carbon intensity as a decimal string with one decimal, e.g. ``"231.4"`` [gCO2/kWh].

Hashes are SHA-256, written as 64 lowercase hex characters where they appear in records.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from qubit_sim.stack.settle.errors import SettlementError

__all__ = [
    "canonical_json",
    "decimal_text",
    "parse_canonical_line",
    "sha256",
    "sha256_hex",
    "to_wh",
]


def _check(value: Any, path: str) -> None:
    # Walk the value once up front so the error names where the offending value sits.
    if value is None or isinstance(value, bool | str):
        return
    if isinstance(value, int):
        return
    if isinstance(value, float):
        raise SettlementError(
            f"float {value!r} at {path or '<root>'} cannot be hashed canonically; store energy as "
            "integer Wh (to_wh) and money as a fixed-decimal string (decimal_text)"
        )
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise SettlementError(f"key {key!r} at {path or '<root>'} must be a string")
            _check(item, f"{path}.{key}" if path else key)
        return
    if isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _check(item, f"{path}[{i}]")
        return
    raise SettlementError(
        f"value {value!r} of type {type(value).__name__} at {path or '<root>'} is not "
        "canonical JSON; use str, int, bool, None, list or dict"
    )


def canonical_json(value: Any) -> bytes:
    """Canonical UTF-8 JSON bytes of ``value`` (rules in the module docstring).

    Raises:
        SettlementError: if ``value`` holds a float or a type JSON cannot represent exactly.
    """
    _check(value, "")
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text.encode("utf-8")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-finite number {name} is not allowed")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def parse_canonical_line(line: bytes) -> tuple[dict[str, Any], bool]:
    """Parse one JSONL line strictly.

    Returns:
        The object and whether ``line`` is byte-for-byte its canonical form.

    Raises:
        ValueError: if the line is not UTF-8, not JSON, not an object, has duplicate keys, NaN or
            infinities, or holds a float.
    """
    text = line.decode("utf-8")
    value = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_reject_constant)
    if not isinstance(value, dict):
        raise ValueError("line is not a JSON object")
    try:
        canonical = canonical_json(value)
    except SettlementError as exc:
        raise ValueError(str(exc)) from exc
    return value, canonical == line


def sha256(data: bytes) -> bytes:
    """SHA-256 digest of ``data`` (32 bytes)."""
    return hashlib.sha256(data).digest()


def sha256_hex(data: bytes) -> str:
    """SHA-256 digest of ``data`` as 64 lowercase hex characters."""
    return hashlib.sha256(data).hexdigest()


def to_wh(e_kwh: float) -> int:
    """Energy ``e_kwh`` [kWh] as integer watt-hours [Wh], rounded half to even.

    Raises:
        SettlementError: if ``e_kwh`` is NaN or infinite.
    """
    value = float(e_kwh)
    if not math.isfinite(value):
        raise SettlementError(f"energy {e_kwh!r} kWh is not finite; cannot settle it")
    return int(round(value * 1000.0))


def decimal_text(value: float | int | str | Decimal, decimals: int) -> str:
    """``value`` as a decimal string with exactly ``decimals`` digits after the point.

    Floats are read through their shortest ``repr`` (``0.285`` is 0.285, not its binary
    neighbour) and rounded half up, the rule invoices use.

    Raises:
        SettlementError: if ``value`` is not a finite number or ``decimals`` is negative.
    """
    if decimals < 0:
        raise SettlementError(f"decimals must be >= 0, got {decimals}")
    if isinstance(value, bool):
        raise SettlementError(f"amount {value!r} is a boolean, not a number")
    try:
        number = value if isinstance(value, Decimal) else Decimal(str(value))
    except InvalidOperation as exc:
        raise SettlementError(f"amount {value!r} is not a number") from exc
    if not number.is_finite():
        raise SettlementError(f"amount {value!r} is not finite")
    quantum = Decimal(1).scaleb(-decimals)
    text = f"{number.quantize(quantum, rounding=ROUND_HALF_UP):f}"
    # "-0.00" and "0.00" must not be two spellings of one amount.
    return text[1:] if text.startswith("-") and Decimal(text) == 0 else text
