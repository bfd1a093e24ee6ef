"""Chunk digests on the server: what a pool holds, digested chunk by chunk, and the client's, read as rows.

A mixin of :class:`orchestrator.server.node_ops.NodeOps` (it needs ``cat``, ``grants``, ``session``, ``node``,
``refuse``, ``_own``, ``pieces_in`` and ``drive_failed`` from it).  Nothing here holds one Python object a chunk: the pool's
digests are produced as the pieces pass (pieces of an image come in image order, which is ascending volume
order, so a chunk is final once the pieces have left it) into a `DigestSpool`; the client's come as
DIGEST_ROW rows into another; a LAN-free commit compares the two streams side by side.
"""
from __future__ import annotations

import os
import zlib
from collections.abc import Iterable, Iterator
from hashlib import sha256
from typing import Any

import numpy as np

from orchestrator.digest_spool import DIGEST_ROW, DigestSpool
from orchestrator.drivers.coalesce import CoalescedReads
from orchestrator.job.digest import READ_STEP, _final  # the chunk digest's formula, declared there once
from orchestrator.piece_blocks import PieceBlock
from orchestrator.piece_stream import PieceStream
from orchestrator.server import messages as m
from orchestrator.server import piece_rows, wire
from orchestrator.server.service import Refused


SPAN_BYTES = 8 << 20  # pieces that follow each other on the pool are read this much at a time


def pool_digest_stream(fd: int, base: int, pieces: Iterable[Any], chunk_size: int) -> Iterator[tuple[int, str]]:
    """(chunk, digest) of the pieces' bytes as the pool holds them (``base`` + image offset, compressed ones
    inflated), each chunk given as soon as the pieces have left it: the value `ChunkDigester` gives, with one
    chunk open at a time.  The pieces must lie in ascending volume order (ValueError naming the first that does
    not)."""
    for batch in _digest_batches(fd, base, pieces, chunk_size):
        yield from batch


def pool_digests(fd: int, base: int, pieces: Iterable[Any], chunk_size: int) -> DigestSpool:
    """`pool_digest_stream` kept in a spool (read errors and bad order raised before anyone sees a digest)."""
    spool = DigestSpool()
    for batch in _digest_batches(fd, base, pieces, chunk_size):
        if batch:
            spool.add_rows(np.array(batch, dtype=DIGEST_ROW))
    return spool


def _digest_batches(fd: int, base: int, pieces: Iterable[Any], chunk_size: int) -> Iterator[list[tuple[int, str]]]:
    """`pool_digest_stream`'s pairs, a list per slice of pieces (a few thousand).

    The open chunk's runs and hash are kept here, not in a `ChunkDigester` fed with ``take_below`` (which gives
    the same digests through `_final`): going through it cost 44 % more server CPU on bench_server_digests'
    one-small-piece-per-chunk DIGEST (2.96 -> 4.25 s at 1M chunks, 2026-12-06 01:14 UTC, load 1.35)."""
    cs, prev_end = chunk_size, -1
    chunk, rel_end, runs, h = -1, -1, [], None  # the open chunk: its runs [start, length] and hash of bytes
    for cols, read in _slices(fd, base, PieceStream.of(pieces)):
        out: list[tuple[int, str]] = []
        for image, volume, length, packed, stored in zip(*cols):
            if volume < prev_end:
                raise ValueError(f"the piece at image offset {image} lies at volume offset {volume}, before the "
                                 f"end of the one before it ({prev_end}): pieces go in ascending volume order")
            prev_end = volume + length
            if packed:
                parts: Iterable[tuple[int, Any]] = ((volume, zlib.decompress(read(image, stored or length))),)
            elif length <= READ_STEP:
                parts = ((volume, read(image, length)),)
            else:
                parts = ((volume + o, read(image + o, min(READ_STEP, length - o))) for o in range(0, length, READ_STEP))
            for off, data in parts:
                pos, left = 0, len(data)
                while left:
                    c, rel = divmod(off + pos, cs)
                    n = min(left, cs - rel)
                    if c != chunk:
                        if h is not None:
                            out.append((chunk, _final(runs, h)))
                        chunk, runs, h = c, [[rel, n]], sha256()
                    elif rel == rel_end:
                        runs[-1][1] += n
                    else:
                        runs.append([rel, n])
                    rel_end = rel + n
                    h.update(data[pos:pos + n] if n != left or pos else data)
                    pos, left = pos + n, left - n
        yield out
    if h is not None:
        yield [(chunk, _final(runs, h))]


