"""A pyscsi device whose commands go to a Python object, not to hardware.

The simulator's exact mode and many tests hand pyscsi commands to a copy
manager or a simulated LUN through this: the handler sees exactly the CDB and
data-out bytes a real target would, and its :class:`~scsi.result.ScsiResult`
comes back the way a real device's answer would (data-in filled, CHECK
CONDITION raised with the raw sense).
"""
from __future__ import annotations

import logging
from typing import Any

from scsi.devices.base import PyscsiDevice, command_buffers, apply_result
from scsi.devices.errors import DeviceError
from scsi.result import CommandHandler, Nexus, ScsiResult

log = logging.getLogger(__name__)


class InProcessDevice(PyscsiDevice):
    """pyscsi device backed by a :class:`scsi.result.CommandHandler`."""

    def __init__(self, handler: CommandHandler, nexus: Nexus = Nexus("iqn.inproc")) -> None:
        super().__init__()
        if not callable(getattr(handler, "execute", None)):
            raise TypeError(f"{handler!r} has no execute(nexus, cdb, data_out, data_in_len) method")
        self.handler = handler
        self.nexus = nexus
        self._closed = False

    def close(self) -> None:
        self._closed = True

    def run(self, cdb: bytes, dataout: bytes, datain_len: int) -> ScsiResult:
        """Hand one command to the handler and check that its answer is well formed."""
        if self._closed:
            raise DeviceError(f"{self!r} is closed")
        result = self.handler.execute(self.nexus, cdb, dataout, datain_len)
        if not isinstance(result, ScsiResult):
            raise DeviceError(f"{self.handler!r} answered {type(result).__name__}, not a ScsiResult "
                              f"(opcode {cdb[0]:02X}h)")
        if len(result.data) > datain_len:
            log.debug("%r returned %d data-in bytes for an allocation of %d; truncated",
                      self.handler, len(result.data), datain_len)
        return result

    def execute(self, cmd: Any) -> int:
        cdb, dataout, datain_len = command_buffers(cmd)
        return apply_result(cmd, self.run(cdb, dataout, datain_len))

    def __repr__(self) -> str:
        return f"InProcessDevice({type(self.handler).__name__}, {self.nexus})"
