"""Allocation bitmap -> extents, vectorised with numpy.

A volume's allocation bitmap (bit *i* of byte *i // 8*, least significant bit
first, as NTFS ``$Bitmap`` stores it) becomes runs of used clusters; gaps no
longer than imagegapsize are then kept so the data mover streams instead of
seeking.  An extent array has shape ``(n, 2)`` and dtype int64: ``[start,
length]`` per row, in bytes (or clusters, for the cluster-level helpers).

Speed matters: a 2 TiB volume with 4 KiB clusters has a 64 MiB bitmap (half a
billion bits).  Instead of unpacking every bit, the bitmap is read as 64-bit
words, XORed with itself shifted by one bit to mark run boundaries, and only
the few bytes holding a boundary are expanded, through lookup tables built
with np.unpackbits (no per-bit Python loop), straight into one growing int64
edge list; the gap rule then reads that list in place (bitmap_to_extents
never builds the intermediate run arrays).
"""
from __future__ import annotations

import numpy as np

#: Bytes of bitmap handled per step.  Small enough that a chunk's words and the
#: per-boundary temporaries stay in the CPU cache (8 MiB steps were ~30% slower).
CHUNK_BYTES = 256 * 1024

EMPTY = np.zeros((0, 2), dtype=np.int64)


def _as_bytes(bitmap: bytes | bytearray | memoryview | np.ndarray) -> np.ndarray:
    if isinstance(bitmap, np.ndarray):
        if bitmap.dtype != np.uint8:
            raise TypeError(f"bitmap array must be uint8, got {bitmap.dtype}")
        return bitmap.reshape(-1)
    return np.frombuffer(bitmap, dtype=np.uint8)


def _bit_tables() -> tuple[np.ndarray, np.ndarray]:
    """Per byte value: how many bits are set, and (row r) the position of its r-th set bit."""
    unpacked = np.unpackbits(np.arange(256, dtype=np.uint8)[:, None], axis=1, bitorder="little")
    counts = unpacked.sum(axis=1).astype(np.uint8)
    nth = np.zeros((8, 256), dtype=np.int64)
    for value in range(256):
        where = np.flatnonzero(unpacked[value])
        nth[: where.size, value] = where
    return counts, nth


_POPCOUNT, _NTH_SET_BIT = _bit_tables()


