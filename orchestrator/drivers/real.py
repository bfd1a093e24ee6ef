"""The real driver: a job's operations carried out with pyscsi devices and real sockets.

* data movers get EXTENDED COPY parameter lists (one command per list) and are
  asked RECEIVE COPY RESULTS for their OPERATING PARAMETERS, and after a
  failure for COPY STATUS and FAILED SEGMENT DETAILS, which tell the job how
  far the failing list got;
* disks and pool devices are read and written with READ(16)/WRITE(16) for the
  LAN-free path, verification and incremental scans;
* the LAN path streams to :mod:`orchestrator.lanserver` over TCP.

Devices are pyscsi devices (``LibiscsiDevice`` for iscsi:// URLs, SG_IO, or
``InProcessDevice`` around a handler) looked up by the names the job uses.
Transport failures become :class:`~orchestrator.ops.Failure` objects of kind
"timeout" / "lost-connection" / "sense", so the job can fail over.
"""
from __future__ import annotations

import logging
import subprocess
import time
import zlib
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from orchestrator.catalogue import Catalogue
from orchestrator.job_digest import ChunkDigester, chunk_digests
from orchestrator.lanserver import LanClient, LanProtocolError
from orchestrator.ops import (AbandonObject, BeginObject, CommandResult, CommitObject, CopyBatches,
                              CopyResult, DigestResult, DigestVolume, Failure, LanFreeRead, LanFreeWrite,
                              LanReceive, LanSend, ListAccount, MoverLimits, Operation,
                              OperatingParametersResult,
                              ReadOperatingParameters, ReleaseSnapshot, Result, RunCommand, SnapshotReleased,
                              SnapshotResult, StoredPiece, TakeSnapshot, TransferResult, VerifyPool,
                              VerifyResult, without_chunks)
from orchestrator.tape_ops import (CopyStatusResult, LocateTape, ReadCopyStatus, TapeClientRead, TapeClientWrite,
                                   TapePositioned, TapeServerRead, TapeServerWrite)

log = logging.getLogger(__name__)

IO_CHUNK = 1 << 20


def failure_from(exc: BaseException, what: str, device: str = "") -> Failure:
    """Classify an exception from a device or socket the way failover needs it."""
    from scsi.devices.errors import DeviceConnectionError, DeviceStatusError, DeviceTimeout

    sense = getattr(exc, "sense", None)
    if isinstance(sense, (bytes, bytearray)) and sense:
        return Failure("sense", what, device, bytes(sense), getattr(exc, "status", 2))
    if isinstance(exc, (DeviceTimeout, TimeoutError)):
        return Failure("timeout", f"{what}: {exc}", device)
    if isinstance(exc, (DeviceConnectionError, ConnectionError, EOFError, LanProtocolError)):
        return Failure("lost-connection", f"{what}: {exc}", device)
    if isinstance(exc, DeviceStatusError):
        return Failure("error", f"{what}: {exc}", device, status=exc.status)
    return Failure("error", f"{what}: {exc}", device)


class _SourceError(Exception):
    """A transfer failed while reading its source (not while writing its destination)."""

    def __init__(self, cause: BaseException):
        super().__init__(str(cause))
        self.cause = cause


class _Raw:
    """Just enough of pyscsi's ``SCSI`` for scsi.commands helpers, without its start-up INQUIRY."""

    def __init__(self, device: Any):
        self.device = device

    def execute(self, cmd: Any) -> None:
        from scsi.luns.remote import retry_unit_attention

        retry_unit_attention(lambda: self.device.execute(cmd), "data mover")