def _slices(fd: int, base: int, stream: PieceStream, rows: int = 4096) -> Iterator[tuple[tuple[list, ...], Any]]:
    """The pieces a few thousand at a time, as lists of (image offset, volume offset, length, compressed, stored
    length), each with ``read(image offset, length)`` of their stored bytes on the pool: one read for pieces that
    follow each other (an image's), else `CoalescedReads` (nearby pieces joined)."""
    for block in stream.blocks():
        image = block.image_offsets()
        for o in range(0, len(block), rows):
            cols = [c[o:o + rows] for c in (image, block.volume_offset, block.length, block.compressed,
                                            block.stored_length)]
            stored = np.where(cols[4] > 0, cols[4], cols[2])
            start, end = int(cols[0][0]), int(cols[0][-1] + stored[-1])
            if end - start <= SPAN_BYTES and bool((cols[0][1:] == cols[0][:-1] + stored[:-1]).all()):
                span = memoryview(os.pread(fd, end - start, base + start))
                read = (lambda at, n, span=span, start=start: span[at - start:at - start + n])
            else:
                reads = CoalescedReads(lambda at, n: os.pread(fd, n, at), zip((cols[0] + base).tolist(),
                                                                                stored.tolist()))
                read = (lambda at, n, reads=reads: reads.read(base + at, n))
            yield tuple(c.tolist() for c in cols), read


def same_digests(ours: Iterable[np.ndarray], theirs: Iterable[np.ndarray]) -> bool:
    """Whether every row of ``ours`` (at least one) is in ``theirs``: DIGEST_ROW pages, both ascending by chunk,
    walked side by side a page at a time (theirs may name more chunks than ours)."""
    it, page, seen = iter(theirs), np.empty(0, dtype=DIGEST_ROW), False
    for rows in ours:
        i = 0
        seen = seen or bool(rows.size)
        while i < rows.size:
            page = page[np.searchsorted(page["chunk"], rows["chunk"][i]):]  # theirs below ours: not compared
            if not page.size:
                page = next(it, None)
                if page is None:
                    return False
                continue
            j = i + int(np.searchsorted(rows["chunk"][i:], page["chunk"][-1], side="right"))  # ours in this page
            part, at = rows[i:j], np.searchsorted(page["chunk"], rows["chunk"][i:j])
            if not ((page["chunk"][at] == part["chunk"]).all() and (page["digest"][at] == part["digest"]).all()):
                return False
            i = j
    return seen


def unwritten(written: list[tuple[int, int]], pieces: Any) -> PieceStream:
    """The pieces whose [image offset, + stored) is not inside the union of the ``written`` ranges, as compact
    blocks (the union merged once, then a vectorised bisection per block of pieces: a commit of millions stays
    n log n and makes no object a piece)."""
    union: list[list[int]] = []
    for a, b in sorted(written):
        if union and a <= union[-1][1]:
            union[-1][1] = max(union[-1][1], b)
        else:
            union.append([a, b])
    starts = np.array([a for a, _ in union], dtype=np.int64)
    ends = np.array([b for _, b in union], dtype=np.int64)
    held = []
    for block in PieceStream.of(pieces).blocks():
        image = block.image_offsets()
        stored = np.where(block.stored_length > 0, block.stored_length, block.length)
        i = np.searchsorted(starts, image, side="right") - 1
        bad = (i < 0) | (image + stored > ends[np.maximum(i, 0)] if ends.size else True)
        if bad.all():
            held.append(block)
        elif bad.any():
            held.append(PieceBlock.of(0, block.volume_offset[bad], block.length[bad], block.stored_length[bad],
                                      block.compressed[bad], image=image[bad]))
    kept = tuple(held)
    return PieceStream(lambda: kept, sum(len(b) for b in kept))


def _past(pieces: PieceStream, size: int) -> bool:
    """Whether a piece's stored bytes end past ``size`` image bytes."""
    return any(b.length.size and int((b.image_offsets() + np.where(b.stored_length > 0, b.stored_length,
                                                                   b.length)).max()) > size for b in pieces.blocks())


