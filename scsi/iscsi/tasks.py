"""One SCSI task on a connection: its write buffer and the Data-Out bookkeeping.

Write data arrives as immediate data, unsolicited Data-Out PDUs (up to
FirstBurstLength) and solicited Data-Out answering our R2Ts (each burst at
most MaxBurstLength).  The task only records what came; the connection
decides when to send the next R2T.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from scsi.iscsi.pdu import NO_TAG, PduError, Reject

SN_MOD = 1 << 32


def sn_lt(a: int, b: int) -> bool:
    """Serial number arithmetic (RFC 1982, 32 bits): a < b."""
    return a != b and ((b - a) % SN_MOD) < (1 << 31)


def sn_add(a: int, n: int) -> int:
    return (a + n) % SN_MOD


@dataclass
class Task:
    itt: int
    lun: int
    lun_field: bytes
    cdb: bytes
    edtl: int
    read: bool
    write: bool
    cmdsn: int
    buffer: bytearray = field(default_factory=bytearray)
    received: int = 0  # bytes of write data received so far
    unsolicited_open: bool = False  # unsolicited Data-Out may still arrive
    ttt: int = NO_TAG  # target transfer tag of the outstanding R2T
    burst_end: int = 0  # end offset of the outstanding R2T's burst
    r2tsn: int = 0
    datasn_out: int = 0  # DataSN expected on the next Data-Out of the current sequence
    datasn_in: int = 0
    data_event: asyncio.Event = field(default_factory=asyncio.Event)
    runner: asyncio.Task | None = None
    aborted: bool = False
    data_error: str = ""  # why the write data could not be accepted (the command then fails)
    digest_error: bool = False  # a Data-Out of this task had a wrong data digest (dropped)

    def _check_range(self, offset: int, length: int, header: bytes) -> None:
        if offset + length > self.edtl:
            raise PduError(f"Data-Out for task {self.itt:#x}: bytes {offset}..{offset + length} "
                           f"exceed the expected transfer length {self.edtl} (buffer offset, bytes 40-43)",
                           reason=Reject.INVALID_PDU_FIELD, header=header)

    def take_data(self, offset: int, data: bytes, header: bytes) -> None:
        """Place write data at ``offset``; data beyond the expected length is a PDU field error."""
        self._check_range(offset, len(data), header)
        self.buffer[offset:offset + len(data)] = data
        self.received = max(self.received, offset + len(data))

    def skip_data(self, offset: int, length: int, header: bytes) -> None:
        """A Data-Out whose data was dropped (data digest error): its range counts as come, the task fails."""
        self._check_range(offset, length, header)
        self.digest_error = True
        self.received = max(self.received, offset + length)
