"""An object's chunk digests in the catalogue, and the view of a chain (full image, then its incrementals; later
objects win) as a dict or as a stream of runs.

Digested chunks are stored as blocks of `DIGEST_ROW` records (the spool's and the wire's layout), one
``digest_blocks`` row per `DIGEST_BLOCK_ROWS` chunks: a read-back of every chunk of a 16 TiB volume is a
thousand rows, not sixteen million.  A run of consecutive unread chunks is one ``digests`` row ("unread N"), as
is a digest the record cannot hold; catalogues written before the blocks keep their rows and read the same.
"""
from __future__ import annotations

import heapq
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from itertools import islice, repeat

import numpy as np

from orchestrator.chunk_runs import ChunkDigests, DigestRuns, marked_runs
from orchestrator.digest_spool import DIGEST_ROW, DigestSpool
from orchestrator.ops import UNREAD_DIGEST

_UNREAD_RUN = UNREAD_DIGEST + " "
DIGEST_BLOCK_ROWS = 1 << 14  # digested chunks in one digest_blocks row (1.1 MiB of records)

Item = np.ndarray | tuple[int, str, int]  # DIGEST_ROW records, or (chunk, digest, count) for the digests table


def _items(digests: Iterable[tuple[int, str]]) -> Iterator[Item]:
    """``digests`` (ascending) as record pages and (chunk, digest, count) rows: a `ChunkDigests` or a spool a
    page at a time; other pairs in pages of their own (a tuple or list is sorted first: it is held anyway)."""
    if isinstance(digests, ChunkDigests):
        for rows, idx in digests.parts():
            if rows.size:
                yield rows
            if idx.size:
                yield from marked_runs(idx, UNREAD_DIGEST)
        return
    if isinstance(digests, DigestSpool):
        yield from digests.pages()
        return
    pairs = iter(sorted(digests) if isinstance(digests, (list, tuple)) else digests)
    last = -1
    while part := list(islice(pairs, DIGEST_BLOCK_ROWS)):
        fits = []
        for c, d in part:
            if c <= last:
                raise ValueError(f"digest of chunk {c} comes after chunk {last}: digests must be in ascending "
                                 "chunk order, each chunk once")
            last = c
            raw = d.encode()
            if d == UNREAD_DIGEST or len(raw) > DIGEST_ROW["digest"].itemsize:
                if fits:
                    yield np.array(fits, dtype=DIGEST_ROW)
                    fits = []
                yield c, d, 1
            else:
                fits.append((c, raw))
        if fits:
            yield np.array(fits, dtype=DIGEST_ROW)


def write_digests(db: sqlite3.Connection, object_id: int, digests: Iterable[tuple[int, str]]) -> None:
    """Store an object's chunk digests (inside the caller's transaction): record blocks for the digested chunks,
    one row per run of consecutive unread chunks (an image proven by its data mover has no digest for any)."""
    held: list[np.ndarray] = []
    rows: list[tuple[int, int, str]] = []
    block = 0
    pending: tuple[int, str, int] | None = None

    def put_block(records: np.ndarray) -> None:
        nonlocal block
        db.execute("INSERT INTO digest_blocks VALUES (?,?,?,?,?)",
                   (object_id, block, int(records["chunk"][0]), int(records.size), records.tobytes()))
        block += 1

    def put_row(c: int, d: str, n: int) -> None:
        rows.append((object_id, c, d if n == 1 else f"{_UNREAD_RUN}{n}"))
        if len(rows) >= DIGEST_BLOCK_ROWS:
            db.executemany("INSERT INTO digests VALUES (?,?,?)", rows)
            rows.clear()

    for item in _items(digests):
        if isinstance(item, np.ndarray):
            held.append(item)
            if sum(a.size for a in held) >= DIGEST_BLOCK_ROWS:
                records = np.concatenate(held)
                for first in range(0, records.size - DIGEST_BLOCK_ROWS + 1, DIGEST_BLOCK_ROWS):
                    put_block(records[first:first + DIGEST_BLOCK_ROWS])
                rest = records.size % DIGEST_BLOCK_ROWS
                held = [records[records.size - rest:]] if rest else []
            continue
        c, d, n = item
        if pending is not None and d == UNREAD_DIGEST and pending[1] == UNREAD_DIGEST and \
                pending[0] + pending[2] == c:
            pending = (pending[0], d, pending[2] + n)
            continue
        if pending is not None:
            put_row(*pending)
        pending = item
    if pending is not None:
        put_row(*pending)
    if held:
        put_block(np.concatenate(held))
    if rows:
        db.executemany("INSERT INTO digests VALUES (?,?,?)", rows)


def _row_runs(db: sqlite3.Connection, object_id: int) -> Iterator[tuple[int, str, int]]:
    cursor = db.cursor()
    cursor.row_factory = None  # plain tuples: millions of rows in a catalogue written before the blocks
    for chunk, digest in cursor.execute("SELECT chunk, digest FROM digests WHERE object_id=? ORDER BY chunk",
                                        (object_id,)):
        if digest.startswith(_UNREAD_RUN):  # n chunks nobody read back, from this one on
            yield chunk, UNREAD_DIGEST, int(digest[len(_UNREAD_RUN):])
        else:
            yield chunk, digest, 1


def _block_runs(db: sqlite3.Connection, object_id: int) -> Iterator[tuple[int, str, int]]:
    cursor = db.cursor()
    cursor.row_factory = None
    for (data,) in cursor.execute("SELECT data FROM digest_blocks WHERE object_id=? ORDER BY block", (object_id,)):
        records = np.frombuffer(data, dtype=DIGEST_ROW)
        yield from zip(records["chunk"].tolist(), records["digest"].astype(f"U{DIGEST_ROW['digest'].itemsize}")
                       .tolist(), repeat(1))


def object_runs(db: sqlite3.Connection, object_id: int) -> Iterator[tuple[int, str, int]]:
    """One object's digests in chunk order as (first chunk, digest, count): its blocks and rows merged."""
    return heapq.merge(_block_runs(db, object_id), _row_runs(db, object_id))


def view_dict(db: sqlite3.Connection, object_ids: Sequence[int]) -> dict[int, str]:
    """Chunk digests of the view, one entry a chunk (later objects win)."""
    view: dict[int, str] = {}
    for oid in object_ids:
        for chunk, digest, n in object_runs(db, oid):
            if n == 1:
                view[chunk] = digest
            else:
                view.update(dict.fromkeys(range(chunk, chunk + n), digest))
    return view


def view_runs(db: sqlite3.Connection, object_ids: Sequence[int]) -> DigestRuns:
    """The view as runs in chunk order, streamed: one object's rows as they are; several objects' merged
    chunk by chunk (unread runs expanded), the newest object's digest of a chunk winning."""
    ids = list(object_ids)
    if len(ids) == 1:
        return DigestRuns(lambda: object_runs(db, ids[0]))

    def merged() -> Iterator[tuple[int, str, int]]:
        def chunks(i: int, oid: int) -> Iterator[tuple[int, int, str]]:
            for chunk, digest, n in object_runs(db, oid):
                for c in range(chunk, chunk + n):
                    yield c, i, digest
        pending: tuple[int, str, int] | None = None
        for c, _, digest in heapq.merge(*(chunks(i, oid) for i, oid in enumerate(ids))):
            if pending is not None and pending[0] != c:
                yield pending
            pending = (c, digest, 1)  # equal chunks come oldest object first: the newest stays
        if pending is not None:
            yield pending
    return DigestRuns(merged)
