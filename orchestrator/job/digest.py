"""Chunk digests of an image's view of the volume (used by verification and image incrementals).

A chunk is ``[c * chunk_size, (c + 1) * chunk_size)`` of the volume.  Its
digest covers the bytes of the image's pieces inside it and where they lie,
so the volume side (DigestVolume) and the pool side (VerifyPool) compute the
same value for the same data, however the pieces were cut.  Drivers supply the
reading; this module only does arithmetic, so every driver agrees.
"""
from __future__ import annotations

import hashlib
import struct
from itertools import zip_longest
from typing import Callable, Iterable, Iterator

from orchestrator.digest_spool import DigestSpool
from orchestrator.ops import Piece

READ_STEP = 1 << 20


def split_by_chunk(pieces: Iterable, chunk_size: int) -> Iterable[tuple[int, Piece]]:
    """Yield (chunk index, sub-piece) for every piece, cut at chunk boundaries."""
    for p in pieces:
        off, img, left = p.volume_offset, p.image_offset, p.length
        while left > 0:
            chunk = off // chunk_size
            n = min(left, (chunk + 1) * chunk_size - off)
            yield chunk, Piece(img, off, n)
            off, img, left = off + n, img + n, left - n


class ChunkDigester:
    """SHA-256 per volume chunk, independent of how the data is split into calls.

    Each chunk's digest covers its contiguous runs (offset and length within
    the chunk) and their bytes, so pieces cut differently by different paths
    (server-free extents, LAN pieces) digest the same.  Data must arrive in
    increasing volume order within a chunk.
    """

    def __init__(self, chunk_size: int):
        if chunk_size <= 0:
            raise ValueError(f"chunk size {chunk_size} must be positive")
        self.chunk_size = chunk_size
        self._chunks: dict[int, tuple[list[list[int]], "hashlib._Hash"]] = {}

    def update(self, volume_offset: int, data: bytes) -> None:
        cs, pos = self.chunk_size, 0
        while pos < len(data):
            off = volume_offset + pos
            chunk = off // cs
            n = min(len(data) - pos, (chunk + 1) * cs - off)
            entry = self._chunks.get(chunk)
            if entry is None:  # (not setdefault: that would make a hasher on every call)
                entry = self._chunks[chunk] = ([], hashlib.sha256())
            runs, h = entry
            rel = off - chunk * cs
            if runs and runs[-1][0] + runs[-1][1] == rel:
                runs[-1][1] += n
            elif runs and runs[-1][0] + runs[-1][1] > rel:
                raise ValueError(f"volume offset {off} arrives out of order in chunk {chunk}")
            else:
                runs.append([rel, n])
            h.update(data[pos:pos + n])
            pos += n

    def digests(self) -> tuple[tuple[int, str], ...]:
        return tuple((chunk, _final(runs, h)) for chunk, (runs, h) in sorted(self._chunks.items()))

    def take_below(self, limit: int) -> list[tuple[int, str]]:
        """The digests of the chunks below ``limit`` (no more data may come for them), forgotten here."""
        done = sorted(c for c in self._chunks if c < limit)
        return [(c, _final(*self._chunks.pop(c))) for c in done]


