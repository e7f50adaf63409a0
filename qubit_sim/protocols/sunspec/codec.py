"""Values <-> Modbus registers for SunSpec points.

Registers are 16-bit words; multi-register values are big-endian (most significant word first).
A *raw* value is the integer (or string) stored in the registers; an *engineering* value is the
raw value times ``10**sf`` for points with a scale factor. Every point type has a reserved raw
value meaning "not implemented" (see :data:`~qubit_sim.protocols.sunspec.spec.NOT_IMPLEMENTED`);
decoding it yields ``None`` and encoding ``None`` produces it.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence

from qubit_sim.protocols.sunspec.spec import NOT_IMPLEMENTED, TYPE_SIZES, Point, SunSpecError

__all__ = [
    "ACCUMULATOR_TYPES",
    "SF_RANGE",
    "choose_scale_factor",
    "decode_raw",
    "encode_raw",
    "from_raw",
    "quantize",
    "raw_range",
    "to_raw",
]

#: Accumulators: "not implemented" is 0, which is also a legal reading, so 0 decodes as 0.
ACCUMULATOR_TYPES = frozenset({"acc16", "acc32", "acc64"})
#: Scale factors SunSpec allows.
SF_RANGE = (-10, 10)

_SIGNED = frozenset({"int16", "int32", "int64", "sunssf", "pad"})


def raw_range(point_type: str, size: int = 1) -> tuple[int, int]:
    """Smallest and largest raw integer of ``point_type``, the not-implemented value excluded."""
    if point_type == "string":
        raise SunSpecError("strings have no numeric range")
    if point_type == "float32":
        raise SunSpecError("float32 points have no integer range")
    bits = 16 * TYPE_SIZES.get(point_type, size)
    if point_type in _SIGNED:
        # The most negative value is the not-implemented marker.
        return -(1 << (bits - 1)) + 1, (1 << (bits - 1)) - 1
    if point_type in ACCUMULATOR_TYPES or point_type == "count":
        return 0, (1 << bits) - 1
    return 0, (1 << bits) - 2


def encode_raw(point: Point, raw: int | str | float | None) -> list[int]:
    """Registers holding raw value ``raw`` of ``point`` (``None`` -> not implemented).

    Raises:
        SunSpecError: if ``raw`` does not fit the point's type.
    """
    if point.type == "string":
        text = "" if raw is None else str(raw)
        data = text.encode("ascii", errors="strict") if text.isascii() else None
        if data is None or len(data) > 2 * point.size:
            raise SunSpecError(
                f"point {point.name}: string {text!r} must be ASCII of at most "
                f"{2 * point.size} characters"
            )
        data = data.ljust(2 * point.size, b"\x00")
        return [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]
    if point.type == "float32":
        value = math.nan if raw is None else float(raw)
        (word,) = struct.unpack(">I", struct.pack(">f", value))
        return [word >> 16, word & 0xFFFF]
    if raw is None:
        number = NOT_IMPLEMENTED[point.type]
    else:
        if isinstance(raw, str) or raw != int(raw):
            raise SunSpecError(f"point {point.name}: raw value {raw!r} is not an integer")
        number = int(raw)
        low, high = raw_range(point.type, point.size)
        if not low <= number <= high:
            raise SunSpecError(
                f"point {point.name} ({point.type}): raw value {number} outside {low}..{high}; "
                "choose a larger scale factor or a smaller value"
            )
    bits = 16 * point.size
    unsigned = number & ((1 << bits) - 1)
    return [(unsigned >> (16 * (point.size - 1 - i))) & 0xFFFF for i in range(point.size)]


def decode_raw(point: Point, registers: Sequence[int]) -> int | str | float | None:
    """Raw value of ``point`` from its registers; ``None`` when it reads "not implemented"."""
    if len(registers) != point.size:
        raise SunSpecError(f"point {point.name} needs {point.size} registers, got {len(registers)}")
    if point.type == "string":
        data = b"".join(int(r & 0xFFFF).to_bytes(2, "big") for r in registers)
        text = data.split(b"\x00", 1)[0].decode("ascii", errors="replace")
        return text
    if point.type == "float32":
        word = ((registers[0] & 0xFFFF) << 16) | (registers[1] & 0xFFFF)
        (value,) = struct.unpack(">f", word.to_bytes(4, "big"))
        return None if math.isnan(value) else value
    number = 0
    for register in registers:
        number = (number << 16) | (register & 0xFFFF)
    if point.type in _SIGNED and number >= 1 << (16 * point.size - 1):
        number -= 1 << (16 * point.size)
    if point.type in ACCUMULATOR_TYPES:
        return number
    if number == NOT_IMPLEMENTED[point.type]:
        return None
    return number


def to_raw(value: float, sf: int) -> int:
    """Raw register integer for engineering ``value`` at scale factor ``sf`` (rounded)."""
    if not SF_RANGE[0] <= sf <= SF_RANGE[1]:
        raise SunSpecError(f"scale factor {sf} outside {SF_RANGE[0]}..{SF_RANGE[1]}")
    if not math.isfinite(value):
        raise SunSpecError(f"value {value!r} is not a finite number")
    scaled = value * 10.0**-sf if sf < 0 else value / 10.0**sf
    return int(round(scaled))


def from_raw(raw: int, sf: int) -> float:
    """Engineering value of raw integer ``raw`` at scale factor ``sf``."""
    if not SF_RANGE[0] <= sf <= SF_RANGE[1]:
        raise SunSpecError(f"scale factor {sf} outside {SF_RANGE[0]}..{SF_RANGE[1]}")
    # Dividing by a power of ten (rather than multiplying by 10**-n) keeps 0.1-steps exact-ish.
    return raw / 10.0**-sf if sf < 0 else float(raw * 10**sf)


def quantize(value: float, sf: int) -> float:
    """``value`` as it reads back after a round trip through a register with scale ``sf``."""
    return from_raw(to_raw(value, sf), sf)


def choose_scale_factor(max_abs: float, point_type: str = "int16", decimals: int = 3) -> int:
    """The finest scale factor (at most ``decimals`` decimals) that keeps ``±max_abs`` in range.

    Example: a 50 kW battery in an int16 ``W`` point needs ``W_SF = 1`` (5000 -> 50 000 W).
    """
    low, high = raw_range(point_type)
    limit = min(high, -low) if point_type in _SIGNED else high
    magnitude = abs(float(max_abs))
    for sf in range(-decimals, SF_RANGE[1] + 1):
        if to_raw(magnitude, sf) <= limit:
            return sf
    raise SunSpecError(f"{max_abs!r} does not fit a {point_type} point at any scale factor")
