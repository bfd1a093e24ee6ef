"""A tape drive driven through a pyscsi device: positioning and records as SSC-3 commands.

Initiator side of the stream commands whose CDB layouts :mod:`scsi.target.tapedev`
declares (one home for those bytes): LOCATE(10), SPACE(6) to end of data,
READ POSITION (the long form carries the file number, a drive refusing it is
asked the short form), READ(6) / WRITE(6) in variable-block mode and WRITE
FILEMARKS(6), all as SSC-3 defines them.
Errors are the device's own exceptions; callers decide what a failure means.
"""
from __future__ import annotations

import logging
from typing import Any

from scsi.devices.base import RawCommand
from scsi.sense import Sense, SenseError
from scsi.target.tapedev import (LOCATE_10, LOCATE_CDB, READ_6, READ_POSITION, READ_POSITION_CDB, READ_POSITION_LONG,
                                 READ_POSITION_SHORT, RP_LONG_FORM, RP_SHORT_BLOCK_ID, RW6, SPACE_6, SPACE_CDB,
                                 WRITE_6, WRITE_FILEMARKS_6, WRITE_FILEMARKS_CDB)

log = logging.getLogger(__name__)

SPACE_END_OF_DATA = 3  # SPACE(6) CODE 011b (SSC-3 table 44)


def illegal_request(exc: BaseException) -> bool:
    """An ILLEGAL REQUEST sense (the drive does not support what was asked)."""
    sense = getattr(exc, "sense", None)
    if not isinstance(sense, (bytes, bytearray)) or not sense:
        return False
    try:
        return int(Sense.decode(bytes(sense)).key) == 0x5
    except (SenseError, ValueError):
        return False


def read_position(device: Any) -> tuple[int, int | None]:
    """READ POSITION: the logical object the drive is at and its file number (None when unknown)."""
    cmd = RawCommand(READ_POSITION_CDB.encode(opcode=READ_POSITION, service_action=RP_LONG_FORM),
                     datain_len=READ_POSITION_LONG.size)
    try:
        device.execute(cmd)
    except Exception as exc:  # noqa: BLE001 - only a refusal of the form falls back; the rest is raised
        if not illegal_request(exc):
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
                     datain_len=READ_POSITION_SHORT.size)
    device.execute(cmd)
    v = READ_POSITION_SHORT.decode(bytes(cmd.datain[:READ_POSITION_SHORT.size]), strict=False)
    return int(v["first_block"]), None


def position(device: Any, logical_object: int | None) -> tuple[int, int | None]:
    """LOCATE(10) to ``logical_object``, or SPACE(6) to end of data for None; then READ POSITION."""
    if logical_object is None:
        device.execute(RawCommand(SPACE_CDB.encode(opcode=SPACE_6, code=SPACE_END_OF_DATA, count=0)))
    else:
        device.execute(RawCommand(LOCATE_CDB.encode(opcode=LOCATE_10, block_address=logical_object)))
    return read_position(device)


class TapeRecords:
    """A tape drive's records through pyscsi: READ(6) / WRITE(6) in variable-block mode, WRITE FILEMARKS(6).

    It has the :class:`scsi.luns.base.StreamLun` read/write signatures, so a
    piece's records are laid on it exactly as on an emulated tape.  Fixed-block
    I/O would first need MODE SELECT of the block length: it is refused with a
    clear error instead.
    """

    def __init__(self, device: Any, name: str):
        self.device, self.name = device, name

    def _variable_only(self, fixed: bool) -> None:
        if fixed:
            raise ValueError(f"tape {self.name}: fixed-block LAN-free I/O is not supported by the real driver "
                             "(it would need MODE SELECT of the block length); use a variable-block tape pool")

    def write(self, data: bytes, *, fixed: bool = False, block_size: int = 0) -> None:
        self._variable_only(fixed)
        self.device.execute(RawCommand(RW6.encode(opcode=WRITE_6, transfer_length=len(data)), dataout=data))

    def read(self, length: int, *, fixed: bool = False, block_size: int = 0) -> bytes:
        self._variable_only(fixed)
        cmd = RawCommand(RW6.encode(opcode=READ_6, transfer_length=length), datain_len=length)
        got = self.device.execute(cmd)
        return bytes(cmd.datain[:got if isinstance(got, int) and 0 <= got <= length else length])

    def write_filemarks(self, count: int) -> None:
        self.device.execute(RawCommand(WRITE_FILEMARKS_CDB.encode(opcode=WRITE_FILEMARKS_6, count=count)))
