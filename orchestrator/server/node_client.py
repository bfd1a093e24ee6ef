"""A node's session with the server: ask for a grant, send the granted object's bytes, commit, restore."""
from __future__ import annotations

from typing import Any, Iterable

from orchestrator.digest_spool import DIGEST_ROW, DigestSpool
from orchestrator.server import piece_rows
from orchestrator.server.client import ServerSession
from orchestrator.server.messages import EXTENT_ROW, PIECE_ROW, SCAN_ROW
from orchestrator.server.wire import FrameError

PUT_CHUNK = 8 << 20


def _piece_rows(pieces: Iterable[Any], count: int | None = None) -> dict:
    """A request's pieces as rows after the message (wire.py): a `PieceStream` goes block by block."""
    count, pages = piece_rows.piece_pages(pieces, count)
    return {"pieces": (PIECE_ROW, count, pages)}


def _objects(reply: dict, rows: Any) -> list[dict]:
    """The objects of a query or chain answer, each with its ``pieces`` as a `PieceStream` of compact blocks
    (read from the answer's rows: ~25 bytes a piece)."""
    objects = reply["objects"]
    counts = [int(o.pop("piece_count")) for o in objects]
    pages = rows.pages("pieces") if not isinstance(rows, bytes) else iter(())
    for o, stream in zip(objects, piece_rows.pieces_of_counts(pages, counts)):
        o["pieces"] = stream
    return objects


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
        """Make the object restorable: its pieces and its chunk digests (ascending by chunk) go as rows."""
        count, pages = piece_rows.digest_pages(digests)
        reply, _ = self.call({"type": "commit", "object_id": object_id,
                              "path_used": path_used,
                              "failovers": [f[:64] for f in failovers], "chunk_size": chunk_size,
                              **({"tape_location": tape_location} if tape_location else {})},
                             bulk={**_piece_rows(pieces), "digests": (DIGEST_ROW, count, pages)})
        return reply

    def serverfree_backup(self, extents: Any, scan: tuple[int, Any] | None = None, **fields: Any) -> dict:
        """Ask the server to copy the volume through a data mover: ``extents`` (an (n, 2) array or pairs) and an
        incremental's ``scan`` ((count, SCAN_ROW pages)) go as rows; the answer comes when the whole copy is done
        (no read timeout)."""
        count, pages = piece_rows.extent_pages(extents)
        bulk = {"extents": (EXTENT_ROW, count, pages)}
        if scan is not None:
            bulk["scan_digests"] = (SCAN_ROW, *scan)
        return self.call_long({"type": "serverfree_backup", **fields}, bulk)

    def get_ranges(self, object_id: int, ranges: list[tuple[int, int]]) -> list[bytes]:
        """Several pieces' stored bytes ((image offset, stored length) each) in one answer."""
        _, data = self.call({"type": "get_ranges", "object_id": object_id, "ranges": [list(r) for r in ranges]})
        out, o = [], 0
        for _, n in ranges:
            out.append(data[o:o + n])
            o += n
        if o != len(data):
            raise ConnectionError(f"GET_RANGES answer of {len(data)} bytes for {o} asked")
        return out

    def abandon(self, object_id: int, reason: str) -> None:
        self.call({"type": "abandon", "object_id": object_id, "reason": reason[:500]})

    def get(self, object_id: int, image_offset: int, length: int, stored: int | None = None) -> bytes:
        _, data = self.call({"type": "get", "object_id": object_id, "image_offset": image_offset, "length": length,
                             "stored": length if stored is None else stored})
        return data

    def digest(self, object_id: int, chunk_size: int, pieces: Iterable[Any] = (),
               count: int | None = None) -> DigestSpool:
        """Chunk digests of what the pool holds, in chunk order, read from the answer's rows into a spool (a
        malformed row: ConnectionError naming it); ``pieces`` (``count`` of them when an iterator) go as rows."""
        _, rows = self.call({"type": "digest", "object_id": object_id, "chunk_size": chunk_size},
                            bulk=_piece_rows(pieces, count))
        if isinstance(rows, bytes):
            raise ConnectionError("the server's DIGEST answer is malformed: it carries no digest rows")
        try:
            return piece_rows.read_digests(rows.pages("digests"), what="the server's DIGEST answer is malformed")
        except FrameError as exc:
            raise ConnectionError(f"the server's DIGEST answer is malformed: {exc}") from None
        except EOFError:
            raise ConnectionError("the server closed the session within the DIGEST answer's rows") from None
        except piece_rows.MalformedRows as exc:
            raise ConnectionError(str(exc)) from None

    def query(self, filespace: str | None = None, inactive: bool = False, object_id: int | None = None) -> list[dict]:
        reply, rows = self.call({"type": "query_backup", "filespace": filespace, "inactive": inactive,
                                 "object_id": object_id})
        return _objects(reply, rows)

    def chain(self, filespace: str, incremental: bool = False, pitdate: str | None = None) -> tuple[list[dict], Any]:
        """(objects of the restore chain, the view's chunk digests as `DigestRuns`); ([], {}) when there is no
        full image."""
        reply, rows = self.call({"type": "restore_chain", "filespace": filespace, "incremental": incremental,
                                 "pitdate": pitdate})
        objects = _objects(reply, rows)
        if "digests" in reply:  # (a digest no row holds)
            return objects, {int(c): str(d) for c, d in reply["digests"]}
        if isinstance(rows, bytes):  # no chain
            return objects, {}
        return objects, piece_rows.digest_runs_of(rows.pages("digest_runs"))

    def restore_grant(self, object_id: int) -> dict:
        """This session's LAN-free read range of one of the node's objects (pool_volume, pool_offset, length)."""
        reply, _ = self.call({"type": "restore_grant", "object_id": object_id})
        return reply

    def destination(self, management_class: str | None = None) -> dict:
        """The pool this node's policy sends a backup to: {pool, management_class, tape: {drives, record_bytes}|None}."""
        reply, _ = self.call({"type": "destination", **({"management_class": management_class}
                                                        if management_class else {})})
        return reply

    def call_long(self, message: dict, bulk: dict | None = None) -> dict:
        """A request the server answers only when a whole copy is done (server-free): no read timeout."""
        previous = self.sock.gettimeout()
        self.sock.settimeout(None)
        try:
            reply, _ = self.call(message, bulk=bulk)
        finally:
            self.sock.settimeout(previous)
        return reply

    def delete(self, object_id: int) -> None:
        self.call({"type": "delete", "object_id": object_id})
