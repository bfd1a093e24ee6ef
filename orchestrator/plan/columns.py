"""Block->block planning over numpy columns: millions of extents, batch by batch.

`orchestrator.plan.disk.iter_batches` walks pieces one Python object at a
time (about 4 us per segment); an image of 5,000,000 extents would take tens
of seconds to plan, and as long again to plan its restore.  This planner
gives the same batches, lists, segments and list bytes (a test compares them)
but computes them per block of pieces with numpy:

* a batch is a window of the image stream (``batch_bytes`` rounded down to the
  copy unit), so pieces are cut at window edges, then into segments of at most
  the mover's segment length from each part's start -- exactly where the
  piece-by-piece planner cuts them;
* every 02h descriptor of a batch is written at once into a (segments x 28)
  byte array from the layout table of scsi.xcopy (field offsets, big-endian);
* a list's segments are a `SegmentColumns` view: `CopySegment` objects are made
  only when someone reads them.

Batches are yielded as soon as their window is complete, so planning streams.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from functools import lru_cache
from typing import Literal, overload

import numpy as np

from orchestrator.ops import Batch, CopySegment, MoverLimits, ParameterListPlan
from orchestrator.piece_blocks import PieceBlock
from orchestrator.plan.disk import (DEFAULT_BATCH_MB, MIB, CscdRef, Encoder, PlanError, _cscd_bytes,
                                    _segment_template, copy_units, encode_block_list)
from scsi.xcopy import Header


class SegmentColumns(Sequence[CopySegment]):
    """A list's segments as numpy columns; behaves as a tuple of `CopySegment`."""

    __slots__ = ("_cols",)

    def __init__(self, cols: np.ndarray):  # shape (5, n): src_lba, dst_lba, blocks, image_offset, length
        self._cols = cols

    def __len__(self) -> int:
        return int(self._cols.shape[1])

    @property
    def nbytes(self) -> int:
        """Bytes the segments copy (without making a `CopySegment` each)."""
        return int(self._cols[4].sum())

    @overload
    def __getitem__(self, i: int) -> CopySegment: ...

    @overload
    def __getitem__(self, i: slice) -> tuple[CopySegment, ...]: ...

    def __getitem__(self, i):  # type: ignore[no-untyped-def]
        if isinstance(i, slice):
            return tuple(self)[i]
        return CopySegment(*self._cols[:, i].tolist())

    def __iter__(self) -> Iterator[CopySegment]:
        for row in self._cols.T.tolist():
            yield CopySegment(*row)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sequence) and tuple(self) == tuple(other)

    def __hash__(self) -> int:
        return hash(tuple(self))

    def __repr__(self) -> str:
        return f"SegmentColumns({len(self)} segments)"


