"""Chunk digests in ascending chunk order, kept in a temporary file: an image's read-back in bounded memory.

Verifying a server-free image reads every chunk back on the pool side and
keeps its digest until the commit writes it.  As Python (chunk, hex) tuples
that is about 200 bytes a 1 MiB chunk -- 3 GB for a fully used 16 TiB volume.
A `DigestSpool` holds at most `SPOOL_ROWS` rows in memory (72-byte records of
`DIGEST_ROW`, the same layout the wire carries); the rest go to an unlinked
temporary file (``TMPDIR``) and are read back a page at a time on every pass.
"""
from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from orchestrator.piece_stream import LazySeq

DIGEST_ROW = np.dtype([("chunk", "<i8"), ("digest", "S64")])  # a chunk and its sha256 hex (or a marker)
SPOOL_ROWS = 1 << 14  # rows held in memory before they go to the file (1.1 MiB), and rows per page read back


class DigestSpool(LazySeq[tuple[int, str]]):
    """(chunk, digest) pairs, strictly ascending by chunk, produced again on every pass.

    ``add``/``add_rows`` append (ValueError for a chunk not above the last
    one, a negative chunk, or a digest longer than the row holds); iteration
    gives ``(int, str)`` pairs, :meth:`pages` the rows a page at a time.
    """

    __slots__ = ("_file", "_on_file", "_buf", "_count", "_last")

    def __init__(self, pairs: Iterable[tuple[int, str]] = ()):
        super().__init__(self._pairs)
        self._file: Any = None
        self._on_file = 0  # rows written to the file
        self._buf: list[tuple[int, bytes]] = []
        self._count, self._last = 0, -1
        for c, d in pairs:
            self.add(c, d)

    @classmethod
    def of(cls, digests: Iterable[tuple[int, str]]) -> "DigestSpool":
        """``digests`` as a spool (itself when it is one already)."""
        return digests if isinstance(digests, DigestSpool) else cls(digests)

    @classmethod
    def of_pages(cls, pages: Iterable[np.ndarray]) -> "DigestSpool":
        spool = cls()
        for rows in pages:
            spool.add_rows(rows)
        return spool

    def __len__(self) -> int:
        return self._count

    def add(self, chunk: int, digest: str) -> None:
        raw = digest.encode()
        if chunk <= self._last:
            raise ValueError(f"digest of chunk {chunk} (pair {self._count}) comes after chunk {self._last}: "
                             "digests must be in ascending chunk order, each chunk once")
        if len(raw) > DIGEST_ROW["digest"].itemsize:
            raise ValueError(f"digest of chunk {chunk} (pair {self._count}) is {len(raw)} characters; at most "
                             f"{DIGEST_ROW['digest'].itemsize}")
        self._buf.append((chunk, raw))
        self._count, self._last = self._count + 1, chunk
        if len(self._buf) >= SPOOL_ROWS:
            self._write(np.array(self._buf, dtype=DIGEST_ROW))
            self._buf.clear()

    def add_rows(self, rows: np.ndarray) -> None:
        """Append DIGEST_ROW rows (e.g. a page read off the wire), checked with numpy."""
        rows = np.asarray(rows)
        if rows.dtype != DIGEST_ROW:
            raise ValueError(f"digest rows of layout {rows.dtype}, not {DIGEST_ROW}")
        if not rows.size:
            return
        chunks = rows["chunk"]
        prev = np.concatenate(([self._last], chunks[:-1]))
        bad = np.flatnonzero((chunks <= prev) | (chunks < 0))
        if bad.size:
            i = int(bad[0])
            raise ValueError(f"digest row {self._count + i}: chunk {int(chunks[i])} is negative or not above the "
                             f"chunk before it ({int(prev[i])})")
        if self._buf:
            self._write(np.array(self._buf, dtype=DIGEST_ROW))
            self._buf.clear()
        self._write(rows)
        self._count, self._last = self._count + rows.size, int(chunks[-1])

    def _write(self, rows: np.ndarray) -> None:
        if self._file is None:
            self._file = tempfile.TemporaryFile(prefix="serverfree-digests-")
        data = np.ascontiguousarray(rows, dtype=DIGEST_ROW).tobytes()
        os.pwrite(self._file.fileno(), data, self._on_file * DIGEST_ROW.itemsize)
        self._on_file += rows.size

    def pages(self) -> Iterator[np.ndarray]:
        """The rows, at most SPOOL_ROWS a page, in chunk order (what is on file, then what is in memory)."""
        on_file, tail = self._on_file, list(self._buf)  # what this pass covers, whatever is added meanwhile
        for first in range(0, on_file, SPOOL_ROWS):
            n = min(SPOOL_ROWS, on_file - first)
            data = os.pread(self._file.fileno(), n * DIGEST_ROW.itemsize, first * DIGEST_ROW.itemsize)
            if len(data) != n * DIGEST_ROW.itemsize:
                raise OSError(f"digest spool: {len(data)} bytes read back of {n * DIGEST_ROW.itemsize}")
            yield np.frombuffer(data, dtype=DIGEST_ROW)
        if tail:
            yield np.array(tail, dtype=DIGEST_ROW)

    def _pairs(self) -> Iterator[tuple[int, str]]:
        for rows in self.pages():
            for c, d in zip(rows["chunk"].tolist(), rows["digest"].tolist()):
                yield c, d.decode()

    def chunk_pages(self) -> Iterator[np.ndarray]:
        """The chunk indices alone, a page at a time (ascending)."""
        for rows in self.pages():
            yield rows["chunk"]

    def close(self) -> None:
        """Drop the file now (it goes anyway when the spool is collected)."""
        if self._file is not None:
            self._file.close()
            self._file = None
        self._buf.clear()
        self._count, self._on_file = 0, 0
