"""The real driver: a job's operations carried out with pyscsi devices and real sockets.

The operations live beside this module, by seam:

* :mod:`~orchestrator.drivers.real_devices` opens devices (:class:`BlockIO`)
  and classifies failures for failover (:func:`failure_from`);
* :mod:`~orchestrator.drivers.real_mover`: data movers (EXTENDED COPY, COPY STATUS);
* :mod:`~orchestrator.drivers.real_transfer`: LAN-free and LAN transfers;
* :mod:`~orchestrator.drivers.real_verify`: verification and incremental scans;
* :mod:`~orchestrator.drivers.real_tape`: tape positioning and tape over the LAN.

Devices are pyscsi devices (``LibiscsiDevice`` for iscsi:// URLs, SG_IO, or
``InProcessDevice`` around a handler) looked up by the names the job uses.
"""
from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from orchestrator.catalogue import Catalogue
from orchestrator.drivers.coalesce import volume_reader
from orchestrator.drivers.real_devices import IO_CHUNK, BlockIO, failure_from
from orchestrator.drivers.real_mover import MoverOps
from orchestrator.drivers.real_transfer import TransferOps
from orchestrator.drivers.real_tape import copy_status, lan_read, lan_write, locate
from orchestrator.drivers.real_verify import VerifyOps
from orchestrator.ops import (AbandonObject, BeginObject, CommandResult, CommitObject, Failure, Operation,
                              ReleaseSnapshot, Result, RunCommand, SnapshotReleased, SnapshotResult, TakeSnapshot,
                              TransferResult)
from orchestrator.ops.tape import (CopyStatusResult, LocateTape, ReadCopyStatus, TapeClientRead, TapeClientWrite,
                                   TapePositioned, TapeServerRead, TapeServerWrite)
from orchestrator.ops.tape_records import client_read, client_write
from scsi.tape_client import TapeRecords

__all__ = ["IO_CHUNK", "BlockIO", "RealDriver", "failure_from"]


@dataclass
class RealDriver(MoverOps, TransferOps, VerifyOps):
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
    #: called (path, bytes) after each EXTENDED COPY list or LAN-free/LAN piece moved (a progress line)
    on_progress: Callable[[str, int], None] | None = None

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

    # -- tape pools ------------------------------------------------------------------------------
    def _LocateTape(self, op: LocateTape) -> TapePositioned:
        if op.device not in self.devices:
            return TapePositioned(failure=Failure("lost-connection", f"no tape drive named {op.device!r} is "
                                                  "configured", op.device))
        return locate(self.devices[op.device], op.device, op)

    def _ReadCopyStatus(self, op: ReadCopyStatus) -> CopyStatusResult:
        if op.mover not in self.movers:
            return CopyStatusResult(failure=Failure("lost-connection", f"no data mover named {op.mover!r}",
                                                    op.mover))
        return copy_status(self.movers[op.mover], op.mover, op)

    def _tape(self, name: str):
        if name not in self.devices:
            raise LookupError(f"no tape drive named {name!r} is configured")
        return TapeRecords(self.devices[name], name)

    def _TapeClientWrite(self, op: TapeClientWrite) -> TransferResult:
        try:
            src = self.io(op.source)
        except Exception as exc:  # noqa: BLE001 - blamed on the source, as LAN-free writes are
            return TransferResult(0, failure=self._client_source_failure(exc, op.source))
        try:
            tape = self._tape(op.drive)
        except LookupError as exc:
            return TransferResult(0, failure=Failure("lost-connection", str(exc), op.drive))
        t0 = time.monotonic()
        r = client_write(op, volume_reader(src, op.source_offset, op.pieces), tape,
                         lambda exc, what, dev: failure_from(exc, what, dev))
        return TransferResult(r.pieces_done, r.stored, r.failure, time.monotonic() - t0)

    def _TapeServerWrite(self, op: TapeServerWrite) -> TransferResult:
        return lan_write(self, op)

    def _TapeServerRead(self, op: TapeServerRead) -> TransferResult:
        return lan_read(self, op)

    def _TapeClientRead(self, op: TapeClientRead) -> TransferResult:
        try:
            dest = self.io(op.destination)
            tape = self._tape(op.drive)
        except Exception as exc:  # noqa: BLE001
            return TransferResult(0, failure=failure_from(exc, "cannot open the restore devices", op.destination))
        t0 = time.monotonic()
        r = client_read(op, lambda p, data: dest.write(op.destination_offset + p.volume_offset, data), tape,
                        lambda exc, what, dev: failure_from(exc, what, dev))
        return TransferResult(r.pieces_done, r.stored, r.failure, time.monotonic() - t0)
