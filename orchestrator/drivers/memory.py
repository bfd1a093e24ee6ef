"""An in-memory driver: volumes and pool devices are byte arrays, faults are injected by rule.

It executes the job's operations with real bytes (so a backup can be restored
and compared byte for byte) and deterministic SAN faults: a COPY ABORTED with
FAILED SEGMENT DETAILS in segment j, a timeout or lost connection in the
middle of a list (the interrupted segment is left half written, as a real
mover would leave it), a LAN-free pool device error, a broken LAN stream.
Tests and the demo use it; it shares the catalogue and digest code with the
real driver so both answer the job identically.
"""
from __future__ import annotations

import heapq
import logging
import zlib
from itertools import chain
from dataclasses import dataclass, field
from typing import Any, Literal

from orchestrator.catalogue import Catalogue
from orchestrator.chunk_runs import without_chunks
from orchestrator.job.digest import SpoolingDigester, iter_chunk_digests
from orchestrator.piece_stream import LazySeq
from orchestrator.ops import (AbandonObject, BeginObject, CommandResult, CommitObject, CopyBatches,
                              CopyResult, DigestResult, DigestVolume, Failure, LanFreeRead, LanFreeWrite,
                              LanReceive, LanSend, ListAccount, MoverLimits, Operation,
                              OperatingParametersResult, ParameterListPlan,
                              ReadOperatingParameters, ReleaseSnapshot, Result, RunCommand,
                              SnapshotReleased, SnapshotResult, StoredPiece, TakeSnapshot, TransferResult,
                              VerifyPool, VerifyResult)

log = logging.getLogger(__name__)

# fixed-format sense: COPY ABORTED, 0Dh/02h COPY TARGET DEVICE NOT REACHABLE (SPC-4 r36f 5.17.7.4)
COPY_ABORTED_TARGET_UNREACHABLE = bytes.fromhex("70000A000000000A000000000D0200000000")


@dataclass
class Fault:
    """Fail an operation once its ``after_bytes`` mark is crossed (counted per operation kind).

    ``where``: "copy" (a mover's EXTENDED COPY), "opparams" (RECEIVE COPY RESULTS), "lan-free", "lan".
    ``kind``: "sense" (COPY ABORTED, segment known), "timeout", "lost-connection".
    """

    where: Literal["copy", "opparams", "lan-free", "lan"]
    after_bytes: int = 0
    kind: Literal["sense", "timeout", "lost-connection"] = "sense"
    mover: str = ""  # only this mover ("" = any)
    times: int = 1  # how often it fires
    fired: int = 0


