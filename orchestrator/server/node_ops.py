"""A node's requests in one session: its own objects only, and writes only inside what it was granted.

Every refusal here raises :class:`~orchestrator.server.service.Refused` before
any byte reaches a pool: another node's object, an object not granted to this
session, a range outside the grant, a commit naming bytes never written.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from orchestrator.catalogue import CatalogueError
from orchestrator.ops import AbandonObject, BeginObject, CommitObject
from orchestrator.server import messages as m
from orchestrator.server import piece_rows, tape, wire
from orchestrator.server.node_digests import DigestOps, unwritten
from orchestrator.server.node_rows import RowOps
from orchestrator.server.node_tape import TapeOps
from orchestrator.server.service import Refused


class VolumeUnavailable(OSError):
    """The server cannot open one of its own pool volumes: its fault, not the node's request."""


@dataclass
class Grant:
    """One pending object's image range on a pool volume, for this session only."""

    object_id: int
    fd: int
    base: int
    size: int
    process: int = 0
    lan_free: bool = False  # the client may write the range over the SAN; commit proves it by digests
    tape: Any = None  # a tape pool's object: the server's TapeWriter on the drive it holds (server/tape.py)
    tape_drive: str = ""  # a tape pool's object the storage agent writes itself, on this drive the session holds
    written: list[tuple[int, int]] = field(default_factory=list)  # (image offset, stored end) ranges

    def wrote(self, start: int, end: int) -> None:
        """Count ``[start, end)`` written.  A PUT that starts inside or right at the end of the last range
        extends it: a LAN backup's PUTs tile the image in order, so millions of them stay one range (a pair
        each was ~100 bytes a piece for the whole object); others are kept as they come (`unwritten` merges)."""
        if self.written and self.written[-1][0] <= start <= self.written[-1][1]:
            last = self.written[-1]
            self.written[-1] = (last[0], max(last[1], end))
        else:
            self.written.append((start, end))


