"""Planning: image pieces -> EXTENDED COPY parameter lists -> batches.

The planner respects what the data mover said about itself (RECEIVE COPY
RESULTS, OPERATING PARAMETERS) -- it never assumes a limit -- and groups the
lists into batches of the server's batch size (TSM's SET SERVERFREE
BATCHSIZE: default 80 MB, 10..1000 MB), the unit of progress and resumption.
Segments are block->block (02h) between two identification (E4h) target
descriptors naming the LUNs by their VPD 83h designators.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from math import lcm
from typing import Callable, Iterable, Iterator, Literal

from orchestrator.ops import Batch, CopySegment, MoverLimits, ParameterListPlan, Piece
from orchestrator.ops.types import PlanError
from scsi.xcopy import block_list
from scsi.xcopy.block_list import (CSCD_BYTES, CSCD_IDENTIFICATION, MAX_02H_BLOCKS,  # noqa: F401 - planners' limits
                                   SEG_BLOCK_TO_BLOCK, SEGMENT_02H_BYTES)

log = logging.getLogger(__name__)

MIB = 1 << 20
DEFAULT_BATCH_MB = 80
MIN_BATCH_MB = 10
MAX_BATCH_MB = 1000


def batch_size_bytes(megabytes: int = DEFAULT_BATCH_MB) -> int:
    """Validate a SET SERVERFREE BATCHSIZE value (MB) and return it in bytes."""
    if not isinstance(megabytes, int) or isinstance(megabytes, bool):
        raise PlanError(f"batch size must be a whole number of MB, got {megabytes!r}")
    if not MIN_BATCH_MB <= megabytes <= MAX_BATCH_MB:
        raise PlanError(f"batch size {megabytes} MB is outside {MIN_BATCH_MB}-{MAX_BATCH_MB} MB "
                        "(SET SERVERFREE BATCHSIZE)")
    return megabytes * MIB


@dataclass(frozen=True)
class CscdRef:
    """A LUN as a target descriptor names it: its NAA designator (hex) and block size."""

    name: str
    designator: str  # hex of the VPD 83h designator, e.g. "6001405..."
    block_size: int = 512
    pdt: int = 0


Encoder = Callable[[tuple[CopySegment, ...], CscdRef, CscdRef, int], bytes]


def default_encoder() -> Encoder:
    """The block-list encoder of :mod:`scsi.xcopy.block_list` (tests may pass their own)."""
    return encode_block_list


def _target(ref: CscdRef) -> block_list.Target:
    return block_list.Target(ref.designator, ref.pdt, ref.block_size)


def encode_block_list(segments: tuple[CopySegment, ...], src: CscdRef, dst: CscdRef,
                      list_id: int) -> bytes:
    """One LID1 list: CSCD 0 = source, CSCD 1 = destination, 02h segments (:mod:`scsi.xcopy.block_list`)."""
    try:
        return block_list.encode_block_list(((s.blocks, s.src_lba, s.dst_lba) for s in segments),
                                            _target(src), _target(dst), list_id)
    except block_list.ListTooBig as exc:
        raise PlanError(str(exc)) from None


_segment_template = block_list.block_template  # the bulk planner (plan/columns.py) writes into it


def _cscd_bytes(src: CscdRef, dst: CscdRef) -> bytes:
    return block_list.cscd_bytes(_target(src), _target(dst))


def check_mover(limits: MoverLimits, mover: str = "data mover") -> int:
    """Segments one list may carry with two E4h descriptors; PlanError if the mover cannot do 02h/E4h."""
    codes = set(limits.implemented_codes)
    if codes and SEG_BLOCK_TO_BLOCK not in codes:
        raise PlanError(f"{mover} does not implement block->block segments (02h); implemented codes: "
                        + ", ".join(f"{c:02X}h" for c in sorted(codes)))
    if codes and CSCD_IDENTIFICATION not in codes:
        raise PlanError(f"{mover} does not implement identification target descriptors (E4h)")
    if limits.max_target_count < 2:
        raise PlanError(f"{mover} accepts {limits.max_target_count} target descriptor(s); a copy needs 2")
    room = (limits.max_descriptor_list_length - 2 * CSCD_BYTES) // SEGMENT_02H_BYTES
    per_list = min(limits.max_segment_count, room)
    if per_list < 1:
        raise PlanError(f"{mover}: maximum descriptor list length {limits.max_descriptor_list_length} "
                        f"leaves no room for a segment after two target descriptors")
    return per_list


def plan_batches(pieces: Iterable[Piece], *, direction: Literal["backup", "restore"],
                 src: CscdRef, dst: CscdRef, src_base: int, dst_base: int,
                 limits: MoverLimits, batch_bytes: int = DEFAULT_BATCH_MB * MIB,
                 mover: str = "data mover", encoder: Encoder | None = None,
                 first_list_id: int = 1) -> tuple[Batch, ...]:
    """Cut ``pieces`` into 02h segments, lists and batches (all of them: see `iter_batches`)."""
    return tuple(iter_batches(pieces, direction=direction, src=src, dst=dst, src_base=src_base,
                              dst_base=dst_base, limits=limits, batch_bytes=batch_bytes, mover=mover,
                              encoder=encoder, first_list_id=first_list_id))


def copy_units(src: CscdRef, dst: CscdRef, limits: MoverLimits, batch_bytes: int,
               mover: str) -> tuple[int, int, int, int]:
    """(block size, descriptors per list, copy unit, longest segment) for block->block copies, checked."""
    if src.block_size != dst.block_size:
        raise PlanError(f"block sizes differ: {src.name} has {src.block_size}, {dst.name} has "
                        f"{dst.block_size}; block->block copies need equal block sizes")
    bs = src.block_size
    per_list = check_mover(limits, mover)
    unit = lcm(bs, 1 << limits.data_segment_granularity)
    max_seg = MAX_02H_BLOCKS * bs
    if limits.max_segment_length:
        max_seg = min(max_seg, limits.max_segment_length)
    max_seg = min(max_seg, batch_bytes) // unit * unit
    if max_seg <= 0:
        raise PlanError(f"{mover}: maximum segment length {limits.max_segment_length} is below the "
                        f"copy unit of {unit} bytes (block size {bs}, granularity 2^"
                        f"{limits.data_segment_granularity})")
    return bs, per_list, unit, max_seg


def iter_batches(pieces: Iterable[Piece], *, direction: Literal["backup", "restore"],
                 src: CscdRef, dst: CscdRef, src_base: int, dst_base: int,
                 limits: MoverLimits, batch_bytes: int = DEFAULT_BATCH_MB * MIB,
                 mover: str = "data mover", encoder: Encoder | None = None,
                 first_list_id: int = 1) -> Iterator[Batch]:
    """Cut ``pieces`` into 02h segments, lists and batches, each batch yielded as soon as it is full.

    A job can send a batch while the next is planned, so an image of millions
    of extents is never planned whole.  Backup reads ``src_base +
    volume_offset`` and writes ``dst_base + image_offset``; restore the
    reverse.  Bases and lengths must be block aligned (both LUNs must share a
    block size, as common movers demand).  Mover limits are checked before
    the first piece is read.
    """
    bs, per_list, unit, max_seg = copy_units(src, dst, limits, batch_bytes, mover)

    return _batches(pieces, direction, src, dst, src_base, dst_base, batch_bytes, encoder, first_list_id,
                    per_list, unit, max_seg, bs, mover)


def _batches(pieces: Iterable[Piece], direction: str, src: CscdRef, dst: CscdRef, src_base: int,
             dst_base: int, batch_bytes: int, encoder: Encoder | None, list_id: int, per_list: int, unit: int,
             max_seg: int, bs: int, mover: str) -> Iterator[Batch]:
    number = 0
    cur_segments: list[CopySegment] = []
    cur_bytes = 0

    def close_batch() -> Batch:
        nonlocal cur_segments, cur_bytes, list_id, number
        lists = []
        for i in range(0, len(cur_segments), per_list):
            segs = tuple(cur_segments[i:i + per_list])
            # encoded now: drivers (and the simulator's exact mode) read ``data`` directly
            lists.append(ParameterListPlan(segs, encoder(segs, src, dst, list_id) if encoder else b"", list_id))
            list_id = list_id % 255 + 1
        batch = Batch(number, tuple(lists))
        number += 1
        cur_segments, cur_bytes = [], 0
        return batch

    for p in pieces:
        if direction == "backup":
            s0, d0 = src_base + p.volume_offset, dst_base + p.image_offset
        else:
            s0, d0 = src_base + p.image_offset, dst_base + p.volume_offset
        for what, value in (("source offset", s0), ("destination offset", d0), ("length", p.length)):
            if value % unit:
                raise PlanError(f"piece at image offset {p.image_offset}: {what} {value} is not a "
                                f"multiple of the copy unit {unit} (block size {bs})")
        done = 0
        while done < p.length:
            room = batch_bytes - cur_bytes
            if room < unit:
                yield close_batch()
                room = batch_bytes
            n = min(p.length - done, max_seg, room // unit * unit)
            cur_segments.append(CopySegment((s0 + done) // bs, (d0 + done) // bs, n // bs,
                                            p.image_offset + done, n))
            cur_bytes += n
            done += n
    if cur_segments:
        yield close_batch()
    log.debug("planned %d batches for %s via %s", number, direction, mover)


def image_position(batches: tuple[Batch, ...], batch: int, lists_done: int = 0,
                   segments_done: int | None = None) -> int:
    """Image offset up to which data is known on the destination.

    Everything before batch ``batch`` is complete; within it, ``lists_done``
    lists are complete and, of the next list, ``segments_done`` segments.
    """
    if batch >= len(batches):
        return batches[-1].image_end if batches else 0
    b = batches[batch]
    pos = b.image_start
    for pl in b.lists[:lists_done]:
        pos = pl.image_end
    if lists_done < len(b.lists) and segments_done:
        segs = b.lists[lists_done].segments
        k = min(segments_done, len(segs))
        if k:
            pos = segs[k - 1].image_offset + segs[k - 1].length
    return pos
