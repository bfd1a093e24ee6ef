"""Segment descriptors (SPC-4 r36f 6.4.6): what to move between which CSCDs.

One layout per shape; the held-data twins (0Bh-0Fh) share their base type's
layout and model class (``type_code`` tells them apart, ``holds_data`` says so).
DESCRIPTOR LENGTH is a constant of each shape and checked when decoding.
"""
from __future__ import annotations

from typing import Annotated, ClassVar, Literal, Union

from pydantic import BaseModel, ConfigDict, Field as PField

from scsi.layout import Field, Layout, LayoutError, flag, reserved
from scsi.xcopy.errors import UNSUPPORTED_SEGMENT_DESCRIPTOR_TYPE, ParameterListError

HELD_TWINS = {0x0B: 0x00, 0x0C: 0x01, 0x0D: 0x02, 0x0E: 0x03, 0x0F: 0x06}
OPERATION_NAMES = {
    0x00: "block->stream", 0x01: "stream->block", 0x02: "block->block", 0x03: "stream->stream",
    0x04: "inline->stream", 0x06: "stream->discard", 0x07: "verify CSCD", 0x0A: "block<o>->block<o>",
    0x10: "write filemarks",
}


def _header(size: int, *, src: bool = True, dst: bool = True, dc: bool = False) -> list[Field]:
    out = [Field("type_code", 0)]
    out.append(reserved(1, bit=2, width=6) if dc else reserved(1, bit=1, width=7))
    if dc:
        out.append(flag("dc", 1, 1))
    out += [flag("cat", 1, 0), Field("descriptor_length", 2, size=2, const=size - 4)]
    out.append(Field("src", 4, size=2) if src else reserved(4, 2))
    out.append(Field("dst", 6, size=2) if dst else reserved(6, 2))
    return out


BLOCK_STREAM_LAYOUT = Layout("segment 00h/01h (block<->stream)", 24, _header(24) + [
    reserved(8), Field("stream_transfer_length", 9, size=3), reserved(12, 2),
    Field("block_count", 14, size=2), Field("lba", 16, size=8)])
BLOCK_BLOCK_LAYOUT = Layout("segment 02h (block->block)", 28, _header(28, dc=True) + [
    reserved(8, 2), Field("block_count", 10, size=2), Field("src_lba", 12, size=8), Field("dst_lba", 20, size=8)])
STREAM_STREAM_LAYOUT = Layout("segment 03h (stream->stream)", 20, _header(20) + [
    reserved(8), Field("src_transfer_length", 9, size=3), reserved(12),
    Field("dst_transfer_length", 13, size=3), Field("byte_count", 16, size=4)])
INLINE_STREAM_LAYOUT = Layout("segment 04h (inline->stream)", 20, _header(20, src=False) + [
    reserved(8), Field("stream_transfer_length", 9, size=3), Field("inline_offset", 12, size=4),
    Field("byte_count", 16, size=4)])
STREAM_DISCARD_LAYOUT = Layout("segment 06h (stream->discard)", 16, _header(16, dst=False) + [
    reserved(8), Field("stream_transfer_length", 9, size=3), Field("byte_count", 12, size=4)])
VERIFY_LAYOUT = Layout("segment 07h (verify CSCD)", 12, _header(12, dst=False) + [
    reserved(8, bit=1, width=7), flag("tur", 8, 0), reserved(9, 3)])
BLOCK_OFFSET_LAYOUT = Layout("segment 0Ah (block<o>->block<o>)", 32, _header(32) + [
    Field("byte_count", 8, size=4), Field("src_lba", 12, size=8), Field("dst_lba", 20, size=8),
    Field("src_byte_offset", 28, size=2), Field("dst_byte_offset", 30, size=2)])
FILEMARKS_LAYOUT = Layout("segment 10h (write filemarks)", 12, _header(12, src=False) + [
    reserved(8, bit=2, width=6), flag("wsmk", 8, 1), flag("immed", 8, 0), Field("filemark_count", 9, size=3)])

