"""Opening the real driver's devices: byte-addressed block I/O over pyscsi, and failures classified for failover.

Transport failures become :class:`~orchestrator.ops.Failure` objects of kind
"timeout" / "lost-connection" / "sense", so the job can fail over.
"""
from __future__ import annotations

from typing import Any

from orchestrator.lan.frames import LanProtocolError
from orchestrator.ops import Failure
from scsi.designators import choose_lu_designator, parse_vpd83, read_capacity, read_vpd83
from scsi.devices.errors import DeviceConnectionError, DeviceStatusError, DeviceTimeout
from scsi.luns.remote import UnitAttentionRetry

IO_CHUNK = 1 << 20


def failure_from(exc: BaseException, what: str, device: str = "") -> Failure:
    """Classify an exception from a device or socket the way failover needs it."""
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



class BlockIO:
    """Byte-addressed reads and writes on a pyscsi block device (read-modify-write at the edges)."""

    def __init__(self, device: Any, name: str):
        from pyscsi.pyscsi.scsi import SCSI

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
        return choose_lu_designator(parse_vpd83(read_vpd83(self.scsi))).designator

    def _read_blocks(self, lba: int, count: int) -> bytearray:
        out = bytearray()
        step = max(1, IO_CHUNK // self.block_size)
        for at in range(lba, lba + count, step):
            n = min(step, lba + count - at)
            out += self.scsi.read16(at, n).datain
        return out

    def read(self, offset: int, length: int) -> bytes:
        return bytes(self.read_view(offset, length))

    def read_view(self, offset: int, length: int) -> memoryview:
        """``read`` without copying the bytes once more: a view of the blocks read (one READ(16) per IO_CHUNK)."""
        bs = self.block_size
        first, end = offset // bs, -(-(offset + length) // bs)
        skip = offset - first * bs
        return memoryview(self._read_blocks(first, end - first))[skip:skip + length]

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

