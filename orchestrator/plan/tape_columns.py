"""Tape planning over numpy columns, batch by batch: a 5,000,000-extent image to tape in bounded memory.

`orchestrator.plan.tape` lays an image out as records (see its module text);
cutting it one Python object per segment and holding every segment before
grouping costs gigabytes and tens of seconds at millions of extents.  This
planner gives the same batches, lists, segments and list bytes (tests compare
it with the piece-by-piece planner kept in tests/fixtures) but per block of
pieces with numpy:

* each piece is cut from its start into segments of the longest whole-record
  length (a fixed-mode tail that is not whole transfers gets its own one);
* record numbers are a running sum of each segment's records;
* batches close greedily by bytes (a segment never straddles two), lists are
  runs of the mover's segment count, and a backup's last list ends with the
  10h WRITE FILEMARKS;
* every 00h/01h descriptor of a batch is written at once from the layout's
  template and field offsets (scsi.xcopy).

A batch is yielded as soon as the next segment would not fit it, so the job
sends lists while later ones are not planned yet.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from functools import lru_cache
from typing import Literal

import numpy as np

from orchestrator.ops import Batch, MoverLimits, ParameterListPlan
from orchestrator.piece_blocks import PieceBlock
from orchestrator.plan.columns import SegmentColumns
from orchestrator.plan.disk import DEFAULT_BATCH_MB, MIB, CscdRef, PlanError
from orchestrator.plan.tape import STREAM_PDT, TapeRef, segment_limits
from scsi.xcopy import block_list
from scsi.xcopy.block_list import SEG_BLOCK_TO_STREAM, SEG_STREAM_TO_BLOCK
from scsi.xcopy.segments import BLOCK_STREAM_LAYOUT


def iter_tape_batches(blocks: Iterable[PieceBlock], *, direction: Literal["backup", "restore"], disk: CscdRef,
                      tape: TapeRef, disk_base: int, limits: MoverLimits, max_transfer: int = 0,
                      batch_bytes: int = DEFAULT_BATCH_MB * MIB, mover: str = "data mover",
                      first_record: int = 0, close: bool = True, encode: bool = True,
                      first_list_id: int = 1) -> Iterator[Batch]:
    """`orchestrator.plan.tape.plan_tape_batches` for pieces given as `PieceBlock` columns, as a stream."""
    fmt = tape.fmt
    bs = disk.block_size
    per_list, grain, step, max_seg = segment_limits(limits, fmt, bs, direction, max_transfer, batch_bytes, mover)
    out = _Lists(direction, disk, tape, per_list, encode, first_list_id)
    record = first_record
    pending = np.empty((5, 0), dtype=np.int64)  # segments of the batch being filled
    for block in blocks:
        if not len(block):
            continue
        if block.compressed.any():
            i = int(np.flatnonzero(block.compressed)[0])
            raise PlanError(f"piece at image offset {int(block.image_offsets()[i])} is stored compressed: a data "
                            "mover cannot restore it server-free")
        image, vol, length = block.image_offsets(), block.volume_offset, block.length
        _check(image, disk_base + vol, length, grain, bs, fmt)
        seg_img, seg_vol, seg_len = _cut(image, vol, length, max_seg, step, fmt)
        if fmt.fixed and max_transfer:
            _check_transfers(seg_img, seg_len, fmt, max_transfer)
        records = -(-seg_len // fmt.unit)
        numbers = record + np.cumsum(records) - records
        record += int(records.sum())
        lba = (disk_base + seg_vol) // bs
        src, dst = (lba, numbers) if direction == "backup" else (numbers, lba)
        cols = np.concatenate([pending, np.stack([src, dst, seg_len // bs, seg_img, seg_len])], axis=1)
        cum = np.cumsum(cols[4])
        start, base = 0, 0
        while True:
            stop = max(int(np.searchsorted(cum, base + batch_bytes, "right")), start + 1)
            if stop >= cum.size:  # the next segment may still fit: keep the batch open
                break
            yield out.batch(cols[:, start:stop], None)
            base, start = int(cum[stop - 1]), stop
        pending = cols[:, start:]
    end = int(pending[3, -1] + pending[4, -1]) if pending.shape[1] else out.image_end
    filemark = (0, record, 0, end, 0) if close and direction == "backup" else None
    if pending.shape[1] or filemark is not None:
        yield out.batch(pending, filemark)


def _check(image: np.ndarray, disk_offset: np.ndarray, length: np.ndarray, grain: int, bs: int, fmt) -> None:
    """The first piece whose disk offset or length is not whole copy units (or fixed blocks): PlanError."""
    bad_off, bad_len = disk_offset % grain != 0, length % grain != 0
    bad_blk = length % fmt.block_length != 0 if fmt.fixed else np.zeros(length.size, dtype=bool)
    bad = np.flatnonzero(bad_off | bad_len | bad_blk)
    if not bad.size:
        return
    i = int(bad[0])
    if bad_off[i] or bad_len[i]:
        what, value = ("disk offset", int(disk_offset[i])) if bad_off[i] else ("length", int(length[i]))
        raise PlanError(f"piece at image offset {int(image[i])}: {what} {value} is not a multiple of "
                        f"the copy unit {grain} (disk block size {bs})")
    raise PlanError(f"piece at image offset {int(image[i])}: length {int(length[i])} is not a whole number of "
                    f"{fmt.block_length}-byte fixed tape blocks")


def _cut(image: np.ndarray, vol: np.ndarray, length: np.ndarray, max_seg: int, step: int,
         fmt) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Segments of each piece from its start: ``max_seg`` bytes, then the rest; a fixed-mode rest that is
    longer than one transfer but not whole transfers is cut into whole steps and a tail."""
    full = length // max_seg
    rest = length - full * max_seg
    split = np.zeros(length.size, dtype=bool)
    head = np.zeros(length.size, dtype=np.int64)
    if fmt.fixed:
        split = (rest > fmt.record_bytes) & (rest % fmt.record_bytes != 0)
        head = np.where(split, rest // step * step, 0)
        split &= head > 0
    counts = full + (rest > 0) + split
    piece = np.repeat(np.arange(length.size), counts)
    k = np.arange(piece.size) - np.repeat(np.cumsum(counts) - counts, counts)  # segment number in its piece
    into = np.minimum(k, full[piece]) * max_seg + np.where(k > full[piece], head[piece], 0)
    seg_len = np.where(k < full[piece], max_seg,
                       np.where(split[piece] & (k == full[piece]), head[piece], length[piece] - into))
    return image[piece] + into, vol[piece] + into, seg_len


def _check_transfers(seg_img: np.ndarray, seg_len: np.ndarray, fmt, max_transfer: int) -> None:
    blocks = np.where(seg_len % fmt.record_bytes != 0, seg_len // fmt.block_length, fmt.transfer_length)
    bad = np.flatnonzero(blocks * fmt.block_length > max_transfer)
    if bad.size:
        i = int(bad[0])
        raise PlanError(f"piece at image offset {int(seg_img[i])}: its {int(seg_len[i])}-byte tail cannot be one "
                        f"fixed-mode transfer within the MAXIMUM STREAM DEVICE TRANSFER SIZE {max_transfer}")


# a list's 16-byte header (SPC-4 6.5): a few thousand distinct ones (list id x length) serve a whole job
_header = lru_cache(maxsize=1 << 14)(block_list.header)

_FIELDS = {n: (BLOCK_STREAM_LAYOUT.field(n).offset, BLOCK_STREAM_LAYOUT.field(n).size)
           for n in ("block_count", "lba", "stream_transfer_length")}


class _Lists:
    """Segment columns -> numbered batches of lists with their bytes (every descriptor of a batch at once)."""

    def __init__(self, direction: str, disk: CscdRef, tape: TapeRef, per_list: int, encode: bool,
                 first_list_id: int):
        self.direction, self.tape, self.per_list, self.encode = direction, tape, per_list, encode
        self.list_id, self.number, self.image_end = first_list_id, 0, 0
        self.code = SEG_BLOCK_TO_STREAM if direction == "backup" else SEG_STREAM_TO_BLOCK
        fmt = tape.fmt
        self.cscds = block_list.cscd_bytes(block_list.Target(disk.designator, disk.pdt, disk.block_size),
                                           block_list.Target(tape.designator, STREAM_PDT, fmt.block_length,
                                                             fmt.fixed))

    def batch(self, seg: np.ndarray, filemark: tuple[int, ...] | None) -> Batch:
        n = seg.shape[1]
        if n:
            self.image_end = int(seg[3, -1] + seg[4, -1])
        rows = self._descriptors(seg) if self.encode and n else None
        lists = []
        starts = list(range(0, n, self.per_list)) or [0]
        for i in starts:
            j = min(i + self.per_list, n)
            cols = seg[:, i:j]
            body = rows[i:j].tobytes() if rows is not None else b""
            last = i == starts[-1]
            if last and filemark is not None:
                cols = np.concatenate([cols, np.array(filemark, dtype=np.int64).reshape(5, 1)], axis=1)
                body += block_list.filemark_bytes() if self.encode else b""
            count = cols.shape[1] - (1 if last and filemark is not None else 0)
            data = (_header(self.list_id, len(self.cscds), len(body)) + self.cscds + body) \
                if self.encode and (count or filemark is not None) else b""
            lists.append(ParameterListPlan(SegmentColumns(cols), data, self.list_id))  # type: ignore[arg-type]
            self.list_id = self.list_id % 255 + 1
        batch = Batch(self.number, tuple(lists))
        self.number += 1
        return batch

    def _descriptors(self, seg: np.ndarray) -> np.ndarray:
        fmt = self.tape.fmt
        template, _, _ = block_list.stream_template(self.code, fmt.transfer_length)
        rows = np.empty((seg.shape[1], len(template)), dtype=np.uint8)
        rows[:] = np.frombuffer(template, dtype=np.uint8)
        length = seg[4]
        lba = seg[0] if self.direction == "backup" else seg[1]
        fields = [("block_count", seg[2]), ("lba", lba)]
        if fmt.fixed:
            fields.append(("stream_transfer_length", np.where(length % fmt.record_bytes != 0,
                                                              length // fmt.block_length, fmt.transfer_length)))
        for name, values in fields:
            at, size = _FIELDS[name]
            if size < 8 and (values >= 1 << (8 * size)).any():
                bad = int(values[values >= 1 << (8 * size)][0])
                raise PlanError(f"segment value {bad} does not fit {size} bytes at descriptor byte {at}")
            rows[:, at:at + size] = values.astype(">u8").view(np.uint8).reshape(-1, 8)[:, 8 - size:]  # big-endian
        return rows
