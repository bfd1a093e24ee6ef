"""What an image incremental moves, worked out as streams: a 5,000,000-extent volume in bounded memory.

An incremental digests the volume over what the stored digests cover, then
moves the sub-pieces of every chunk whose digest changed, or that holds newly
used space.  Holding that as Python objects -- the scan's pieces, a dict of
every chunk's digest, the changed pieces -- costs gigabytes at millions of
extents.  Here every input is a stream read in chunk or volume order, and the
only thing held whole is one flag per chunk of the volume (`ChunkMap`: a
16 TiB volume of 1 MiB chunks is 16 MiB), independent of the extent count.

The results are those of the piece-by-piece functions they replace (kept as
the oracle in tests/fixtures/incremental_before_streaming.py).
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from orchestrator.chunk_runs import DigestRuns, touched_chunk_arrays
from orchestrator.ops import UNREAD_DIGEST
from orchestrator.piece_blocks import PieceBlock
from orchestrator.piece_stream import PieceStream, split_block


def previous_runs(previous: Mapping[int, str] | DigestRuns) -> Iterable[tuple[int, str, int]]:
    """The base's digests as runs: a `DigestRuns` as it is, a dict (small views) sorted."""
    if isinstance(previous, Mapping):
        return ((c, d, 1) for c, d in sorted(previous.items()))
    return previous


def current_pairs(current: Sequence[tuple[int, str]]) -> Iterable[tuple[int, str]]:
    """A driver's digests in chunk order: a tuple or list (small) sorted, the last digest of a chunk winning;
    any other sequence is taken to be ascending already (checked as it is read)."""
    if isinstance(current, (tuple, list)):
        return sorted(dict(current).items())
    return current


