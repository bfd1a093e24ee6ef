"""The real driver's LAN-free and LAN transfers: pieces between a volume and a pool device or the backup server.

Disks and pool devices are read and written with READ(16)/WRITE(16) for the
LAN-free path; in local mode the LAN path streams to the in-process pool of the site's ``lan_pool``
(:mod:`orchestrator.lan.local_pool`, no network listener).
"""
from __future__ import annotations

import time
import zlib
from typing import Any, Callable

from orchestrator.drivers.coalesce import volume_reader
from orchestrator.drivers.real_devices import BlockIO, failure_from
from orchestrator.lan.client import LanClient
from orchestrator.ops import (Failure, LanFreeRead, LanFreeWrite, LanReceive, LanSend, StoredPiece,
                              TransferResult)


class _SourceError(Exception):
    """A transfer failed while reading its source (not while writing its destination)."""

    def __init__(self, cause: BaseException):
        super().__init__(str(cause))
        self.cause = cause


class TransferOps:
    """RealDriver's LAN-free and LAN transfers (a mixin: needs ``io(name)`` and ``lan_timeout``)."""

    io: Callable[[str], BlockIO]
    lan_timeout: float

    def _pieces(self, pieces, read: Callable[[Any], bytes], write: Callable[[Any, bytes], None],
                compress: bool, what: str, device: str, finish: Callable[[], None] | None = None,
                source: str = "", path: str = "lan-free") -> TransferResult:
        t0 = time.monotonic()
        stored: list[StoredPiece] = []
        try:
            for p in pieces:
                try:
                    data = read(p)
                except Exception as exc:
                    raise _SourceError(exc) from exc
                if compress:
                    packed = zlib.compress(data, 6)
                    if len(packed) < len(data):
                        write(p, packed)
                        stored.append(StoredPiece(p.image_offset, p.volume_offset, p.length, True, len(packed)))
                        self._moved(path, p.length)
                        continue
                write(p, data)
                stored.append(StoredPiece(p.image_offset, p.volume_offset, p.length))
                self._moved(path, p.length)
            if finish:
                finish()
        except Exception as exc:
            # pieces written before a failed final sync are not trusted
            n = len(stored) if not finish or len(stored) < len(pieces) else 0
            if isinstance(exc, _SourceError):
                failure = failure_from(exc.cause, "read failed", source or "the source")
            else:
                failure = failure_from(exc, what, device)
            return TransferResult(n, tuple(stored[:n]), failure, time.monotonic() - t0)
        return TransferResult(len(stored), tuple(stored), elapsed=time.monotonic() - t0)

    def _moved(self, path: str, nbytes: int) -> None:
        progress = getattr(self, "on_progress", None)
        if progress is not None:
            progress(path, nbytes)

    def _LanFreeWrite(self, op: LanFreeWrite) -> TransferResult:
        try:
            src = self.io(op.source)
        except Exception as exc:
            return TransferResult(0, failure=self._client_source_failure(exc, op.source))
        try:
            pool = self.io(op.pool_device)
        except Exception as exc:
            return TransferResult(0, failure=failure_from(exc, "the client cannot open pool device "
                                                                f"{op.pool_device}", op.pool_device))
        return self._pieces(op.pieces, volume_reader(src, op.source_offset, op.pieces),
                            lambda p, d: pool.write(op.pool_offset + p.image_offset, d), op.compress,
                            "LAN-free write failed", op.pool_device, source=op.source)

    def _LanSend(self, op: LanSend) -> TransferResult:
        try:
            src = self.io(op.source)
        except Exception as exc:
            return TransferResult(0, failure=self._client_source_failure(exc, op.source))
        try:
            client = LanClient(op.server, op.pool_volume, op.pool_offset, timeout=self.lan_timeout)
        except Exception as exc:
            return TransferResult(0, failure=failure_from(exc, "cannot reach the backup server", op.server))
        try:
            return self._pieces(op.pieces, volume_reader(src, op.source_offset, op.pieces),
                                lambda p, d: client.put(p.image_offset, p.length, d, len(d) < p.length),
                                op.compress, "LAN transfer failed", op.server, client.sync, op.source, "lan")
        finally:
            client.close()

    @staticmethod
    def _client_source_failure(exc: BaseException, source: str) -> Failure:
        """Opening the volume failed on the client: blame the client's disk, not the path behind it."""
        return failure_from(exc, f"the client cannot open its volume {source}", source)

    def _restore(self, pieces, read_stored: Callable[[StoredPiece], bytes], dest: BlockIO, base: int,
                 what: str, device: str, path: str = "lan-free") -> TransferResult:
        def read(p: StoredPiece) -> bytes:
            data = read_stored(p)
            return zlib.decompress(data) if p.compressed else data

        return self._pieces(pieces, read, lambda p, d: dest.write(base + p.volume_offset, d), False, what,
                            dest.name, source=device, path=path)

    def _LanFreeRead(self, op: LanFreeRead) -> TransferResult:
        try:
            pool, dest = self.io(op.pool_device), self.io(op.destination)
        except Exception as exc:
            return TransferResult(0, failure=failure_from(exc, "LAN-free devices unavailable", op.pool_device))
        return self._restore(op.pieces, volume_reader(pool, op.pool_offset, op.pieces, by_image=True), dest,
                             op.destination_offset, "LAN-free restore failed", op.pool_device)

    def _LanReceive(self, op: LanReceive) -> TransferResult:
        try:
            dest = self.io(op.destination)
            client = LanClient(op.server, op.pool_volume, op.pool_offset, "read", self.lan_timeout)
        except Exception as exc:
            return TransferResult(0, failure=failure_from(exc, "cannot reach the backup server", op.server))
        try:
            return self._restore(op.pieces, lambda p: client.get(p.image_offset, p.length, p.stored,
                                                                 p.compressed),
                                 dest, op.destination_offset, "LAN restore failed", op.server, "lan")
        finally:
            client.close()
