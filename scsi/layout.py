"""Byte layouts declared once, as tables of fields.

A :class:`Layout` is a list of :class:`Field` rows (name, byte offset, size or
bit range).  Encoding, decoding and error positions all come from that one
table, so a CDB, a descriptor or a PDU header is described in exactly one place
and a bad value is reported with the byte (and bit) where it sits -- which is
what a copy manager needs for the sense-key-specific field pointer.

Multi-byte integers are big-endian, as everywhere in SCSI and iSCSI.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping


class LayoutError(ValueError):
    """A value or a byte that does not fit its field.

    ``offset`` is the byte offset of the field from the start of the buffer the
    caller handed in (``base`` included); ``bit`` is the most significant bit of
    the field within that byte, or ``None`` for whole-byte fields.
    """

    def __init__(self, message: str, *, field: str | None = None, offset: int | None = None,
                 bit: int | None = None, layout: str | None = None):
        self.field = field
        self.offset = offset
        self.bit = bit
        self.layout = layout
        where = []
        if layout:
            where.append(layout)
        if field:
            where.append(field)
        pos = ""
        if offset is not None:
            pos = f" at byte {offset}" + (f" bit {bit}" if bit is not None else "")
        prefix = (".".join(where) + pos + ": ") if where or pos else ""
        super().__init__(prefix + message)
        self.message = message


@dataclass(frozen=True)
class Field:
    """One field of a layout.

    Whole-byte integers use ``size`` (bytes).  Bit fields inside one byte give
    ``bit`` (the lowest bit number, 0 = least significant) and ``width``.
    ``kind="bytes"`` is an opaque byte string of ``size`` bytes.
    ``reserved`` fields must be zero when decoding strictly and are always
    written as zero.  ``const`` pins a field (e.g. a descriptor type code).
    """

    name: str
    offset: int
    size: int = 1
    bit: int | None = None
    width: int | None = None
    kind: str = "int"
    reserved: bool = False
    const: int | None = None
    doc: str = ""

    @property
    def msb(self) -> int | None:
        """Most significant bit of a bit field (what a SCSI bit pointer names)."""
        return None if self.bit is None else self.bit + (self.width or 1) - 1

    @property
    def max_value(self) -> int:
        if self.bit is not None:
            return (1 << (self.width or 1)) - 1
        return (1 << (8 * self.size)) - 1

    @property
    def end(self) -> int:
        return self.offset + (1 if self.bit is not None else self.size)


def bits(name: str, offset: int, bit: int, width: int = 1, **kw: Any) -> Field:
    """A bit field: ``width`` bits of byte ``offset`` starting at bit ``bit`` (LSB = 0)."""
    return Field(name, offset, bit=bit, width=width, **kw)


def flag(name: str, offset: int, bit: int, **kw: Any) -> Field:
    return Field(name, offset, bit=bit, width=1, **kw)


def raw(name: str, offset: int, size: int, **kw: Any) -> Field:
    return Field(name, offset, size=size, kind="bytes", **kw)


def reserved(offset: int, size: int = 1, *, bit: int | None = None, width: int | None = None) -> Field:
    name = f"reserved@{offset}" + (f".{bit}" if bit is not None else "")
    if bit is not None:
        return Field(name, offset, bit=bit, width=width or 1, reserved=True)
    return Field(name, offset, size=size, reserved=True, kind="bytes" if size > 8 else "int")


@dataclass(frozen=True)
class Layout:
    """A fixed-size byte structure described by fields.

    ``size`` is the structure's length in bytes; fields must lie inside it.
    """

    name: str
    size: int
    fields: tuple[Field, ...] = field(default_factory=tuple)

    def __init__(self, name: str, size: int, fields: Iterable[Field]):
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "size", size)
        object.__setattr__(self, "fields", tuple(fields))
        names = set()
        for f in self.fields:
            if f.end > size:
                raise AssertionError(f"{name}.{f.name} ends at {f.end}, past size {size}")
            if f.name in names:
                raise AssertionError(f"{name}: duplicate field {f.name}")
            names.add(f.name)
        object.__setattr__(self, "_by_name", {f.name: f for f in self.fields})

    # -- lookup -----------------------------------------------------------------
    def field(self, name: str) -> Field:
        return self._by_name[name]  # type: ignore[attr-defined]

    def names(self) -> list[str]:
        """Names of the fields a caller supplies (not reserved, not constant)."""
        return [f.name for f in self.fields if not f.reserved and f.const is None]

    def error(self, name: str, message: str, base: int = 0) -> LayoutError:
        """A LayoutError positioned at field ``name`` (offset shifted by ``base``)."""
        f = self.field(name)
        return LayoutError(message, field=name, offset=base + f.offset, bit=f.msb, layout=self.name)

    # -- encode -------------------------------------------------------------------
    def pack_into(self, buf: bytearray, base: int, values: Mapping[str, Any]) -> None:
        unknown = set(values) - set(self._by_name)  # type: ignore[attr-defined]
        if unknown:
            raise LayoutError(f"unknown field(s) {sorted(unknown)}", layout=self.name)
        for f in self.fields:
            if f.reserved:
                continue
            value = f.const if f.const is not None else values.get(f.name, 0 if f.kind == "int" else b"")
            if f.const is not None and f.name in values and values[f.name] != f.const:
                raise LayoutError(f"must be {f.const:#x}, got {values[f.name]!r}", field=f.name,
                                  offset=base + f.offset, bit=f.msb, layout=self.name)
            at = base + f.offset
            if f.kind == "bytes":
                data = bytes(value)
                if len(data) > f.size:
                    raise LayoutError(f"{len(data)} bytes do not fit in {f.size}", field=f.name,
                                      offset=at, layout=self.name)
                buf[at:at + f.size] = data.ljust(f.size, b"\0")
                continue
            if not isinstance(value, int) or isinstance(value, bool) and f.bit is None:
                value = int(value)
            if value < 0 or value > f.max_value:
                raise LayoutError(f"value {value} out of range 0..{f.max_value}", field=f.name,
                                  offset=at, bit=f.msb, layout=self.name)
            if f.bit is not None:
                mask = f.max_value << f.bit
                buf[at] = (buf[at] & ~mask & 0xFF) | (value << f.bit)
            else:
                buf[at:at + f.size] = value.to_bytes(f.size, "big")

    def encode(self, values: Mapping[str, Any] | None = None, **kw: Any) -> bytes:
        buf = bytearray(self.size)
        self.pack_into(buf, 0, {**(values or {}), **kw})
        return bytes(buf)

    # -- decode -------------------------------------------------------------------
    def unpack_from(self, data: bytes | bytearray | memoryview, base: int = 0, *,
                    strict: bool = True, pos: int | None = None) -> dict[str, Any]:
        """Decode the structure at ``data[base:]``.

        ``pos`` is the offset to report in errors (defaults to ``base``), for
        callers that hand in a slice of a larger buffer.  With ``strict``,
        non-zero reserved bits and wrong constants raise a LayoutError.
        """
        report = base if pos is None else pos
        if len(data) - base < self.size:
            raise LayoutError(f"needs {self.size} bytes, only {max(0, len(data) - base)} present",
                              offset=report, layout=self.name)
        out: dict[str, Any] = {}
        for f in self.fields:
            at = base + f.offset
            if f.kind == "bytes":
                value: Any = bytes(data[at:at + f.size])
            elif f.bit is not None:
                value = (data[at] >> f.bit) & f.max_value
            else:
                value = int.from_bytes(data[at:at + f.size], "big")
            if f.reserved:
                if strict and value not in (0, b"\0" * f.size):
                    raise LayoutError("reserved field is not zero", field=f.name,
                                      offset=report + f.offset, bit=f.msb, layout=self.name)
                continue
            if f.const is not None and value != f.const:
                raise LayoutError(f"expected {f.const:#04x}, found {value:#04x}", field=f.name,
                                  offset=report + f.offset, bit=f.msb, layout=self.name)
            out[f.name] = value
        return out

    def decode(self, data: bytes | bytearray | memoryview, *, strict: bool = True) -> dict[str, Any]:
        return self.unpack_from(data, 0, strict=strict)
