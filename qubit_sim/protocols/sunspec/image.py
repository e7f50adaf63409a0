"""A SunSpec register map: the ``SunS`` marker, a chain of model blocks and the end marker.

Layout (base address 40000 by default)::

    base      0x5375 0x6E53        "SunS"
    base + 2  ID L  body...         model 1 (common)
              ID L  body...         next model ...
              0xFFFF 0x0000         end of the chain

:class:`SunSpecMap` owns one flat register list; each :class:`ModelBlock` is a window on it that
reads and writes points by name, applying scale factors. The same classes decode what a client
reads back: build a block over received registers with :meth:`ModelBlock.from_registers`.
"""

from __future__ import annotations

from collections.abc import Sequence

from qubit_sim.protocols.sunspec.codec import decode_raw, encode_raw, from_raw, to_raw
from qubit_sim.protocols.sunspec.spec import ModelDef, Point, SunSpecError

__all__ = [
    "DEFAULT_BASE",
    "END_MODEL_ID",
    "SUNS_MARKER",
    "ModelBlock",
    "SunSpecMap",
]

#: The two registers ``"SunS"`` that open every SunSpec map.
SUNS_MARKER = (0x5375, 0x6E53)
#: Model ID closing the chain (followed by a length of 0).
END_MODEL_ID = 0xFFFF
DEFAULT_BASE = 40000


class ModelBlock:
    """One model instance: its definition, start address and registers (``ID``, ``L``, body).

    Args:
        model: The model definition.
        address: Modbus address of the ``ID`` register.
        registers: Backing register list (shared with the map); a fresh one when omitted.
        start: Index of the ``ID`` register in ``registers``.
    """

    def __init__(
        self,
        model: ModelDef,
        address: int,
        registers: list[int] | None = None,
        start: int = 0,
    ) -> None:
        self.model = model
        self.address = address
        size = model.length + 2
        if registers is None:
            registers = [0] * size
            start = 0
        if start + size > len(registers):
            raise SunSpecError(
                f"model {model.id} needs {size} registers at index {start}, "
                f"only {len(registers) - start} available"
            )
        self._registers = registers
        self._start = start

    @classmethod
    def from_registers(cls, model: ModelDef, address: int, registers: Sequence[int]) -> ModelBlock:
        """A block decoding ``registers`` as read from a device (``ID`` first)."""
        return cls(model, address, [int(r) & 0xFFFF for r in registers], 0)

    @property
    def size(self) -> int:
        """Registers occupied, header included (``2 + L``)."""
        return self.model.length + 2

    @property
    def end(self) -> int:
        """Address just after this block."""
        return self.address + self.size

    @property
    def registers(self) -> list[int]:
        """A copy of this block's registers."""
        return self._registers[self._start : self._start + self.size]

    def fill_not_implemented(self) -> None:
        """Set every body point to "not implemented" and write ``ID`` and ``L``."""
        for point in self.model.points:
            self._store(point, encode_raw(point, None))
        self.set_raw("ID", self.model.id)
        self.set_raw("L", self.model.length)

    def address_of(self, name: str) -> int:
        """Modbus address of point ``name``."""
        return self.address + self.model.point(name).offset

    def get_raw(self, name: str) -> int | str | float | None:
        """Raw value of point ``name`` (``None`` when not implemented)."""
        point = self.model.point(name)
        begin = self._start + point.offset
        return decode_raw(point, self._registers[begin : begin + point.size])

    def set_raw(self, name: str, raw: int | str | float | None) -> None:
        """Store raw value ``raw`` in point ``name`` (``None`` -> not implemented)."""
        point = self.model.point(name)
        self._store(point, encode_raw(point, raw))

    def scale_factor(self, name: str) -> int | None:
        """Scale factor of point ``name``: 0 without one, ``None`` if its SF is not implemented."""
        point = self.model.point(name)
        if point.sf is None:
            return 0
        sf = self.get_raw(point.sf)
        return None if sf is None else int(sf)

    def get(self, name: str) -> float | int | str | None:
        """Engineering value of point ``name`` (scaled), ``None`` when not implemented."""
        point = self.model.point(name)
        raw = self.get_raw(name)
        if raw is None or point.sf is None or isinstance(raw, str | float):
            return raw
        sf = self.scale_factor(name)
        return None if sf is None else from_raw(int(raw), sf)

    def set(self, name: str, value: float | str | None) -> None:
        """Store engineering ``value`` in point ``name`` using its scale factor.

        Raises:
            SunSpecError: if the scale factor is not set yet or the value does not fit.
        """
        point = self.model.point(name)
        if value is None or point.sf is None or isinstance(value, str):
            self.set_raw(name, value)
            return
        sf = self.scale_factor(name)
        if sf is None:
            raise SunSpecError(
                f"model {self.model.id}: set scale factor {point.sf} before writing {name}"
            )
        self.set_raw(name, to_raw(float(value), sf))

    def set_symbol(self, name: str, symbol: str) -> None:
        """Store enum symbol ``symbol`` in enum point ``name``."""
        self.set_raw(name, self.model.point(name).symbol_value(symbol))

    def symbol(self, name: str) -> str | None:
        """Symbol name of enum point ``name``'s current value (``None`` if unknown/unset)."""
        point = self.model.point(name)
        raw = self.get_raw(name)
        for symbol, value in point.symbols.items():
            if value == raw:
                return symbol
        return None

    def set_bits(self, name: str, symbols: Sequence[str]) -> None:
        """Store bitfield point ``name`` with exactly the bits named in ``symbols`` set."""
        point = self.model.point(name)
        self.set_raw(name, sum(1 << point.symbol_value(s) for s in symbols))

    def _store(self, point: Point, words: Sequence[int]) -> None:
        begin = self._start + point.offset
        self._registers[begin : begin + point.size] = list(words)


