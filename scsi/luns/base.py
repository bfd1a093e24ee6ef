"""The small LUN interface the copy manager engine works against.

A LUN is what a CSCD (target) descriptor resolves to.  Block LUNs move whole
logical blocks; stream (sequential-access) LUNs move records and filemarks.
The interface is synchronous and small on purpose: the engine never calls it
directly but yields I/O requests that a driver executes (threads for real
devices, simulated time in the simulator), so any object with these methods
can stand behind a descriptor.

I/O failures raise :class:`LunError` carrying the device's own sense data so
the copy manager can forward it inside its COPY ABORTED sense.
"""
from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from contextlib import nullcontext
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from scsi.luns.identity import naa6_from_serial
from scsi.luns.rangelock import RangeLock
from scsi.sense import sense_for

log = logging.getLogger(__name__)


class Pdt(IntEnum):
    """Peripheral device types a LUN can report (INQUIRY byte 0 bits 4-0)."""

    DISK = 0x00
    TAPE = 0x01
    PROCESSOR = 0x03


BLOCK_PDTS = frozenset({0x00, 0x04, 0x05, 0x07, 0x0E})
STREAM_PDTS = frozenset({0x01})


class LunError(Exception):
    """An I/O request a LUN could not carry out, with the sense it answered.

    ``key``/``asc``/``ascq`` describe the failure; ``sense`` holds the raw
    sense bytes when the device supplied them (remote LUNs) and is built in
    fixed format otherwise.  ``partial`` is data moved before the failure
    (a short stream read), ``filemark``/``eom``/``ili`` mirror the stream
    flags of fixed-format sense byte 2.
    """

    def __init__(self, message: str, *, key: int, asc: int, ascq: int,
                 sense: bytes | None = None, information: int | None = None,
                 filemark: bool = False, eom: bool = False, ili: bool = False,
                 partial: bytes = b"", status: int = 0x02):
        super().__init__(message)
        self.message = message
        self.key = key
        self.asc = asc
        self.ascq = ascq
        self.information = information
        self.filemark = filemark
        self.eom = eom
        self.ili = ili
        self.partial = partial
        self.status = status
        self._sense = sense

    @property
    def sense(self) -> bytes:
        """The device's sense bytes (fixed format when we built them ourselves)."""
        if self._sense is None:
            info = self.information if self.information is None else self.information & 0xFFFFFFFF
            self._sense = sense_for(self.key, self.asc, self.ascq, information=info,
                                    filemark=self.filemark, eom=self.eom, ili=self.ili).encode()
        return self._sense


# Common failures, named after their ASC/ASCQ.
def lba_out_of_range(lun: str, lba: int, count: int, num_blocks: int) -> LunError:
    return LunError(f"LUN {lun}: blocks {lba}..{lba + count - 1} lie past the last block "
                    f"{num_blocks - 1}", key=0x5, asc=0x21, ascq=0x00, information=lba)


def medium_error(lun: str, what: str, information: int | None = None) -> LunError:
    return LunError(f"LUN {lun}: {what}", key=0x3, asc=0x11, ascq=0x00, information=information)


def not_ready(lun: str, what: str) -> LunError:
    return LunError(f"LUN {lun}: {what}", key=0x2, asc=0x04, ascq=0x00)


def write_protected(lun: str) -> LunError:
    return LunError(f"LUN {lun} is write protected", key=0x7, asc=0x27, ascq=0x00)


@dataclass(frozen=True)
class Designator:
    """One VPD 83h designation descriptor (without PROTOCOL IDENTIFIER/PIV)."""

    code_set: int  # 1 binary, 2 ASCII, 3 UTF-8
    association: int  # 0 logical unit
    type: int  # 3 NAA, 2 EUI-64, 1 T10 vendor id, 0 vendor specific, 8 SCSI name
    value: bytes

    def matches(self, code_set: int, association: int, type_: int, value: bytes) -> bool:
        """True when an E4h descriptor's designator names this one."""
        return (self.code_set, self.association, self.type, self.value) == (
            code_set, association, type_, value)


