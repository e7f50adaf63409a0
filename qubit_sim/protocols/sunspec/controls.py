"""Server-side SunSpec write rules and revert timers.

A write is accepted only if it covers whole points, every point it touches is writable on this
device, and every new value is a legal value: not the "not implemented" marker, one of an enum's
symbols, inside the point's ``valid`` range and inside any device-specific limit. The Modbus
exception codes follow the Modbus application protocol: 2 (ILLEGAL DATA ADDRESS) for addresses
that are unknown, read-only or cut a point in half; 3 (ILLEGAL DATA VALUE) for bad values.

Revert timers (704 ``*RvrtTms``, 123 ``*_RvrtTms`` points) count down on *simulated* time: the clock is
whatever the caller passes as ``now_s``.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from qubit_sim.protocols.sunspec.codec import decode_raw, from_raw
from qubit_sim.protocols.sunspec.image import ModelBlock, SunSpecMap
from qubit_sim.protocols.sunspec.spec import Point

__all__ = [
    "ILLEGAL_ADDRESS",
    "ILLEGAL_VALUE",
    "RevertTimers",
    "StagedWrite",
    "stage_write",
]

ILLEGAL_ADDRESS = 2
ILLEGAL_VALUE = 3


@dataclass(frozen=True)
class StagedWrite:
    """A validated write, ready to commit.

    Attributes:
        block: The model block written.
        points: The points written, in register order.
        values: Engineering values of those points after the write (raw for unscaled points).
    """

    block: ModelBlock
    points: tuple[Point, ...]
    values: Mapping[str, float | int | str | None]

    @property
    def names(self) -> frozenset[str]:
        """Names of the points written."""
        return frozenset(p.name for p in self.points)


def stage_write(
    image: SunSpecMap,
    address: int,
    values: Sequence[int],
    writable: Mapping[int, Collection[str]],
    limits: Mapping[tuple[int, str], tuple[float, float]] | None = None,
) -> StagedWrite | int:
    """Validate writing ``values`` at ``address``; returns the staged write or an exception code.

    Args:
        image: The device's register map (not modified).
        address: First register written.
        values: Register values.
        writable: Point names accepting writes, per model ID.
        limits: Extra ``(min, max)`` ranges in engineering units per ``(model_id, point)``.
    """
    if not values:
        return ILLEGAL_VALUE
    located = image.locate(address)
    if located is None:
        return ILLEGAL_ADDRESS
    block, first = located
    end = address + len(values)
    if address != block.address + first.offset or end > block.end:
        return ILLEGAL_ADDRESS
    registers = block.registers
    start = address - block.address
    registers[start : start + len(values)] = [v & 0xFFFF for v in values]
    staged = ModelBlock.from_registers(block.model, block.address, registers)
    points = tuple(block.model.points_in(start, len(values)))
    if points[-1].offset + points[-1].size != end - block.address:
        return ILLEGAL_ADDRESS
    allowed = writable.get(block.model.id, ())
    new_values: dict[str, float | int | str | None] = {}
    for point in points:
        if not point.writable or point.name not in allowed:
            return ILLEGAL_ADDRESS
        begin = point.offset
        raw = decode_raw(point, registers[begin : begin + point.size])
        extra = (limits or {}).get((block.model.id, point.name))
        value = _legal_value(staged, point, raw, extra)
        if value is None:
            return ILLEGAL_VALUE
        new_values[point.name] = value
    return StagedWrite(block=block, points=points, values=new_values)


def _legal_value(
    staged: ModelBlock,
    point: Point,
    raw: int | str | float | None,
    extra: tuple[float, float] | None,
) -> float | int | str | None:
    if raw is None:
        return None
    if isinstance(raw, str):
        return raw
    if point.symbols and point.type.startswith("enum") and raw not in point.symbols.values():
        return None
    value: float = raw
    if point.sf is not None:
        sf = staged.get_raw(point.sf)
        if sf is None:
            return None
        value = from_raw(int(raw), int(sf))
    for bounds in (point.valid, extra):
        # A hair of tolerance so limits given in engineering units survive the scale factor.
        if bounds is not None and not bounds[0] - 1e-9 <= value <= bounds[1] + 1e-9:
            return None
    return value if point.sf is not None else raw


class RevertTimers:
    """Deadlines on simulated time for functions that fall back when not refreshed."""

    def __init__(self) -> None:
        self._deadlines: dict[str, float] = {}

    def arm(self, name: str, now_s: float, seconds: float) -> None:
        """(Re)start timer ``name``: it expires ``seconds`` after ``now_s``; 0 disarms it."""
        if seconds > 0:
            self._deadlines[name] = now_s + seconds
        else:
            self._deadlines.pop(name, None)

    def cancel(self, name: str) -> None:
        """Stop timer ``name`` if it runs."""
        self._deadlines.pop(name, None)

    def active(self, name: str) -> bool:
        """True while timer ``name`` runs."""
        return name in self._deadlines

    def remaining_s(self, name: str, now_s: float) -> int:
        """Whole seconds left on timer ``name`` (rounded up), 0 when it does not run."""
        deadline = self._deadlines.get(name)
        if deadline is None:
            return 0
        return max(0, math.ceil(deadline - now_s - 1e-9))

    def pop_expired(self, now_s: float) -> list[str]:
        """Names of timers whose deadline is at or before ``now_s``, earliest first; removed."""
        due = sorted((d, n) for n, d in self._deadlines.items() if d <= now_s)
        for _, name in due:
            del self._deadlines[name]
        return [name for _, name in due]
