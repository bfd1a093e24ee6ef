"""Extent arrays: allocation bitmap -> extents, the imagegapsize rule, small helpers.

An extent array has shape ``(n, 2)`` and dtype int64: ``[start, length]`` per
row, in bytes (or clusters, for the cluster-level helpers).  The bitmap work
itself streams (`orchestrator.volume.bitmap_stream`): `bitmap_to_extents` and
`used_runs` are its whole-array form for bitmaps already in memory, and
`iter_bitmap_extents` its chunked form for volumes whose extents must not be
held at once.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np

from orchestrator.volume.bitmap_stream import EMPTY, as_bytes, iter_extents, memory_chunks

__all__ = ["EMPTY", "add_extent", "bitmap_to_extents", "coalesce", "count_set_bits", "iter_bitmap_extents",
           "python_loop_runs", "total_bytes", "used_runs"]


def _join(parts: Iterable[np.ndarray]) -> np.ndarray:
    arrays = list(parts)
    if not arrays:
        return EMPTY.copy()
    return arrays[0] if len(arrays) == 1 else np.concatenate(arrays)


def used_runs(bitmap: bytes | bytearray | memoryview | np.ndarray, nbits: int) -> np.ndarray:
    """Runs of set bits among the first ``nbits`` bits: ``(n, 2)`` array of [start, length] in bits."""
    return _join(iter_extents(memory_chunks(bitmap), nbits))


def coalesce(runs: np.ndarray, max_gap: int, *, keep_leading: bool = True) -> np.ndarray:
    """Merge runs whose gap is at most ``max_gap`` (same unit as the runs).

    A free region longer than ``max_gap`` is skipped; one of ``max_gap`` or less
    is copied with its neighbours (TSM's imagegapsize rule).  With
    ``keep_leading`` a short free region before the first run is copied too;
    free space after the last run is never copied.
    """
    if max_gap < 0:
        raise ValueError(f"gap {max_gap} is negative")
    if runs.size == 0:
        return EMPTY.copy()
    starts = np.ascontiguousarray(runs[:, 0])
    ends = starts + runs[:, 1]
    breaks = np.flatnonzero((starts[1:] - ends[:-1]) > max_gap)
    new_starts = np.empty(breaks.size + 1, dtype=np.int64)
    new_ends = np.empty(breaks.size + 1, dtype=np.int64)
    new_starts[0] = starts[0]
    new_starts[1:] = starts[breaks + 1]
    new_ends[:-1] = ends[breaks]
    new_ends[-1] = ends[-1]
    if keep_leading and 0 < new_starts[0] <= max_gap:
        new_starts[0] = 0
    return np.stack([new_starts, new_ends - new_starts], axis=1)


def _check_gap(cluster_size: int, gap_bytes: int) -> None:
    if cluster_size <= 0:
        raise ValueError(f"cluster size {cluster_size} must be positive")
    if gap_bytes < 0:
        raise ValueError(f"imagegapsize {gap_bytes} is negative")


def iter_bitmap_extents(chunks: Iterable[bytes | bytearray | memoryview | np.ndarray], nclusters: int,
                        cluster_size: int, gap_bytes: int) -> Iterator[np.ndarray]:
    """Byte extents of the used clusters, as the bitmap chunks arrive; free gaps of at most ``gap_bytes`` kept.

    ``gap_bytes`` 0 keeps every cluster (the whole cluster area), as the seed
    describes for imagegapsize 0; the bitmap is then not read at all.
    """
    _check_gap(cluster_size, gap_bytes)
    if gap_bytes == 0:
        if nclusters:
            yield np.array([[0, nclusters * cluster_size]], dtype=np.int64)
        return
    yield from iter_extents(chunks, nclusters, gap_bytes // cluster_size, cluster_size)


def bitmap_to_extents(bitmap: bytes | bytearray | memoryview | np.ndarray, nclusters: int,
                      cluster_size: int, gap_bytes: int) -> np.ndarray:
    """`iter_bitmap_extents` of a bitmap in memory, as one array."""
    _check_gap(cluster_size, gap_bytes)
    return _join(iter_bitmap_extents(memory_chunks(bitmap), nclusters, cluster_size, gap_bytes))


def add_extent(extents: np.ndarray, start: int, length: int) -> np.ndarray:
    """Extents plus one more byte range, merged where they touch or overlap (kept sorted)."""
    if length <= 0:
        return extents
    both = np.concatenate([extents, np.array([[start, length]], dtype=np.int64)])
    both = both[np.argsort(both[:, 0], kind="stable")]
    ends = np.maximum.accumulate(both[:, 0] + both[:, 1])
    new = np.concatenate(([True], both[1:, 0] > ends[:-1]))
    group_end = np.concatenate((ends[np.flatnonzero(new)[1:] - 1], [ends[-1]]))
    starts = both[new, 0]
    return np.stack([starts, group_end - starts], axis=1)


_BYTE_POPCOUNT = np.unpackbits(np.arange(256, dtype=np.uint8)[:, None], axis=1).sum(axis=1).astype(np.uint8)


def _popcount(data: np.ndarray) -> np.ndarray:
    """Set bits per byte: numpy's bitwise_count ufunc (numpy >= 2), else a table lookup."""
    count = getattr(np, "bitwise_count", None)
    return count(data) if count is not None else _BYTE_POPCOUNT[data]


def count_set_bits(bitmap: bytes | bytearray | memoryview | np.ndarray, nbits: int) -> int:
    """How many of the first ``nbits`` bits are set (used clusters)."""
    data = as_bytes(bitmap)
    if data.size * 8 < nbits:
        raise ValueError(f"bitmap holds {data.size * 8} bits, fewer than {nbits}")
    full, rest = divmod(nbits, 8)
    count = int(_popcount(data[:full]).sum(dtype=np.int64)) if full else 0
    if rest:
        count += int(data[full] & ((1 << rest) - 1)).bit_count()
    return count


def total_bytes(extents: np.ndarray) -> int:
    """Bytes covered by an extent array."""
    return int(extents[:, 1].sum()) if extents.size else 0


def python_loop_runs(bitmap: bytes, nbits: int) -> list[tuple[int, int]]:
    """The plain-Python reference: walk every bit.  For tests and the benchmark's peer only."""
    runs: list[tuple[int, int]] = []
    start = -1
    for i in range(nbits):
        if (bitmap[i >> 3] >> (i & 7)) & 1:
            if start < 0:
                start = i
        elif start >= 0:
            runs.append((start, i - start))
            start = -1
    if start >= 0:
        runs.append((start, nbits - start))
    return runs