U16 = PField(default=0, ge=0, le=0xFFFF)
U24 = PField(default=0, ge=0, le=0xFFFFFF)
U32 = PField(default=0, ge=0, le=0xFFFFFFFF)
U64 = PField(default=0, ge=0, le=0xFFFFFFFFFFFFFFFF)


class SegmentBase(BaseModel):
    """Fields shared by all segment descriptors; subclasses add their own (same names as the layout)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    LAYOUT: ClassVar[Layout]
    cat: bool = False

    @property
    def holds_data(self) -> bool:
        return self.type_code in HELD_TWINS  # type: ignore[attr-defined]

    @property
    def operation(self) -> str:
        code = self.type_code  # type: ignore[attr-defined]
        name = OPERATION_NAMES[HELD_TWINS.get(code, code)]
        return name + (" (hold data)" if code in HELD_TWINS else "")

    @property
    def size(self) -> int:
        return self.LAYOUT.size

    def cscd_refs(self) -> dict[str, int]:
        """The CSCD indexes this segment names (``src``/``dst``)."""
        return {n: getattr(self, n) for n in ("src", "dst") if n in self.LAYOUT.names()}

    def encode(self) -> bytes:
        values = {n: int(getattr(self, n)) for n in self.LAYOUT.names()}
        return self.LAYOUT.encode(values)

    @classmethod
    def decode_at(cls, data: bytes, base: int, index: int) -> "SegmentBase":
        try:
            v = cls.LAYOUT.unpack_from(data, base)
        except LayoutError as err:
            raise ParameterListError.from_layout(err, segment=index) from None
        v.pop("descriptor_length")
        return cls(**{k: (bool(x) if k in _FLAGS else x) for k, x in v.items()})


_FLAGS = {"cat", "dc", "tur", "wsmk", "immed"}


class BlockToStream(SegmentBase):
    """00h (0Bh holds data): read ``block_count`` blocks at ``lba`` and write them to a stream device."""

    LAYOUT: ClassVar[Layout] = BLOCK_STREAM_LAYOUT
    type_code: Literal[0x00, 0x0B] = 0x00
    src: int = U16
    dst: int = U16
    stream_transfer_length: int = U24
    block_count: int = U16
    lba: int = U64


class StreamToBlock(BlockToStream):
    """01h (0Ch holds data): read a stream device and write ``block_count`` blocks at ``lba``."""

    type_code: Literal[0x01, 0x0C] = 0x01  # type: ignore[assignment]


class BlockToBlock(SegmentBase):
    """02h (0Dh holds data): ``block_count`` blocks from ``src_lba`` to ``dst_lba`` (DC: count is dst blocks)."""

    LAYOUT: ClassVar[Layout] = BLOCK_BLOCK_LAYOUT
    type_code: Literal[0x02, 0x0D] = 0x02
    dc: bool = False
    src: int = U16
    dst: int = U16
    block_count: int = U16
    src_lba: int = U64
    dst_lba: int = U64


class StreamToStream(SegmentBase):
    """03h (0Eh holds data): ``byte_count`` bytes between two stream devices."""

    LAYOUT: ClassVar[Layout] = STREAM_STREAM_LAYOUT
    type_code: Literal[0x03, 0x0E] = 0x03
    src: int = U16
    dst: int = U16
    src_transfer_length: int = U24
    dst_transfer_length: int = U24
    byte_count: int = U32


class InlineToStream(SegmentBase):
    """04h: write ``byte_count`` bytes of the list's inline data from ``inline_offset`` to a stream."""

    LAYOUT: ClassVar[Layout] = INLINE_STREAM_LAYOUT
    type_code: Literal[0x04] = 0x04
    dst: int = U16
    stream_transfer_length: int = U24
    inline_offset: int = U32
    byte_count: int = U32