class NodeOps(RowOps, DigestOps, TapeOps):
    def __init__(self, server: Any, session: Any):
        self.server, self.session, self.node = server, session, session.name
        self.pools = server.pools
        self.cat = self.pools.catalogue()
        self.grants: dict[int, Grant] = {}
        self.read_grants: dict[int, tuple[str, int, int]] = {}  # object -> (pool volume, offset, length)
        self._read_fds: dict[str, int] = {}
        self._tape_reads: dict[str, tuple[Any, list[int]]] = {}  # drive -> (device, [logical object])
        self.who = f"session {session.id} (node {self.node})"

    def refuse(self, what: str, msgno: str = "ANR0425W") -> Refused:
        return Refused(msgno, f"Session {self.session.id} for node {self.node} refused - {what}; nothing written.",
                       f"not authorized: {what}")

    # -- dispatch ------------------------------------------------------------------------------
    def handle(self, req: Any, data: bytes) -> tuple[dict, bytes]:
        metrics = self.server.metrics
        if metrics is not None and isinstance(req, (m.Put, m.Get)):
            with metrics.latency.labels(req.type).time():
                return self._handle(req, data)
        return self._handle(req, data)

    def _handle(self, req: Any, data: bytes) -> tuple[dict, bytes]:
        handler = {m.QueryBackup: self.query, m.RestoreChain: self.chain, m.BeginBackup: self.begin, m.Put: self.put,
                   m.Commit: self.commit, m.Abandon: self.abandon, m.Get: self.get, m.GetRanges: self.get_ranges,
                   m.Digest: self.digest, m.Delete: self.delete,
                   m.ServerFreeBackup: self.serverfree, m.ServerFreeRestore: self.serverfree,
                   m.RestoreGrant: self.restore_grant, m.Destination: self.destination}[type(req)]
        return handler(req, data)

    def close(self) -> None:
        for g in list(self.grants.values()):
            self._abandon(g, "session ended before the object was committed")
        for fd in self._read_fds.values():
            os.close(fd)
        for drive, (dev, _) in self._tape_reads.items():
            tape.close_drive(dev)
            self.server.drives.release(drive, self.who)
        if self.read_grants:
            self.server.store.log("ANR0514I", f"Session {self.session.id}: LAN-free read grant(s) of node {self.node} "
                                              f"for object(s) {', '.join(map(str, sorted(self.read_grants)))} ended "
                                              "with the session.", self.session.id)
        self.cat.close()

    # -- reading the catalogue -----------------------------------------------------------------
    def _own(self, object_id: int, *, visible: bool = True, with_pieces: bool = True):
        try:
            rec = self.cat.get(object_id, with_pieces=with_pieces)
        except CatalogueError:
            rec = None
        if rec is None or rec.node.upper() != self.node or (visible and rec.state not in ("active", "inactive")):
            raise self.refuse(f"object {object_id} is not an object of node {self.node}")
        return rec

    # -- writing -------------------------------------------------------------------------------
    def begin(self, req: m.BeginBackup, data: bytes) -> tuple[dict, bytes]:
        try:
            mgmtclass, pool = self.server.store.destination(self.node, req.management_class)
        except LookupError as exc:
            raise Refused("ANR0522W", f"Session {self.session.id} node {self.node}: {exc}.", str(exc)) from None
        if req.base_object_id is not None:
            self._own(req.base_object_id, with_pieces=False)
        try:
            tape_pool = tape.tape_pool(self.server.store, pool)
            started = self.cat.begin_object(BeginObject(
                self.node, req.filespace, req.mode, req.image_type, req.image_size, req.volume_size,
                req.file_system, req.base_object_id, mgmtclass, pool))
        except (CatalogueError, ValueError) as exc:
            raise Refused("ANR0522W", f"Session {self.session.id} node {self.node}: {exc}.", str(exc)) from None
        agent = bool(tape_pool) and req.lan_free and req.tape_lan_free
        try:
            writer = self._tape_writer(pool, started) if tape_pool and not agent else None
            drive = self._hold_drive(pool, started) if agent else ""
            fd = -1 if tape_pool else self._open_volume(started.pool_device)
        except (tape.DriveBusy, LookupError, OSError, ValueError) as exc:
            self.cat.abandon_object(AbandonObject(started.object_id, str(exc)))
            self.pools.reclaim()
            raise Refused("ANR8447E", f"Session {self.session.id} node {self.node}: {exc}.", str(exc),
                          server_fault=isinstance(exc, (VolumeUnavailable, tape.DriveBusy))) from None
        g = Grant(started.object_id, fd, started.pool_offset, req.image_size, process=started.object_id,
                  lan_free=req.lan_free and not writer, tape=writer, tape_drive=drive)
        self.grants[started.object_id] = g
        self.pools.process_started(g.process, f"Image backup of {self.node}:{req.filespace} (object "
                                              f"{started.object_id}, session {self.session.id})")
        self.server.store.log("ANR0510I", f"Session {self.session.id}: object {started.object_id} of node "
                                          f"{self.node} granted {req.image_size} bytes in pool {pool} "
                                          f"(management class {mgmtclass}).", self.session.id)
        reply = {"type": "granted", "object_id": started.object_id, "image_size": req.image_size,
                 "pool": pool, "management_class": mgmtclass, **({"tape": True} if writer else {})}
        if drive:  # the drive the storage agent may write itself, at its end of data, for this object only
            reply["lan_free"] = {"tape_drive": drive, "pool_volume": started.pool_volume}
        elif g.lan_free:  # the range the storage agent may write itself: this object's slot, nothing else
            reply["lan_free"] = {"pool_volume": started.pool_volume, "pool_offset": started.pool_offset,
                                 "length": req.image_size}
        return reply, b""

    @staticmethod
    def _open_volume(path: str) -> int:
        """The pool volume's file or device, opened for the grant; its absence is named (the object is abandoned)."""
        try:
            return os.open(path, os.O_RDWR)
        except OSError as exc:
            raise VolumeUnavailable(f"pool volume {path} cannot be opened: {exc.strerror}") from None

    def destination(self, req: m.Destination, data: bytes) -> tuple[dict, bytes]:
        """The pool the node's policy names, and whether it is a tape pool (the same decision BEGIN makes)."""
        try:
            mgmtclass, pool = self.server.store.destination(self.node, req.management_class)
            tp = tape.tape_pool(self.server.store, pool)
        except LookupError as exc:
            raise Refused("ANR0522W", f"Session {self.session.id} node {self.node}: {exc}.", str(exc)) from None
        return {"type": "destination", "pool": pool, "management_class": mgmtclass,
                "tape": {"drives": list(tp.drives), "record_bytes": tape.RECORD_BYTES} if tp else None}, b""

    def serverfree(self, req: Any, data: Any) -> tuple[dict, bytes]:
        if isinstance(req, m.ServerFreeBackup):
            extents = self.extents_in(req, data)  # read (and checked) whatever the answer will be
            scan = piece_rows.Scan.of_rows(data.pages("scan_digests")) if isinstance(data, wire.RowReader) \
                and "scan_digests" in data.declared else piece_rows.Scan.of_pairs(req.scan_digests)
        if self.server.serverfree is None:
            return {"type": "serverfree_result", "ok": False, "reason": "this server has no data movers"}, b""
        try:
            if isinstance(req, m.ServerFreeRestore):
                return self.server.serverfree.restore(self, req)
            return self.server.serverfree.backup(self, req, extents, scan)
        except LookupError as exc:
            raise Refused("ANR0522W", f"Session {self.session.id} node {self.node}: {exc}.", str(exc)) from None

    def _grant(self, object_id: int) -> Grant:
        g = self.grants.get(object_id)
        if g is None:
            raise self.refuse(f"object {object_id} was not granted to this session")
        return g

    def put(self, req: m.Put, data: bytes) -> tuple[dict, bytes]:
        g = self._grant(req.object_id)
        stored = len(data)
        if stored == 0 or stored > req.length or (not req.compressed and stored != req.length):
            raise self.refuse(f"PUT at image offset {req.image_offset}: {stored} bytes do not fit a piece of "
                              f"{req.length}", "ANR0440W")
        if req.image_offset + req.length > g.size:
            raise self.refuse(f"PUT at image offset {req.image_offset} ({req.length} bytes) lies outside the "
                              f"{g.size} bytes granted for object {g.object_id}")
        if g.tape_drive:
            raise self.refuse(f"PUT of object {g.object_id}: the storage agent writes this tape object itself",
                              "ANR0440W")
        if g.tape is not None:
            if req.compressed:
                raise self.refuse(f"PUT at image offset {req.image_offset}: a tape object takes uncompressed pieces",
                                  "ANR0440W")
            try:
                g.tape.put(req.image_offset, data)
            except ValueError as exc:
                raise self.refuse(f"PUT of object {g.object_id}: {exc}", "ANR0440W") from None
            except Exception as exc:  # noqa: BLE001 - the drive or its transport: named, the session ends
                raise self.drive_failed(g.tape.drive, "WRITE", exc) from None
        else:
            os.pwrite(g.fd, data, g.base + req.image_offset)
        g.wrote(req.image_offset, req.image_offset + stored)
        self.session.stored = getattr(self.session, "stored", 0) + stored
        if self.server.metrics is not None:
            self.server.metrics.bytes_moved("lan", stored)
        return {"type": "ack", "image_offset": req.image_offset}, b""

    def commit(self, req: m.Commit, data: bytes) -> tuple[dict, bytes]:
        g = self._grant(req.object_id)
        pieces, theirs = self.commit_rows(req, data)
        unseen = unwritten(g.written, pieces)
        if unseen and not g.lan_free and not g.tape_drive:
            p = next(iter(unseen))
            raise self.refuse(f"COMMIT of object {g.object_id} names image bytes {p.image_offset}-"
                              f"{p.image_offset + p.stored} that this session never wrote")
        location = None
        if g.tape_drive:  # written by the storage agent: the server reads the records back before it commits
            location = self._commit_agent_tape(g, req.model_copy(update={"digests": theirs}), pieces)
            unseen = None
        elif g.tape is not None:
            try:
                location = g.tape.close(pieces)
            except ValueError as exc:
                raise self.refuse(f"COMMIT of object {g.object_id}: {exc}", "ANR0440W") from None
            except Exception as exc:  # noqa: BLE001
                raise self.drive_failed(g.tape.drive, "WRITE FILEMARKS", exc) from None
        else:
            os.fsync(g.fd)
        if unseen:  # written over the SAN by the storage agent: the pool must hold what the client digested
            if not self.lan_free_matches(g, unseen, theirs, req.chunk_size):
                raise self.refuse(f"COMMIT of object {g.object_id}: the pool does not hold the LAN-free data the "
                                  "client's digests describe")
        try:
            gap = piece_rows.first_gap(pieces)
            if gap is not None:  # as the catalogue words it
                raise CatalogueError(f"object {g.object_id}: extent at image offset {gap[0]} leaves a gap or overlap "
                                     f"at {gap[1]}")
            compressed = any(bool(b.compressed.any()) for b in pieces.blocks())
            self.cat.commit_object(CommitObject(g.object_id, pieces, req.path_used,  # type: ignore[arg-type]
                                                compressed, theirs, location))  # type: ignore[arg-type]
        except CatalogueError as exc:
            raise Refused("ANR0522W", f"Session {self.session.id} node {self.node}: {exc}.", str(exc)) from None
        self._release(g)
        if self.server.metrics is not None:
            self.server.metrics.objects.labels("committed").inc()
            for reason in req.failovers:
                self.server.metrics.failovers.labels(reason).inc()
        self.server.store.log("ANR0511I", f"Session {self.session.id}: object {g.object_id} of node {self.node} "
                                          f"committed ({len(pieces)} extents, {req.path_used}).", self.session.id)
        return {"type": "committed", "object_id": g.object_id}, b""

    def abandon(self, req: m.Abandon, data: bytes) -> tuple[dict, bytes]:
        self._abandon(self._grant(req.object_id), req.reason)
        return {"type": "abandoned", "object_id": req.object_id}, b""

    def _abandon(self, g: Grant, reason: str) -> None:
        self.cat.abandon_object(AbandonObject(g.object_id, reason))
        self._release(g)
        if self.server.metrics is not None:
            self.server.metrics.objects.labels("abandoned").inc()
        self.pools.reclaim()
        self.server.store.log("ANR0512W", f"Session {self.session.id}: object {g.object_id} of node {self.node} "
                                          f"abandoned: {reason}.", self.session.id)

    def _release(self, g: Grant) -> None:
        self.pools.process_ended(g.process)
        if g.tape is not None:
            tape.close_drive(g.tape.dev)
            self.server.drives.release(g.tape.drive, self.who)
        elif g.tape_drive:
            self.server.drives.release(g.tape_drive, self.who)
        else:
            os.close(g.fd)
        self.grants.pop(g.object_id, None)

    # -- reading -------------------------------------------------------------------------------
    def restore_grant(self, req: m.RestoreGrant, data: bytes) -> tuple[dict, bytes]:
        """The node's own object's range on its pool volume, readable LAN-free for this session only."""
        rec = self._own(req.object_id, with_pieces=False)
        if rec.tape_location:
            raise self.refuse(f"object {rec.id} lies on tape; tape objects are read by the server's drive, not "
                              "LAN-free", "ANR0440W")
        self.read_grants[rec.id] = (rec.pool_volume, rec.pool_offset, rec.image_size)
        self.server.store.log("ANR0513I", f"Session {self.session.id}: node {self.node} granted LAN-free read of "
                                          f"object {rec.id}: {rec.image_size} bytes at offset {rec.pool_offset} of "
                                          f"volume {rec.pool_volume}, for this session.", self.session.id)
        return {"type": "read_granted", "object_id": rec.id, "pool_volume": rec.pool_volume,
                "pool_offset": rec.pool_offset, "length": rec.image_size}, b""

    def get(self, req: m.Get, data: bytes) -> tuple[dict, bytes]:
        rec = self._own(req.object_id, with_pieces=False)  # one GET per piece: the map is not read for each
        stored = req.length if req.stored is None else req.stored
        if req.image_offset + max(req.length, stored) > rec.image_size:
            raise self.refuse(f"GET at image offset {req.image_offset} lies outside object {rec.id}")
        if rec.tape_location:
            out = self._tape_get(rec, req.image_offset, stored)
            if self.server.metrics is not None:
                self.server.metrics.bytes_moved("lan-restore", len(out))
            return {"type": "data", "image_offset": req.image_offset}, out
        fd = self._read_fds.get(rec.pool_device)
        if fd is None:
            fd = self._read_fds[rec.pool_device] = os.open(rec.pool_device, os.O_RDONLY)
        out = os.pread(fd, stored, rec.pool_offset + req.image_offset)
        if self.server.metrics is not None:
            self.server.metrics.bytes_moved("lan-restore", len(out))
        return {"type": "data", "image_offset": req.image_offset}, out

    def delete(self, req: m.Delete, data: bytes) -> tuple[dict, bytes]:
        rec = self._own(req.object_id, with_pieces=False)
        with self.cat.db:
            self.cat.db.execute("UPDATE objects SET state='abandoned', note='deleted by its node' WHERE id=?",
                                (rec.id,))
        self.server.store.log("ANR0987I", f"Session {self.session.id}: node {self.node} deleted object {rec.id}.",
                              self.session.id)
        return {"type": "deleted", "object_id": rec.id}, b""
