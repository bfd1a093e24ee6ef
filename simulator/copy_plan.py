"""Where a byte count falls in a planned copy: which batch, list and segment were in flight.

The fluid mode runs a whole copy as one flow; when a fault stops the flow after
``n`` bytes, the copy plan says which batch, parameter list and segment were in
flight -- the answer the real mover gives through COPY ABORTED's segment number
and RECEIVE COPY RESULTS.  :class:`ArrayCopyPlan` is built from the planner's
batches; :class:`UniformCopyPlan` describes a regular plan with O(1) memory, for
capacity runs of thousands of 1 TiB jobs.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence

import numpy as np


@dataclass(frozen=True)
class Position:
    """First byte not yet moved: batch (from the first sent), list in it, segment in that list."""

    batch: int
    list_in_batch: int
    segment_in_list: int
    done_bytes: int  # bytes in the segments completed before this one


class CopyPlan(Protocol):
    total: float
    n_batches: int
    n_lists: int
    extents: int

    def locate(self, nbytes: float) -> Position: ...


class ArrayCopyPlan:
    """An explicit plan: segment lengths grouped into lists, lists into batches."""

    def __init__(self, segment_lengths: Sequence[int], segments_per_list: Sequence[int],
                 lists_per_batch: Sequence[int], extents: int = 1):
        self.seg_len = np.asarray(segment_lengths, dtype=np.int64)
        spl = np.asarray(segments_per_list, dtype=np.int64)
        lpb = np.asarray(lists_per_batch, dtype=np.int64)
        if spl.sum() != len(self.seg_len) or lpb.sum() != len(spl):
            raise ValueError(f"copy layout does not add up: {len(self.seg_len)} segments, "
                             f"{int(spl.sum())} in lists; {len(spl)} lists, {int(lpb.sum())} in batches")
        if (self.seg_len < 0).any():
            raise ValueError("copy layout: negative segment length")
        self.seg_end = np.cumsum(self.seg_len)
        self.list_first = np.concatenate(([0], np.cumsum(spl)[:-1])) if len(spl) else np.zeros(0, np.int64)
        self.seg_list = np.repeat(np.arange(len(spl)), spl)
        self.batch_first = np.concatenate(([0], np.cumsum(lpb)[:-1])) if len(lpb) else np.zeros(0, np.int64)
        self.list_batch = np.repeat(np.arange(len(lpb)), lpb)
        self.total = float(self.seg_end[-1]) if len(self.seg_end) else 0.0
        self.n_batches = len(lpb)
        self.n_lists = len(spl)
        self.extents = max(int(extents), 1)

    def locate(self, nbytes: float) -> Position:
        k = int(np.searchsorted(self.seg_end, nbytes + 1e-6, side="right"))
        if k >= len(self.seg_len):
            return Position(self.n_batches, 0, 0, int(self.total))
        lst = int(self.seg_list[k])
        batch = int(self.list_batch[lst])
        done = int(self.seg_end[k - 1]) if k else 0
        return Position(batch, lst - int(self.batch_first[batch]), k - int(self.list_first[lst]), done)


class UniformCopyPlan:
    """A regular plan: fixed batch, list and segment sizes (the last ones may be short)."""

    def __init__(self, total: int, batch_bytes: int, list_bytes: int, segment_bytes: int, extents: int = 1):
        if not 0 < segment_bytes <= list_bytes <= batch_bytes:
            raise ValueError(f"uniform copy layout needs 0 < segment ({segment_bytes}) <= list ({list_bytes}) "
                             f"<= batch ({batch_bytes}) bytes")
        if batch_bytes % list_bytes or list_bytes % segment_bytes:
            raise ValueError("uniform copy layout: batch must be whole lists and lists whole segments")
        self.total = float(total)
        self.batch_bytes, self.list_bytes, self.segment_bytes = batch_bytes, list_bytes, segment_bytes
        self.n_batches = -(-int(total) // batch_bytes)
        self.n_lists = -(-int(total) // list_bytes)
        self.extents = max(int(extents), 1)

    def locate(self, nbytes: float) -> Position:
        n = int(nbytes + 1e-6)
        if n >= self.total:
            return Position(self.n_batches, 0, 0, int(self.total))
        batch, rest = divmod(n, self.batch_bytes)
        lst, rest = divmod(rest, self.list_bytes)
        seg = rest // self.segment_bytes
        done = batch * self.batch_bytes + lst * self.list_bytes + seg * self.segment_bytes
        return Position(batch, lst, seg, done)


def copy_plan_from_batches(batches: Sequence) -> ArrayCopyPlan:
    """Layout of the orchestrator's :class:`~orchestrator.ops.Batch` objects (extents from LBA gaps)."""
    lengths: list[int] = []
    spl: list[int] = []
    lpb: list[int] = []
    extents = 0
    prev_end = None
    for batch in batches:
        lpb.append(len(batch.lists))
        for plist in batch.lists:
            spl.append(len(plist.segments))
            for seg in plist.segments:
                lengths.append(seg.length)
                if seg.src_lba != prev_end:
                    extents += 1
                prev_end = seg.src_lba + seg.blocks
    return ArrayCopyPlan(lengths, spl, lpb, extents)