class SunSpecMap:
    """The full register image of a SunSpec device.

    Args:
        models: Model definitions in chain order; model 1 should come first.
        base: Address of the ``SunS`` marker (SunSpec allows 0, 40000 and 50000).
    """

    def __init__(self, models: Sequence[ModelDef], base: int = DEFAULT_BASE) -> None:
        if not models:
            raise SunSpecError("a SunSpec map needs at least one model (model 1, common)")
        total = 2 + sum(m.length + 2 for m in models) + 2
        if base < 0 or base + total > 0x10000:
            raise SunSpecError(
                f"a map of {total} registers does not fit at base {base}; use base 0 or 40000"
            )
        self.base = base
        self.registers: list[int] = [0] * total
        self.registers[0:2] = list(SUNS_MARKER)
        self.blocks: list[ModelBlock] = []
        index = 2
        for model in models:
            block = ModelBlock(model, base + index, self.registers, index)
            block.fill_not_implemented()
            self.blocks.append(block)
            index += block.size
        self.registers[index : index + 2] = [END_MODEL_ID, 0]

    @property
    def end(self) -> int:
        """Address just after the end marker."""
        return self.base + len(self.registers)

    def block(self, model_id: int) -> ModelBlock:
        """The first block of model ``model_id``."""
        for block in self.blocks:
            if block.model.id == model_id:
                return block
        present = ", ".join(str(b.model.id) for b in self.blocks)
        raise SunSpecError(f"map has no model {model_id}; models: {present}")

    def read(self, address: int, count: int) -> list[int]:
        """Registers ``[address, address + count)``; raises outside the map."""
        begin = address - self.base
        if begin < 0 or count < 0 or begin + count > len(self.registers):
            raise SunSpecError(
                f"registers {address}..{address + count - 1} outside the map "
                f"{self.base}..{self.end - 1}"
            )
        return self.registers[begin : begin + count]

    def locate(self, address: int) -> tuple[ModelBlock, Point] | None:
        """The block and point holding register ``address`` (``None`` for markers/outside)."""
        for block in self.blocks:
            if block.address <= address < block.end:
                for point in block.model.points:
                    if point.offset <= address - block.address < point.offset + point.size:
                        return block, point
        return None
