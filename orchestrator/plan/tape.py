"""Planning for tape storage pools: image pieces -> block->stream (00h) / stream->block (01h) lists.

A tape cannot be written in the middle, so the image is laid out on it as a
fixed function of the pieces and the :class:`TapeFormat` alone -- never of how
the work was cut into segments, lists, batches or resumed attempts:

* variable mode: every piece becomes records of ``record_bytes`` bytes, the
  piece's last record holding what is left (a short record);
* fixed mode: every piece becomes records of ``block_length`` bytes (pieces
  must be whole blocks), written ``record_bytes`` at a time.

Segments are therefore cut only at record boundaries of their piece, which is
what lets a restore (01h) read whole records and lets a resumed backup
continue right after the last record the mover's COPY STATUS vouches for (see
:mod:`orchestrator.plan.tape_position`).  A backup's last list ends with a 10h
WRITE FILEMARKS segment closing the object; it is planned as a zero-length
:class:`CopySegment` so COPY STATUS segment counts match the plan.

In a tape :class:`CopySegment` ``dst_lba`` (backup) or ``src_lba`` (restore)
holds the number of the segment's first record, counted from the object's
first record.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from math import lcm
from typing import Any, Literal

from orchestrator.ops import Batch, CopySegment, MoverLimits, ParameterListPlan, Piece
from orchestrator.ops.tape import DEFAULT_RECORD_BYTES, TapeFormat  # noqa: F401 - the tape format is vocabulary
from orchestrator.plan.disk import CSCD_BYTES, CSCD_IDENTIFICATION, DEFAULT_BATCH_MB, MIB, CscdRef, PlanError
from scsi.xcopy import block_list
from scsi.xcopy.block_list import (MAX_STREAM_BLOCKS, MAX_TRANSFER_LENGTH, SEG_BLOCK_TO_STREAM,  # noqa: F401
                                   SEG_STREAM_TO_BLOCK, SEG_WRITE_FILEMARKS, SEGMENT_FILEMARK_BYTES,
                                   SEGMENT_STREAM_BYTES)

log = logging.getLogger(__name__)

STREAM_PDT = 0x01


@dataclass(frozen=True)
class TapeRef:
    """A tape drive as a target descriptor names it (E4h, peripheral device type 01h)."""

    name: str
    designator: str
    fmt: TapeFormat = TapeFormat()


def max_stream_transfer(op: Any) -> int:
    """MAXIMUM STREAM DEVICE TRANSFER SIZE from an OPERATING PARAMETERS answer (0: not reported)."""
    if op is None:
        return 0
    get = op.get if isinstance(op, dict) else (lambda k, d=None: getattr(op, k, d))
    for name in ("max_stream_device_transfer_size", "max_stream_transfer"):
        v = get(name, None)
        if v:
            return int(v)
    return 0


def check_tape_mover(limits: MoverLimits, fmt: TapeFormat, direction: Literal["backup", "restore"],
                     max_transfer: int = 0, mover: str = "data mover") -> int:
    """Data segments one list may carry (room is kept for the closing 10h); PlanError if impossible."""
    code = SEG_BLOCK_TO_STREAM if direction == "backup" else SEG_STREAM_TO_BLOCK
    codes = set(limits.implemented_codes)
    need = [code, CSCD_IDENTIFICATION] + ([SEG_WRITE_FILEMARKS] if direction == "backup" else [])
    if codes:
        missing = [c for c in need if c not in codes]
        if missing:
            raise PlanError(f"{mover} does not implement " + ", ".join(f"{c:02X}h" for c in missing)
                            + f" needed for a tape {direction}; implemented codes: "
                            + ", ".join(f"{c:02X}h" for c in sorted(codes)))
    if limits.max_target_count < 2:
        raise PlanError(f"{mover} accepts {limits.max_target_count} target descriptor(s); a copy needs 2")
    if fmt.transfer_length > MAX_TRANSFER_LENGTH:
        raise PlanError(f"tape transfer length {fmt.transfer_length} does not fit the 24-bit STREAM DEVICE "
                        "TRANSFER LENGTH field")
    if max_transfer and fmt.record_bytes > max_transfer:
        raise PlanError(f"{mover}: tape transfers of {fmt.record_bytes} bytes exceed its MAXIMUM STREAM DEVICE "
                        f"TRANSFER SIZE of {max_transfer} bytes; use records of at most that size")
    room = limits.max_descriptor_list_length - 2 * CSCD_BYTES
    if direction == "backup":
        room -= SEGMENT_FILEMARK_BYTES
    per_list = min(limits.max_segment_count - (1 if direction == "backup" else 0), room // SEGMENT_STREAM_BYTES)
    if per_list < 1:
        raise PlanError(f"{mover}: maximum descriptor list length {limits.max_descriptor_list_length} and "
                        f"segment count {limits.max_segment_count} leave no room for a tape segment"
                        + (" and the closing WRITE FILEMARKS" if direction == "backup" else ""))
    return per_list


def segment_limits(limits: MoverLimits, fmt: TapeFormat, bs: int, direction: str, max_transfer: int,
                   batch_bytes: int, mover: str) -> tuple[int, int, int, int]:
    """(segments per list, the copy grain, the step every segment length is a multiple of, the longest segment).

    Segment lengths inside a piece are whole records (whole transfers in fixed mode) and whole disk blocks.
    """
    per_list = check_tape_mover(limits, fmt, direction, max_transfer, mover)
    grain = lcm(bs, 1 << limits.data_segment_granularity)
    step = lcm(grain, fmt.record_bytes if fmt.fixed else fmt.unit)
    max_seg = MAX_STREAM_BLOCKS * bs
    if limits.max_segment_length:
        max_seg = min(max_seg, limits.max_segment_length)
    longest = min(max_seg, batch_bytes)
    max_seg = longest // step * step
    if max_seg <= 0:
        raise PlanError(f"{mover}: a segment of at most {longest} bytes cannot hold whole tape transfers of "
                        f"{step} bytes (records of {fmt.unit} bytes, disk blocks of {bs} bytes)")
    return per_list, grain, step, max_seg


def plan_tape_batches(pieces: Iterable[Piece], *, direction: Literal["backup", "restore"], disk: CscdRef,
                      tape: TapeRef, disk_base: int, limits: MoverLimits, max_transfer: int = 0,
                      batch_bytes: int = DEFAULT_BATCH_MB * MIB, mover: str = "data mover",
                      first_record: int = 0, close: bool = True, encode: bool = True,
                      first_list_id: int = 1) -> tuple[Batch, ...]:
    """Cut ``pieces`` into 00h (backup) or 01h (restore) segments, lists and batches.

    ``first_record`` numbers the first piece's first record (non-zero when a
    backup resumes inside its object).  ``close`` appends the 10h WRITE
    FILEMARKS segment to a backup's last list.  Disk bases and lengths must be
    whole disk blocks; in fixed mode lengths must also be whole tape blocks.
    """
    fmt = tape.fmt
    bs = disk.block_size
    per_list, grain, step, max_seg = segment_limits(limits, fmt, bs, direction, max_transfer, batch_bytes, mover)

    segments: list[CopySegment] = []
    record = first_record
    for p in pieces:
        d0 = disk_base + p.volume_offset
        for what, value in (("disk offset", d0), ("length", p.length)):
            if value % grain:
                raise PlanError(f"piece at image offset {p.image_offset}: {what} {value} is not a multiple of "
                                f"the copy unit {grain} (disk block size {bs})")
        if fmt.fixed and p.length % fmt.block_length:
            raise PlanError(f"piece at image offset {p.image_offset}: length {p.length} is not a whole number of "
                            f"{fmt.block_length}-byte fixed tape blocks")
        done = 0
        while done < p.length:
            n = min(p.length - done, max_seg)
            if fmt.fixed and n > fmt.record_bytes and n % fmt.record_bytes:  # the tail gets its own segment
                n = n // step * step or n
            if max_transfer and fmt.fixed and fmt.transfer_for(n) * fmt.block_length > max_transfer:
                raise PlanError(f"piece at image offset {p.image_offset}: its {n}-byte tail cannot be one fixed-"
                                f"mode transfer within the MAXIMUM STREAM DEVICE TRANSFER SIZE {max_transfer}")
            lba = (d0 + done) // bs
            if direction == "backup":
                segments.append(CopySegment(lba, record, n // bs, p.image_offset + done, n))
            else:
                segments.append(CopySegment(record, lba, n // bs, p.image_offset + done, n))
            record += fmt.records(n)
            done += n

    grouped: list[list[list[CopySegment]]] = []  # batches of lists of segments
    cur: list[list[CopySegment]] = []
    cur_bytes = 0
    for seg in segments:
        if cur and cur_bytes + seg.length > batch_bytes:
            grouped.append(cur)
            cur, cur_bytes = [], 0
        if not cur or len(cur[-1]) >= per_list:
            cur.append([])
        cur[-1].append(seg)
        cur_bytes += seg.length
    if close and direction == "backup":  # room for it was kept in every list
        end = segments[-1].image_offset + segments[-1].length if segments else 0
        if not cur:
            cur.append([])
        cur[-1].append(CopySegment(0, record, 0, end, 0))
    if cur:
        grouped.append(cur)
    batches: list[Batch] = []
    list_id = first_list_id
    for lists in grouped:
        plans = []
        for segs in lists:
            plans.append(_list(tuple(segs), direction, disk, tape, list_id, encode))
            list_id = list_id % 255 + 1
        batches.append(Batch(len(batches), tuple(plans)))
    log.debug("planned %d tape batches (%s, %d records from %d) via %s", len(batches), direction,
              record - first_record, first_record, mover)
    return tuple(batches)


def is_filemark(seg: CopySegment) -> bool:
    """The zero-length segment standing for the closing 10h WRITE FILEMARKS."""
    return seg.length == 0 and seg.blocks == 0


def _list(segs: tuple[CopySegment, ...], direction: str, disk: CscdRef, tape: TapeRef, list_id: int,
          encode: bool) -> ParameterListPlan:
    data = encode_tape_list(segs, direction, disk, tape, list_id) if encode else b""
    return ParameterListPlan(segs, data, list_id)


def encode_tape_list(segments: tuple[CopySegment, ...], direction: str, disk: CscdRef, tape: TapeRef,
                     list_id: int) -> bytes:
    """One LID1 list: CSCD 0 = the disk, CSCD 1 = the tape; 00h/01h segments, maybe a closing 10h
    (:mod:`scsi.xcopy.block_list`)."""
    fmt = tape.fmt
    code = SEG_BLOCK_TO_STREAM if direction == "backup" else SEG_STREAM_TO_BLOCK
    rows = (None if is_filemark(s) else
            (s.blocks, s.src_lba if direction == "backup" else s.dst_lba, fmt.transfer_for(s.length))
            for s in segments)
    try:
        return block_list.encode_stream_list(
            rows, code, block_list.Target(disk.designator, disk.pdt, disk.block_size),
            block_list.Target(tape.designator, STREAM_PDT, fmt.block_length, fmt.fixed), list_id)
    except block_list.ListTooBig as exc:
        raise PlanError(str(exc)) from None


