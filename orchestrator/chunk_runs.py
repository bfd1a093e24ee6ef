"""An object's chunk digests as a stream, unread chunks as runs: what a commit of millions of chunks writes.

A server-free image's chunks are proven by the data mover's COPY STATUS, so
nobody digests them: each is marked unread (the next image incremental
counts it as changed).  A fragmented 2 TiB image touches two million 1 MiB
chunks; `ChunkDigests` is the sequence of (chunk, digest) pairs the commit
operation carries -- the driver's digests merged with the unread chunks of a
`PieceStream` -- produced again on each pass, and `ChunkDigests.runs` gives
the same content as (first chunk, digest, count) runs computed with numpy, so
the catalogue writes a run of unread chunks as one row without visiting each.
"""
from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator, Sequence

import numpy as np

from orchestrator.piece_stream import LazySeq, PieceStream


def touched_chunk_arrays(stream: PieceStream, chunk_size: int) -> Iterator[np.ndarray]:
    """Indices of the chunks (``volume_offset // chunk_size``) the pieces put bytes in: ascending arrays,
    each chunk once.  The pieces must lie in ascending volume order (an image's do); ValueError otherwise."""
    last = -1
    for b in stream.blocks():
        keep = b.length > 0
        first = b.volume_offset[keep] // chunk_size
        lastc = (b.volume_offset[keep] + b.length[keep] - 1) // chunk_size
        counts = lastc - first + 1
        idx = np.repeat(first, counts) + (np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts))
        if idx.size and (int(idx[0]) < last or (np.diff(idx) < 0).any()):
            raise ValueError("pieces are not in ascending volume order")
        idx = idx[idx > last]
        if idx.size:
            idx = idx[np.concatenate(([True], np.diff(idx) > 0))]  # sorted: drop repeats
            last = int(idx[-1])
            yield idx


def touched_chunks(stream: PieceStream, chunk_size: int) -> Iterator[int]:
    """`touched_chunk_arrays`, one index at a time."""
    for idx in touched_chunk_arrays(stream, chunk_size):
        yield from idx.tolist()


class ChunkDigests(LazySeq[tuple[int, str]]):
    """``digests`` (sorted), plus (chunk, ``marker``) for every chunk of ``unread`` they do not cover."""

    __slots__ = ("_digests", "_have", "_unread", "_chunk_size", "_marker")

    def __init__(self, digests: Iterable[tuple[int, str]], unread: PieceStream, chunk_size: int, marker: str):
        super().__init__(self._pairs)
        self._digests = sorted(dict(digests).items())
        self._have = np.array([c for c, _ in self._digests], dtype=np.int64)
        self._unread, self._chunk_size, self._marker = unread, chunk_size, marker

    def _fresh(self) -> Iterator[np.ndarray]:
        for idx in touched_chunk_arrays(self._unread, self._chunk_size):
            if self._have.size:
                idx = idx[~np.isin(idx, self._have)]
            if idx.size:
                yield idx

    def _pairs(self) -> Iterator[tuple[int, str]]:
        marked = ((c, self._marker) for idx in self._fresh() for c in idx.tolist())
        return heapq.merge(self._digests, marked) if self._digests else marked

    def runs(self) -> Iterator[tuple[int, str, int]]:
        """The same content as (first chunk, digest, count): consecutive marked chunks are one run."""
        def marked() -> Iterator[tuple[int, str, int]]:
            for idx in self._fresh():
                breaks = np.flatnonzero(np.diff(idx) != 1) + 1
                starts = idx[np.concatenate(([0], breaks))]
                counts = np.diff(np.concatenate(([0], breaks, [idx.size])))
                for c, n in zip(starts.tolist(), counts.tolist()):
                    yield c, self._marker, n
        merged = heapq.merge(((c, d, 1) for c, d in self._digests), marked())
        return coalesce(merged, self._marker)


def coalesce(runs: Iterable[tuple[int, str, int]], marker: str) -> Iterator[tuple[int, str, int]]:
    """Join runs of ``marker`` that follow each other (first chunk ascending)."""
    pending: tuple[int, str, int] | None = None
    for c, d, n in runs:
        if pending is not None and d == marker and pending[1] == marker and pending[0] + pending[2] == c:
            pending = (pending[0], marker, pending[2] + n)
            continue
        if pending is not None:
            yield pending
        pending = (c, d, n)
    if pending is not None:
        yield pending


def as_runs(digests: Sequence[tuple[int, str]] | ChunkDigests, marker: str) -> Iterator[tuple[int, str, int]]:
    """Any (chunk, digest) sequence as runs (a `ChunkDigests` computes them without visiting each chunk)."""
    if isinstance(digests, ChunkDigests):
        return digests.runs()
    return coalesce(((c, d, 1) for c, d in digests), marker)


class DigestRuns(LazySeq[tuple[int, str, int]]):
    """A view's chunk digests as (first chunk, digest, count) runs, ascending and disjoint, read anew each pass.

    Only runs of unread chunks (`orchestrator.ops.UNREAD_DIGEST`) have a count above 1;
    the catalogue produces them from its rows without expanding them.
    """