class Lun(ABC):
    """What every LUN kind has: a name, a device type, an identity."""

    pdt: int = Pdt.DISK
    read_only: bool = False

    def __init__(self, name: str, *, serial: str, naa: bytes | None = None):
        if not name:
            raise ValueError("a LUN needs a name")
        self.name = name
        self.serial = serial
        self.naa = naa if naa is not None else naa6_from_serial(serial)
        if len(self.naa) not in (8, 16):
            raise ValueError(f"LUN {name}: NAA designator must be 8 or 16 bytes, got {len(self.naa)}")

    @property
    def is_block(self) -> bool:
        return self.pdt in BLOCK_PDTS

    @property
    def is_stream(self) -> bool:
        return self.pdt in STREAM_PDTS

    def designators(self) -> list[Designator]:
        """The logical-unit designators VPD 83h lists (the NAA one first)."""
        return [Designator(1, 0, 3, self.naa),
                Designator(2, 0, 1, b"SERVFREE" + self.serial.encode("ascii", "replace"))]

    def test_unit_ready(self) -> None:
        """Raise LunError when the LUN cannot take I/O now."""

    def close(self) -> None:
        """Release files or sessions; idempotent."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


class BlockLun(Lun):
    """A direct-access LUN: fixed-size logical blocks addressed by LBA."""

    pdt = Pdt.DISK

    @property
    @abstractmethod
    def block_size(self) -> int: ...

    @property
    @abstractmethod
    def num_blocks(self) -> int: ...

    @abstractmethod
    def read(self, lba: int, count: int) -> bytes: ...

    @abstractmethod
    def write(self, lba: int, data: bytes) -> None: ...

    def flush(self) -> None:
        """Make written data durable (SYNCHRONIZE CACHE)."""

    @property
    def ranges(self) -> RangeLock:
        """The LUN's block-range lock (created on first use; ``setdefault`` keeps it one per LUN)."""
        lock = self.__dict__.get("_ranges")
        return lock if lock is not None else self.__dict__.setdefault("_ranges", RangeLock())

    def write_unlocked(self, lba: int, data: bytes) -> None:
        """Write while the caller holds the range exclusively (LUNs whose write() takes no lock: write())."""
        self.write(lba, data)

    def compare_and_write(self, lba: int, verify: bytes, data: bytes) -> int | None:
        """COMPARE AND WRITE, atomic against every other write: None when written, else the first differing byte."""
        count = len(verify) // self.block_size
        with self.ranges.hold(lba, count, exclusive=True):
            current = self.read(lba, count)
            if current != verify:
                return next(i for i in range(len(current)) if current[i] != verify[i])
            self.write_unlocked(lba, data)
            return None

    def or_write(self, lba: int, data: bytes) -> None:
        """ORWRITE: OR ``data`` into the blocks at ``lba``, atomic against every other write."""
        count = len(data) // self.block_size
        with self.ranges.hold(lba, count, exclusive=True):
            current = self.read(lba, count)
            merged = (int.from_bytes(current, "big") | int.from_bytes(data, "big")).to_bytes(len(data), "big")
            self.write_unlocked(lba, merged)

    def transfer_limits(self) -> tuple[int, int]:
        """(maximum, optimal) bytes per READ/WRITE, 0 = not reported (Block Limits VPD B0h, SBC-3 r22 6.5.3)."""
        return 0, 0

    def lease_async(self) -> Any:
        """A context manager yielding a session for pipelined zero-copy I/O, or None when the LUN has none."""
        return nullcontext(None)

    def check_range(self, lba: int, count: int) -> None:
        if lba < 0 or count < 0 or lba + count > self.num_blocks:
            raise lba_out_of_range(self.name, lba, max(count, 1), self.num_blocks)


class SpaceCode(IntEnum):
    """SPACE(6) CODE field values the stream LUNs understand."""

    BLOCKS = 0
    FILEMARKS = 1
    END_OF_DATA = 3


class StreamLun(Lun):
    """A sequential-access LUN: records and filemarks at a current position.

    Positions count logical objects (records and filemarks) from 0, as SSC's
    logical object identifier does.
    """

    pdt = Pdt.TAPE

    @abstractmethod
    def read(self, length: int, *, fixed: bool = False, block_size: int = 0) -> bytes:
        """Variable mode: the next record (at most ``length`` bytes).

        Fixed mode: ``length`` records of exactly ``block_size`` bytes each.
        A filemark or end of data raises LunError with the data read so far
        in ``partial``.
        """

    @abstractmethod
    def write(self, data: bytes, *, fixed: bool = False, block_size: int = 0) -> None:
        """Variable mode: one record.  Fixed mode: ``data`` cut into ``block_size`` records."""

    @abstractmethod
    def write_filemarks(self, count: int) -> None: ...

    @abstractmethod
    def space(self, code: int, count: int) -> None: ...

    @abstractmethod
    def locate(self, position: int) -> None: ...

    @abstractmethod
    def position(self) -> int: ...

    def rewind(self) -> None:
        self.locate(0)

    def flush(self) -> None:
        """Write buffered records to the medium."""
