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
from typing import Callable, Iterable, Iterator

from orchestrator.catalogue import Catalogue
from orchestrator.chunk_runs import without_chunks
from orchestrator.digest_spool import DigestSpool
from orchestrator.drivers.coalesce import volume_reader
from orchestrator.drivers.real_devices import IO_CHUNK, BlockIO, failure_from
from orchestrator.job.digest import SpoolingDigester, digest_windows, first_difference, iter_chunk_digests
from orchestrator.lan.client import LanClient
from orchestrator.piece_stream import LazySeq
from orchestrator.ops import DigestResult, DigestVolume, StoredPiece, VerifyPool, VerifyResult

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

    def _server_view(self, op: VerifyPool) -> DigestSpool | None:
        """Chunk digests of the whole object as the backup server reads it from the pool (a spool: one a chunk of
        the image), or None."""
        # both are in image order: merged as they are read, asked for in windows cut at chunk edges
        everything = heapq.merge(op.pieces, op.accounted, key=lambda q: q.image_offset)
        try:
            return self._pool_digests(op.pool_server, op, everything)
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
            digester = SpoolingDigester(op.chunk_size)  # image order is volume order: chunks finish as we go
            fetch = volume_reader(pool, op.pool_offset, op.pieces, by_image=True)
            volume = volume_reader(src, op.source_offset, op.pieces)
            for p in op.pieces:
                steps = [(0, p.length)] if p.compressed else [
                    (o, min(IO_CHUNK, p.length - o)) for o in range(0, p.length, IO_CHUNK)]
                whole = zlib.decompress(fetch(p)) if p.compressed else None
                for o, n in steps:
                    data = whole if whole is not None else fetch(
                        StoredPiece(p.image_offset + o, p.volume_offset + o, n))
                    if data != volume(StoredPiece(p.image_offset + o, p.volume_offset + o, n)):
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
            theirs = self._pool_digests(op.server, op, op.pieces)
            src = self.io(op.source)
            # ours as a stream, compared pair by pair with the spool of theirs: neither is held whole
            bad = first_difference(iter_chunk_digests(op.pieces, volume_reader(src, op.source_offset, op.pieces),
                                                      op.chunk_size), theirs)
        except Exception as exc:
            return VerifyResult(False, f"verification through the backup server failed: {exc}")
        if bad is not None:
            return VerifyResult(False, f"pool and volume differ in chunk {bad} (digests from the backup server)")
        return VerifyResult(True, "", theirs)

    def _pool_digests(self, server: str, op: VerifyPool, pieces: Iterable[StoredPiece]) -> DigestSpool:
        """The chunk digests the backup server computes from the pool for ``pieces`` (image order), asked for in
        windows cut at chunk edges, its answers' rows gathered in one spool."""
        spool = DigestSpool()
        with LanClient(server, self._pool_volume_of(op.pool_device), op.pool_offset, "read",
                       self.lan_timeout) as client:
            for window in digest_windows(pieces, op.chunk_size, DIGEST_WINDOW_PIECES):
                client.digest(window, op.chunk_size, into=spool)
        return spool

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
                yield from iter_chunk_digests(op.pieces, volume_reader(src, op.source_offset, op.pieces),
                                              op.chunk_size)
            except Exception as exc:
                raise ValueError(failure_from(exc, "reading the volume failed", op.source).describe()) from None
        return DigestResult(LazySeq(scan))  # type: ignore[arg-type]