def chunk_count(volume_end: int, chunk_size: int) -> int:
    return -(-volume_end // chunk_size)


def changed_chunks(current: Iterable[tuple[int, str]], previous: Iterable[tuple[int, str, int]],
                   chunks: int) -> np.ndarray:
    """One flag per chunk below ``chunks``: its digest now differs from the base's (either may be missing).

    Both inputs are walked once, side by side, in chunk order; unread runs of
    the base are flagged whole (no digest read now equals one).
    """
    flags = np.zeros(chunks, dtype=bool)
    prev = iter(previous)
    p = _next_read(prev, flags)
    last = -1
    for c, d in current:
        if c <= last:
            raise ValueError(f"the volume's chunk digests are not in ascending chunk order (chunk {c} after {last})")
        last = c
        while p is not None and p[0] < c:  # only the base has a digest for it
            if p[0] < chunks:
                flags[p[0]] = True
            p = _next_read(prev, flags)
        if p is not None and p[0] == c:
            if p[1] != d and c < chunks:
                flags[c] = True
            p = _next_read(prev, flags)
        elif c < chunks:  # only the volume has one
            flags[c] = True
    while p is not None:
        if p[0] < chunks:
            flags[p[0]] = True
        p = _next_read(prev, flags)
    return flags


def _next_read(runs: Iterator[tuple[int, str, int]], flags: np.ndarray) -> tuple[int, str] | None:
    """The next base digest of a chunk that was read; unread runs passed on the way are flagged changed."""
    for c, d, n in runs:
        if d == UNREAD_DIGEST:
            flags[c:c + n] = True
            continue
        return c, d
    return None


def volume_ranges(stream: PieceStream) -> Iterator[np.ndarray]:
    """The pieces' volume ranges as (n, 2) arrays of (offset, length), block by block."""
    for b in stream.blocks():
        yield np.stack([b.volume_offset, b.length], axis=1)


def mark_fresh(pieces: PieceStream, coverage: PieceStream, chunk_size: int, flags: np.ndarray) -> None:
    """Flag every chunk where ``pieces`` hold bytes outside ``coverage`` (space used since the base).

    Both are in ascending volume order; the coverage is read alongside the
    pieces, holding only the ranges that overlap the current block of pieces.
    """
    ahead = volume_ranges(coverage)
    held = np.empty((0, 2), dtype=np.int64)
    more = True
    starts, ends = [], []
    for b in pieces.blocks():
        vol, length = b.volume_offset, b.length
        lo, hi = int(vol.min()), int((vol + length).max())
        held = held[held[:, 0] + held[:, 1] > lo]
        while more and (not held.size or int(held[-1, 0] + held[-1, 1]) < hi):
            nxt = next(ahead, None)
            if nxt is None:
                more = False
            elif nxt.size:
                held = np.concatenate([held, nxt[nxt[:, 0] + nxt[:, 1] > lo]])
        outside = _parts(vol, length, _bounds(held), inside=False)
        if outside is not None:
            starts.append(outside[0] // chunk_size)
            ends.append((outside[0] + outside[1] - 1) // chunk_size)
            if len(starts) > 64:
                _flag_ranges(flags, starts, ends)
    _flag_ranges(flags, starts, ends)


def _flag_ranges(flags: np.ndarray, starts: list[np.ndarray], ends: list[np.ndarray]) -> None:
    """Set flags[first..last] for every (first, last) pair, with a difference array (no per-chunk loop)."""
    if not starts:
        return
    first, last = np.concatenate(starts), np.concatenate(ends)
    starts.clear()
    ends.clear()
    keep = first < flags.size
    first, last = first[keep], np.minimum(last[keep], flags.size - 1)
    if not first.size:
        return
    lo, hi = int(first.min()), int(last.max()) + 1  # only the chunks these ranges span
    delta = np.zeros(hi - lo + 1, dtype=np.int64)
    np.add.at(delta, first - lo, 1)
    np.add.at(delta, last + 1 - lo, -1)
    flags[lo:hi] |= np.cumsum(delta[:-1]) > 0


def _bounds(ranges: np.ndarray) -> np.ndarray:
    """(offset, length) ranges (ascending, disjoint) merged where they touch, flat: lo0, hi0, lo1, hi1, ..."""
    if not ranges.size:
        return np.empty(0, dtype=np.int64)
    lo, hi = ranges[:, 0], ranges[:, 0] + ranges[:, 1]
    new = np.concatenate(([True], lo[1:] > hi[:-1]))
    last = np.concatenate((np.flatnonzero(new)[1:] - 1, [lo.size - 1]))
    return np.stack([lo[new], hi[last]], axis=1).reshape(-1)


def _parts(vol: np.ndarray, length: np.ndarray, bounds: np.ndarray,
           inside: bool) -> tuple[np.ndarray, np.ndarray] | None:
    """The parts of volume ranges (ascending) inside (or outside) flat ``bounds``, as (offsets, lengths)."""
    if not bounds.size:
        return None if inside else (vol, length)
    part = split_block(PieceBlock.of(int(vol[0]), vol, length, image=vol), bounds, inside)
    return None if part is None else (part.volume_offset, part.length)


def pieces_in_chunks(pieces: PieceStream, flags: np.ndarray, chunk_size: int) -> PieceStream:
    """The parts of ``pieces`` inside flagged chunks, joined where they touch on the volume, as a new image.

    Read anew on each pass; a block's last piece waits for the next block, which may continue it.
    """
    def blocks() -> Iterator[PieceBlock]:
        pos = 0
        carry: tuple[np.ndarray, np.ndarray] | None = None
        for b in pieces.blocks():
            vol, length = b.volume_offset, b.length
            first, last = int(vol.min()) // chunk_size, int((vol + length).max() - 1) // chunk_size
            kept = _parts(vol, length, _flag_bounds(flags, first, last + 1, chunk_size), inside=True)
            if carry is not None:
                kept = carry if kept is None else (np.concatenate([carry[0], kept[0]]),
                                                  np.concatenate([carry[1], kept[1]]))
            if kept is None:
                continue
            vol, length = _joined(*kept)
            if vol.size > 1:
                yield PieceBlock.of(pos, vol[:-1], length[:-1])
                pos += int(length[:-1].sum())
            carry = vol[-1:], length[-1:]
        if carry is not None:
            yield PieceBlock.of(pos, *carry)
    return PieceStream(blocks)


def _flag_bounds(flags: np.ndarray, first: int, stop: int, chunk_size: int) -> np.ndarray:
    """Flat volume bounds of the runs of flagged chunks among chunks [first, stop)."""
    f = np.zeros(stop - first, dtype=bool)
    have = flags[first:min(stop, flags.size)]
    f[:have.size] = have
    edges = np.flatnonzero(np.diff(np.concatenate(([False], f, [False])).astype(np.int8)))
    return (edges + first).astype(np.int64) * chunk_size


def _joined(vol: np.ndarray, length: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ranges (ascending) with those that touch on the volume joined into one."""
    new = np.concatenate(([True], vol[1:] != vol[:-1] + length[:-1]))
    at = np.flatnonzero(new)
    return vol[at], np.add.reduceat(length, at)


def coverage_stream(chain: Sequence[Iterable[Any]], chunk_size: int) -> PieceStream:
    """Volume ranges the stored digests of ``chain`` cover (full image first, then its incrementals in order):
    per chunk, the pieces of the newest object touching it -- `orchestrator.job.digest.view_coverage`, as a
    stream in ascending volume order.  Only a chunk owner map (one small integer per chunk) is held."""
    streams = [PieceStream.of(o) for o in chain]
    if len(streams) == 1:
        return PieceStream.from_extents(lambda: volume_ranges(streams[0]))
    chunks = chunk_count(max(s.volume_end() for s in streams), chunk_size)
    owner = np.full(chunks, -1, dtype=np.int16 if len(streams) < 32767 else np.int32)
    for i, s in enumerate(streams):
        for idx in touched_chunk_arrays(s, chunk_size):
            owner[idx] = i

    def owned(i: int) -> Iterator[np.ndarray]:
        mine = owner == i
        for r in volume_ranges(streams[i]):
            vol, length = r[:, 0], r[:, 1]
            first, last = int(vol.min()) // chunk_size, int((vol + length).max() - 1) // chunk_size
            parts = _parts(vol, length, _flag_bounds(mine, first, last + 1, chunk_size), inside=True)
            if parts is not None:
                yield np.stack(parts, axis=1)

    return PieceStream.from_extents(lambda: merge_ascending([owned(i) for i in range(len(streams))]))


def merge_ascending(sources: Sequence[Iterable[np.ndarray]]) -> Iterator[np.ndarray]:
    """(n, 2) arrays from several sources, each ascending in column 0, merged into one ascending stream."""
    its = [iter(s) for s in sources]
    held = [np.empty((0, 2), dtype=np.int64) for _ in its]
    live = [True] * len(its)
    while True:
        for i, it in enumerate(its):
            while live[i] and not held[i].size:
                nxt = next(it, None)
                if nxt is None:
                    live[i] = False
                else:
                    held[i] = np.asarray(nxt, dtype=np.int64).reshape(-1, 2)
        if not any(h.size for h in held):
            return
        tops = [int(h[-1, 0]) for h, alive in zip(held, live) if alive and h.size]
        limit = min(tops) if tops else None
        out = []
        for i, h in enumerate(held):
            n = h.shape[0] if limit is None else int(np.searchsorted(h[:, 0], limit, "right"))
            out.append(h[:n])
            held[i] = h[n:]
        both = np.concatenate(out)
        yield both[np.argsort(both[:, 0], kind="stable")]


def coverage_of(base_coverage: Sequence[tuple[int, int]] | PieceStream) -> PieceStream | None:
    """The base's coverage as a stream of volume ranges; None when it is not known (an empty list)."""
    if isinstance(base_coverage, PieceStream):
        return base_coverage
    if not base_coverage:
        return None
    arr = np.array(base_coverage, dtype=np.int64).reshape(-1, 2)
    return PieceStream.from_extents(lambda: (arr,))


def incremental_pieces(pieces: PieceStream, current: Sequence[tuple[int, str]],
                       previous: Mapping[int, str] | DigestRuns, coverage: PieceStream | None,
                       chunk_size: int, mark: Callable[..., None] = mark_fresh) -> PieceStream:
    """The pieces of an image incremental: those in chunks whose digest changed or that hold newly used
    space (bytes outside ``coverage``, when the base's coverage is known)."""
    flags = changed_chunks(current_pairs(current), previous_runs(previous),
                           chunk_count(pieces.volume_end(), chunk_size))
    if coverage is not None:
        mark(pieces, coverage, chunk_size, flags)
    return pieces_in_chunks(pieces, flags, chunk_size)
