"""Tape operations for the real driver: LOCATE / SPACE / READ POSITION and COPY STATUS over pyscsi.

READ POSITION is asked in its long form, so catalogued tape locations carry
the file number (filemarks before the object); a drive refusing that form
is asked the short one and the file number stays unknown (None).

The copy manager writes and reads at the drive's current position, so the
job positions the drive itself (:class:`~orchestrator.ops.tape.LocateTape`)
and, after a failed list, asks the mover for the list's COPY STATUS
(:class:`~orchestrator.ops.tape.ReadCopyStatus`).  EXTENDED COPY of tape
lists needs nothing new: they are bytes like any other list.  The CDB layouts
are the ones :mod:`scsi.target.tapedev` declares (declared once).
"""
from __future__ import annotations

import logging
import time
from typing import Any

from orchestrator.ops import Failure, TransferResult
from orchestrator.ops.tape import (CopyStatusResult, LocateTape, ReadCopyStatus, TapePositioned, TapeServerRead,
                                   TapeServerWrite)

log = logging.getLogger(__name__)

SPACE_END_OF_DATA = 3


class RawCommand:
    """A CDB with its buffers, shaped like a pyscsi command for ``device.execute``."""

    def __init__(self, cdb: bytes, datain_len: int = 0, dataout: bytes = b""):
        self.cdb = bytearray(cdb)
        self.dataout = bytearray(dataout)
        self.datain = bytearray(datain_len)
        self.sense = bytearray()


def _failure(exc: BaseException, what: str, device: str) -> Failure:
    from orchestrator.drivers.real_devices import failure_from

    return failure_from(exc, what, device)


def read_position(device: Any) -> tuple[int, int | None]:
    """READ POSITION: the logical object the drive is at and its file number (filemarks before it).

    The long form (06h) carries the file number; a drive that refuses it
    (ILLEGAL REQUEST) is asked the short form, which has none (None).
    """
    from scsi.target.tapedev import (READ_POSITION, READ_POSITION_CDB, READ_POSITION_LONG, READ_POSITION_SHORT,
                                     RP_LONG_FORM, RP_SHORT_BLOCK_ID)

    cmd = RawCommand(READ_POSITION_CDB.encode(opcode=READ_POSITION, service_action=RP_LONG_FORM),
                     READ_POSITION_LONG.size)
    try:
        device.execute(cmd)
    except Exception as exc:  # noqa: BLE001 - only a refusal of the form falls back; the rest is raised
        if not _illegal_request(exc):
            raise
        log.info("tape drive refuses READ POSITION long form (%s): short form, no file number", exc)
    else:
        if len(cmd.datain) < READ_POSITION_LONG.size:
            raise ValueError(f"READ POSITION long form returned {len(cmd.datain)} of {READ_POSITION_LONG.size} "
                             "bytes")
        v = READ_POSITION_LONG.decode(bytes(cmd.datain[:READ_POSITION_LONG.size]), strict=False)
        if v["lonu"]:
            raise ValueError("READ POSITION long form: the drive does not know its logical object number (LONU)")
        return int(v["logical_object"]), None if v["mpu"] else int(v["file_number"])
    cmd = RawCommand(READ_POSITION_CDB.encode(opcode=READ_POSITION, service_action=RP_SHORT_BLOCK_ID),
                     READ_POSITION_SHORT.size)
    device.execute(cmd)
    v = READ_POSITION_SHORT.decode(bytes(cmd.datain[:READ_POSITION_SHORT.size]), strict=False)
    return int(v["first_block"]), None


def _illegal_request(exc: BaseException) -> bool:
    """An ILLEGAL REQUEST sense (the drive does not support what was asked)."""
    from scsi.sense import Sense, SenseError

    sense = getattr(exc, "sense", None)
    if not isinstance(sense, (bytes, bytearray)) or not sense:
        return False
    try:
        return int(Sense.decode(bytes(sense)).key) == 0x5
    except (SenseError, ValueError):
        return False


