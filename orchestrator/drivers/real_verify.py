"""The real driver's verification and scans: pool data checked against the volume, volume digests.

Pool data is compared over the SAN (READ(16) back) or, through the backup
server, by chunk digests only; server-free data is vouched for by the mover's
COPY STATUS, never read here.
"""
from __future__ import annotations

import heapq
import logging
from itertools import chain
import zlib
from typing import Callable, Iterator

from orchestrator.catalogue import Catalogue
from orchestrator.drivers.real_devices import IO_CHUNK, BlockIO, failure_from
from orchestrator.job.digest import ChunkDigester, chunk_digests, digest_windows, iter_chunk_digests
from orchestrator.lan.client import LanClient
from orchestrator.piece_stream import LazySeq
from orchestrator.ops import DigestResult, DigestVolume, StoredPiece, VerifyPool, VerifyResult, without_chunks

log = logging.getLogger(__name__)

DIGEST_WINDOW_PIECES = 1 << 15  # pieces per digest request to the backup server (then the next window)


class VerifyOps:
    """RealDriver's verification and scans (a mixin: needs ``io(name)``, ``catalogue`` and ``lan_timeout``)."""

    catalogue: Catalogue
    io: Callable[[str], BlockIO]
    lan_timeout: float

    def _VerifyPool(self, op: VerifyPool) -> VerifyResult:
        """Compare what the client moved with its volume; never read ``accounted`` (server-free) bytes here.

        Those are proven by the mover's COPY STATUS; the pool side is checked by
        the backup server (``pool_server``: it digests the whole view, only
        digests cross the LAN) or, failing that, over the SAN without reading
        data (TEST UNIT READY, READ CAPACITY); their chunks then get no digest.
        """
        view = self._server_view(op) if op.accounted and op.pool_server else None
        r = self._verify_by_digest(op) if op.server else self._verify_on_san(op, check_pool=view is None)
        if not r.ok or not op.accounted:
            return r
        if view is not None:
            return VerifyResult(True, "", view)
        if op.server:  # no SAN path to the pool and no digests from the server: nothing vouches for the pool
            return VerifyResult(False, "cannot check the pool side of the server-free data: the backup server "
                                       "gave no digests and the client has no path to the pool device")
        return VerifyResult(True, "", without_chunks(r.digests, op.accounted, op.chunk_size))

    def _server_view(self, op: VerifyPool) -> tuple[tuple[int, str], ...] | None:
        """Chunk digests of the whole object as the backup server reads it from the pool, or None."""
        # both are in image order: merged as they are read, asked for in windows cut at chunk edges
        everything = heapq.merge(op.pieces, op.accounted, key=lambda q: q.image_offset)
        try:
            with LanClient(op.pool_server, self._pool_volume_of(op.pool_device), op.pool_offset, "read",
                           self.lan_timeout) as client:
                return tuple(d for window in digest_windows(everything, op.chunk_size, DIGEST_WINDOW_PIECES)
                             for d in client.digest(window, op.chunk_size))
        except Exception as exc:
            log.warning("pool-side digests from the backup server %s failed (%s); checking the pool device "
                        "over the SAN instead", op.pool_server, exc)
            return None

    def _verify_on_san(self, op: VerifyPool, check_pool: bool) -> VerifyResult:
        """Read the client's own pieces back from the pool device and compare; size-check the rest."""
        if not op.pieces and not (check_pool and op.accounted):
            return VerifyResult(True)
        try:
            pool = self.io(op.pool_device)
            pool.test_unit_ready()
        except Exception as exc:
            return VerifyResult(False, f"pool device {op.pool_device} does not answer: {exc}")
        need = op.pool_offset + max((q.image_offset + q.stored for q in chain(op.pieces, op.accounted)), default=0)
        if pool.size < need:
            return VerifyResult(False, f"pool device {op.pool_device} holds {pool.size} bytes, the object "
                                       f"needs {need}")
        if not op.pieces:
            return VerifyResult(True)
        try:
            src = self.io(op.source)
        except Exception as exc:
            return VerifyResult(False, f"cannot read the volume: {exc}")
        try:
            digester = ChunkDigester(op.chunk_size)
            for p in op.pieces:
                fetch = lambda q: pool.read(op.pool_offset + q.image_offset, q.stored)  # noqa: E731
                steps = [(0, p.length)] if p.compressed else [
                    (o, min(IO_CHUNK, p.length - o)) for o in range(0, p.length, IO_CHUNK)]
                whole = zlib.decompress(fetch(p)) if p.compressed else None
                for o, n in steps:
                    data = whole if whole is not None else fetch(
                        StoredPiece(p.image_offset + o, p.volume_offset + o, n))
                    if data != src.read(op.source_offset + p.volume_offset + o, n):
                        return VerifyResult(False, f"pool data at image offset {p.image_offset + o} differs "
                                                   "from the volume")
                    digester.update(p.volume_offset + o, data)
            return VerifyResult(True, "", digester.digests())
        except Exception as exc:
            return VerifyResult(False, f"reading the pool back failed: {exc}")

    def _verify_by_digest(self, op: VerifyPool) -> VerifyResult:
        """Through the server only digests cross the LAN; the client digests only what it moved itself."""
        if not op.pieces:
            return VerifyResult(True)
        try:
            with LanClient(op.server, self._pool_volume_of(op.pool_device), op.pool_offset, "read",
                           self.lan_timeout) as client:
                theirs = client.digest(op.pieces, op.chunk_size)
            src = self.io(op.source)
            ours = chunk_digests(op.pieces, lambda p: src.read(op.source_offset + p.volume_offset, p.length),
                                 op.chunk_size)
        except Exception as exc:
            return VerifyResult(False, f"verification through the backup server failed: {exc}")
        if ours != theirs:
            bad = next((c for (c, a), (_, b) in zip(ours, theirs) if a != b), None)
            return VerifyResult(False, f"pool and volume differ in chunk {bad} (digests from the backup server)")
        return VerifyResult(True, "", theirs)

    def _pool_volume_of(self, device: str) -> str:
        row = self.catalogue.db.execute("SELECT name FROM pool_volumes WHERE device=?", (device,)).fetchone()
        if row is None:
            raise LookupError(f"pool device {device!r} holds no catalogued pool volume")
        return row["name"]

    def _DigestVolume(self, op: DigestVolume) -> DigestResult:
        """The volume's chunk digests as a stream the job reads once, in chunk order: each chunk is read and
        digested as the job comes to it (a scan of millions of chunks holds none of them).  A read that
        fails on the way is a ValueError naming it, which fails the job."""
        try:
            src = self.io(op.source)
        except Exception as exc:
            return DigestResult((), failure_from(exc, "reading the volume failed", op.source))

        def scan() -> Iterator[tuple[int, str]]:
            try:
                yield from iter_chunk_digests(op.pieces, lambda p: src.read(op.source_offset + p.volume_offset,
                                                                            p.length), op.chunk_size)
            except Exception as exc:
                raise ValueError(failure_from(exc, "reading the volume failed", op.source).describe()) from None
        return DigestResult(LazySeq(scan))  # type: ignore[arg-type]