class DigestOps:
    cat: Any
    grants: dict
    session: Any
    node: str
    refuse: Any
    _own: Any
    pieces_in: Any
    drive_failed: Any

    def digest(self, req: m.Digest, data: Any) -> tuple[dict, Any]:
        """Chunk digests of what the pool holds (verification without moving the image over the LAN), computed
        whole before the answer (a read error is a refusal, not a broken answer) and sent as DIGEST_ROW rows."""
        g = self.grants.get(req.object_id)
        pieces = self.pieces_in(req, data)
        if g is not None:
            if _past(pieces, g.size) or (not g.lan_free and unwritten(g.written, pieces)):
                raise self.refuse(f"DIGEST of object {g.object_id} names bytes this session never wrote")
            if g.tape is not None:
                try:
                    return self._digest_answer(DigestSpool.of(g.tape.digests(pieces, req.chunk_size)))
                except ValueError as exc:
                    raise self.refuse(f"DIGEST of object {g.object_id}: {exc}", "ANR0440W") from None
                except Exception as exc:  # noqa: BLE001
                    raise self.drive_failed(g.tape.drive, "reading the records back", exc) from None
            fd, base, close = g.fd, g.base, False
        else:
            rec = self._own(req.object_id, with_pieces=False)
            if rec.tape_location:
                raise self.refuse(f"DIGEST of object {rec.id}: a tape object is verified when it is written",
                                  "ANR0440W")
            pieces, base = PieceStream(lambda: self.cat.iter_blocks(rec.id)), rec.pool_offset
            fd, close = os.open(rec.pool_device, os.O_RDONLY), True
        try:
            return self._digest_answer(self._pool_digests(f"DIGEST of object {req.object_id}", fd, base, pieces,
                                                       req.chunk_size))
        finally:
            if close:
                os.close(fd)

    @staticmethod
    def _digest_answer(spool: DigestSpool) -> tuple[dict, Any]:
        return {"type": "digests"}, {"digests": (DIGEST_ROW, len(spool), spool.pages())}

    def _pool_digests(self, what: str, fd: int, base: int, pieces: Any, chunk_size: int, theirs: Any = None) -> Any:
        """`pool_digests` of an object's pieces, or with ``theirs`` whether they match them; a read error or
        pieces out of volume order refuse the request (``what``: "DIGEST of object 7")."""
        try:
            if theirs is not None:
                ours = (np.array(b, dtype=DIGEST_ROW) for b in _digest_batches(fd, base, pieces, chunk_size))
                return same_digests(ours, theirs.pages())
            return pool_digests(fd, base, pieces, chunk_size)
        except ValueError as exc:
            raise self.refuse(f"{what}: {exc}", "ANR0440W") from None
        except OSError as exc:
            text = f"{what}: reading the pool volume failed: {exc.strerror or exc}"
            raise Refused("ANR8447E", f"Session {self.session.id} node {self.node}: {text}.", text,
                          server_fault=True) from None

    def commit_rows(self, req: m.Commit, data: Any) -> tuple[PieceStream, DigestSpool]:
        """A commit's pieces and digests, read in the order its rows come (as the client declared them)."""
        declared = list(data.declared) if isinstance(data, wire.RowReader) else []
        got: dict[str, Any] = {}
        for name in [*declared, "pieces", "digests"]:
            if name not in got:
                got[name] = self.pieces_in(req, data) if name == "pieces" else self.digests_in(req, data)
        return got["pieces"], got["digests"]

    @staticmethod
    def digests_in(req: Any, data: Any) -> DigestSpool:
        """A commit's digests in chunk order: its DIGEST_ROW rows checked page by page, or its JSON pairs."""
        if isinstance(data, wire.RowReader) and "digests" in data.declared:
            return piece_rows.read_digests(data.pages("digests"))
        return piece_rows.json_digests(req.digests)

    def lan_free_matches(self, g: Any, unseen: PieceStream, theirs: DigestSpool, chunk_size: int) -> bool:
        """Whether the pool holds, for the pieces this session never saw (the storage agent wrote them over the
        SAN), the data the client's digests describe: ours chunk by chunk against theirs, no dict of either."""
        return bool(chunk_size) and self._pool_digests(f"COMMIT of object {g.object_id}", g.fd, g.base, unseen,
                                                       chunk_size, theirs)