@dataclass
class MemoryDriver:
    devices: dict[str, bytearray]
    catalogue: Catalogue
    movers: dict[str, MoverLimits] = field(default_factory=dict)
    faults: list[Fault] = field(default_factory=list)
    command_returncodes: dict[str, int] = field(default_factory=dict)
    snapshot_cache_exhausted: bool = False
    log: list[str] = field(default_factory=list)  # operation names, for tests
    counters: dict[str, int] = field(default_factory=dict)
    writes: dict[str, list[tuple[int, int]]] = field(default_factory=dict)  # device -> (offset, len)
    miscount: dict[str, int] = field(default_factory=dict)  # mover -> bytes its COPY STATUS under-reports
    tapes: Any = None  # orchestrator.drivers.memory_tape.MemoryTapes: tape drives and the movers reaching them

    # -- helpers --------------------------------------------------------------------
    def _dev(self, name: str) -> bytearray:
        try:
            return self.devices[name]
        except KeyError:
            raise LookupError(f"unknown device {name!r}") from None

    def _write(self, name: str, offset: int, data: bytes) -> None:
        dev = self._dev(name)
        if offset + len(data) > len(dev):
            raise OSError(f"{name}: write of {len(data)} bytes at {offset} runs past its end {len(dev)}")
        dev[offset:offset + len(data)] = data
        self.writes.setdefault(name, []).append((offset, len(data)))

    def _fault(self, where: str, start: int, n: int, mover: str = "") -> tuple[Fault, int] | None:
        """The fault that fires inside bytes [start, start+n) of this kind's counter, and where."""
        for f in self.faults:
            if f.where != where or f.fired >= f.times or (f.mover and f.mover != mover):
                continue
            if start <= f.after_bytes < start + n or (n == 0 and f.after_bytes <= start):
                return f, f.after_bytes - start
        return None

    # -- dispatch -------------------------------------------------------------------
    def execute(self, op: Operation) -> Result:
        self.log.append(type(op).__name__)
        if isinstance(op, (BeginObject, CommitObject, AbandonObject)):
            return self.catalogue.execute(op)
        if self.tapes is not None and self.tapes.handles(op):  # tape pools: records, positions, COPY STATUS
            return self.tapes.execute(op)
        handler = getattr(self, "_" + type(op).__name__)
        return handler(op)

    def _RunCommand(self, op: RunCommand) -> CommandResult:
        return CommandResult(self.command_returncodes.get(op.command, 0), f"ran {op.command}")

    def _TakeSnapshot(self, op: TakeSnapshot) -> SnapshotResult:
        name = f"snap:{op.source}"
        self.devices[name] = bytearray(self._dev(op.source))
        return SnapshotResult(True, name)

    def _ReleaseSnapshot(self, op: ReleaseSnapshot) -> SnapshotReleased:
        self.devices.pop(op.snapshot, None)
        return SnapshotReleased(self.snapshot_cache_exhausted, 0)

    def _ReadOperatingParameters(self, op: ReadOperatingParameters) -> OperatingParametersResult:
        if op.mover not in self.movers:
            return OperatingParametersResult(failure=Failure("lost-connection", "no such data mover",
                                                             op.mover))
        hit = self._fault("opparams", 0, 0, op.mover)
        if hit:
            hit[0].fired += 1
            return OperatingParametersResult(failure=Failure(hit[0].kind, "RECEIVE COPY RESULTS failed",
                                                             op.mover))
        return OperatingParametersResult(self.movers[op.mover])

    def _CopyBatches(self, op: CopyBatches) -> CopyResult:
        src, dst = self._dev(op.source), self._dev(op.destination)
        key = f"copy:{op.mover}"
        acct: list[ListAccount] = []  # what the mover's COPY STATUS reports for each completed list
        for bi, batch in enumerate(op.batches[op.first_batch:]):
            for li, plist in enumerate(batch.lists):
                for si, seg in enumerate(plist.segments):
                    bs = seg.length // seg.blocks
                    s, d, n = seg.src_lba * bs, seg.dst_lba * bs, seg.length
                    done = self.counters.get(key, 0)
                    hit = self._fault("copy", done, n, op.mover)
                    if hit:
                        f, at = hit
                        f.fired += 1
                        # the interrupted segment is left partly written
                        self._write(op.destination, d, bytes(src[s:s + at]))
                        self.counters[key] = done + at
                        failure = Failure(f.kind, "EXTENDED COPY failed" if f.kind == "sense" else
                                          f"EXTENDED COPY {f.kind}", op.mover,
                                          COPY_ABORTED_TARGET_UNREACHABLE if f.kind == "sense" else b"",
                                          0x02 if f.kind == "sense" else 0)
                        return CopyResult(bi, failure, li, si if f.kind == "sense" else None,
                                          accounting=tuple(acct))
                    if s + n > len(src):
                        return CopyResult(bi, Failure("sense", "source read past the end", op.source), li, si,
                                          accounting=tuple(acct))
                    self._write(op.destination, d, bytes(src[s:s + n]))
                    self.counters[key] = done + n
                acct.append(self.account(op.mover, plist))
        return CopyResult(len(op.batches) - op.first_batch, accounting=tuple(acct))

    def account(self, mover: str, plist: ParameterListPlan) -> ListAccount:
        """COPY STATUS of a list that completed; ``miscount`` (mover -> bytes) fakes a lying mover."""
        short = self.miscount.get(mover, 0)
        return ListAccount(plist.list_id, True, len(plist.segments), plist.nbytes - short)

    def _transfer(self, where: str, pieces: tuple, src_read, dst_write, compress: bool = False
                  ) -> TransferResult:
        stored: list[StoredPiece] = []
        for i, p in enumerate(pieces):
            done = self.counters.get(where, 0)
            hit = self._fault(where, done, p.length)
            if hit:
                hit[0].fired += 1
                return TransferResult(i, tuple(stored), Failure(hit[0].kind, f"{where} transfer failed"))
            data = src_read(p)
            if compress:
                packed = zlib.compress(data, 6)
                if len(packed) < len(data):
                    dst_write(p, packed)
                    stored.append(StoredPiece(p.image_offset, p.volume_offset, p.length, True, len(packed)))
                    self.counters[where] = done + p.length
                    continue
            dst_write(p, data)
            stored.append(StoredPiece(p.image_offset, p.volume_offset, p.length))
            self.counters[where] = done + p.length
        return TransferResult(len(pieces), tuple(stored))

    def _backup_transfer(self, where: str, source: str, base: int, pool: str, pool_offset: int, pieces,
                         compress):
        src = self._dev(source)
        return self._transfer(where, pieces, lambda p: bytes(src[base + p.volume_offset:
                                                                  base + p.volume_offset + p.length]),
                              lambda p, data: self._write(pool, pool_offset + p.image_offset, data), compress)

    def _LanFreeWrite(self, op: LanFreeWrite) -> TransferResult:
        return self._backup_transfer("lan-free", op.source, op.source_offset, op.pool_device, op.pool_offset,
                                     op.pieces, op.compress)

    def _LanSend(self, op: LanSend) -> TransferResult:
        pool = self.catalogue_device(op.pool_volume)
        return self._backup_transfer("lan", op.source, op.source_offset, pool, op.pool_offset, op.pieces,
                                     op.compress)

    def catalogue_device(self, pool_volume: str) -> str:
        row = self.catalogue.db.execute("SELECT device FROM pool_volumes WHERE name=?",
                                        (pool_volume,)).fetchone()
        if row is None:
            raise LookupError(f"unknown pool volume {pool_volume!r}")
        return row["device"]

    def read_stored(self, pool: str, pool_offset: int, p: StoredPiece) -> bytes:
        dev = self._dev(pool)
        at = pool_offset + p.image_offset
        data = bytes(dev[at:at + p.stored])
        return zlib.decompress(data) if p.compressed else data

    def _restore_transfer(self, where, pool, pool_offset, dest, dest_offset, pieces):
        return self._transfer(where, pieces, lambda p: self.read_stored(pool, pool_offset, p),
                              lambda p, data: self._write(dest, dest_offset + p.volume_offset, data))

    def _LanFreeRead(self, op: LanFreeRead) -> TransferResult:
        return self._restore_transfer("lan-free", op.pool_device, op.pool_offset, op.destination,
                                      op.destination_offset, op.pieces)

    def _LanReceive(self, op: LanReceive) -> TransferResult:
        return self._restore_transfer("lan", self.catalogue_device(op.pool_volume), op.pool_offset,
                                      op.destination, op.destination_offset, op.pieces)

    def _VerifyPool(self, op: VerifyPool) -> VerifyResult:
        """Compare what the client moved; ``accounted`` pieces are never read on the client's side."""
        pool = self._dev(op.pool_device)
        need = op.pool_offset + max((p.image_offset + p.stored for p in chain(op.pieces, op.accounted)), default=0)
        if need > len(pool):
            return VerifyResult(False, f"pool device {op.pool_device} holds {len(pool)} bytes, the object "
                                       f"needs {need}")
        if op.pieces:
            src, base = self._dev(op.source), op.source_offset
            for p in op.pieces:
                if self.read_stored(op.pool_device, op.pool_offset, p) != \
                        bytes(src[base + p.volume_offset:base + p.volume_offset + p.length]):
                    return VerifyResult(False, f"pool data at image offset {p.image_offset} differs from the "
                                               "volume")
        # the backup server digests the whole view on the pool side (both streams merged in image order, as the
        # real driver asks it); without one, only the client's pieces, digested into a spool as they come
        whole = bool(op.pool_server) or not op.accounted
        digested = heapq.merge(op.pieces, op.accounted, key=lambda q: q.image_offset) if whole else op.pieces
        digester = SpoolingDigester(op.chunk_size)
        for p in digested:
            digester.update(p.volume_offset, self.read_stored(op.pool_device, op.pool_offset, p))
        spool = digester.digests()
        return VerifyResult(True, "", spool if whole else without_chunks(spool, op.accounted, op.chunk_size))

    def _DigestVolume(self, op: DigestVolume) -> DigestResult:
        """The chunk digests as a stream the job reads once, in chunk order (as the real driver gives them)."""
        src, base = self._dev(op.source), op.source_offset
        return DigestResult(LazySeq(lambda: iter_chunk_digests(  # type: ignore[arg-type]
            op.pieces, lambda p: bytes(src[base + p.volume_offset:base + p.volume_offset + p.length]),
            op.chunk_size)))
