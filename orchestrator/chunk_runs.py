"""An object's chunk digests as a stream, unread chunks as runs: what a commit of millions of chunks writes.

A server-free image's chunks are proven by the data mover's COPY STATUS, so
nobody digests them: each is marked unread (the next image incremental
counts it as changed).  A fragmented 2 TiB image touches two million 1 MiB
chunks; `ChunkDigests` is the sequence of (chunk, digest) pairs the commit
operation carries -- the driver's digests (a `DigestSpool`: a read-back of
every chunk is millions of them) merged page by page with the unread chunks
of a `PieceStream` -- produced again on each pass, and `ChunkDigests.runs` gives
the same content as (first chunk, digest, count) runs computed with numpy;
the catalogue stores `ChunkDigests.parts` -- record pages and unread chunk
arrays -- as record blocks and one row per unread run, visiting no chunk.
"""
from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from orchestrator.digest_spool import DIGEST_ROW, DigestSpool
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


def aligned(left: Iterable[np.ndarray], right: Iterable[np.ndarray], left_dtype: np.dtype | type = np.int64,
            ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Walk two ascending streams of arrays side by side -- chunk indices, or (left, of ``left_dtype``) rows with
    a ``chunk`` field such as a spool's pages -- as (left part, right part) pairs cut at the same chunk, so a
    part of one is only ever compared with the matching part of the other: a page of each is held."""
    def key(a: np.ndarray) -> np.ndarray:
        return a["chunk"] if a.dtype.names else a

    its = [iter(left), iter(right)]
    held: list[np.ndarray | None] = [None, None]  # None: that stream has ended
    more = [True, True]
    while True:
        for k in (0, 1):
            while more[k] and (held[k] is None or not held[k].size):
                nxt = next(its[k], None)
                more[k] = nxt is not None
                if nxt is not None:
                    held[k] = nxt
        parts = [h if h is not None else np.empty(0, dtype=d) for h, d in zip(held, (left_dtype, np.int64))]
        if not parts[0].size and not parts[1].size:
            return
        limit = min(int(key(h)[-1]) for h in parts if h.size)  # neither stream has more at or below it
        cut = [int(np.searchsorted(key(h), limit, "right")) for h in parts]
        yield parts[0][:cut[0]], parts[1][:cut[1]]
        held = [parts[0][cut[0]:], parts[1][cut[1]:]]


class ChunkDigests(LazySeq[tuple[int, str]]):
    """``digests`` (ascending: a `DigestSpool`, or pairs made one), plus (chunk, ``marker``) for every chunk of
    ``unread`` they do not cover; both are walked page by page on every pass, so no pair is held."""

    __slots__ = ("_digests", "_unread", "_chunk_size", "_marker")

    def __init__(self, digests: Iterable[tuple[int, str]], unread: PieceStream, chunk_size: int, marker: str):
        super().__init__(self._pairs)
        self._digests = DigestSpool.of(digests)
        self._unread, self._chunk_size, self._marker = unread, chunk_size, marker

    def parts(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(digest rows, unread chunks without a digest), part after part in chunk order: what the catalogue
        stores as record blocks and unread runs without a Python object per chunk."""
        for rows, idx in aligned(self._digests.pages(), touched_chunk_arrays(self._unread, self._chunk_size),
                                 DIGEST_ROW):
            if rows.size and idx.size:
                idx = idx[~np.isin(idx, rows["chunk"], assume_unique=True)]  # the digest wins
            yield rows, idx

    def _pairs(self) -> Iterator[tuple[int, str]]:
        mark = self._marker
        for rows, idx in self.parts():
            have = zip(rows["chunk"].tolist(), (d.decode() for d in rows["digest"].tolist()))
            if not idx.size:
                yield from have
            else:
                yield from heapq.merge(have, ((c, mark) for c in idx.tolist()))

    def runs(self) -> Iterator[tuple[int, str, int]]:
        """The same content as (first chunk, digest, count): consecutive marked chunks are one run."""
        def parts() -> Iterator[tuple[int, str, int]]:
            for rows, idx in self.parts():
                have = ((c, d.decode(), 1) for c, d in zip(rows["chunk"].tolist(), rows["digest"].tolist()))
                yield from heapq.merge(have, marked_runs(idx, self._marker)) if idx.size else have
        return coalesce(parts(), self._marker)


def marked_runs(idx: np.ndarray, marker: str) -> Iterator[tuple[int, str, int]]:
    """Ascending chunk indices as (first, ``marker``, count) runs of consecutive chunks."""
    breaks = np.flatnonzero(np.diff(idx) != 1) + 1
    starts = idx[np.concatenate(([0], breaks))]
    counts = np.diff(np.concatenate(([0], breaks, [idx.size])))
    for c, n in zip(starts.tolist(), counts.tolist()):
        yield c, marker, n


def without_chunks(digests: Iterable[tuple[int, str]], pieces: Any, chunk_size: int) -> DigestSpool:
    """``digests`` (ascending) minus every chunk ``pieces`` (ascending volume order) touch -- a digest of part of
    a chunk's runs is no digest -- as a spool, both walked a page at a time."""
    out = DigestSpool()
    touched = touched_chunk_arrays(PieceStream.of(pieces), chunk_size)
    for rows, idx in aligned(DigestSpool.of(digests).pages(), touched, DIGEST_ROW):
        out.add_rows(rows[~np.isin(rows["chunk"], idx, assume_unique=True)] if idx.size else rows)
    return out


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


class DigestRuns(LazySeq[tuple[int, str, int]]):
    """A view's chunk digests as (first chunk, digest, count) runs, ascending and disjoint, read anew each pass.

    Only runs of unread chunks (`orchestrator.ops.UNREAD_DIGEST`) have a count above 1;
    the catalogue produces them from its rows without expanding them.
    """
