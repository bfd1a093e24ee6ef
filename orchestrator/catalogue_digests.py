"""An object's chunk digests in the catalogue: runs of unread chunks as one row, and the view of a chain
(full image, then its incrementals; later objects win) as a dict or as a stream of runs."""
from __future__ import annotations

import heapq
import sqlite3
from collections.abc import Iterable, Iterator, Sequence

from orchestrator.chunk_runs import DigestRuns, as_runs
from orchestrator.ops import UNREAD_DIGEST

_UNREAD_RUN = UNREAD_DIGEST + " "


def digest_rows(object_id: int, digests: Iterable[tuple[int, str]]) -> Iterator[tuple[int, int, str]]:
    """Rows of the digests table: runs of consecutive unread chunks as one row (an image of millions of chunks
    proven by its data mover has no digest to keep for any of them)."""
    for chunk, digest, n in as_runs(digests, UNREAD_DIGEST):  # type: ignore[arg-type]
        yield object_id, chunk, digest if n == 1 else f"{_UNREAD_RUN}{n}"


def object_runs(db: sqlite3.Connection, object_id: int) -> Iterator[tuple[int, str, int]]:
    """One object's digest rows in chunk order as (first chunk, digest, count)."""
    cursor = db.cursor()
    cursor.row_factory = None  # plain tuples: millions of rows
    for chunk, digest in cursor.execute("SELECT chunk, digest FROM digests WHERE object_id=? ORDER BY chunk",
                                        (object_id,)):
        if digest.startswith(_UNREAD_RUN):  # n chunks nobody read back, from this one on
            yield chunk, UNREAD_DIGEST, int(digest[len(_UNREAD_RUN):])
        else:
            yield chunk, digest, 1


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
