"""A node's requests that carry or answer with rows (wire.py): many pieces, extents or ranges at once.

A mixin of :class:`orchestrator.server.node_ops.NodeOps` (it needs ``cat``, ``node``, ``server``,
``_own``, ``refuse`` and ``_read_fds`` from it): reading a request's rows into compact columns, answering
``query_backup`` and ``restore_chain`` with the objects' pieces read from the catalogue's blocks while
they are sent, and ``get_ranges``, a LAN restore's many pieces in one answer.
"""
from __future__ import annotations

import os
from typing import Any

import numpy as np

from orchestrator.catalogue import CatalogueError
from orchestrator.piece_stream import PieceStream
from orchestrator.server import messages as m
from orchestrator.server import piece_rows, wire


class RowOps:
    cat: Any
    node: str
    server: Any
    _read_fds: dict[str, int]
    _own: Any
    refuse: Any

    def query(self, req: m.QueryBackup, data: bytes) -> tuple[dict, Any]:
        if req.object_id is not None:
            objs = [self._own(req.object_id, with_pieces=False)]
        else:
            objs = self.cat.query(self.node, req.filespace, inactive=req.inactive, with_pieces=False)
        return self._with_rows({"type": "objects"}, objs)

    def _with_rows(self, message: dict, objs: list) -> tuple[dict, Any]:
        """The objects (each with its ``piece_count``) and their pieces as rows, read from the catalogue's
        blocks while they are sent: an object of millions of pieces is never held."""
        counts = [self._piece_count(o.id) for o in objs]
        shown = [{**self._shown(o), "piece_count": n} for o, n in zip(objs, counts)]
        pages = (piece_rows.rows_of_block(b) for o in objs for b in self.cat.iter_blocks(o.id))
        return {**message, "objects": shown}, {"pieces": (m.PIECE_ROW, sum(counts), pages)}

    def _piece_count(self, object_id: int) -> int:
        row = self.cat.db.execute("SELECT coalesce(sum(count), 0) FROM extent_blocks WHERE object_id=?",
                                  (object_id,)).fetchone()
        return int(row[0]) or sum(len(b) for b in self.cat.iter_blocks(object_id))  # (an older catalogue's rows)

    @staticmethod
    def _shown(o: Any) -> dict:
        # as ObjectRecord.as_dict, without its extents (the pieces go as rows; a stream is not walked here)
        return {k: v for k, v in o.__dict__.items() if k not in ("pieces", "pool_device")}

    def chain(self, req: m.RestoreChain, data: bytes) -> tuple[dict, bytes]:
        from datetime import datetime, timezone

        pit = None
        if req.pitdate:
            try:
                pit = datetime.fromisoformat(req.pitdate)
            except ValueError:
                raise self.refuse(f"pitdate {req.pitdate!r} is not an ISO date", "ANR0440W") from None
            pit = pit if pit.tzinfo else pit.replace(tzinfo=timezone.utc)
        try:
            chain = self.cat.restore_chain(self.node, req.filespace, pitdate=pit, incremental=req.incremental,
                                           stream=True)
        except CatalogueError as exc:
            return {"type": "chain", "objects": [], "digests": [], "reason": str(exc)}, b""
        message, bulk = self._with_rows({"type": "chain"}, chain)
        runs = self.cat.digest_runs(chain)  # read anew on each pass: counted, then sent
        count, longest = 0, 0
        for _, d, _ in runs:
            count, longest = count + 1, max(longest, len(d))
        if longest > m.DIGEST_RUN_ROW["digest"].itemsize:  # a digest the row does not hold: JSON, as before
            return {**message, "digests": sorted([c, d] for c, d in self.cat.digests(chain).items())}, bulk
        bulk["digest_runs"] = (m.DIGEST_RUN_ROW, count, piece_rows.digest_run_pages(runs))
        return message, bulk

    @staticmethod
    def extents_in(req: m.ServerFreeBackup, data: Any) -> np.ndarray:
        """The request's extent map as an (n, 2) array: its rows checked as they arrive, or its JSON pairs."""
        if isinstance(data, wire.RowReader):
            count = data.declared.get("extents", (0, None))[0]
            extents = piece_rows.read_extents(data.pages("extents"), count)
        else:
            extents = np.array(req.extents, dtype=np.int64).reshape(-1, 2)
        if not extents.shape[0]:
            raise piece_rows.MalformedRows("malformed request: extents: List should have at least 1 item after "
                                           "validation, not 0")
        return extents

    @staticmethod
    def pieces_in(req: Any, data: Any) -> PieceStream:
        """The request's pieces in image order, compact: its rows checked page by page, or its JSON list."""
        if isinstance(data, wire.RowReader) and "pieces" in data.declared:
            return piece_rows.spool_pieces(data.pages("pieces"))
        return piece_rows.spool_pieces([piece_rows.json_piece_rows(req.pieces)])

    def get_ranges(self, req: m.GetRanges, data: bytes) -> tuple[dict, bytes]:
        """Several (image offset, stored length) ranges of a disk object in one DATA answer, in the order asked."""
        rec = self._own(req.object_id, with_pieces=False)
        if rec.tape_location:
            raise self.refuse(f"GET_RANGES of object {rec.id}: a tape object is read one GET at a time", "ANR0440W")
        total = sum(n for _, n in req.ranges)
        if total > wire.MAX_DATA:
            raise self.refuse(f"GET_RANGES of object {rec.id}: {total} bytes exceed one answer's {wire.MAX_DATA}",
                              "ANR0440W")
        bad = next(((o, n) for o, n in req.ranges if o + n > rec.image_size), None)
        if bad is not None:
            raise self.refuse(f"GET at image offset {bad[0]} lies outside object {rec.id}")
        fd = self._read_fds.get(rec.pool_device)
        if fd is None:
            fd = self._read_fds[rec.pool_device] = os.open(rec.pool_device, os.O_RDONLY)
        out = b"".join(os.pread(fd, n, rec.pool_offset + o) for o, n in req.ranges)
        if self.server.metrics is not None:
            self.server.metrics.bytes_moved("lan-restore", len(out))
        return {"type": "data", "lengths": [n for _, n in req.ranges]}, out