class BlockIO:
    """Byte-addressed reads and writes on a pyscsi block device (read-modify-write at the edges)."""

    def __init__(self, device: Any, name: str):
        from pyscsi.pyscsi.scsi import SCSI

        from scsi.designators import read_capacity
        from scsi.luns.remote import UnitAttentionRetry

        self.name = name
        # a target queues UNIT ATTENTIONs on every session when any of its LUs changes: resend, as initiators do
        self.scsi = SCSI(UnitAttentionRetry(device, name))
        self.block_size, blocks = read_capacity(self.scsi)
        self.size = blocks * self.block_size
        self.scsi.blocksize = self.block_size

    def test_unit_ready(self) -> None:
        """TEST UNIT READY: the device answers, without moving any data."""
        from pyscsi.pyscsi.scsi_cdb_testunitready import TestUnitReady
        from pyscsi.pyscsi.scsi_enum_command import sbc

        self.scsi.execute(TestUnitReady(sbc.TEST_UNIT_READY))

    def designator(self) -> str:
        """The LU designator (hex) a target descriptor names this device by (VPD 83h)."""
        from scsi.designators import choose_lu_designator, parse_vpd83, read_vpd83

        return choose_lu_designator(parse_vpd83(read_vpd83(self.scsi))).designator

    def _read_blocks(self, lba: int, count: int) -> bytes:
        out = bytearray()
        step = max(1, IO_CHUNK // self.block_size)
        for at in range(lba, lba + count, step):
            n = min(step, lba + count - at)
            out += bytes(self.scsi.read16(at, n).datain)
        return bytes(out)

    def read(self, offset: int, length: int) -> bytes:
        bs = self.block_size
        first, end = offset // bs, -(-(offset + length) // bs)
        data = self._read_blocks(first, end - first)
        skip = offset - first * bs
        return data[skip:skip + length]

    def write(self, offset: int, data: bytes) -> None:
        bs = self.block_size
        head = offset % bs
        tail = (-(offset + len(data))) % bs
        if head or tail:  # widen to whole blocks
            first = offset - head
            blocks = bytearray(self.read(first, head + len(data) + tail))
            blocks[head:head + len(data)] = data
            offset, data = first, bytes(blocks)
        step = max(1, IO_CHUNK // bs) * bs
        for o in range(0, len(data), step):
            part = data[o:o + step]
            self.scsi.write16((offset + o) // bs, len(part) // bs, part)


@dataclass
class RealDriver:
    """Executes job operations.

    ``movers``: data mover name -> pyscsi device that accepts EXTENDED COPY.
    ``devices``: disk / pool device name -> pyscsi block device.
    ``snapshots``: optional provider ``(TakeSnapshot) -> SnapshotResult`` (no
    copy-on-write snapshot is built in: without one, imagetype snapshot fails
    clearly and imagetype static is the way).
    """

    catalogue: Catalogue
    movers: Mapping[str, Any]
    devices: Mapping[str, Any]
    snapshots: Callable[[TakeSnapshot], SnapshotResult] | None = None
    command_timeout: float = 600.0
    lan_timeout: float = 60.0

    def __post_init__(self) -> None:
        self._io: dict[str, BlockIO] = {}

    def io(self, name: str) -> BlockIO:
        if name not in self._io:
            if name not in self.devices:
                raise LookupError(f"no device named {name!r} is configured "
                                  f"(known: {', '.join(sorted(self.devices)) or 'none'})")
            self._io[name] = BlockIO(self.devices[name], name)
        return self._io[name]

    def execute(self, op: Operation) -> Result:
        if isinstance(op, (BeginObject, CommitObject, AbandonObject)):
            return self.catalogue.execute(op)
        return getattr(self, "_" + type(op).__name__)(op)

    # -- client-side commands and snapshots --------------------------------------------------
    def _RunCommand(self, op: RunCommand) -> CommandResult:
        try:
            r = subprocess.run(op.command, shell=True, capture_output=True, text=True,
                               timeout=self.command_timeout)
        except subprocess.TimeoutExpired:
            return CommandResult(124, f"{op.phase}snapshotcmd timed out after {self.command_timeout} s")
        return CommandResult(r.returncode, (r.stdout + r.stderr)[-2000:])

    def _TakeSnapshot(self, op: TakeSnapshot) -> SnapshotResult:
        if self.snapshots is None:
            return SnapshotResult(False, reason="no copy-on-write snapshot provider is configured on this "
                                                "client", available=False)
        return self.snapshots(op)

    def _ReleaseSnapshot(self, op: ReleaseSnapshot) -> SnapshotReleased:
        self._io.pop(op.snapshot, None)
        release = getattr(self.snapshots, "release", None)
        return release(op) if release else SnapshotReleased()

    # -- data movers ---------------------------------------------------------------------------
    def _mover(self, name: str) -> _Raw:
        if name not in self.movers:
            raise LookupError(f"no data mover named {name!r} is configured")
        return _Raw(self.movers[name])

    def _ReadOperatingParameters(self, op: ReadOperatingParameters) -> OperatingParametersResult:
        from scsi.commands import operating_parameters

        try:
            return OperatingParametersResult(MoverLimits.from_operating_parameters(
                operating_parameters(self._mover(op.mover))))
        except Exception as exc:  # any device trouble: the job tries the next mover
            return OperatingParametersResult(failure=failure_from(exc, "RECEIVE COPY RESULTS (03h) failed",
                                                                  op.mover))

    def _CopyBatches(self, op: CopyBatches) -> CopyResult:
        from scsi.commands import extended_copy

        t0 = time.monotonic()
        try:
            mover = self._mover(op.mover)
        except LookupError as exc:
            return CopyResult(0, Failure("lost-connection", str(exc), op.mover))
        acct: list[ListAccount] = []
        for bi, batch in enumerate(op.batches[op.first_batch:]):
            for li, plist in enumerate(batch.lists):
                data = plist.payload()
                if not data:
                    return CopyResult(bi, Failure("error", "parameter list was not encoded", op.mover), li, 0,
                                      accounting=tuple(acct))
                try:
                    extended_copy(mover, data)
                except Exception as exc:
                    failure = failure_from(exc, f"EXTENDED COPY list {plist.list_id} failed", op.mover)
                    done = None
                    if failure.kind == "sense":
                        done, details = self._progress(mover, plist.list_id, failure.sense)
                        if details:
                            failure = Failure("sense", failure.message, op.mover, details, failure.status)
                    return CopyResult(bi, failure, li, done, time.monotonic() - t0, tuple(acct))
                acct.append(self._account(mover, plist.list_id))
        return CopyResult(len(op.batches) - op.first_batch, elapsed=time.monotonic() - t0,
                          accounting=tuple(acct))

    @staticmethod
    def _account(mover: _Raw, list_id: int) -> ListAccount:
        """The mover's own COPY STATUS of a list that ended GOOD (what verifies server-free data)."""
        from scsi.commands import copy_status
        from scsi.xcopy.results import CopyManagerStatus

        try:
            st = copy_status(mover, list_id)
        except Exception as exc:
            return ListAccount(list_id, False, 0, 0, problem=f"RECEIVE COPY RESULTS (00h) failed: {exc}")
        return ListAccount(list_id, st.status == CopyManagerStatus.COMPLETED, int(st.segments_processed),
                           st.bytes_transferred, 1 << (10 * int(st.transfer_count_units)))

    @staticmethod
    def _progress(mover: _Raw, list_id: int, sense: bytes) -> tuple[int | None, bytes]:
        """Segments known done in a failed list, and the FAILED SEGMENT DETAILS sense."""
        from scsi.commands import copy_status, failed_segment_details
        from scsi.sense import Sense

        done: int | None = None
        details = b""
        try:
            # COPY ABORTED carries the failing segment's number in COMMAND-SPECIFIC bytes 2-3
            seg = Sense.decode(sense).segment  # None unless COPY ABORTED names a segment
            if seg is not None:
                done = seg
        except Exception:
            pass
        try:
            st = copy_status(mover, list_id)
            # SEGMENTS PROCESSED may count the failing one: trust one less, never more
            by_status = max(0, int(st.segments_processed) - 1)
            done = by_status if done is None else min(done, int(st.segments_processed))
        except Exception as exc:
            log.info("COPY STATUS for list %d unavailable: %s", list_id, exc)
        try:
            fsd = failed_segment_details(mover, list_id)
            details = bytes.fromhex(fsd.sense_data) if fsd.sense_data else b""
        except Exception as exc:
            log.info("FAILED SEGMENT DETAILS for list %d unavailable: %s", list_id, exc)
        return done, details

    # -- tape pools ------------------------------------------------------------------------------
    def _LocateTape(self, op: LocateTape) -> TapePositioned:
        from orchestrator.drivers.real_tape import locate

        if op.device not in self.devices:
            return TapePositioned(failure=Failure("lost-connection", f"no tape drive named {op.device!r} is "
                                                  "configured", op.device))
        return locate(self.devices[op.device], op.device, op)

    def _ReadCopyStatus(self, op: ReadCopyStatus) -> CopyStatusResult:
        from orchestrator.drivers.real_tape import copy_status

        if op.mover not in self.movers:
            return CopyStatusResult(failure=Failure("lost-connection", f"no data mover named {op.mover!r}",
                                                    op.mover))
        return copy_status(self.movers[op.mover], op.mover, op)

    def _tape(self, name: str):
        from orchestrator.drivers.real_tape import ScsiTape

        if name not in self.devices:
            raise LookupError(f"no tape drive named {name!r} is configured")
        return ScsiTape(self.devices[name], name)

    def _TapeClientWrite(self, op: TapeClientWrite) -> TransferResult:
        from orchestrator.tape_records import client_write

        try:
            src = self.io(op.source)
        except Exception as exc:  # noqa: BLE001 - blamed on the source, as LAN-free writes are
            return TransferResult(0, failure=self._client_source_failure(exc, op.source))
        try:
            tape = self._tape(op.drive)
        except LookupError as exc:
            return TransferResult(0, failure=Failure("lost-connection", str(exc), op.drive))
        t0 = time.monotonic()
        r = client_write(op, lambda p: src.read(op.source_offset + p.volume_offset, p.length), tape,
                         lambda exc, what, dev: failure_from(exc, what, dev))
        return TransferResult(r.pieces_done, r.stored, r.failure, time.monotonic() - t0)

    def _TapeServerWrite(self, op: TapeServerWrite) -> TransferResult:
        from orchestrator.drivers.real_tape import lan_write

        return lan_write(self, op)

    def _TapeServerRead(self, op: TapeServerRead) -> TransferResult:
        from orchestrator.drivers.real_tape import lan_read

        return lan_read(self, op)

    def _TapeClientRead(self, op: TapeClientRead) -> TransferResult:
        from orchestrator.tape_records import client_read

        try:
            dest = self.io(op.destination)
            tape = self._tape(op.drive)
        except Exception as exc:  # noqa: BLE001
            return TransferResult(0, failure=failure_from(exc, "cannot open the restore devices", op.destination))
        t0 = time.monotonic()
        r = client_read(op, lambda p, data: dest.write(op.destination_offset + p.volume_offset, data), tape,
                        lambda exc, what, dev: failure_from(exc, what, dev))
        return TransferResult(r.pieces_done, r.stored, r.failure, time.monotonic() - t0)

    # -- LAN-free and LAN ------------------------------------------------------------------------
    def _pieces(self, pieces, read: Callable[[Any], bytes], write: Callable[[Any, bytes], None],
                compress: bool, what: str, device: str, finish: Callable[[], None] | None = None,
                source: str = "") -> TransferResult:
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
                        continue
                write(p, data)
                stored.append(StoredPiece(p.image_offset, p.volume_offset, p.length))
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
        return self._pieces(op.pieces, lambda p: src.read(op.source_offset + p.volume_offset, p.length),
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
            return self._pieces(op.pieces, lambda p: src.read(op.source_offset + p.volume_offset, p.length),
                                lambda p, d: client.put(p.image_offset, p.length, d, len(d) < p.length),
                                op.compress, "LAN transfer failed", op.server, client.sync, op.source)
        finally:
            client.close()

    @staticmethod
    def _client_source_failure(exc: BaseException, source: str) -> Failure:
        """Opening the volume failed on the client: blame the client's disk, not the path behind it."""
        return failure_from(exc, f"the client cannot open its volume {source}", source)

    def _restore(self, pieces, read_stored: Callable[[StoredPiece], bytes], dest: BlockIO, base: int,
                 what: str, device: str) -> TransferResult:
        def read(p: StoredPiece) -> bytes:
            data = read_stored(p)
            return zlib.decompress(data) if p.compressed else data

        return self._pieces(pieces, read, lambda p, d: dest.write(base + p.volume_offset, d), False, what,
                            dest.name, source=device)

    def _LanFreeRead(self, op: LanFreeRead) -> TransferResult:
        try:
            pool, dest = self.io(op.pool_device), self.io(op.destination)
        except Exception as exc:
            return TransferResult(0, failure=failure_from(exc, "LAN-free devices unavailable", op.pool_device))
        return self._restore(op.pieces, lambda p: pool.read(op.pool_offset + p.image_offset, p.stored), dest,
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
                                 dest, op.destination_offset, "LAN restore failed", op.server)
        finally:
            client.close()

    # -- verification and scans -------------------------------------------------------------------
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
        everything = sorted(op.pieces + op.accounted, key=lambda q: q.image_offset)
        try:
            with LanClient(op.pool_server, self._pool_volume_of(op.pool_device), op.pool_offset, "read",
                           self.lan_timeout) as client:
                return client.digest(everything, op.chunk_size)
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
        need = op.pool_offset + max((q.image_offset + q.stored for q in op.pieces + op.accounted), default=0)
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
        try:
            src = self.io(op.source)
            return DigestResult(chunk_digests(op.pieces, lambda p: src.read(op.source_offset + p.volume_offset,
                                                                            p.length), op.chunk_size))
        except Exception as exc:
            return DigestResult((), failure_from(exc, "reading the volume failed", op.source))