class SpoolingDigester:
    """A `ChunkDigester` for data in ascending volume order (an image's pieces read in image order): each chunk's
    digest goes to a `DigestSpool` as soon as the data has passed it, so a read-back of millions of chunks holds
    one open hasher, not one per chunk until the end."""

    def __init__(self, chunk_size: int):
        self._open = ChunkDigester(chunk_size)
        self._spool = DigestSpool()
        self._end = 0

    def update(self, volume_offset: int, data: bytes) -> None:
        if not data:
            return
        if volume_offset < self._end:
            raise ValueError(f"volume offset {volume_offset} comes before the end of the data before it "
                             f"({self._end}): the pieces must come in ascending volume order")
        for c, d in self._open.take_below(volume_offset // self._open.chunk_size):
            self._spool.add(c, d)
        self._open.update(volume_offset, data)
        self._end = volume_offset + len(data)

    def digests(self) -> DigestSpool:
        """Every chunk's digest, in chunk order (the last ones finished now)."""
        for c, d in self._open.take_below(1 << 63):
            self._spool.add(c, d)
        return self._spool


def _final(runs: list[list[int]], h: "hashlib._Hash") -> str:
    head = b"".join(struct.pack(">QQ", s, n) for s, n in runs)
    return hashlib.sha256(head + h.digest()).hexdigest()


def _digest_piece(d: ChunkDigester, p: Piece, read: Callable[[Piece], bytes]) -> None:
    """Feed one piece's bytes to ``d``, read in parts of at most READ_STEP bytes; a short read is an error."""
    for o in range(0, p.length, READ_STEP):
        part = Piece(p.image_offset + o, p.volume_offset + o, min(READ_STEP, p.length - o))
        data = read(part)
        if len(data) != part.length:
            raise OSError(f"short read at volume offset {part.volume_offset}: {len(data)} of {part.length} bytes")
        d.update(part.volume_offset, data)


def chunk_digests(pieces: Iterable, read: Callable[[Piece], bytes],
                  chunk_size: int) -> tuple[tuple[int, str], ...]:
    """Chunk digests of the pieces' bytes; ``read(piece)`` returns a sub-piece's data."""
    d = ChunkDigester(chunk_size)
    for p in pieces:
        _digest_piece(d, p, read)
    return d.digests()


def iter_chunk_digests(pieces: Iterable, read: Callable[[Piece], bytes], chunk_size: int
                       ) -> Iterator[tuple[int, str]]:
    """`chunk_digests` of pieces in ascending volume order, each chunk's digest given (and forgotten) as soon
    as the pieces have passed it: a scan of millions of chunks holds one or two open chunks, not all."""
    d = ChunkDigester(chunk_size)
    prev_end = -1
    for p in pieces:
        if p.volume_offset < prev_end:
            raise ValueError(f"piece at volume offset {p.volume_offset} comes before the end of the previous "
                             f"one ({prev_end}): the scan must be in ascending volume order")
        _digest_piece(d, p, read)
        prev_end = p.volume_offset + p.length
        yield from d.take_below((prev_end - 1) // chunk_size)
    yield from d.take_below(1 << 63)


def first_difference(ours: Iterable[tuple[int, str]], theirs: Iterable[tuple[int, str]]) -> int | None:
    """The first chunk where two ascending (chunk, digest) streams differ (a digest, or a chunk only one has),
    or None; compared pair by pair, so neither is held."""
    for a, b in zip_longest(ours, theirs):
        if a != b:
            return min(x[0] for x in (a, b) if x is not None)
    return None


def view_coverage(chain: Iterable[Iterable], chunk_size: int) -> list[tuple[int, int]]:
    """Volume ranges the stored digests cover: per chunk, the pieces of the newest object touching it.

    ``chain`` lists each object's pieces, full image first, then incrementals
    in order -- exactly what the catalogue's digests of that chain describe.
    """
    newest: dict[int, list[tuple[int, int]]] = {}
    for pieces in chain:
        mine: dict[int, list[tuple[int, int]]] = {}
        for chunk, sub in split_by_chunk(pieces, chunk_size):
            mine.setdefault(chunk, []).append((sub.volume_offset, sub.length))
        newest.update(mine)
    return [r for c in sorted(newest) for r in newest[c]]


def digest_windows(pieces: Iterable, chunk_size: int, max_pieces: int) -> Iterator[list]:
    """``pieces`` (ascending volume order) in lists of about ``max_pieces``, each cut where a chunk ends.

    No chunk has bytes in two lists, so the chunk digests of the lists, one
    after the other, are those of all the pieces at once: a digest request can
    go in windows instead of one message holding every piece.
    """
    window: list = []
    for p in pieces:
        if len(window) >= max_pieces and p.volume_offset // chunk_size > \
                (window[-1].volume_offset + window[-1].length - 1) // chunk_size:
            yield window
            window = []
        window.append(p)
    if window:
        yield window
