"""A server-free copy that stopped mid-image: keep what the mover committed, hand the rest to the client.

When the server's copy fails (a mover killed, a LUN gone, COPY ABORTED after
some batches), the job core knows the image offset up to which the pool holds
the image -- whole batches, whole lists and the segments the mover's COPY
STATUS / FAILED SEGMENT DETAILS vouch for -- and would abandon the object.
Here the server keeps that object pending instead and grants it to the
client's session with those bytes already counted as written; the client
moves only the rest (LAN-free into the granted range, or over the LAN) and
commits the whole object.  Nothing already on the pool is copied again.  A
copy that moved nothing is abandoned as before.
"""
from __future__ import annotations

import os
from typing import Any

from orchestrator.ops import AbandonObject, CatalogueDone, PathKind


class HeldObject:
    """Watches a server-free backup job: its object, and the abandon it must not carry out yet."""

    def __init__(self) -> None:
        self.object_id: int | None = None
        self.reason = ""

    def intercept(self, op: Any) -> Any:
        if isinstance(op, AbandonObject):
            self.object_id, self.reason = op.object_id, op.reason
            return CatalogueDone(op.object_id)
        return None

    def settle(self, ops: Any, req: Any, reply: dict) -> dict:
        """Grant the object to the session at the point the copy reached, or abandon it; returns the reply."""
        report = reply.get("report") or {}
        last = (report.get("failovers") or [{}])[-1]
        at = int(last.get("image_offset") or 0) if last.get("from_path") == PathKind.SERVER_FREE.value else 0
        server = ops.server
        with server.pools.catalogue() as cat:
            rec = cat.get(self.object_id, with_pieces=False)
            if at <= 0 or at >= rec.image_size or rec.state != "pending" or rec.mode != "selective":
                cat.abandon_object(AbandonObject(self.object_id, self.reason))
                return reply
        from orchestrator.server.node_ops import Grant

        g = Grant(rec.id, os.open(rec.pool_device, os.O_RDWR), rec.pool_offset, rec.image_size, process=rec.id,
                  lan_free=bool(getattr(req, "lan_free", False)), written=[(0, at)])
        ops.grants[rec.id] = g
        server.pools.process_started(g.process, f"Image backup of {ops.node}:{req.filespace} (object {rec.id}, "
                                                f"session {ops.session.id}, resumed at image byte {at})")
        server.store.log("ANR0539I", f"Session {ops.session.id}: object {rec.id} of node {ops.node} kept: "
                                     f"{at} of {rec.image_size} bytes are on the pool; the client moves the rest.",
                         ops.session.id)
        resume = {"object_id": rec.id, "image_offset": at, "image_size": rec.image_size,
                  "mover": str(last.get("mover") or ""), "reason": str(last.get("reason") or self.reason)}
        if g.lan_free:  # the range the storage agent may write itself: this object's slot, nothing else
            resume["lan_free"] = {"pool_volume": rec.pool_volume, "pool_offset": rec.pool_offset,
                                  "length": rec.image_size}
        return {**reply, "resume": resume}

