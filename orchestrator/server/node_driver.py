"""The client's driver when the backup server owns the catalogue and the pools.

It is the real driver with four seams moved to the server session: the
catalogue steps (BEGIN asks for a grant, COMMIT and ABANDON are the server's
to record), the LAN transfer (PUTs into the grant, GETs of the node's own
objects) and verification (the server digests what the pool holds; only
digests cross the LAN).  The object's pool volume is named ``object:<id>``
on the client: the client never learns, nor chooses, where on the pool its
data lies.
"""
from __future__ import annotations

import heapq
from collections import deque
from dataclasses import dataclass
from typing import Any

from orchestrator.drivers.real import RealDriver
from orchestrator.drivers.coalesce import volume_reader
from orchestrator.drivers.real_devices import failure_from
from orchestrator.digest_spool import DigestSpool
from orchestrator.job.digest import first_difference, iter_chunk_digests
from orchestrator.ops.tape import TapeClientWrite
from orchestrator.ops import (AbandonObject, BeginObject, CatalogueDone, CommitObject, Failure, LanFreeRead,
                              LanReceive, LanSend, ObjectStarted, TransferResult, VerifyPool, VerifyResult)


TAPE_CHUNK = 1 << 20  # chunk size of the digests a LAN-free tape commit carries
BATCH_BYTES, BATCH_PIECES = 8 << 20, 4096  # a LAN restore reads up to this much in one GET_RANGES


class BatchedReads:
    """Stored bytes of a restore's pieces, read ahead many to a GET_RANGES (not one GET a piece).

    The transfer asks for the pieces in the order of ``pieces``; a second pass over the same pieces runs
    ahead, gathering up to BATCH_PIECES pieces or BATCH_BYTES for one request.
    """

    def __init__(self, session: Any, object_id: int, pieces: Any):
        self.session, self.object_id = session, object_id
        self.ahead = iter(pieces)
        self.ready: deque = deque()

    def __call__(self, p: Any) -> bytes:
        if not self.ready:
            self._fill()
        while self.ready:
            q, data = self.ready.popleft()
            if (q.image_offset, q.stored) == (p.image_offset, p.stored):
                return data
        return self.session.get(self.object_id, p.image_offset, p.length, p.stored)  # out of step: one GET

    def _fill(self) -> None:
        batch, nbytes = [], 0
        for q in self.ahead:
            batch.append(q)
            nbytes += q.stored
            if len(batch) >= BATCH_PIECES or nbytes >= BATCH_BYTES:
                break
        if batch:
            self.ready.extend(zip(batch, self.session.get_ranges(self.object_id,
                                                                 [(q.image_offset, q.stored) for q in batch])))


def object_volume(object_id: int) -> str:
    return f"object:{object_id}"


def object_of(volume: str) -> int:
    if not volume.startswith("object:"):
        raise LookupError(f"pool volume {volume!r} is not an object granted by the backup server")
    return int(volume.split(":", 1)[1])


