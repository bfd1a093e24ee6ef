"""A node's session with the server: ask for a grant, send the granted object's bytes, commit, restore."""
from __future__ import annotations

from typing import Any, Iterable

from orchestrator.server.client import ServerSession

PUT_CHUNK = 8 << 20


def _piece(p: Any) -> dict:
    return {"image_offset": p.image_offset, "volume_offset": p.volume_offset, "length": p.length,
            "compressed": bool(getattr(p, "compressed", False)), "stored": int(getattr(p, "stored", p.length))}


class NodeSession(ServerSession):
    def __init__(self, host: str, port: int | str, name: str, password: str, **kw: Any):
        super().__init__(host, port, role="node", name=name, password=password, **kw)

    def begin(self, filespace: str, image_size: int, volume_size: int, **fields: Any) -> dict:
        reply, _ = self.call({"type": "begin_backup", "filespace": filespace, "image_size": image_size,
                              "volume_size": volume_size, **{k: v for k, v in fields.items() if v is not None}})
        return reply

    def put(self, object_id: int, image_offset: int, length: int, data: bytes, compressed: bool = False) -> None:
        if compressed:
            self.call({"type": "put", "object_id": object_id, "image_offset": image_offset, "length": length,
                       "compressed": True}, data)
            return
        view = memoryview(data)
        for o in range(0, len(data), PUT_CHUNK):
            part = view[o:o + PUT_CHUNK]
            self.call({"type": "put", "object_id": object_id, "image_offset": image_offset + o,
                       "length": len(part)}, bytes(part))

    def commit(self, object_id: int, pieces: Iterable[Any], path_used: str = "lan",
               digests: Iterable[tuple[int, str]] = (), failovers: Iterable[str] = (), chunk_size: int = 0,
               tape_location: str = "") -> dict:
        reply, _ = self.call({"type": "commit", "object_id": object_id, "pieces": [_piece(p) for p in pieces],
                              "path_used": path_used, "digests": [list(d) for d in digests],
                              "failovers": [f[:64] for f in failovers], "chunk_size": chunk_size,
                              **({"tape_location": tape_location} if tape_location else {})})
        return reply

    def abandon(self, object_id: int, reason: str) -> None:
        self.call({"type": "abandon", "object_id": object_id, "reason": reason[:500]})

    def get(self, object_id: int, image_offset: int, length: int, stored: int | None = None) -> bytes:
        _, data = self.call({"type": "get", "object_id": object_id, "image_offset": image_offset, "length": length,
                             "stored": length if stored is None else stored})
        return data

    def digest(self, object_id: int, chunk_size: int, pieces: Iterable[Any] = ()) -> tuple[tuple[int, str], ...]:
        reply, _ = self.call({"type": "digest", "object_id": object_id, "chunk_size": chunk_size,
                              "pieces": [_piece(p) for p in pieces]})
        return tuple((int(c), str(h)) for c, h in reply["digests"])

    def query(self, filespace: str | None = None, inactive: bool = False, object_id: int | None = None) -> list[dict]:
        reply, _ = self.call({"type": "query_backup", "filespace": filespace, "inactive": inactive,
                              "object_id": object_id})
        return reply["objects"]

    def chain(self, filespace: str, incremental: bool = False, pitdate: str | None = None) -> tuple[list[dict], dict]:
        """(objects of the restore chain, chunk -> digest of the view); ([], {}) when there is no full image."""
        reply, _ = self.call({"type": "restore_chain", "filespace": filespace, "incremental": incremental,
                              "pitdate": pitdate})
        return reply["objects"], {int(c): str(d) for c, d in reply["digests"]}

    def restore_grant(self, object_id: int) -> dict:
        """This session's LAN-free read range of one of the node's objects (pool_volume, pool_offset, length)."""
        reply, _ = self.call({"type": "restore_grant", "object_id": object_id})
        return reply

    def destination(self, management_class: str | None = None) -> dict:
        """The pool this node's policy sends a backup to: {pool, management_class, tape: {drives, record_bytes}|None}."""
        reply, _ = self.call({"type": "destination", **({"management_class": management_class}
                                                        if management_class else {})})
        return reply

    def call_long(self, message: dict) -> dict:
        """A request the server answers only when a whole copy is done (server-free): no read timeout."""
        previous = self.sock.gettimeout()
        self.sock.settimeout(None)
        try:
            reply, _ = self.call(message)
        finally:
            self.sock.settimeout(previous)
        return reply

    def delete(self, object_id: int) -> None:
        self.call({"type": "delete", "object_id": object_id})
