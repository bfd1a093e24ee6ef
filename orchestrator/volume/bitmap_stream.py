"""Allocation bitmap -> extents in bounded memory, one chunk of bitmap at a time.

A 16 TiB volume with 4 KiB clusters has a 512 MiB bitmap and, fragmented,
tens of millions of extents; neither may be held whole by a client that runs
beside its applications.  Like partclone and ``ntfsclone --save-image``, which
walk the bitmap while they copy, `ExtentStream` takes the bitmap in chunks of
any size and hands back the extents each chunk completes, keeping across
chunks only the last bit seen, a few tail bytes and the one extent still open.

The bitmap is NTFS ``$Bitmap``'s order: bit *i* of byte *i // 8*, least
significant bit first.  Per step of `STEP_BYTES` it is read as 64-bit words,
XORed with itself shifted by one bit to mark where runs start and end, and only
the bytes holding such an edge are expanded (np.unpackbits of those bytes, no
per-bit Python loop).  The imagegapsize rule then keeps an
edge only where it faces a free region longer than the gap.  Everything a step
touches (its words, its edges) stays in the CPU cache and in buffers reused
from step to step, so memory does not grow with the volume.
"""
from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np

#: Bitmap bytes handled per step: the step's words and edge temporaries stay in the CPU cache.
STEP_BYTES = 256 * 1024

EMPTY = np.zeros((0, 2), dtype=np.int64)

#: Threads finding edges (SERVERFREE_BITMAP_THREADS overrides): two cores' worth at most, so a
#: client planning a backup beside its database takes little of the machine, and briefly.
MAX_WORKERS = 2


def default_workers() -> int:
    env = os.environ.get("SERVERFREE_BITMAP_THREADS")
    if env is not None:
        return max(1, int(env))
    return max(1, min(MAX_WORKERS, os.cpu_count() or 1))


_POOLS: dict[int, ThreadPoolExecutor] = {}


def _pool(workers: int) -> ThreadPoolExecutor:
    """One shared pool per size (the threads live as long as the process; they idle at no cost)."""
    pool = _POOLS.get(workers)
    if pool is None:
        pool = _POOLS[workers] = ThreadPoolExecutor(workers, thread_name_prefix="bitmap-edges")
    return pool


def as_bytes(bitmap: bytes | bytearray | memoryview | np.ndarray) -> np.ndarray:
    """A flat uint8 view of a bitmap chunk (no copy)."""
    if isinstance(bitmap, np.ndarray):
        if bitmap.dtype != np.uint8:
            raise TypeError(f"bitmap array must be uint8, got {bitmap.dtype}")
        return bitmap.reshape(-1)
    return np.frombuffer(bitmap, dtype=np.uint8)


_SCRATCH = threading.local()


