"""Tape operations for the real driver: LOCATE / SPACE / READ POSITION and COPY STATUS over pyscsi.

READ POSITION is asked in its long form, so catalogued tape locations carry
the file number (filemarks before the object); a drive refusing that form
is asked the short one and the file number stays unknown (None).

The copy manager writes and reads at the drive's current position, so the
job positions the drive itself (:class:`~orchestrator.ops.tape.LocateTape`)
and, after a failed list, asks the mover for the list's COPY STATUS
(:class:`~orchestrator.ops.tape.ReadCopyStatus`).  EXTENDED COPY of tape
lists needs nothing new: they are bytes like any other list.  The CDB layouts
are the ones :mod:`scsi.target.tapedev` declares, sent by :mod:`scsi.tape_client`.
"""
from __future__ import annotations

import logging
import time
from typing import Any

from orchestrator.drivers.coalesce import volume_reader
from orchestrator.drivers.real_devices import failure_from
from orchestrator.lan.tape_server import server_read, server_write
from orchestrator.ops import Failure, TransferResult
from orchestrator.ops.tape import (CopyStatusResult, LocateTape, ReadCopyStatus, TapePositioned, TapeServerRead,
                                   TapeServerWrite)
from scsi import tape_client
from scsi.commands import copy_status as rcr_copy_status

log = logging.getLogger(__name__)


def locate(device: Any, name: str, op: LocateTape) -> TapePositioned:
    """LOCATE(10) to ``op.position`` or SPACE(6) to end of data; then READ POSITION says where it is."""
    try:
        pos, file_number = tape_client.position(device, op.position)
    except Exception as exc:  # noqa: BLE001 - refused or gone, any transport: the job decides
        return TapePositioned(failure=failure_from(exc, "LOCATE failed" if op.position is not None
                                                   else "SPACE to end of data failed", name))
    if op.position is not None and pos != op.position:
        return TapePositioned(pos, file_number, Failure("error", f"LOCATE to logical object {op.position} left "
                                                                 f"the drive at {pos}", name))
    return TapePositioned(pos, file_number)


class _Scsi:
    """The two things scsi.commands helpers use of pyscsi's ``SCSI`` object."""

    def __init__(self, device: Any):
        self.device = device

    def execute(self, cmd: Any) -> None:
        self.device.execute(cmd)


def copy_status(mover: Any, name: str, op: ReadCopyStatus) -> CopyStatusResult:
    """RECEIVE COPY RESULTS (00h) of one list on pyscsi device ``mover``: segments processed, bytes written."""
    try:
        st = rcr_copy_status(_Scsi(mover), op.list_id)
    except Exception as exc:  # noqa: BLE001 - any device trouble means no status
        return CopyStatusResult(failure=failure_from(exc, f"RECEIVE COPY RESULTS (00h) of list {op.list_id} failed",
                                                 name))
    return CopyStatusResult(int(st.segments_processed), st.bytes_transferred)


def lan_write(driver: Any, op: TapeServerWrite) -> TransferResult:
    """The real driver's :class:`TapeServerWrite`: stream the pieces to the backup server, which owns the drive."""
    try:
        src = driver.io(op.source)
    except Exception as exc:  # noqa: BLE001 - blamed on the source, as LAN writes are
        return TransferResult(0, failure=failure_from(exc, "cannot open the source", op.source))
    t0 = time.monotonic()
    r = server_write(op, volume_reader(src, op.source_offset, op.pieces), failure_from,
                     driver.lan_timeout)
    return TransferResult(r.pieces_done, r.stored, r.failure, time.monotonic() - t0)


def lan_read(driver: Any, op: TapeServerRead) -> TransferResult:
    """The real driver's :class:`TapeServerRead`: the backup server reads the records and streams them back."""
    try:
        dest = driver.io(op.destination)
    except Exception as exc:  # noqa: BLE001
        return TransferResult(0, failure=failure_from(exc, "cannot open the restore destination", op.destination))
    t0 = time.monotonic()
    r = server_read(op, lambda p, data: dest.write(op.destination_offset + p.volume_offset, data), failure_from,
                    driver.lan_timeout)
    return TransferResult(r.pieces_done, r.stored, r.failure, time.monotonic() - t0)
