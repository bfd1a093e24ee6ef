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

from dataclasses import dataclass
from itertools import chain
from typing import Any

from orchestrator.drivers.real import RealDriver
from orchestrator.drivers.real_devices import failure_from
from orchestrator.job.digest import chunk_digests
from orchestrator.ops import (AbandonObject, BeginObject, CatalogueDone, CommitObject, LanReceive, LanSend,
                              ObjectStarted, TransferResult, VerifyPool, VerifyResult)


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

    def execute(self, op):  # type: ignore[no-untyped-def]
        if isinstance(op, BeginObject):
            g = self.session.begin(op.filespace, op.image_size, op.volume_size, file_system=op.file_system,
                                   mode=op.mode, image_type=op.image_type, base_object_id=op.base_object_id,
                                   management_class=None if op.management_class in ("", "DEFAULT")
                                   else op.management_class, lan_free=bool(self.storage_agent) or None)
            self.last_object = int(g["object_id"])
            grant = g.get("lan_free") or {}
            device = (self.storage_agent or {}).get(grant.get("pool_volume", ""), "")
            # no device for the granted volume: LAN-free writes fail at once and the job fails over to the LAN
            return ObjectStarted(self.last_object, object_volume(self.last_object), device,
                                 int(grant.get("pool_offset", 0)) if device else 0)
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

    def _LanSend(self, op: LanSend) -> TransferResult:
        try:
            src = self.io(op.source)
        except Exception as exc:
            return TransferResult(0, failure=self._client_source_failure(exc, op.source))
        oid = object_of(op.pool_volume)
        return self._pieces(op.pieces, lambda p: src.read(op.source_offset + p.volume_offset, p.length),
                            lambda p, d: self.session.put(oid, p.image_offset, p.length, d, len(d) < p.length),
                            op.compress, "LAN transfer failed", op.server, source=op.source)

    def _LanReceive(self, op: LanReceive) -> TransferResult:
        try:
            dest = self.io(op.destination)
        except Exception as exc:
            return TransferResult(0, failure=failure_from(exc, "cannot open the restore destination", op.destination))
        oid = object_of(op.pool_volume)
        return self._restore(op.pieces, lambda p: self.session.get(oid, p.image_offset, p.length, p.stored),
                             dest, op.destination_offset, "LAN restore failed", op.server)

    def _verify_by_digest(self, op: VerifyPool) -> VerifyResult:
        if not op.pieces:
            return VerifyResult(True)
        try:
            theirs = self.session.digest(self._object(op), op.chunk_size, op.pieces)
            src = self.io(op.source)
            ours = chunk_digests(op.pieces, lambda p: src.read(op.source_offset + p.volume_offset, p.length),
                                 op.chunk_size)
        except Exception as exc:
            return VerifyResult(False, f"verification through the backup server failed: {exc}")
        if ours != theirs:
            bad = next((c for (c, a), (_, b) in zip(ours, theirs) if a != b), None)
            return VerifyResult(False, f"pool and volume differ in chunk {bad} (digests from the backup server)")
        return VerifyResult(True, "", theirs)

    def _server_view(self, op: VerifyPool):  # type: ignore[no-untyped-def]
        everything = sorted(chain(op.pieces, op.accounted), key=lambda q: q.image_offset)
        return self.session.digest(self._object(op), op.chunk_size, everything)

    def _object(self, op: VerifyPool) -> int:
        if self.last_object is None:
            raise LookupError("no object was granted in this session")
        return self.last_object
