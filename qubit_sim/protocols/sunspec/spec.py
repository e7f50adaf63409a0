"""SunSpec point and model definitions as plain data.

A SunSpec device exposes a chain of *models* in Modbus holding registers. Each model starts with
its ID and its length L (registers after L), followed by *points*: fixed-size fields of a SunSpec
type, optionally scaled by a scale-factor point (``value = raw * 10**sf``).

Offsets here count from the model's ID register (ID is offset 0, L is offset 1), so the first
body point sits at offset 2 and a model occupies ``2 + L`` registers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Literal

from qubit_sim.errors import ProtocolError

__all__ = [
    "ACCESS_R",
    "ACCESS_RW",
    "NOT_IMPLEMENTED",
    "TYPE_SIZES",
    "ModelDef",
    "Point",
    "PointSpec",
    "PointType",
    "SunSpecError",
    "point",
]

PointType = Literal[
    "int16",
    "uint16",
    "count",
    "acc16",
    "enum16",
    "bitfield16",
    "pad",
    "sunssf",
    "int32",
    "uint32",
    "acc32",
    "enum32",
    "bitfield32",
    "float32",
    "int64",
    "uint64",
    "acc64",
    "string",
]

ACCESS_R = "R"
ACCESS_RW = "RW"

#: Registers per value of each fixed-size type (strings carry their own size).
TYPE_SIZES: Mapping[str, int] = {
    "int16": 1,
    "uint16": 1,
    "count": 1,
    "acc16": 1,
    "enum16": 1,
    "bitfield16": 1,
    "pad": 1,
    "sunssf": 1,
    "int32": 2,
    "uint32": 2,
    "acc32": 2,
    "enum32": 2,
    "bitfield32": 2,
    "float32": 2,
    "int64": 4,
    "uint64": 4,
    "acc64": 4,
}

#: The raw value a device reports for a point it does not implement (SunSpec "not implemented").
#: Accumulators use 0, strings all-NUL registers, float32 NaN (handled in the codec).
NOT_IMPLEMENTED: Mapping[str, int] = {
    "int16": -0x8000,
    "uint16": 0xFFFF,
    "count": 0,
    "acc16": 0,
    "enum16": 0xFFFF,
    "bitfield16": 0xFFFF,
    "pad": -0x8000,
    "sunssf": -0x8000,
    "int32": -0x8000_0000,
    "uint32": 0xFFFF_FFFF,
    "acc32": 0,
    "enum32": 0xFFFF_FFFF,
    "bitfield32": 0xFFFF_FFFF,
    "int64": -0x8000_0000_0000_0000,
    "uint64": 0xFFFF_FFFF_FFFF_FFFF,
    "acc64": 0,
}


class SunSpecError(ProtocolError):
    """A SunSpec value, point or map is invalid (unknown point, value out of range, bad map)."""


@dataclass(frozen=True)
class Point:
    """One SunSpec point.

    Attributes:
        name: Point name as published (``"WSet"``); points of a repeating group are prefixed with
            the group name (``"PFWInj.PF"``).
        offset: Register offset from the model's ID register.
        size: Number of 16-bit registers.
        type: SunSpec type.
        units: Published units (``"W"``, ``"Pct"``, ``"Secs"``...), empty when unitless.
        sf: Name of the scale-factor point applied to this point, if any.
        access: ``"R"`` or ``"RW"``.
        mandatory: Published as mandatory (``"M"``).
        static: Published as static (``"S"``): the value never changes while running.
        symbols: Enumeration values (enum types) or bit positions (bitfield types) by name.
        valid: Accepted range ``(min, max)`` for writes, in engineering units (after scaling);
            ``None`` leaves only the type's own range (and, for enums, the symbol values).
        label: Published label.
    """

    name: str
    offset: int
    size: int
    type: str
    units: str = ""
    sf: str | None = None
    access: str = ACCESS_R
    mandatory: bool = False
    static: bool = False
    symbols: Mapping[str, int] = field(default_factory=dict)
    valid: tuple[float, float] | None = None
    label: str = ""

    @property
    def writable(self) -> bool:
        """True for read-write points."""
        return self.access == ACCESS_RW

    def symbol_value(self, symbol: str) -> int:
        """Integer value of ``symbol`` (enum value or bit position)."""
        try:
            return self.symbols[symbol]
        except KeyError:
            known = ", ".join(self.symbols) or "none"
            raise SunSpecError(
                f"point {self.name} has no symbol {symbol!r}; known symbols: {known}"
            ) from None


@dataclass(frozen=True)
class PointSpec:
    """A point before its offset is known (used to write model tables compactly)."""

    name: str
    type: str
    size: int
    units: str
    sf: str | None
    access: str
    mandatory: bool
    static: bool
    symbols: Mapping[str, int]
    valid: tuple[float, float] | None
    label: str


def point(
    name: str,
    type: str,
    size: int | None = None,
    *,
    sf: str | None = None,
    units: str = "",
    rw: bool = False,
    m: bool = False,
    s: bool = False,
    sym: Mapping[str, int] | None = None,
    valid: tuple[float, float] | None = None,
    label: str = "",
) -> PointSpec:
    """Describe one point of a model table; offsets are assigned by :meth:`ModelDef.build`."""
    if size is None:
        if type not in TYPE_SIZES:
            raise SunSpecError(f"point {name}: type {type!r} needs an explicit size")
        size = TYPE_SIZES[type]
    return PointSpec(
        name=name,
        type=type,
        size=size,
        units=units,
        sf=sf,
        access=ACCESS_RW if rw else ACCESS_R,
        mandatory=m,
        static=s,
        symbols=dict(sym or {}),
        valid=valid,
        label=label,
    )


@dataclass(frozen=True)
class ModelDef:
    """A SunSpec model: its ID, name, label and points in register order.

    Attributes:
        id: Model ID (``701``).
        name: Published model name (``"DERMeasureAC"``).
        label: Published label.
        points: All points including ``ID`` and ``L``, in register order.
    """

    id: int
    name: str
    label: str
    points: tuple[Point, ...]

    @classmethod
    def build(cls, model_id: int, name: str, label: str, specs: Iterable[PointSpec]) -> ModelDef:
        """Lay out ``specs`` after the ``ID`` and ``L`` header points."""
        header = [
            point("ID", "uint16", m=True, s=True, label="Model ID"),
            point("L", "uint16", m=True, s=True, label="Model Length"),
        ]
        points: list[Point] = []
        offset = 0
        for spec in [*header, *specs]:
            points.append(
                Point(
                    name=spec.name,
                    offset=offset,
                    size=spec.size,
                    type=spec.type,
                    units=spec.units,
                    sf=spec.sf,
                    access=spec.access,
                    mandatory=spec.mandatory,
                    static=spec.static,
                    symbols=spec.symbols,
                    valid=spec.valid,
                    label=spec.label,
                )
            )
            offset += spec.size
        model = cls(id=model_id, name=name, label=label, points=tuple(points))
        model._check()
        return model

    @classmethod
    def opaque(cls, model_id: int, length: int, name: str = "opaque") -> ModelDef:
        """A model whose body is not interpreted: ``length`` registers of padding."""
        specs = [point(f"Reg{i}", "pad") for i in range(length)]
        return cls.build(model_id, name, f"model {model_id} (uninterpreted)", specs)

    def _check(self) -> None:
        names = [p.name for p in self.points]
        duplicates = {n for n in names if names.count(n) > 1}
        if duplicates:
            raise SunSpecError(f"model {self.id}: duplicate point names {sorted(duplicates)}")
        for p in self.points:
            if p.sf is not None and p.sf not in names:
                raise SunSpecError(
                    f"model {self.id}: point {p.name} refers to unknown scale factor {p.sf}"
                )

    @property
    def length(self) -> int:
        """The model length L: registers after the ``L`` register."""
        return sum(p.size for p in self.points) - 2

    @cached_property
    def by_name(self) -> Mapping[str, Point]:
        """Points by name."""
        return {p.name: p for p in self.points}

    def point(self, name: str) -> Point:
        """The point called ``name``."""
        found = self.by_name.get(name)
        if found is None:
            raise SunSpecError(
                f"model {self.id} ({self.name}) has no point {name!r}; "
                f"points: {', '.join(p.name for p in self.points[:12])}, ..."
            )
        return found

    def points_in(self, offset: int, count: int) -> Sequence[Point]:
        """Points overlapping registers ``[offset, offset + count)`` of this model."""
        end = offset + count
        return [p for p in self.points if p.offset < end and p.offset + p.size > offset]
