"""The parameter lists a planner sends, encoded from the layout tables of this package.

A server-free copy list names two LUNs by identification target descriptors
(E4h, SPC-4 r36f 6.4.5.6) and carries block->block (02h, 6.4.6.4) or
block<->stream (00h / 01h, 6.4.6.2-3) segments, a tape backup closing
with WRITE FILEMARKS (10h, 6.4.6.13).  Planners cut millions of
segments, so a segment is encoded by writing its counts and LBAs into a
template encoded once from the segment's layout; the field offsets and sizes
come from that same layout, never from numbers of the planner's own.
LIST ID USAGE 00b keeps COPY STATUS and FAILED SEGMENT DETAILS retrievable
(SPC-4 r36f 6.4.3.2; RECEIVE COPY STATUS(LID1) 6.25, RECEIVE COPY FAILURE DETAILS(LID1)
6.23), which is how a failed list tells the job how far it got.
"""
from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from typing import NamedTuple

from scsi.xcopy.cscd import CSCD_SIZE, IdentificationCscd
from scsi.xcopy.header import Header
from scsi.xcopy.segments import BLOCK_BLOCK_LAYOUT, BLOCK_STREAM_LAYOUT, FILEMARKS_LAYOUT, WriteFilemarks

SEG_BLOCK_TO_STREAM, SEG_STREAM_TO_BLOCK, SEG_BLOCK_TO_BLOCK, SEG_WRITE_FILEMARKS = 0x00, 0x01, 0x02, 0x10
CSCD_IDENTIFICATION = 0xE4
CSCD_BYTES = CSCD_SIZE  # an E4h identification target descriptor
SEGMENT_02H_BYTES = BLOCK_BLOCK_LAYOUT.size
SEGMENT_STREAM_BYTES = BLOCK_STREAM_LAYOUT.size
SEGMENT_FILEMARK_BYTES = FILEMARKS_LAYOUT.size
MAX_02H_BLOCKS = (1 << 8 * BLOCK_BLOCK_LAYOUT.field("block_count").size) - 1
MAX_STREAM_BLOCKS = (1 << 8 * BLOCK_STREAM_LAYOUT.field("block_count").size) - 1
MAX_TRANSFER_LENGTH = (1 << 8 * BLOCK_STREAM_LAYOUT.field("stream_transfer_length").size) - 1


class Target(NamedTuple):
    """A LUN as an E4h descriptor names it: VPD 83h designator (hex), peripheral device type, block length
    (0 for a variable-block tape), and for a tape whether it is in fixed-block mode."""

    designator: str
    pdt: int = 0
    block_length: int = 512
    fixed: bool = False


class ListTooBig(ValueError):
    """A segment value does not fit its field (the planner cut it wrong)."""


@lru_cache(maxsize=64)
def cscd_bytes(*targets: Target) -> bytes:
    """The E4h descriptors of a list, CSCD 0 first."""
    return b"".join(IdentificationCscd(designator=t.designator, pdt=t.pdt, block_length=t.block_length,
                                       **({"fixed": True} if t.fixed else {})).encode() for t in targets)


def header(list_id: int, cscds: int, segments: int) -> bytes:
    """The 16-byte list header with LIST ID USAGE 00b."""
    return Header(list_id=list_id, list_id_usage=0).encode(cscds, segments, 0)


@lru_cache(maxsize=1)
def block_template() -> tuple[bytes, tuple[tuple[int, int], ...]]:
    """A 02h descriptor (CSCD 0 -> 1) and (offset, size) of its block count, source LBA, destination LBA."""
    L = BLOCK_BLOCK_LAYOUT
    template = L.encode(type_code=SEG_BLOCK_TO_BLOCK, src=0, dst=1, block_count=0, src_lba=0, dst_lba=0)
    return template, tuple((L.field(n).offset, L.field(n).size) for n in ("block_count", "src_lba", "dst_lba"))


@lru_cache(maxsize=64)
def stream_template(code: int, transfer_length: int) -> tuple[bytes, tuple[int, int], tuple[int, int]]:
    """A 00h (disk CSCD 0 -> tape CSCD 1) or 01h (tape -> disk) descriptor and (offset, size) of its block
    count and LBA."""
    L = BLOCK_STREAM_LAYOUT
    src, dst = (0, 1) if code == SEG_BLOCK_TO_STREAM else (1, 0)
    template = L.encode(type_code=code, src=src, dst=dst, stream_transfer_length=transfer_length, block_count=0,
                        lba=0)
    return template, (L.field("block_count").offset, L.field("block_count").size), (
        L.field("lba").offset, L.field("lba").size)


@lru_cache(maxsize=1)
def filemark_bytes() -> bytes:
    """One 10h descriptor writing one filemark on CSCD 1 (closes a tape object)."""
    return WriteFilemarks(dst=1, filemark_count=1).encode()


def _put(seg: bytearray, at: int, size: int, value: int) -> None:
    if value >= 1 << (8 * size):
        raise ListTooBig(f"segment value {value} does not fit {size} bytes at descriptor byte {at}")
    seg[at:at + size] = value.to_bytes(size, "big")


def encode_block_list(segments: Iterable[tuple[int, int, int]], src: Target, dst: Target, list_id: int) -> bytes:
    """One LID1 list: CSCD 0 = ``src``, CSCD 1 = ``dst``, a 02h segment per (blocks, source LBA, destination LBA)."""
    cscds = cscd_bytes(src, dst)
    template, fields = block_template()
    out = bytearray()
    for values in segments:
        seg = bytearray(template)
        for (at, size), value in zip(fields, values):
            _put(seg, at, size, value)
        out += seg
    return header(list_id, len(cscds), len(out)) + cscds + bytes(out)


def encode_stream_list(segments: Iterable[tuple[int, int, int] | None], code: int, disk: Target, tape: Target,
                       list_id: int) -> bytes:
    """One LID1 list: CSCD 0 = the disk, CSCD 1 = the tape; a 00h/01h segment per (blocks, LBA, transfer
    length), and a 10h filemark for each None."""
    out = bytearray()
    for s in segments:
        if s is None:
            out += filemark_bytes()
            continue
        blocks, lba, transfer_length = s
        template, (c_at, c_size), (l_at, l_size) = stream_template(code, transfer_length)
        seg = bytearray(template)
        _put(seg, c_at, c_size, blocks)
        _put(seg, l_at, l_size, lba)
        out += seg
    cscds = cscd_bytes(disk, tape)
    return header(list_id, len(cscds), len(out)) + cscds + bytes(out)