def _cut(image: np.ndarray, volume: np.ndarray, length: np.ndarray, pos0: int, window: int,
         max_seg: int) -> tuple[np.ndarray, ...]:
    """Segments of the pieces (stream position ``pos0`` onwards): window edges first, then ``max_seg`` chunks.

    Returns (stream position, image offset, volume offset, length, window index) per segment.
    """
    ends = np.cumsum(length)
    starts = ends - length + pos0
    ends += pos0
    first_w = starts // window
    last_w = (ends - 1) // window
    parts = last_w - first_w + 1
    which = np.repeat(np.arange(length.size), parts)  # piece of each part
    k = np.arange(which.size) - np.repeat(np.cumsum(parts) - parts, parts)  # part number within its piece
    w = first_w[which] + k
    p_start = np.maximum(starts[which], w * window)
    p_end = np.minimum(ends[which], (w + 1) * window)
    p_len = p_end - p_start
    chunks = -(-p_len // max_seg)
    seg_part = np.repeat(np.arange(p_len.size), chunks)
    j = np.arange(seg_part.size) - np.repeat(np.cumsum(chunks) - chunks, chunks)
    s_pos = p_start[seg_part] + j * max_seg
    s_len = np.minimum(p_end[seg_part] - s_pos, max_seg)
    piece = which[seg_part]
    into = s_pos - starts[piece]  # bytes of its piece before the segment
    return s_pos, image[piece] + into, volume[piece] + into, s_len, w[seg_part]


def iter_column_batches(blocks: Iterable[PieceBlock], *, direction: Literal["backup", "restore"],
                        src: CscdRef, dst: CscdRef, src_base: int, dst_base: int, limits: MoverLimits,
                        batch_bytes: int = DEFAULT_BATCH_MB * MIB, mover: str = "data mover",
                        encoder: Encoder | None = None, first_list_id: int = 1) -> Iterator[Batch]:
    """`iter_batches` for pieces given as `PieceBlock` columns (same batches, same bytes)."""
    bs, per_list, unit, max_seg = copy_units(src, dst, limits, batch_bytes, mover)
    window = batch_bytes // unit * unit
    state = _Emitter(direction, src, dst, src_base, dst_base, bs, per_list, encoder, first_list_id)
    pos = 0
    pending: list[np.ndarray] | None = None  # segments of the window not yet complete
    for block in blocks:
        if not len(block):
            continue
        image = block.image_offsets()
        _check_units(image, block.volume_offset, block.length, direction, src_base, dst_base, unit, bs)
        cols = np.stack(_cut(image, block.volume_offset, block.length, pos, window, max_seg))
        pos += int(block.length.sum())
        if pending is not None:
            cols = np.concatenate([pending, cols], axis=1)
        done = pos // window  # windows before this one are complete
        split = int(np.searchsorted(cols[4], done))
        yield from state.batches(cols[:, :split])
        pending = cols[:, split:]
    if pending is not None and pending.shape[1]:
        yield from state.batches(pending)


def _check_units(image: np.ndarray, volume: np.ndarray, length: np.ndarray, direction: str, src_base: int,
                 dst_base: int, unit: int, bs: int) -> None:
    s0, d0 = (src_base + volume, dst_base + image) if direction == "backup" else (src_base + image,
                                                                                   dst_base + volume)
    for what, values in (("source offset", s0), ("destination offset", d0), ("length", length)):
        bad = np.flatnonzero(values % unit)
        if bad.size:
            i = int(bad[0])
            raise PlanError(f"piece at image offset {int(image[i])}: {what} {int(values[i])} is not a "
                            f"multiple of the copy unit {unit} (block size {bs})")


class _Emitter:
    """Turns segment columns into batches of lists: LBAs, list ids, and (for 02h lists) their bytes at once."""

    def __init__(self, direction: str, src: CscdRef, dst: CscdRef, src_base: int, dst_base: int, bs: int,
                 per_list: int, encoder: Encoder | None, first_list_id: int):
        self.direction, self.src, self.dst = direction, src, dst
        self.src_base, self.dst_base, self.bs, self.per_list = src_base, dst_base, bs, per_list
        self.encoder, self.list_id, self.number = encoder, first_list_id, 0
        self.bulk = encoder is encode_block_list
        self._cscds: bytes | None = None

    def batches(self, cols: np.ndarray) -> Iterator[Batch]:
        if not cols.shape[1]:
            return
        _, image, volume, length, w = cols
        src, dst = (volume, image) if self.direction == "backup" else (image, volume)
        seg = np.empty((5, image.size), dtype=np.int64)
        np.floor_divide(self.src_base + src, self.bs, out=seg[0])
        np.floor_divide(self.dst_base + dst, self.bs, out=seg[1])
        np.floor_divide(length, self.bs, out=seg[2])
        seg[3], seg[4] = image, length
        rows = self._descriptors(seg) if self.bulk else None
        edges = np.flatnonzero(np.diff(w)) + 1
        for a, b in zip(np.concatenate(([0], edges)).tolist(), np.concatenate((edges, [w.size])).tolist()):
            lists = []
            for i in range(a, b, self.per_list):
                j = min(i + self.per_list, b)
                segs = SegmentColumns(seg[:, i:j])
                if rows is not None:
                    data = self._list_bytes(rows[i:j])
                else:
                    data = self.encoder(tuple(segs), self.src, self.dst, self.list_id) if self.encoder else b""
                lists.append(ParameterListPlan(segs, data, self.list_id))  # type: ignore[arg-type]
                self.list_id = self.list_id % 255 + 1
            yield Batch(self.number, tuple(lists))
            self.number += 1

    def _descriptors(self, seg: np.ndarray) -> np.ndarray:
        """Every 02h descriptor of these segments, one row each, from the layout's template and field offsets."""
        template, fields = _segment_template()
        rows = np.empty((seg.shape[1], len(template)), dtype=np.uint8)
        rows[:] = np.frombuffer(template, dtype=np.uint8)
        for (at, size), values in zip(fields, (seg[2], seg[0], seg[1])):
            if size not in (2, 4, 8):
                raise PlanError(f"a {size}-byte descriptor field cannot be written in bulk")
            if size < 8 and (values >= 1 << (8 * size)).any():
                bad = int(values[values >= 1 << (8 * size)][0])
                raise PlanError(f"segment value {bad} does not fit {size} bytes at descriptor byte {at}")
            rows[:, at:at + size] = values.astype(f">u{size}").view(np.uint8).reshape(-1, size)
        return rows

    def _list_bytes(self, rows: np.ndarray) -> bytes:
        if self._cscds is None:
            self._cscds = _cscd_bytes(self.src, self.dst)
        body = rows.tobytes()
        return _header(self.list_id, len(self._cscds), len(body)) + self._cscds + body


@lru_cache(maxsize=1 << 14)
def _header(list_id: int, cscd_bytes: int, segment_bytes: int) -> bytes:
    """A list's 16-byte header (SPC-4 r36f 6.5): a few thousand distinct ones (list id x length) serve a job."""
    return Header(list_id=list_id, list_id_usage=0).encode(cscd_bytes, segment_bytes, 0)