def _scratch(nwords: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """This thread's reusable temporaries for ``nwords`` words (fresh arrays per step cost page faults)."""
    have = getattr(_SCRATCH, "arrays", None)
    if have is None or have[0].size < nwords:
        have = _SCRATCH.arrays = (np.empty(nwords, dtype="<u8"), np.empty(nwords, dtype="<u8"),
                                  np.empty(nwords * 8, dtype=bool))
    return have[0][:nwords], have[1][:nwords], have[2][: nwords * 8]


def step_edges(words: np.ndarray, carry: int, first_bit: int) -> np.ndarray:
    """Bit numbers (from ``first_bit``) where a bit of ``words`` differs from the one before (``carry`` before the first).

    Only bytes holding an edge are expanded (np.unpackbits of those bytes
    alone, then their set bits in order), so the work follows the number of
    edges, not of bits.  Needs nothing from other steps but ``carry``, so
    steps may run on several threads (numpy releases the GIL in each call).
    """
    changed, spill, hot_mask = _scratch(words.size)
    np.left_shift(words, np.uint64(1), out=changed)  # each bit's predecessor, within the word ...
    np.right_shift(words, np.uint64(63), out=spill)  # ... and across word edges
    changed[1:] |= spill[:-1]
    changed[0] |= np.uint64(carry)
    changed ^= words
    changed_bytes = changed.view(np.uint8)
    np.not_equal(changed_bytes, 0, out=hot_mask)
    hot = np.flatnonzero(hot_mask)  # bool input takes numpy's fast path
    within = np.flatnonzero(np.unpackbits(changed_bytes[hot], bitorder="little").view(bool))
    found = hot[within >> 3]  # the byte of each edge ...
    found <<= 3
    within &= 7  # ... and its bit within the byte
    found += within
    found += first_bit
    return found


class _Buffers:
    """Scratch reused from step to step (fresh arrays per step cost page faults)."""

    def __init__(self, step: int):
        self.words = np.zeros(step // 8 + 1, dtype="<u8")  # copied input: tail bytes + next bytes
        self.edges = np.empty(4096, dtype=np.int64)

    def edge_room(self, need: int) -> np.ndarray:
        if need > self.edges.size:
            grown = np.empty(max(need, 2 * self.edges.size), dtype=np.int64)
            grown[:2] = self.edges[:2]  # the open extent's start (and end) carried over
            self.edges = grown
        return self.edges


class ExtentStream:
    """Feed bitmap chunks in order; get back ``(n, 2)`` int64 extents ``[start, length]`` as they complete.

    ``max_gap`` (in clusters) is the imagegapsize rule: a free region of at
    most ``max_gap`` clusters between used ones is copied with them, and so is
    a short one before the first used cluster; free space after the last is
    never copied.  ``max_gap`` 0 gives the plain runs of used clusters.
    ``scale`` turns clusters into bytes.  `used_clusters` counts set bits.
    ``workers`` threads (default `default_workers`) find the edges of whole
    steps of a chunk in parallel; the extents do not depend on it.
    """

    def __init__(self, nbits: int, max_gap: int = 0, scale: int = 1, step_bytes: int | None = None,
                 workers: int | None = None):
        if nbits < 0:
            raise ValueError(f"bit count {nbits} is negative")
        if max_gap < 0:
            raise ValueError(f"gap {max_gap} is negative")
        self.nbits = nbits
        self.max_gap = max_gap
        self.scale = scale
        self.used_clusters = 0
        self._need = (nbits + 7) // 8  # bitmap bytes that describe clusters; later ones are ignored
        self._step = max(8, (step_bytes or STEP_BYTES) // 8 * 8)
        self._buf = _Buffers(self._step)
        self._pos = 0  # bitmap bytes consumed
        self._tail = 0  # bytes at the front of _buf.words not yet a whole word
        self._carry = 0  # the last bit of the bytes already processed
        self._open = 0  # edges carried at the front of _buf.edges: the open extent's start (and its end so far)
        self._parity = 0  # edges found so far, modulo 2 (odd: inside a run)
        self._first = True  # no edge seen yet: the leading-gap rule is still to apply
        self._finished = False
        workers = default_workers() if workers is None else workers
        self._pool = _pool(workers) if workers > 1 else None

    @property
    def bytes_needed(self) -> int:
        """Bitmap bytes the stream still wants (chunks beyond them are ignored)."""
        return self._need - self._pos

    def feed(self, chunk: bytes | bytearray | memoryview | np.ndarray) -> np.ndarray:
        """Extents completed by this chunk (often many; possibly none)."""
        if self._finished:
            raise ValueError("bitmap stream already finished")
        data = as_bytes(chunk)[: self._need - self._pos]
        out = []
        first = 0
        if self._pool is not None:
            first = self._parallel(data, out)
        for first in range(first, data.size, self._step):
            got = self._step_through(data[first: first + self._step])
            if got.size:
                out.append(got)
        return _join(out)

    def _parallel(self, data: np.ndarray, out: list[np.ndarray]) -> int:
        """Edges of the chunk's whole, aligned steps on the worker threads, gap rule here in order; bytes done."""
        last_partial = self._pos + data.size == self._need and self.nbits % 8
        usable = data.size - (8 if last_partial else 0)
        usable = usable // self._step * self._step
        if self._tail or usable < 2 * self._step or data.ctypes.data % 8:
            return 0
        words = data[:usable].view("<u8")
        per = self._step // 8
        starts = range(0, words.size, per)
        carries = [self._carry] + [int(words[k - 1] >> np.uint64(63)) for k in starts[1:]]
        base = self._pos * 8
        jobs = self._pool.map(step_edges, (words[k: k + per] for k in starts), carries,
                              (base + k * 64 for k in starts))
        for found in jobs:
            got = self._extents(self._append(found))
            if got.size:
                out.append(got)
        self._pos += usable
        self._carry = int(words[-1] >> np.uint64(63))
        return usable

    def finish(self) -> np.ndarray:
        """The last extents; raises when the chunks held fewer bytes than ``nbits`` needs."""
        if self._finished:
            raise ValueError("bitmap stream already finished")
        if self._pos < self._need:
            raise ValueError(f"bitmap holds {self._pos * 8} bits, fewer than the {self.nbits} clusters "
                             "it must describe")
        self._finished = True
        n = self._open
        if self._parity:  # the last run reaches the end of the volume
            self._buf.edges[n] = self.nbits
            self.used_clusters += self.nbits
            n += 1
        self._open = 0
        return self._emit(self._buf.edges[:n].copy()) if n else EMPTY

    # -- steps ---------------------------------------------------------------------------------------------

    def _step_through(self, piece: np.ndarray) -> np.ndarray:
        """One step: the piece as whole 64-bit words (in place when aligned, else copied behind the tail bytes)."""
        first_bit = (self._pos - self._tail) * 8
        self._pos += piece.size
        last = self._pos == self._need
        if (not self._tail and piece.size % 8 == 0 and piece.ctypes.data % 8 == 0
                and not (last and self.nbits % 8)):
            return self._extents(self._boundaries(piece.view("<u8"), first_bit))
        raw = self._buf.words.view(np.uint8)
        total = self._tail + piece.size
        raw[self._tail: total] = piece
        if last and self.nbits % 8:
            raw[total - 1] &= (1 << (self.nbits % 8)) - 1  # bits past the volume's end do not count
        if last:  # the volume's final, partial word: padded with zeros
            whole = (total + 7) // 8 * 8
            raw[total: whole] = 0
            total = whole
        whole = total // 8 * 8
        got = self._extents(self._boundaries(self._buf.words[: whole // 8], first_bit)) if whole else EMPTY
        self._tail = total - whole
        raw[: self._tail] = raw[whole: total]  # bytes of an unfinished word wait for the next piece
        return got

    def _boundaries(self, words: np.ndarray, first_bit: int) -> int:
        """`step_edges` of these words appended after the open extent; returns the edges now held."""
        found = step_edges(words, self._carry, first_bit)
        self._carry = int(words[-1] >> np.uint64(63))
        return self._append(found)

    def _append(self, found: np.ndarray) -> int:
        n = self._open
        total = found.size
        if not total:
            return n
        out = self._buf.edge_room(n + total)[n: n + total]
        out[:] = found
        # used clusters: ends minus starts (edges alternate start, end from the parity carried in)
        self.used_clusters += int(found[1 - self._parity::2].sum()) - int(found[self._parity::2].sum())
        self._parity = (self._parity + total) % 2
        return n + total

    def _extents(self, n: int) -> np.ndarray:
        """Apply the gap rule to the ``n`` edges in ``_buf.edges``; keep the last, still open extent back."""
        if n == 0:
            return EMPTY
        edges = self._buf.edges[:n]
        if self._first:
            self._first = False
            if 0 < edges[0] <= self.max_gap:  # a short free region before the first run is copied too
                edges[0] = 0
        keep = np.empty(n, dtype=bool)
        keep[0] = True
        ends = n // 2 if n % 2 else n // 2 - 1  # ends followed by a start within these edges
        np.greater(edges[2: 2 * ends + 1: 2], edges[1: 2 * ends: 2] + self.max_gap, out=keep[1: 2 * ends: 2])
        keep[2: 2 * ends + 1: 2] = keep[1: 2 * ends: 2]
        if n % 2 == 0:
            keep[-1] = True  # the last end: what follows is not known yet
        survivors = edges[keep]
        held = 1 if n % 2 else 2
        self._buf.edges[:held] = survivors[-held:]
        self._open = held
        return self._emit(survivors[:-held])

    def _emit(self, survivors: np.ndarray) -> np.ndarray:
        out = survivors.reshape(-1, 2)
        out[:, 1] -= out[:, 0]
        if self.scale != 1:
            out *= self.scale
        return out


def _join(parts: list[np.ndarray]) -> np.ndarray:
    parts = [p for p in parts if p.size]
    if not parts:
        return EMPTY
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def iter_extents(chunks: Iterable[bytes | bytearray | memoryview | np.ndarray], nbits: int,
                 max_gap: int = 0, scale: int = 1) -> Iterator[np.ndarray]:
    """Extent arrays as the bitmap chunks arrive (see `ExtentStream`); empty arrays are not yielded."""
    stream = ExtentStream(nbits, max_gap, scale)
    for chunk in chunks:
        got = stream.feed(chunk)
        if got.size:
            yield got
        if stream.bytes_needed == 0:
            break
    got = stream.finish()
    if got.size:
        yield got


def memory_chunks(bitmap: bytes | bytearray | memoryview | np.ndarray,
                  chunk_bytes: int = 4 * 1024 * 1024) -> Iterator[np.ndarray]:
    """An in-memory bitmap as views of ``chunk_bytes`` (no copies)."""
    data = as_bytes(bitmap)
    for first in range(0, data.size, chunk_bytes):
        yield data[first: first + chunk_bytes]
