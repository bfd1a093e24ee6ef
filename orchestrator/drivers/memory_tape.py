"""Tape pools for the in-memory driver: tapes as lists of records, the copy manager engine as the mover.

:class:`MemoryTapes` answers the tape side of a job -- :class:`CopyBatches`
to or from a tape (00h/10h/01h lists sent, as bytes, to the shared copy
manager engine of :mod:`scsi.copymgr`, so records, filemarks, COPY STATUS and
COPY ABORTED sense are the real ones), :class:`LocateTape` and
:class:`ReadCopyStatus` -- over the memory driver's byte arrays (disks) and
:class:`MemoryTapeLun` tapes.  Faults are injected per device: a drive that
answers MEDIUM ERROR after N records, a disk that goes NOT READY after N bytes
read.  :class:`orchestrator.drivers.memory.MemoryDriver` delegates to it for
tape devices.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field

from orchestrator.ops import CopyBatches, CopyResult, Failure, ListAccount, MoverLimits, TransferResult
from orchestrator.ops.tape import (
    CopyStatusResult,
    LocateTape,
    ReadCopyStatus,
    TapeClientRead,
    TapeClientWrite,
    TapePositioned,
    TapeServerRead,
    TapeServerWrite,
)
from orchestrator.ops.tape_records import client_read, client_write
from scsi.copymgr import CopyLimits, CopyManager
from scsi.copymgr.client import Client
from scsi.copymgr.io import InlineDriver
from scsi.luns.base import LunError, SpaceCode, StreamLun, medium_error, not_ready
from scsi.luns.memory import BytearrayLun
from scsi.result import Nexus
from scsi.sense import Sense, SenseError
from scsi.xcopy import ParameterList

log = logging.getLogger(__name__)

NEXUS = Nexus("iqn.memory:client", "iqn.memory:mover")


class MemoryTapeLun(StreamLun):
    """A tape kept as a list of records (None = filemark); writing mid-tape erases what follows.

    ``fail_after_records``: the drive answers MEDIUM ERROR once that many more
    records were written (None: never), as a failing drive would.
    """

    def __init__(self, name: str, *, naa: bytes | None = None, fail_after_records: int | None = None):
        super().__init__(name, serial=f"memtape-{name}", naa=naa)
        self.records: list[bytes | None] = []
        self._pos = 0
        self._lock = threading.Lock()
        self.fail_after_records = fail_after_records

    def position(self) -> int:
        return self._pos

    def objects(self) -> list[bytes | None]:
        """Every record (None for a filemark), in tape order -- as :meth:`scsi.luns.TapeLun.objects`."""
        with self._lock:
            return list(self.records)

    def file_number(self, position: int | None = None) -> int:
        """Filemarks before ``position`` (the current one by default)."""
        end = self._pos if position is None else position
        return sum(1 for r in self.records[:end] if r is None)

    def _next(self, length: int, partial: bytes) -> bytes:
        if self._pos >= len(self.records):
            raise LunError(f"tape {self.name}: end of data at object {self._pos}", key=0x8, asc=0x00, ascq=0x05,
                           partial=partial, information=self._pos)
        rec = self.records[self._pos]
        self._pos += 1
        if rec is None:
            raise LunError(f"tape {self.name}: filemark at object {self._pos - 1}", key=0x0, asc=0x00, ascq=0x01,
                           filemark=True, partial=partial, information=self._pos - 1)
        if len(rec) > length:
            raise LunError(f"tape {self.name}: record of {len(rec)} bytes is longer than the {length} requested",
                           key=0x0, asc=0x00, ascq=0x00, ili=True, partial=partial + rec[:length],
                           information=(length - len(rec)) & 0xFFFFFFFF)
        return rec

    def read(self, length: int, *, fixed: bool = False, block_size: int = 0) -> bytes:
        with self._lock:
            if not fixed:
                return self._next(length, b"")
            out = bytearray()
            for _ in range(length):
                rec = self._next(block_size, bytes(out))
                if len(rec) != block_size:
                    raise LunError(f"tape {self.name}: record of {len(rec)} bytes in fixed {block_size}-byte mode",
                                   key=0x0, asc=0x00, ascq=0x00, ili=True, partial=bytes(out),
                                   information=block_size - len(rec))
                out += rec
            return bytes(out)

    def _append(self, items: list[bytes | None]) -> None:
        del self.records[self._pos:]
        for item in items:
            if item is not None and self.fail_after_records is not None:
                if self.fail_after_records <= 0:
                    raise medium_error(self.name, "write error (injected)", information=self._pos)
                self.fail_after_records -= 1
            self.records.append(item)
            self._pos += 1

    def write(self, data: bytes, *, fixed: bool = False, block_size: int = 0) -> None:
        with self._lock:
            if not fixed:
                self._append([bytes(data)])
                return
            if block_size <= 0 or len(data) % block_size:
                raise ValueError(f"tape {self.name}: {len(data)} bytes is not whole {block_size}-byte blocks")
            self._append([bytes(data[i:i + block_size]) for i in range(0, len(data), block_size)])

    def write_filemarks(self, count: int) -> None:
        with self._lock:
            self._append([None] * count)

    def space(self, code: int, count: int) -> None:
        with self._lock:
            if code != SpaceCode.END_OF_DATA:
                raise LunError(f"tape {self.name}: SPACE code {code} is not supported here", key=0x5, asc=0x24,
                               ascq=0x00)
            self._pos = len(self.records)

    def locate(self, position: int) -> None:
        with self._lock:
            if not 0 <= position <= len(self.records):
                raise LunError(f"tape {self.name}: object {position} lies past end of data ({len(self.records)})",
                               key=0x8, asc=0x00, ascq=0x05)
            self._pos = position


class BufferLun(BytearrayLun):
    """A bytearray block LUN whose reads can fail once, after a given number of bytes (a lost source path)."""

    def __init__(self, name: str, buf: bytearray, *, block_size: int = 512, naa: bytes | None = None,
                 fail_after_bytes: int | None = None):
        super().__init__(name, buf, block_size=block_size, naa=naa, serial=f"membuf-{name}")
        self.fail_after_bytes = fail_after_bytes

    def read(self, lba: int, count: int) -> bytes:
        if self.fail_after_bytes is not None:
            self.check_range(lba, count)
            if self.fail_after_bytes < count * self._bs:
                self.fail_after_bytes = None  # fires once, like a path that comes back
                raise not_ready(self.name, "logical unit not ready (injected)")
            self.fail_after_bytes -= count * self._bs
        return super().read(lba, count)


def _prefix(data: bytes, segments: int) -> bytes:
    """The list with only its first ``segments`` segments (a driver replaying part of a list, e.g. the
    simulator moving only what its fluid mover finished)."""
    if not data:
        return data
    plist = ParameterList.decode(data)
    if len(plist.segments) == segments:
        return data
    return plist.model_copy(update={"segments": plist.segments[:segments]}).encode()


def _classify(exc: BaseException, what: str, device: str) -> Failure:
    if isinstance(exc, LunError):
        return Failure("sense", f"{what}: {exc}", device, exc.sense, 0x02)
    return Failure("error", f"{what}: {exc}", device)


@dataclass
class MemoryTapes:
    """Tape drives and the data movers that reach them, for the memory driver.

    ``disks`` maps a device name to (byte array, designator hex); ``tapes``
    maps a drive name to its :class:`MemoryTapeLun`; each mover in ``movers``
    runs its own copy manager engine over all of them.
    """

    disks: Mapping[str, tuple[bytearray, str]]
    tapes: MutableMapping[str, MemoryTapeLun]
    movers: Mapping[str, CopyLimits] = field(default_factory=dict)
    block_size: int = 512
    disk_faults: dict[str, int] = field(default_factory=dict)  # disk -> bytes movers read before NOT READY (once)
    _managers: dict[str, CopyManager] = field(default_factory=dict, init=False)
    _luns: dict[str, BufferLun] = field(default_factory=dict, init=False)

    def handles(self, op: object) -> bool:
        """Whether ``op`` is a tape operation this object answers."""
        if isinstance(op, (LocateTape, ReadCopyStatus, TapeClientWrite, TapeClientRead, TapeServerWrite,
                           TapeServerRead)):
            return True
        return isinstance(op, CopyBatches) and (op.source in self.tapes or op.destination in self.tapes)

    def execute(self, op: object):
        if isinstance(op, LocateTape):
            return self.locate(op)
        if isinstance(op, ReadCopyStatus):
            return self.copy_status(op)
        if isinstance(op, CopyBatches):
            return self.copy(op)
        if isinstance(op, (TapeClientWrite, TapeServerWrite)):  # in memory the server's writes are the same
            return self.client_write(op)
        if isinstance(op, (TapeClientRead, TapeServerRead)):
            return self.client_read(op)
        raise TypeError(f"memory tapes cannot answer {type(op).__name__}")

    def limits(self, mover: str) -> MoverLimits:
        """OPERATING PARAMETERS of ``mover``'s engine, as the planner reads them."""
        return MoverLimits.from_operating_parameters(Client(self._manager(mover), NEXUS).operating_parameters())

    def _manager(self, mover: str) -> CopyManager:
        if mover not in self._managers:
            if mover not in self.movers:
                raise LookupError(f"unknown data mover {mover!r} (memory tapes know "
                                  f"{', '.join(sorted(self.movers)) or 'none'})")
            for name, (buf, desig) in self.disks.items():
                if name not in self._luns:
                    self._luns[name] = BufferLun(name, buf, block_size=self.block_size, naa=bytes.fromhex(desig))
            luns = {**self._luns, **self.tapes}
            self._managers[mover] = CopyManager(luns, limits=self.movers[mover], driver=InlineDriver(), name=mover)
        return self._managers[mover]

    def locate(self, op: LocateTape) -> TapePositioned:
        tape = self.tapes.get(op.device)
        if tape is None:
            return TapePositioned(failure=Failure("error", f"no tape drive named {op.device!r}", op.device))
        try:
            if op.position is None:
                tape.space(SpaceCode.END_OF_DATA, 0)
            else:
                tape.locate(op.position)
        except LunError as e:
            return TapePositioned(failure=Failure("sense", f"LOCATE failed: {e}", op.device, e.sense, 0x02))
        return TapePositioned(tape.position(), tape.file_number())

    def copy(self, op: CopyBatches) -> CopyResult:
        """Send each list to the mover's engine in order; stop at the first failure (its segment from the sense)."""
        client = Client(self._manager(op.mover), NEXUS)
        for name in list(self.disk_faults):  # arm injected faults on the LUNs the movers read
            if name in self._luns:
                self._luns[name].fail_after_bytes = self.disk_faults.pop(name)
        acct: list[ListAccount] = []
        for bi, batch in enumerate(op.batches[op.first_batch:]):
            for li, plist in enumerate(batch.lists):
                data = _prefix(plist.payload(), len(plist.segments))
                if not data:
                    raise ValueError(f"list {plist.list_id} to {op.mover} is not encoded")
                r = client.xcopy(data)
                st = client.copy_status(plist.list_id)
                if not r.ok:
                    segment = None
                    try:
                        segment = Sense.decode(r.sense).segment if r.sense else None
                    except SenseError:
                        pass
                    return CopyResult(bi, Failure("sense" if r.sense else "error", "EXTENDED COPY failed", op.mover,
                                                  r.sense, int(r.status)), li, segment, accounting=tuple(acct))
                acct.append(ListAccount(plist.list_id, True, st.segments_processed, st.bytes_transferred))
        return CopyResult(len(op.batches) - op.first_batch, accounting=tuple(acct))

    def copy_status(self, op: ReadCopyStatus) -> CopyStatusResult:
        try:
            st = Client(self._manager(op.mover), NEXUS).copy_status(op.list_id)
        except (AssertionError, LookupError) as e:
            return CopyStatusResult(failure=Failure("error", f"COPY STATUS of list {op.list_id}: {e}", op.mover))
        return CopyStatusResult(st.segments_processed, st.bytes_transferred)

    def _disk(self, name: str) -> bytearray:
        if name not in self.disks:
            raise LookupError(f"unknown device {name!r}")
        return self.disks[name][0]

    def _tape(self, name: str) -> MemoryTapeLun:
        if name not in self.tapes:
            raise LookupError(f"unknown tape drive {name!r}")
        return self.tapes[name]

    def client_write(self, op: TapeClientWrite) -> TransferResult:
        """LAN-free: the client lays each piece on tape itself; a drive error stops at the piece it hit."""
        src, tape, base = self._disk(op.source), self._tape(op.drive), op.source_offset
        return client_write(op, lambda p: bytes(src[base + p.volume_offset:base + p.volume_offset + p.length]),
                            tape, _classify)

    def client_read(self, op: TapeClientRead) -> TransferResult:
        dest, tape, base = self._disk(op.destination), self._tape(op.drive), op.destination_offset

        def put(p, data: bytes) -> None:
            dest[base + p.volume_offset:base + p.volume_offset + p.length] = data

        return client_read(op, put, tape, _classify)

    def close(self) -> None:
        for m in self._managers.values():
            m.close()
        self._managers.clear()