def locate(device: Any, name: str, op: LocateTape) -> TapePositioned:
    """LOCATE(10) to ``op.position`` or SPACE(6) to end of data; then READ POSITION says where it is."""
    from scsi.target.tapedev import LOCATE_10, LOCATE_CDB, SPACE_6, SPACE_CDB

    try:
        if op.position is None:
            device.execute(RawCommand(SPACE_CDB.encode(opcode=SPACE_6, code=SPACE_END_OF_DATA, count=0)))
        else:
            device.execute(RawCommand(LOCATE_CDB.encode(opcode=LOCATE_10, block_address=op.position)))
        pos, file_number = read_position(device)
    except Exception as exc:  # noqa: BLE001 - refused or gone, any transport: the job decides
        return TapePositioned(failure=_failure(exc, "LOCATE failed" if op.position is not None
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
    from scsi.commands import copy_status as rcr_copy_status

    try:
        st = rcr_copy_status(_Scsi(mover), op.list_id)
    except Exception as exc:  # noqa: BLE001 - any device trouble means no status
        return CopyStatusResult(failure=_failure(exc, f"RECEIVE COPY RESULTS (00h) of list {op.list_id} failed",
                                                 name))
    return CopyStatusResult(int(st.segments_processed), st.bytes_transferred)


class ScsiTape:
    """A tape drive's records through pyscsi: READ(6) / WRITE(6) in variable-block mode, WRITE FILEMARKS(6).

    It has the :class:`scsi.luns.base.StreamLun` read/write signatures, so
    :mod:`orchestrator.plan.tape_records` lays pieces on it exactly as on a LUN.
    Fixed-block client I/O would first need MODE SELECT of the block length:
    it is refused with a clear error instead.
    """

    def __init__(self, device: Any, name: str):
        self.device, self.name = device, name

    def _variable_only(self, fixed: bool) -> None:
        if fixed:
            raise ValueError(f"tape {self.name}: fixed-block LAN-free I/O is not supported by the real driver "
                             "(it would need MODE SELECT of the block length); use a variable-block tape pool")

    def write(self, data: bytes, *, fixed: bool = False, block_size: int = 0) -> None:
        from scsi.target.tapedev import RW6, WRITE_6

        self._variable_only(fixed)
        self.device.execute(RawCommand(RW6.encode(opcode=WRITE_6, transfer_length=len(data)), dataout=data))

    def read(self, length: int, *, fixed: bool = False, block_size: int = 0) -> bytes:
        from scsi.target.tapedev import READ_6, RW6

        self._variable_only(fixed)
        cmd = RawCommand(RW6.encode(opcode=READ_6, transfer_length=length), length)
        got = self.device.execute(cmd)
        return bytes(cmd.datain[:got if isinstance(got, int) and 0 <= got <= length else length])

    def write_filemarks(self, count: int) -> None:
        from scsi.target.tapedev import WRITE_FILEMARKS_6, WRITE_FILEMARKS_CDB

        self.device.execute(RawCommand(WRITE_FILEMARKS_CDB.encode(opcode=WRITE_FILEMARKS_6, count=count)))


def lan_write(driver: Any, op: TapeServerWrite) -> TransferResult:
    """The real driver's :class:`TapeServerWrite`: stream the pieces to the backup server, which owns the drive."""
    from orchestrator.drivers.real_devices import failure_from
    from orchestrator.lan.tape_server import server_write

    try:
        src = driver.io(op.source)
    except Exception as exc:  # noqa: BLE001 - blamed on the source, as LAN writes are
        return TransferResult(0, failure=failure_from(exc, "cannot open the source", op.source))
    t0 = time.monotonic()
    r = server_write(op, lambda p: src.read(op.source_offset + p.volume_offset, p.length), failure_from,
                     driver.lan_timeout)
    return TransferResult(r.pieces_done, r.stored, r.failure, time.monotonic() - t0)


def lan_read(driver: Any, op: TapeServerRead) -> TransferResult:
    """The real driver's :class:`TapeServerRead`: the backup server reads the records and streams them back."""
    from orchestrator.drivers.real_devices import failure_from
    from orchestrator.lan.tape_server import server_read

    try:
        dest = driver.io(op.destination)
    except Exception as exc:  # noqa: BLE001
        return TransferResult(0, failure=failure_from(exc, "cannot open the restore destination", op.destination))
    t0 = time.monotonic()
    r = server_read(op, lambda p, data: dest.write(op.destination_offset + p.volume_offset, data), failure_from,
                    driver.lan_timeout)
    return TransferResult(r.pieces_done, r.stored, r.failure, time.monotonic() - t0)
