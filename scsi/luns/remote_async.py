"""Pipelined, zero-copy block I/O on a :class:`scsi.luns.remote.RemoteLun` session.

The copy engine's block copier keeps several READ(16)/WRITE(16) commands in
flight per session and hands libiscsi its own buffers (no payload copy in
Python).  :class:`AsyncSession` is one leased session: it submits commands and
turns each outcome into ``None`` (done), ``RETRY`` (UNIT ATTENTION: the
command did not run, send it again, SAM-5 5.14) or a :class:`LunError` with
the device's sense.
"""
from __future__ import annotations

from typing import Any, Sequence

from pyscsi.pyscsi.scsi_command import SCSICommand
from pyscsi.pyscsi.scsi_enum_command import sbc

from scsi.devices import DeviceCheckCondition
from scsi.devices.libiscsi_poll import service_sessions
from scsi.luns.base import LunError
from scsi.result import Status
from scsi.sense import Sense, SenseError

RETRY = "retry"
UNIT_ATTENTION = 0x6


class SynchronizeCache10(SCSICommand):
    """SYNCHRONIZE CACHE(10) for the whole LU (SBC-3; pyscsi has no class for it); no data either way."""

    _cdb_bits: dict = {"opcode": [0xFF, 0]}

    def __init__(self) -> None:
        SCSICommand.__init__(self, sbc.SYNCHRONIZE_CACHE_10, 0, 0)  # pyscsi's metaclass breaks super()
        self.cdb = bytearray([0x35]) + bytearray(9)


def lun_error(name: str, what: str, err: DeviceCheckCondition) -> LunError:
    """A CHECK CONDITION from a remote device as a LunError carrying its own sense."""
    try:
        s = Sense.decode(err.sense)
        key, asc, ascq, info = int(s.key), s.asc, s.ascq, s.information
    except SenseError:
        key, asc, ascq, info = 0x4, 0x44, 0x00, None  # unreadable sense: report a target failure
    return LunError(f"LUN {name}: {what}: {err}", key=key, asc=asc, ascq=ascq, information=info,
                    sense=err.sense, status=getattr(err, "status", 0x02))


class AsyncSession:
    """One session of a remote LUN, leased for pipelined block I/O."""

    def __init__(self, lun: Any, device: Any):
        self.lun = lun
        self.device = device
        self.block_size = lun.block_size

    def read_into(self, lba: int, blocks: int, buf: Any) -> Any:
        self.lun.check_range(lba, blocks)
        return self.device.submit_block_io(False, lba, blocks, self.block_size, buf)

    def write_from(self, lba: int, blocks: int, buf: Any) -> Any:
        self.lun.check_range(lba, blocks)
        return self.device.submit_block_io(True, lba, blocks, self.block_size, buf)

    def flush(self) -> Any:
        """Queue SYNCHRONIZE CACHE(10) for the whole LU on this session (complete it by servicing)."""
        return self.device.submit(SynchronizeCache10())

    def outcome(self, pending: Any, what: str) -> BaseException | str | None:
        """How a completed command ended: None (GOOD), RETRY, or the error to report (a LunError
        with the device's sense, or the transport's own error: lost session, timeout)."""
        if pending.error is not None:
            return pending.error
        res = pending.result
        if res.status == Status.GOOD:
            return None
        if res.status == Status.CHECK_CONDITION:
            err = lun_error(self.lun.name, what, DeviceCheckCondition(res.sense, cdb=pending.cdb))
            return RETRY if err.key == UNIT_ATTENTION else err
        return LunError(f"LUN {self.lun.name}: {what}: status {int(res.status):02X}h", key=0xB, asc=0x00,
                        ascq=0x00, status=int(res.status))


def service(sessions: Sequence[AsyncSession], max_wait_ms: int = 1000) -> None:
    """Wait for and service whichever of the sessions is ready (one poll over all of them)."""
    devices = list({id(s.device): s.device for s in sessions}.values())
    service_sessions(devices, max_wait_ms)
