"""The backup catalogue: SQLite, transactional, crash-safe.

Nodes own filespaces (volumes); a filespace has image objects (full =
mode selective, or incremental linked to their base), each with its extents
and where they lie on the pool.  An object is written in two steps: a
*pending* row reserves its pool slot (never listed, never restorable), and a
single transaction adds every extent and flips it to *active* once all data
is on the pool and verified.  A crash at any point therefore leaves either no
visible object or a complete one; pending leftovers are swept to *abandoned*.

Extents are stored compactly, one row per block of up to 64 Ki pieces
(`orchestrator.piece_blocks`: delta-encoded numpy columns, zlib), so an image
of millions of extents is a few hundred rows; commit takes them as a stream
of blocks and `iter_blocks` reads them back as one.  Catalogues written
before that keep their one-row-per-extent ``extents`` table, still read.
"""
from __future__ import annotations

import logging
import sqlite3
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterable, Iterator

from orchestrator.catalogue_digests import view_dict, view_runs, write_digests
from orchestrator.catalogue_owners import Transaction, owner_alive, owner_note
from orchestrator.catalogue_records import CatalogueError, ObjectRecord
from orchestrator.catalogue_schema import SCHEMA, VISIBLE
from orchestrator.chunk_runs import DigestRuns
from orchestrator.ops import AbandonObject, BeginObject, CatalogueDone, CommitObject, ObjectStarted, StoredPiece
from orchestrator.piece_blocks import PieceBlock, blocks_of
from orchestrator.piece_stream import PieceStream

__all__ = ["SCHEMA", "VISIBLE", "Catalogue", "CatalogueError", "ObjectRecord"]

log = logging.getLogger(__name__)


def _now() -> datetime:
    return datetime.now(timezone.utc)