class _Scratch:
    """Buffers reused from chunk to chunk (fresh arrays per step cost page faults), plus the growing output."""

    def __init__(self, nbytes: int):
        self.chunk = np.zeros(nbytes, dtype=np.uint8)
        self.changed = np.empty(nbytes // 8, dtype="<u8")
        self.spill = np.empty(nbytes // 8, dtype="<u8")
        self.hot = np.empty(nbytes, dtype=bool)
        self.edges = np.empty(0, dtype=np.int64)
        self.found = 0

    def reserve(self, more: int, done_bytes: int, total_bytes: int) -> np.ndarray:
        """Room for ``more`` edges after those found so far, growing by the density seen up to now.

        The projection assumes at most 2 edges per byte still to come (a
        dense start need not reserve gigabytes for a sparse rest); denser
        bitmaps still fit, by doubling.
        """
        need = self.found + more
        if need > self.edges.size:
            density = min(need / max(done_bytes, 1), 2.0)
            projected = need + int(density * (total_bytes - done_bytes) * 1.05)
            grown = np.empty(max(projected, 2 * self.edges.size, 1024), dtype=np.int64)
            grown[: self.found] = self.edges[: self.found]
            self.edges = grown
        return self.edges[self.found: need]


def _boundaries(scratch: _Scratch, words: np.ndarray, carry: int, offset: int,
                done_bytes: int, total_bytes: int) -> int:
    """Append to ``scratch.edges`` the bit positions (plus ``offset``) in ``words`` where a bit differs from the one before.

    ``carry`` is the last bit of the previous chunk; returns the new carry.
    Only bytes holding a boundary are expanded: the first boundary of every
    such byte in one table lookup, the (rarer, ~10% on a fragmented volume)
    further ones of bytes that hold several in one short round per rank, each
    written straight to its sorted slot.
    """
    nwords = words.size
    nbytes = nwords * 8
    changed = scratch.changed[:nwords]
    spill = scratch.spill[:nwords]
    np.left_shift(words, np.uint64(1), out=changed)  # each bit's predecessor, within the word ...
    np.right_shift(words, np.uint64(63), out=spill)  # ... and across word edges
    changed[1:] |= spill[:-1]
    changed[0] |= np.uint64(carry)
    changed ^= words
    new_carry = int(words[-1] >> np.uint64(63))
    changed_bytes = changed.view(np.uint8)
    hot_mask = scratch.hot[:nbytes]
    np.not_equal(changed_bytes, 0, out=hot_mask)
    hot = np.flatnonzero(hot_mask)  # bool input takes numpy's fast path
    if hot.size == 0:
        return new_carry
    values = changed_bytes[hot]
    counts = _POPCOUNT[values]  # uint8: a quarter of the traffic of int32
    slots = np.empty(hot.size, dtype=np.int64)
    slots[0] = 0
    np.cumsum(counts[:-1], out=slots[1:])  # where each byte's first boundary goes
    total = int(slots[-1]) + int(counts[-1])
    out = scratch.reserve(total, done_bytes, total_bytes)
    base = hot
    base <<= 3
    base += offset
    first_bits = _NTH_SET_BIT[0][values]
    first_bits += base
    if total == hot.size:  # one boundary per byte: already in order
        out[:] = first_bits
    else:
        out[slots] = first_bits
        multi = np.flatnonzero(counts > 1)  # bytes holding short runs: their 2nd, 3rd ... boundaries
        rank = 1
        while multi.size:
            mvalues = values[multi]
            out[slots[multi] + rank] = base[multi] + _NTH_SET_BIT[rank][mvalues]
            rank += 1
            multi = multi[counts[multi] > rank]
    scratch.found += total
    return new_carry


def _edges(bitmap: bytes | bytearray | memoryview | np.ndarray, nbits: int) -> np.ndarray:
    """Start and end bit of every run of set bits, ascending in one int64 array: ``[s0, e0, s1, e1, ...]``.

    These are the positions where the bitmap changes value, plus ``nbits``
    when the last run reaches the end.
    """
    data = _as_bytes(bitmap)
    if nbits < 0:
        raise ValueError(f"bit count {nbits} is negative")
    need = (nbits + 7) // 8
    if data.size < need:
        raise ValueError(f"bitmap holds {data.size * 8} bits, fewer than the {nbits} clusters it must describe")
    if nbits == 0:
        return np.zeros(0, dtype=np.int64)
    step = max(8, CHUNK_BYTES // 8 * 8)
    scratch = _Scratch(min(step, (need + 7) // 8 * 8))
    carry = 0
    for first in range(0, need, step):
        last = min(first + step, need)
        size = ((last - first + 7) // 8) * 8
        piece = data[first:last]
        if size == last - first and piece.ctypes.data % 8 == 0 and not (last == need and nbits % 8):
            words = piece.view("<u8")  # aligned whole words: read in place, no copy
        else:
            scratch.chunk[: last - first] = piece
            scratch.chunk[last - first:size] = 0
            if last == need and nbits % 8:
                scratch.chunk[last - first - 1] &= (1 << (nbits % 8)) - 1  # bits past the volume's end do not count
            words = scratch.chunk[:size].view("<u8")
        carry = _boundaries(scratch, words, carry, first * 8, last, need)
    if scratch.found % 2:  # the last run reaches the end of the bitmap
        scratch.reserve(1, need, need)[0] = nbits
        scratch.found += 1
    return scratch.edges[: scratch.found]


def _run_edges(bitmap: bytes | bytearray | memoryview | np.ndarray, nbits: int) -> tuple[np.ndarray, np.ndarray]:
    """First bit and end bit (exclusive) of every run of set bits, as two int64 arrays (strided views)."""
    edges = _edges(bitmap, nbits)
    return edges[0::2], edges[1::2]


def _pairs(starts: np.ndarray, ends: np.ndarray, scale: int = 1) -> np.ndarray:
    out = np.empty((starts.size, 2), dtype=np.int64)
    np.multiply(starts, scale, out=out[:, 0])
    np.subtract(ends, starts, out=out[:, 1])
    if scale != 1:
        out[:, 1] *= scale
    return out


def used_runs(bitmap: bytes | bytearray | memoryview | np.ndarray, nbits: int) -> np.ndarray:
    """Runs of set bits among the first ``nbits`` bits: ``(n, 2)`` array of [start, length] in bits."""
    return _pairs(*_run_edges(bitmap, nbits))


def _coalesce_edges(starts: np.ndarray, ends: np.ndarray, max_gap: int,
                    keep_leading: bool) -> tuple[np.ndarray, np.ndarray]:
    if max_gap < 0:
        raise ValueError(f"gap {max_gap} is negative")
    if starts.size == 0:
        return starts, ends
    breaks = np.flatnonzero((starts[1:] - ends[:-1]) > max_gap)
    new_starts = np.empty(breaks.size + 1, dtype=np.int64)
    new_ends = np.empty(breaks.size + 1, dtype=np.int64)
    new_starts[0] = starts[0]
    new_starts[1:] = starts[breaks + 1]
    new_ends[:-1] = ends[breaks]
    new_ends[-1] = ends[-1]
    if keep_leading and 0 < new_starts[0] <= max_gap:
        new_starts[0] = 0
    return new_starts, new_ends


def coalesce(runs: np.ndarray, max_gap: int, *, keep_leading: bool = True) -> np.ndarray:
    """Merge runs whose gap is at most ``max_gap`` (same unit as the runs).

    A free region longer than ``max_gap`` is skipped; one of ``max_gap`` or less
    is copied with its neighbours (TSM's imagegapsize rule).  With
    ``keep_leading`` a short free region before the first run is copied too;
    free space after the last run is never copied.
    """
    starts = np.ascontiguousarray(runs[:, 0])
    return _pairs(*_coalesce_edges(starts, starts + runs[:, 1], max_gap, keep_leading))


def bitmap_to_extents(bitmap: bytes | bytearray | memoryview | np.ndarray, nclusters: int,
                      cluster_size: int, gap_bytes: int) -> np.ndarray:
    """Byte extents of the used clusters, free gaps of at most ``gap_bytes`` kept.

    ``gap_bytes`` 0 keeps every cluster (the whole cluster area), as the seed
    describes for imagegapsize 0.
    """
    if cluster_size <= 0:
        raise ValueError(f"cluster size {cluster_size} must be positive")
    if gap_bytes < 0:
        raise ValueError(f"imagegapsize {gap_bytes} is negative")
    if gap_bytes == 0:
        return np.array([[0, nclusters * cluster_size]], dtype=np.int64) if nclusters else EMPTY.copy()
    return _coalesced_extents(_edges(bitmap, nclusters), gap_bytes // cluster_size, cluster_size)


def _coalesced_extents(edges: np.ndarray, max_gap: int, scale: int) -> np.ndarray:
    """``coalesce(runs, max_gap) * scale`` straight from the ``_edges`` list, without run arrays in between.

    An edge survives when it faces a free region longer than ``max_gap`` (or
    is the very first or last); the survivors, compressed in one pass, already
    alternate start, end -- the ``(n, 2)`` layout -- and are turned into
    lengths and scaled in place.
    """
    if edges.size == 0:
        return EMPTY.copy()
    keep = np.empty(edges.size, dtype=bool)
    keep[0] = keep[-1] = True
    np.greater(edges[2::2] - edges[1:-1:2], max_gap, out=keep[1:-1:2])  # a run's end: the gap after it is long
    keep[2::2] = keep[1:-1:2]  # ... and then the next run's start too
    out = edges[keep].reshape(-1, 2)
    if 0 < out[0, 0] <= max_gap:  # a short free region before the first run is copied too
        out[0, 0] = 0
    out[:, 1] -= out[:, 0]
    if scale != 1:
        out *= scale
    return out


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


def count_set_bits(bitmap: bytes | bytearray | memoryview | np.ndarray, nbits: int) -> int:
    """How many of the first ``nbits`` bits are set (used clusters), by table lookup per byte."""
    data = _as_bytes(bitmap)
    if data.size * 8 < nbits:
        raise ValueError(f"bitmap holds {data.size * 8} bits, fewer than {nbits}")
    full, rest = divmod(nbits, 8)
    count = int(_POPCOUNT[data[:full]].sum()) if full else 0
    if rest:
        count += int(_POPCOUNT[data[full] & ((1 << rest) - 1)])
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