@dataclass
class ServerDriver(RealDriver):
    session: Any = None  # orchestrator.server.node_client.NodeSession
    last_object: int | None = None
    failovers: list = None  # type: ignore[assignment]  # failure kinds seen by this job (reported at commit)
    storage_agent: dict = None  # type: ignore[assignment]  # server pool volume -> this client's device (LAN-free)
    chunk_size: int = 0
    tape: bool = False
    tape_agent: bool = False  # this client writes a tape pool's records itself (LAN-free to tape)
    tape_source: tuple = ()  # (device, offset) the LAN-free tape records were read from, digested at commit
    resume: dict = None  # type: ignore[assignment]  # an object the server's copy left half done (server/resume.py)
    read_grants: dict = None  # type: ignore[assignment]  # device -> [(start, end)] the server granted for reading
    batched_get: bool = False  # LAN restores of disk objects read pieces many to a request (BatchedReads)

    def grant_read(self, device: str, start: int, length: int) -> None:
        """Record a LAN-free read range the server granted this session (pool bytes on this client's device)."""
        self.read_grants = self.read_grants or {}
        self.read_grants.setdefault(device, []).append((start, start + length))

    def _granted(self, device: str, start: int, end: int) -> str:
        """"" when [start, end) of ``device`` lies in a live grant of this session; else why not."""
        if self.session is None or getattr(self.session, "closed", False):
            return "the session that held the read grant has ended"
        if not any(a <= start and end <= b for a, b in (self.read_grants or {}).get(device, [])):
            return f"pool bytes {start}-{end} of {device} lie outside the range the backup server granted"
        return ""

    def _LanFreeRead(self, op: LanFreeRead) -> TransferResult:
        """A LAN-free restore reads only inside what the server granted this session (the storage agent's rule)."""
        for p in op.pieces:
            why = self._granted(op.pool_device, op.pool_offset + p.image_offset,
                                op.pool_offset + p.image_offset + p.stored)
            if why:
                return TransferResult(0, failure=Failure("error", f"LAN-free read refused: {why}", op.pool_device))
        return super()._LanFreeRead(op)

    def execute(self, op):  # type: ignore[no-untyped-def]
        if isinstance(op, BeginObject) and self.resume:  # the object the server's copy left half done
            grant = self.resume.get("lan_free") or {}
            device = (self.storage_agent or {}).get(grant.get("pool_volume", ""), "")
            self.last_object = int(self.resume["object_id"])
            return ObjectStarted(self.last_object, object_volume(self.last_object), device,
                                 int(grant.get("pool_offset", 0)) if device else 0)
        if isinstance(op, BeginObject):
            g = self.session.begin(op.filespace, op.image_size, op.volume_size, file_system=op.file_system,
                                   mode=op.mode, image_type=op.image_type, base_object_id=op.base_object_id,
                                   management_class=None if op.management_class in ("", "DEFAULT")
                                   else op.management_class, lan_free=bool(self.storage_agent) or None,
                                   tape_lan_free=self.tape_agent or None)
            self.last_object = int(g["object_id"])
            self.tape = bool(g.get("tape"))  # the server lays the pieces as tape records: uncompressed, in order
            grant = g.get("lan_free") or {}
            if grant.get("tape_drive"):  # the drive this storage agent writes itself, under its own device name
                return ObjectStarted(self.last_object, str(grant["pool_volume"]),
                                     (self.storage_agent or {}).get(grant["tape_drive"], ""), 0)
            device = (self.storage_agent or {}).get(grant.get("pool_volume", ""), "")
            # no device for the granted volume: LAN-free writes fail at once and the job fails over to the LAN
            return ObjectStarted(self.last_object, object_volume(self.last_object), device,
                                 int(grant.get("pool_offset", 0)) if device else 0)
        if isinstance(op, CommitObject) and op.tape_location and self.tape_source:
            # LAN-free to tape: the server reads the records back and compares them with the source's digests
            source, offset = self.tape_source
            src = self.io(source)
            digests = DigestSpool(iter_chunk_digests(op.pieces, volume_reader(src, offset, op.pieces), TAPE_CHUNK))
            self.session.commit(op.object_id, op.pieces, op.path_used, digests, self.failovers or [], TAPE_CHUNK,
                                tape_location=op.tape_location)
            return CatalogueDone(op.object_id)
        if isinstance(op, CommitObject):
            self.session.commit(op.object_id, op.pieces, op.path_used, op.digests, self.failovers or [],
                                self.chunk_size)
            return CatalogueDone(op.object_id)
        if isinstance(op, AbandonObject):
            try:
                self.session.abandon(op.object_id, op.reason)
            except (OSError, PermissionError):
                pass  # the server abandons it itself when the session ends
            return CatalogueDone(op.object_id)
        if isinstance(op, VerifyPool):
            self.chunk_size = op.chunk_size
        result = super().execute(op)
        failure = getattr(result, "failure", None)
        if failure is not None:
            self.failovers = [*(self.failovers or []), str(failure.kind)]
        return result

    def _TapeClientWrite(self, op: TapeClientWrite) -> TransferResult:
        self.tape_source = (op.source, op.source_offset)
        return super()._TapeClientWrite(op)

    def _LanSend(self, op: LanSend) -> TransferResult:
        try:
            src = self.io(op.source)
        except Exception as exc:
            return TransferResult(0, failure=self._client_source_failure(exc, op.source))
        oid = object_of(op.pool_volume)
        return self._pieces(op.pieces, volume_reader(src, op.source_offset, op.pieces),
                            lambda p, d: self.session.put(oid, p.image_offset, p.length, d, len(d) < p.length),
                            op.compress and not self.tape, "LAN transfer failed", op.server, source=op.source)

    def _LanReceive(self, op: LanReceive) -> TransferResult:
        try:
            dest = self.io(op.destination)
        except Exception as exc:
            return TransferResult(0, failure=failure_from(exc, "cannot open the restore destination", op.destination))
        oid = object_of(op.pool_volume)
        read = BatchedReads(self.session, oid, op.pieces) if self.batched_get else \
            (lambda p: self.session.get(oid, p.image_offset, p.length, p.stored))
        return self._restore(op.pieces, read,
                             dest, op.destination_offset, "LAN restore failed", op.server)

    def _verify_by_digest(self, op: VerifyPool) -> VerifyResult:
        if not op.pieces:
            return VerifyResult(True)
        try:
            theirs = self.session.digest(self._object(op), op.chunk_size, op.pieces)
            src = self.io(op.source)
            ours = iter_chunk_digests(op.pieces, volume_reader(src, op.source_offset, op.pieces), op.chunk_size)
            bad = first_difference(ours, theirs)  # pair by pair, as ours are read: neither side held as a tuple
        except Exception as exc:
            return VerifyResult(False, f"verification through the backup server failed: {exc}")
        if bad is not None:
            return VerifyResult(False, f"pool and volume differ in chunk {bad} (digests from the backup server)")
        return VerifyResult(True, "", theirs)

    def _server_view(self, op: VerifyPool):  # type: ignore[no-untyped-def]
        # both in image order (the job's streams): merged as they are sent as rows, never held as one list
        everything = heapq.merge(op.pieces, op.accounted, key=lambda q: q.image_offset)
        return self.session.digest(self._object(op), op.chunk_size, everything, len(op.pieces) + len(op.accounted))

    def _object(self, op: VerifyPool) -> int:
        if self.last_object is None:
            raise LookupError("no object was granted in this session")
        return self.last_object