class Catalogue:
    """SQLite catalogue; every mutating call is one transaction."""

    def __init__(self, path: str | Path = ":memory:", clock: Callable[[], datetime] = _now):
        self.path = str(path)
        self.clock = clock
        if self.path != ":memory:":
            where = Path(self.path)
            if where.is_dir():
                raise ValueError(f"catalogue {self.path} is a directory; name a file (the site file's catalogue, "
                                 "--catalogue, or dsm.opt catalog)")
            if not where.parent.is_dir():
                raise ValueError(f"catalogue {self.path}: folder {where.parent} does not exist")
        try:
            self.db = sqlite3.connect(self.path, isolation_level=None, timeout=30)
            self.db.row_factory = sqlite3.Row
            self.db.execute("PRAGMA foreign_keys = ON")
            if self.path != ":memory:":
                self.db.execute("PRAGMA journal_mode = WAL")
                self.db.execute("PRAGMA synchronous = FULL")
            self.db.executescript(SCHEMA)
        except sqlite3.DatabaseError as exc:  # not a database, unreadable, read-only folder
            raise ValueError(f"catalogue {self.path}: cannot be opened as an SQLite catalogue: {exc}") from None
        cols = {r["name"] for r in self.db.execute("PRAGMA table_info(objects)")}
        if "tape_location" not in cols:  # a catalogue written before tape pools existed
            self.db.execute("ALTER TABLE objects ADD COLUMN tape_location TEXT")

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> "Catalogue":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transactions -----------------------------------------------------------------
    def _tx(self):
        return Transaction(self.db)

    def _stamp(self) -> str:
        return self.clock().astimezone(timezone.utc).isoformat(timespec="microseconds")

    # -- pool volumes ------------------------------------------------------------------
    def add_pool_volume(self, pool: str, name: str, device: str, capacity: int) -> None:
        """Register (or resize) a pool volume: a LUN or file the pool writes objects to."""
        if capacity < 0:
            raise ValueError(f"pool volume {name}: capacity {capacity} is negative")
        with self._tx():
            row = self.db.execute("SELECT id, next_offset FROM pool_volumes WHERE name=?",
                                  (name,)).fetchone()
            if row:
                if capacity < row["next_offset"]:
                    raise ValueError(f"pool volume {name}: capacity {capacity} is below the "
                                     f"{row['next_offset']} bytes already used")
                self.db.execute("UPDATE pool_volumes SET pool=?, device=?, capacity=? WHERE id=?",
                                (pool, device, capacity, row["id"]))
            else:
                self.db.execute("INSERT INTO pool_volumes(pool, name, device, capacity) VALUES (?,?,?,?)",
                                (pool, name, device, capacity))

    def _filespace_id(self, node: str, filespace: str, create: bool) -> int | None:
        row = self.db.execute("SELECT id FROM nodes WHERE name=?", (node,)).fetchone()
        if row is None:
            if not create:
                return None
            node_id = self.db.execute("INSERT INTO nodes(name) VALUES (?)", (node,)).lastrowid
        else:
            node_id = row["id"]
        row = self.db.execute("SELECT id FROM filespaces WHERE node_id=? AND name=?",
                              (node_id, filespace)).fetchone()
        if row is None:
            if not create:
                return None
            return self.db.execute("INSERT INTO filespaces(node_id, name) VALUES (?,?)",
                                   (node_id, filespace)).lastrowid
        return row["id"]

    # -- writing objects ---------------------------------------------------------------
    def begin_object(self, op: BeginObject, align: int = 4096) -> ObjectStarted:
        """Create a pending object and reserve its pool slot (aligned for block copies)."""
        if op.mode not in ("selective", "incremental"):
            raise ValueError(f"mode must be selective or incremental, got {op.mode!r}")
        with self._tx():
            fs_id = self._filespace_id(op.node, op.filespace, create=True)
            if op.base_object_id is not None:
                base = self.db.execute("SELECT filespace_id, state, mode FROM objects WHERE id=?",
                                       (op.base_object_id,)).fetchone()
                if base is None or base["state"] not in VISIBLE or base["filespace_id"] != fs_id \
                        or base["mode"] != "selective":
                    raise CatalogueError(f"base object {op.base_object_id} is not a restorable full "
                                         f"image of {op.node}:{op.filespace}")
            sql = "SELECT * FROM pool_volumes WHERE (?='' OR pool=?) ORDER BY id"
            for vol in self.db.execute(sql, (op.pool, op.pool)).fetchall():
                start = -(-vol["next_offset"] // align) * align
                if start + op.image_size <= vol["capacity"]:
                    break
            else:
                raise CatalogueError(f"no pool volume{' in pool ' + op.pool if op.pool else ''} has "
                                     f"{op.image_size} bytes free for {op.node}:{op.filespace}")
            self.db.execute("UPDATE pool_volumes SET next_offset=? WHERE id=?",
                            (start + op.image_size, vol["id"]))
            oid = self.db.execute(
                "INSERT INTO objects(filespace_id, mode, image_type, management_class, state, base_id,"
                " pool_volume_id, pool_offset, image_size, volume_size, file_system, started, note)"
                " VALUES (?,?,?,?, 'pending', ?,?,?,?,?,?,?,?)",
                (fs_id, op.mode, op.image_type, op.management_class, op.base_object_id, vol["id"], start,
                 op.image_size, op.volume_size, op.file_system, self._stamp(), owner_note())).lastrowid
        log.info("object %d pending on %s at %d (%d bytes)", oid, vol["name"], start, op.image_size)
        return ObjectStarted(oid, vol["name"], vol["device"], start)

    def commit_object(self, op: CommitObject,
                      _hook: Callable[[int], None] | None = None) -> CatalogueDone:
        """Record every extent and make the object restorable, in one transaction.

        ``op.pieces`` is a tuple of `StoredPiece` (any order) or an iterable of
        `PieceBlock` in image order, e.g. produced while the batches are sent;
        blocks are checked and written as they come, inside the transaction.
        """
        with self._tx():
            obj = self.db.execute("SELECT * FROM objects WHERE id=?", (op.object_id,)).fetchone()
            if obj is None:
                raise CatalogueError(f"object {op.object_id} does not exist")
            if obj["state"] != "pending":
                raise CatalogueError(f"object {op.object_id} is {obj['state']}, not pending")
            pos = count = stored = 0
            for number, block in enumerate(self._blocks(op)):
                if block.image_offset != pos or len(block) == 0 or (block.length <= 0).any() \
                        or (block.stored_length > block.length).any():
                    raise CatalogueError(f"object {op.object_id}: extent at image offset "
                                         f"{block.image_offset} leaves a gap or overlap at {pos}")
                self.db.execute("INSERT INTO extent_blocks VALUES (?,?,?,?,?)",
                                (op.object_id, number, block.image_offset, len(block), block.encode()))
                if _hook:
                    for i in range(count, count + len(block)):
                        _hook(i)
                pos = block.image_end
                count += len(block)
                stored += block.stored_bytes
            if pos != obj["image_size"]:
                raise CatalogueError(f"object {op.object_id}: extents cover {pos} of "
                                     f"{obj['image_size']} image bytes; not all data is on the pool")
            write_digests(self.db, op.object_id, op.digests)
            if obj["mode"] == "selective":
                # a new full image makes the previous generation (full + incrementals) inactive
                self.db.execute("UPDATE objects SET state='inactive' WHERE filespace_id=? AND "
                                "state='active'", (obj["filespace_id"],))
            self.db.execute("UPDATE objects SET state='active', path_used=?, compressed=?, stored_size=?,"
                            " backup_date=?, tape_location=? WHERE id=?",
                            (op.path_used, int(op.compressed), stored,
                             self._stamp(), op.tape_location or None, op.object_id))
        log.info("object %d committed (%d extents, path %s)", op.object_id, count, op.path_used)
        return CatalogueDone(op.object_id)

    @staticmethod
    def _blocks(op: CommitObject) -> Iterator[PieceBlock]:
        if isinstance(op.pieces, PieceStream):  # a job's stream: its blocks, each must tile the image
            for block in op.pieces.blocks():
                if not block.tiles:
                    raise CatalogueError(f"object {op.object_id}: extents after image offset "
                                         f"{block.image_offset} leave a gap")
                yield block
        elif isinstance(op.pieces, (tuple, list)):
            pieces = sorted(op.pieces, key=lambda p: p.image_offset)
            try:
                yield from blocks_of(pieces)
            except ValueError as exc:
                raise CatalogueError(f"object {op.object_id}: {exc}") from None
        else:
            yield from op.pieces

    def abandon_object(self, op: AbandonObject) -> CatalogueDone:
        with self._tx():
            n = self.db.execute("UPDATE objects SET state='abandoned', note=? WHERE id=? AND state='pending'",
                                (op.reason[:500], op.object_id)).rowcount
        if not n:
            log.warning("object %d was not pending; nothing abandoned", op.object_id)
        return CatalogueDone(op.object_id)

    def sweep_pending(self) -> int:
        """Mark pending leftovers of crashed jobs abandoned; returns how many."""
        with self._tx():
            return self.db.execute("UPDATE objects SET state='abandoned', note='job did not finish' "
                                   "WHERE state='pending'").rowcount

    def sweep_orphans(self) -> int:
        """Abandon pending objects whose job is gone: begun by a process of this host that no longer
        runs (an interrupted or killed client), or with no owner recorded.  Jobs still running -- here or
        on another host -- keep theirs.  Returns how many were abandoned."""
        gone = [r["id"] for r in self.db.execute("SELECT id, note FROM objects WHERE state='pending'")
                if not owner_alive(r["note"])]
        if gone:
            with self._tx():
                self.db.executemany("UPDATE objects SET state='abandoned', note='its job was interrupted' "
                                    "WHERE id=? AND state='pending'", [(i,) for i in gone])
        return len(gone)

    def execute(self, op: BeginObject | CommitObject | AbandonObject) -> ObjectStarted | CatalogueDone:
        """Carry out a job's catalogue operation (every driver delegates here)."""
        if isinstance(op, BeginObject):
            return self.begin_object(op)
        if isinstance(op, CommitObject):
            return self.commit_object(op)
        if isinstance(op, AbandonObject):
            return self.abandon_object(op)
        raise TypeError(f"not a catalogue operation: {type(op).__name__}")

    # -- reading -----------------------------------------------------------------------
    _SELECT = ("SELECT o.*, n.name AS node, f.name AS filespace, v.pool AS pool, v.name AS pool_volume,"
               " v.device AS pool_device FROM objects o JOIN filespaces f ON f.id = o.filespace_id"
               " JOIN nodes n ON n.id = f.node_id JOIN pool_volumes v ON v.id = o.pool_volume_id")

    def _record(self, row: sqlite3.Row, with_pieces: bool) -> ObjectRecord:
        rec = ObjectRecord(
            id=row["id"], node=row["node"], filespace=row["filespace"], mode=row["mode"],
            image_type=row["image_type"], management_class=row["management_class"], state=row["state"],
            base_id=row["base_id"], pool=row["pool"], pool_volume=row["pool_volume"],
            pool_device=row["pool_device"], pool_offset=row["pool_offset"],
            image_size=row["image_size"], volume_size=row["volume_size"],
            file_system=row["file_system"], path_used=row["path_used"],
            compressed=bool(row["compressed"]), stored_size=row["stored_size"],
            backup_date=row["backup_date"], tape_location=row["tape_location"])
        if with_pieces:
            rec.pieces = [p for block in self.iter_blocks(rec.id) for p in block.pieces()]
        return rec

    def iter_blocks(self, object_id: int) -> Iterator[PieceBlock]:
        """An object's pieces in image order, block by block (bounded memory for any extent count)."""
        cursor = self.db.execute("SELECT image_offset, count, data FROM extent_blocks WHERE object_id=? "
                                 "ORDER BY block", (object_id,))
        found = False
        for row in cursor:
            found = True
            yield PieceBlock.decode(row["image_offset"], row["count"], row["data"])
        if not found:  # written before extent blocks existed: one row per extent
            legacy = self.db.execute("SELECT * FROM extents WHERE object_id=? ORDER BY idx", (object_id,))
            yield from blocks_of(StoredPiece(r["image_offset"], r["volume_offset"], r["length"],
                                             bool(r["compressed"]), r["stored_length"]) for r in legacy)

    def query(self, node: str | None = None, filespace: str | None = None, *,
              inactive: bool = False, with_pieces: bool = False) -> list[ObjectRecord]:
        """Restorable objects (active; with ``inactive`` also older versions), oldest first."""
        states = VISIBLE if inactive else ("active",)
        sql = self._SELECT + f" WHERE o.state IN ({','.join('?' * len(states))})"
        args: list = list(states)
        if node is not None:
            sql += " AND n.name = ? COLLATE NOCASE"
            args.append(node)
        if filespace is not None:
            sql += " AND f.name = ?"
            args.append(filespace)
        sql += " ORDER BY o.backup_date, o.id"
        return [self._record(r, with_pieces) for r in self.db.execute(sql, args).fetchall()]

    def get(self, object_id: int, *, with_pieces: bool = True) -> ObjectRecord:
        row = self.db.execute(self._SELECT + " WHERE o.id=?", (object_id,)).fetchone()
        if row is None:
            raise CatalogueError(f"object {object_id} does not exist")
        return self._record(row, with_pieces)

    def restore_chain(self, node: str, filespace: str, *, pitdate: datetime | None = None,
                      incremental: bool = False, stream: bool = False) -> list[ObjectRecord]:
        """The full image to restore and, with ``incremental``, its incrementals in order.

        Without ``pitdate`` the active generation is used; with it, the newest
        full image backed up at or before that time and its incrementals up to it.
        With ``stream`` each object's pieces are a `PieceStream` reading its
        blocks from this catalogue on every pass (it must stay open meanwhile).
        """
        objs = self.query(node, filespace, inactive=pitdate is not None, with_pieces=not stream)
        if pitdate is not None:
            limit = pitdate.astimezone(timezone.utc).isoformat(timespec="microseconds")
            objs = [o for o in objs if o.backup_date and o.backup_date <= limit]
        fulls = [o for o in objs if o.mode == "selective"]
        if not fulls:
            when = f" at or before {pitdate.isoformat()}" if pitdate else ""
            raise CatalogueError(f"no restorable image of {node}:{filespace}{when}")
        base = fulls[-1]
        chain = [base]
        if incremental:
            chain += [o for o in objs if o.mode == "incremental" and o.base_id == base.id]
        if stream:
            for o in chain:
                o.pieces = PieceStream(lambda oid=o.id: self.iter_blocks(oid))  # type: ignore[misc]
        return chain

    def digests(self, chain: Iterable[ObjectRecord]) -> dict[int, str]:
        """Chunk digests of the volume as the chain restores it (later objects win), as a dict."""
        return view_dict(self.db, [o.id for o in chain])

    def digest_runs(self, chain: Iterable[ObjectRecord]) -> DigestRuns:
        """The same view as (first chunk, digest, count) runs in chunk order, read from the catalogue on every
        pass (it must stay open meanwhile): what an incremental of millions of chunks compares with."""
        return view_runs(self.db, [o.id for o in chain])

    def states(self) -> dict[int, str]:
        """Every object's state (for tests and diagnostics)."""
        return {r["id"]: r["state"] for r in self.db.execute("SELECT id, state FROM objects")}
