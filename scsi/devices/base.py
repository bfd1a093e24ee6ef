"""What every pyscsi device backend shares.

pyscsi's ``SCSI(dev)`` needs a device with ``execute(cmd)`` (fill
``cmd.datain`` from the data-in, send ``cmd.dataout``), ``opcodes`` and
``devicetype`` attributes, ``close()`` and a ``CheckCondition`` exception class.
:class:`PyscsiDevice` supplies everything except moving the bytes, which the
backends implement in :meth:`PyscsiDevice.run` returning a :class:`ScsiResult`.
"""
from __future__ import annotations

import logging
from typing import Any

import pyscsi.pyscsi.scsi_enum_command as scsi_enum_command

from scsi.devices.errors import DeviceCheckCondition, DeviceStatusError
from scsi.result import ScsiResult, Status

log = logging.getLogger(__name__)


class RawCommand:
    """A command from raw bytes: the attributes a device reads from a pyscsi command.

    Lets callers that already hold a CDB (benchmarks, the copy manager's remote
    LUNs) use any backend without pyscsi's per-command building cost.
    """

    def __init__(self, cdb: bytes, dataout: bytes = b"", datain_len: int = 0) -> None:
        self.cdb = bytearray(cdb)
        self.dataout = bytearray(dataout)
        self.datain = bytearray(datain_len)
        self.sense: bytearray | None = None

    def __repr__(self) -> str:
        return f"RawCommand(opcode {self.cdb[0]:02X}h)" if self.cdb else "RawCommand(empty)"


def command_buffers(cmd: Any) -> tuple[bytes, bytes, int]:
    """(cdb, data-out, data-in allocation length) of a pyscsi command object."""
    cdb = bytes(cmd.cdb)
    dataout = bytes(cmd.dataout) if cmd.dataout is not None else b""
    datain_len = len(cmd.datain) if cmd.datain is not None else 0
    if not cdb:
        raise ValueError(f"{cmd!r}: empty CDB")
    if len(cdb) > 16:
        raise ValueError(f"{cmd!r}: CDB of {len(cdb)} bytes, at most 16 are supported")
    return cdb, dataout, datain_len


def apply_result(cmd: Any, result: ScsiResult) -> int:
    """Copy data-in into ``cmd.datain`` and raise for anything but GOOD.

    Returns the number of data-in bytes the device sent (the rest of
    ``cmd.datain`` keeps its zeroes, as with pyscsi's own devices).
    """
    if result.status == Status.CHECK_CONDITION:
        cmd.sense = bytearray(result.sense)
        raise DeviceCheckCondition(result.sense, cdb=bytes(cmd.cdb))
    if result.status not in (Status.GOOD, Status.CONDITION_MET):
        raise DeviceStatusError(int(result.status), bytes(cmd.cdb))
    data = result.data
    if cmd.datain is not None and data:
        n = min(len(data), len(cmd.datain))
        cmd.datain[:n] = data[:n]
        return n
    return 0


class PyscsiDevice:
    """Base class: the attributes pyscsi's ``SCSI`` object expects of a device."""

    CheckCondition = DeviceCheckCondition

    def __init__(self) -> None:
        self._opcodes = scsi_enum_command.spc
        self._devicetype: int | None = None

    # pyscsi's SCSI object reads and writes these two
    @property
    def opcodes(self):  # noqa: ANN201 - pyscsi's own enum type
        return self._opcodes

    @opcodes.setter
    def opcodes(self, value) -> None:  # noqa: ANN001
        self._opcodes = value

    @property
    def devicetype(self) -> int | None:
        return self._devicetype

    @devicetype.setter
    def devicetype(self, value: int | None) -> None:
        self._devicetype = value

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the device; idempotent."""

    def run(self, cdb: bytes, dataout: bytes, datain_len: int) -> ScsiResult:
        raise NotImplementedError

    def execute(self, cmd: Any) -> int:
        """Execute one pyscsi command; raise ``CheckCondition`` with the raw sense."""
        cdb, dataout, datain_len = command_buffers(cmd)
        return apply_result(cmd, self.run(cdb, dataout, datain_len))