class StreamToDiscard(SegmentBase):
    """06h (0Fh holds data): read ``byte_count`` bytes from a stream and drop them."""

    LAYOUT: ClassVar[Layout] = STREAM_DISCARD_LAYOUT
    type_code: Literal[0x06, 0x0F] = 0x06
    src: int = U16
    stream_transfer_length: int = U24
    byte_count: int = U32


class VerifyCscd(SegmentBase):
    """07h: confirm the CSCD ``src`` is reachable (with TEST UNIT READY if ``tur``)."""

    LAYOUT: ClassVar[Layout] = VERIFY_LAYOUT
    type_code: Literal[0x07] = 0x07
    src: int = U16
    tur: bool = False


class BlockOffsetToBlockOffset(SegmentBase):
    """0Ah: ``byte_count`` bytes from byte offsets within blocks (32-bit length)."""

    LAYOUT: ClassVar[Layout] = BLOCK_OFFSET_LAYOUT
    type_code: Literal[0x0A] = 0x0A
    src: int = U16
    dst: int = U16
    byte_count: int = U32
    src_lba: int = U64
    dst_lba: int = U64
    src_byte_offset: int = U16
    dst_byte_offset: int = U16


class WriteFilemarks(SegmentBase):
    """10h: WRITE FILEMARKS(6) with ``filemark_count`` (WSMK, IMMED) on the stream CSCD ``dst``."""

    LAYOUT: ClassVar[Layout] = FILEMARKS_LAYOUT
    type_code: Literal[0x10] = 0x10
    dst: int = U16
    wsmk: bool = False
    immed: bool = False
    filemark_count: int = U24


Segment = Annotated[Union[BlockToStream, StreamToBlock, BlockToBlock, StreamToStream, InlineToStream,
                          StreamToDiscard, VerifyCscd, BlockOffsetToBlockOffset, WriteFilemarks],
                    PField(discriminator="type_code")]

SEGMENT_CLASSES: dict[int, type[SegmentBase]] = {
    0x00: BlockToStream, 0x0B: BlockToStream, 0x01: StreamToBlock, 0x0C: StreamToBlock,
    0x02: BlockToBlock, 0x0D: BlockToBlock, 0x03: StreamToStream, 0x0E: StreamToStream,
    0x04: InlineToStream, 0x06: StreamToDiscard, 0x0F: StreamToDiscard, 0x07: VerifyCscd,
    0x0A: BlockOffsetToBlockOffset, 0x10: WriteFilemarks,
}
SEGMENT_HEADER_SIZE = 4


def decode_segment(data: bytes, base: int, end: int, index: int,
                   supported: frozenset[int] | None = None) -> SegmentBase:
    """Decode segment number ``index`` at list offset ``base``; the segment list ends at ``end``."""
    code = data[base]
    cls = SEGMENT_CLASSES.get(code)
    if cls is None or (supported is not None and code not in supported):
        raise ParameterListError(f"unsupported segment descriptor type code {code:02X}h (segment {index})",
                                 asc_ascq=UNSUPPORTED_SEGMENT_DESCRIPTOR_TYPE, field="type_code",
                                 offset=base, layout="segment", segment=index)
    if base + SEGMENT_HEADER_SIZE > end:
        raise ParameterListError(f"segment {index} header needs 4 bytes, only {end - base} left in the "
                                 f"segment descriptor list", field="descriptor_length", offset=base,
                                 layout=cls.LAYOUT.name, segment=index)
    length = int.from_bytes(data[base + 2:base + 4], "big")
    if length != cls.LAYOUT.size - 4:
        raise ParameterListError.at(cls.LAYOUT, "descriptor_length", base,
                                    f"is {length}, type {code:02X}h needs {cls.LAYOUT.size - 4}", segment=index)
    if base + cls.LAYOUT.size > end:
        raise ParameterListError.at(cls.LAYOUT, "descriptor_length", base,
                                    f"segment {index} of {cls.LAYOUT.size} bytes runs past the end of the "
                                    f"segment descriptor list (byte {end})", segment=index)
    return cls.decode_at(data, base, index)
