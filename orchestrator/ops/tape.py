"""Operations a job yields for tape pools, beside those of :mod:`orchestrator.ops`.

A copy manager writes at the drive's current position and never positions a
tape itself, so the job asks the driver to LOCATE the drive (to the object to
restore, to the record after the last one known written, or to end of data
for a new object), and after a failed list it asks the mover for the list's
COPY STATUS to learn how many bytes -- hence whole records -- reached the tape.
When no data mover is left, the client moves the records itself (LAN-free).
"""
from __future__ import annotations

from dataclasses import dataclass

from orchestrator.ops.types import Failure, Piece, PlanError

DEFAULT_RECORD_BYTES = 256 * 1024


@dataclass(frozen=True)
class TapeFormat:
    """How an object's bytes become tape records; the catalogue keeps it so restore reads alike."""

    record_bytes: int = DEFAULT_RECORD_BYTES  # bytes per record (variable) or per transfer (fixed)
    fixed: bool = False
    block_length: int = 0  # fixed mode: the drive's block length; 0 in variable mode

    def __post_init__(self) -> None:
        if self.record_bytes <= 0:
            raise PlanError(f"tape record size {self.record_bytes} must be positive")
        if self.fixed:
            if self.block_length <= 0:
                raise PlanError("fixed-block tape mode needs the drive's block length (stream CSCD BLOCK LENGTH)")
            if self.record_bytes % self.block_length:
                raise PlanError(f"tape transfer size {self.record_bytes} is not a multiple of the fixed block "
                                f"length {self.block_length}")
        elif self.block_length:
            raise PlanError("variable-block tape mode takes no block length (the CSCD's BLOCK LENGTH must be 0)")

    @property
    def unit(self) -> int:
        """Bytes per tape record."""
        return self.block_length if self.fixed else self.record_bytes

    @property
    def transfer_length(self) -> int:
        """STREAM DEVICE TRANSFER LENGTH of a segment: bytes (variable) or blocks (fixed)."""
        return self.record_bytes // self.block_length if self.fixed else self.record_bytes

    def transfer_for(self, nbytes: int) -> int:
        """STREAM DEVICE TRANSFER LENGTH of a segment of ``nbytes``: a fixed-mode segment that is not
        whole transfers (a piece's tail) reads and writes its blocks in one transfer."""
        if self.fixed and nbytes % self.record_bytes:
            return nbytes // self.block_length
        return self.transfer_length

    def records(self, nbytes: int) -> int:
        """Records a piece (or a record-aligned part of one) of ``nbytes`` occupies."""
        return -(-nbytes // self.unit)


@dataclass(frozen=True, slots=True)
class LocateTape:
    """Position tape drive ``device`` at logical object ``position`` (None: end of data, to append)."""

    device: str
    position: int | None = None


@dataclass(frozen=True, slots=True)
class TapePositioned:
    """Where the drive stands now: logical object and file number (filemarks before it)."""

    position: int = 0
    file_number: int | None = 0  # None: the drive cannot say (READ POSITION short form has no file number)
    failure: Failure | None = None

    @property
    def ok(self) -> bool:
        return self.failure is None


@dataclass(frozen=True, slots=True)
class ReadCopyStatus:
    """RECEIVE COPY RESULTS, COPY STATUS (service action 00h), of ``list_id`` on ``mover``."""

    mover: str
    list_id: int


@dataclass(frozen=True, slots=True)
class CopyStatusResult:
    """Segments processed and bytes written (TRANSFER COUNT scaled by its units) of one list."""

    segments_processed: int = 0
    bytes_transferred: int = 0
    failure: Failure | None = None

    @property
    def ok(self) -> bool:
        return self.failure is None


@dataclass(frozen=True, slots=True)
class TapeClientWrite:
    """LAN-free backup to tape: the client reads ``source`` and writes the pieces itself as records on
    ``drive`` at its current position, in the layout of ``fmt`` (the same records a data mover writes,
    so a later server-free restore reads them alike); ``close`` ends the object with a filemark.
    Answered with a :class:`~orchestrator.ops.TransferResult` (whole pieces written)."""

    source: str
    drive: str
    pieces: tuple[Piece, ...]
    fmt: TapeFormat
    source_offset: int = 0
    close: bool = True


@dataclass(frozen=True, slots=True)
class TapeClientRead:
    """LAN-free restore from tape: the client reads the records of ``pieces`` from ``drive`` (positioned at
    the first one) and writes them to ``destination``.  Answered with a TransferResult."""

    drive: str
    destination: str
    pieces: tuple[Piece, ...]
    fmt: TapeFormat
    destination_offset: int = 0


@dataclass(frozen=True, slots=True)
class TapeServerWrite:
    """LAN backup to tape: the client streams the pieces to the backup server, which lays them as records on
    ``drive`` (layout of ``fmt``) and, with ``close``, writes the filemark.  The server owns the drive and
    LOCATEs it to ``position`` first (None: end of data)."""

    server: str
    source: str
    drive: str
    pieces: tuple[Piece, ...]
    fmt: TapeFormat
    source_offset: int = 0
    close: bool = True
    position: int | None = None


@dataclass(frozen=True, slots=True)
class TapeServerRead:
    """LAN restore from tape: the server LOCATEs ``drive`` to ``position`` (the first piece's first record),
    reads the records of ``pieces`` and streams them to the client, which writes ``destination``."""

    server: str
    drive: str
    destination: str
    pieces: tuple[Piece, ...]
    fmt: TapeFormat
    destination_offset: int = 0
    position: int | None = None
