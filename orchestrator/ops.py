"""The sans-I/O vocabulary of backup and restore jobs.

A job (see :mod:`orchestrator.job`) is a generator that *yields* one of the
operation objects below and is resumed with the matching result object.  The
job never touches a socket, a device or a clock: a driver (the simulator, the
real pyscsi driver, a test driver) decides how each operation is carried out.
Both sides of this module are plain frozen dataclasses so that the simulator
can build and inspect thousands of them cheaply; validation happens at the
boundaries (the job spec is pydantic, see :mod:`orchestrator.jobspec`).

Positions: a volume is described by *extents* (byte offset, length) relative
to the start of the volume.  Concatenating them gives the *image*; an extent's
``image_offset`` is its place in that concatenation.  On the pool an object
occupies ``[pool_offset, pool_offset + image_size)`` and every byte of the
image has one fixed place there, whatever path moved it -- which is why a
resumed job can never write an extent twice into the final image.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Callable, Generator, Literal, Union


class PathKind(str, Enum):
    """Data paths, in failover order."""

    SERVER_FREE = "server-free"
    LAN_FREE = "lan-free"
    LAN = "lan"


FAILOVER_ORDER = (PathKind.SERVER_FREE, PathKind.LAN_FREE, PathKind.LAN)


# --------------------------------------------------------------------------- pieces
@dataclass(frozen=True, slots=True)
class Piece:
    """A contiguous range of the image: where it lies on the volume and in the image."""

    image_offset: int
    volume_offset: int
    length: int

    @property
    def image_end(self) -> int:
        return self.image_offset + self.length


@dataclass(frozen=True, slots=True)
class StoredPiece:
    """A piece as the pool holds it (compressed pieces occupy ``stored_length`` bytes of their slot)."""

    image_offset: int
    volume_offset: int
    length: int
    compressed: bool = False
    stored_length: int = 0  # 0 means == length

    @property
    def stored(self) -> int:
        return self.stored_length or self.length


# --------------------------------------------------------------------------- failures
FailureKind = Literal["sense", "timeout", "lost-connection", "error"]


@dataclass(frozen=True, slots=True)
class Failure:
    """Why an operation did not complete: a SAN error (sense/timeout/lost connection) or other."""

    kind: FailureKind
    message: str
    device: str = ""
    sense: bytes = b""  # raw sense bytes when kind == "sense"
    status: int = 0  # SCSI status the command ended with

    def describe(self) -> str:
        where = f" on {self.device}" if self.device else ""
        if self.kind == "sense" and self.sense:
            try:
                from scsi.sense import Sense  # decoded for the humans reading the report

                return f"{self.message}{where}: {Sense.decode(self.sense)}"
            except Exception:  # sense module absent or bytes garbled: keep the raw form
                return f"{self.message}{where}: sense {self.sense.hex()}"
        return f"{self.message}{where}"


# --------------------------------------------------------------------------- mover limits
@dataclass(frozen=True, slots=True)
class MoverLimits:
    """What a data mover accepts (RECEIVE COPY RESULTS, OPERATING PARAMETERS)."""

    max_target_count: int = 2
    max_segment_count: int = 1
    max_descriptor_list_length: int = 1024
    max_segment_length: int = 0  # bytes, 0 = unlimited
    data_segment_granularity: int = 9  # log2 bytes
    total_concurrent_copies: int = 1
    implemented_codes: tuple[int, ...] = (0x02, 0xE4)

    @classmethod
    def from_operating_parameters(cls, op: Any) -> "MoverLimits":
        """Adapt the typed OPERATING PARAMETERS answer of :mod:`scsi.commands` (or a dict)."""
        get = op.get if isinstance(op, dict) else (lambda k, d=None: getattr(op, k, d))

        def first(*names: str, default: Any = None) -> Any:
            for n in names:
                v = get(n, None)
                if v is not None:
                    return v
            return default

        codes = first("implemented_descriptors", "implemented_descriptor_codes", "implemented_codes",
                      default=())
        return cls(
            max_target_count=int(first("max_cscd_count", "max_target_count", "maximum_target_count",
                                       "max_cscd_descriptor_count", "maximum_cscd_descriptor_count",
                                       default=2)),
            max_segment_count=int(first("max_segment_count", "maximum_segment_count",
                                        "max_segment_descriptor_count",
                                        "maximum_segment_descriptor_count", default=1)),
            max_descriptor_list_length=int(first("max_descriptor_list_length",
                                                 "maximum_descriptor_list_length", default=1024)),
            max_segment_length=int(first("max_segment_length", "maximum_segment_length", default=0)),
            data_segment_granularity=int(first("data_segment_granularity", default=9)),
            total_concurrent_copies=int(first("total_concurrent_copies", default=1)),
            implemented_codes=tuple(int(c) for c in codes),
        )


# --------------------------------------------------------------------------- planned copy work
@dataclass(frozen=True, slots=True)
class CopySegment:
    """One block->block segment: ``blocks`` blocks from ``src_lba`` to ``dst_lba``."""

    src_lba: int
    dst_lba: int
    blocks: int
    image_offset: int
    length: int  # bytes


@dataclass(frozen=True, slots=True)
class ParameterListPlan:
    """One EXTENDED COPY parameter list: its segments and (when encoded) its bytes."""

    segments: tuple[CopySegment, ...]
    data: bytes = b""
    list_id: int = 1

    @property
    def nbytes(self) -> int:
        return sum(s.length for s in self.segments)

    @property
    def image_start(self) -> int:
        return self.segments[0].image_offset

    @property
    def image_end(self) -> int:
        last = self.segments[-1]
        return last.image_offset + last.length


@dataclass(frozen=True, slots=True)
class Batch:
    """The unit of progress and resumption (SET SERVERFREE BATCHSIZE)."""

    index: int
    lists: tuple[ParameterListPlan, ...]

    @property
    def nbytes(self) -> int:
        return sum(pl.nbytes for pl in self.lists)

    @property
    def image_start(self) -> int:
        return self.lists[0].image_start

    @property
    def image_end(self) -> int:
        return self.lists[-1].image_end


# =========================================================================== operations
@dataclass(frozen=True, slots=True)
class RunCommand:
    """Run a pre/post snapshot command on the client (presnapshotcmd / postsnapshotcmd)."""

    command: str
    phase: Literal["pre", "post"]


@dataclass(frozen=True, slots=True)
class TakeSnapshot:
    """Copy-on-write snapshot of ``volume`` for the job's duration (imagetype snapshot)."""

    volume: str
    source: str
    cache_size_percent: int
    cache_location: str
    fsidle_retries: int
    fsidle_wait_seconds: float


@dataclass(frozen=True, slots=True)
class ReleaseSnapshot:
    volume: str
    snapshot: str


@dataclass(frozen=True, slots=True)
class BeginObject:
    """Reserve a pending (invisible) catalogue object and its pool slot."""

    node: str
    filespace: str
    mode: str
    image_type: str
    image_size: int
    volume_size: int
    file_system: str
    base_object_id: int | None = None
    management_class: str = "DEFAULT"
    pool: str = ""  # destination storage pool (empty: any pool volume with room)


@dataclass(frozen=True, slots=True)
class CommitObject:
    """Make the object restorable: all extents on the pool and verified (one transaction)."""

    object_id: int
    pieces: tuple[StoredPiece, ...]
    path_used: str
    compressed: bool
    digests: tuple[tuple[int, str], ...] = ()  # (chunk index, sha256 hex) of the restored view


@dataclass(frozen=True, slots=True)
class AbandonObject:
    object_id: int
    reason: str


@dataclass(frozen=True, slots=True)
class ReadOperatingParameters:
    """RECEIVE COPY RESULTS, service action 03h, sent to a data mover."""

    mover: str


@dataclass(frozen=True, slots=True)
class CopyBatches:
    """Send the batches' parameter lists through ``mover``; stop at the first failure."""

    mover: str
    source: str  # device the segments read (disk or pool)
    destination: str  # device the segments write
    batches: tuple[Batch, ...]
    first_batch: int = 0


@dataclass(frozen=True, slots=True)
class LanFreeWrite:
    """The client reads ``source`` and writes the pool device itself (LAN-free)."""

    source: str
    pool_device: str
    pool_offset: int
    pieces: tuple[Piece, ...]
    compress: bool = False
    source_offset: int = 0  # byte offset of the volume on the source device


@dataclass(frozen=True, slots=True)
class LanSend:
    """The client reads ``source`` and streams the pieces to the backup server, which writes the pool."""

    server: str
    source: str
    pool_volume: str
    pool_offset: int
    pieces: tuple[Piece, ...]
    compress: bool = False
    source_offset: int = 0


@dataclass(frozen=True, slots=True)
class VerifyPool:
    """Read the object's pieces back from the pool and compare with the source; digest the view."""

    source: str
    pool_device: str
    pool_offset: int
    pieces: tuple[StoredPiece, ...]
    chunk_size: int
    source_offset: int = 0
    server: str = ""  # non-empty: the pool is read through the backup server (LAN-only client)


@dataclass(frozen=True, slots=True)
class DigestVolume:
    """Digest the volume's current used data per chunk (image incremental scan)."""

    source: str
    pieces: tuple[Piece, ...]
    chunk_size: int
    source_offset: int = 0


@dataclass(frozen=True, slots=True)
class LanFreeRead:
    """Restore: the client reads the pool device and writes the destination itself."""

    pool_device: str
    pool_offset: int
    destination: str
    destination_offset: int
    pieces: tuple[StoredPiece, ...]


@dataclass(frozen=True, slots=True)
class LanReceive:
    """Restore: the server reads the pool and streams the pieces to the client."""

    server: str
    pool_volume: str
    pool_offset: int
    destination: str
    destination_offset: int
    pieces: tuple[StoredPiece, ...]


Operation = Union[RunCommand, TakeSnapshot, ReleaseSnapshot, BeginObject, CommitObject, AbandonObject,
                  ReadOperatingParameters, CopyBatches, LanFreeWrite, LanSend, VerifyPool, DigestVolume,
                  LanFreeRead, LanReceive]


# =========================================================================== results
@dataclass(frozen=True, slots=True)
class CommandResult:
    returncode: int
    output: str = ""


@dataclass(frozen=True, slots=True)
class SnapshotResult:
    ok: bool
    snapshot: str = ""  # device name to read the frozen volume from
    reason: str = ""
    designator: str = ""  # set when the snapshot is a LUN a data mover can read (array snapshot)


@dataclass(frozen=True, slots=True)
class SnapshotReleased:
    cache_exhausted: bool = False
    cache_used_bytes: int = 0


@dataclass(frozen=True, slots=True)
class ObjectStarted:
    object_id: int
    pool_volume: str
    pool_device: str
    pool_offset: int


@dataclass(frozen=True, slots=True)
class CatalogueDone:
    object_id: int


@dataclass(frozen=True, slots=True)
class OperatingParametersResult:
    limits: MoverLimits | None = None
    failure: Failure | None = None


@dataclass(frozen=True, slots=True)
class CopyResult:
    """Outcome of :class:`CopyBatches`.

    ``batches_done`` counts batches (from ``first_batch``) whose every list
    completed GOOD.  On failure, ``lists_done`` counts completed lists of the
    failing batch and ``segments_done`` the segments of the failing list known
    processed (COPY STATUS / FAILED SEGMENT DETAILS), or None when only list
    boundaries are known (timeout, lost connection).
    """

    batches_done: int
    failure: Failure | None = None
    lists_done: int = 0
    segments_done: int | None = None
    elapsed: float = 0.0

    @property
    def ok(self) -> bool:
        return self.failure is None


@dataclass(frozen=True, slots=True)
class TransferResult:
    """Outcome of a LAN-free / LAN transfer: pieces fully acknowledged, in order."""

    pieces_done: int
    stored: tuple[StoredPiece, ...] = ()
    failure: Failure | None = None
    elapsed: float = 0.0

    @property
    def ok(self) -> bool:
        return self.failure is None


@dataclass(frozen=True, slots=True)
class VerifyResult:
    ok: bool
    message: str = ""
    digests: tuple[tuple[int, str], ...] = ()


@dataclass(frozen=True, slots=True)
class DigestResult:
    digests: tuple[tuple[int, str], ...]
    failure: Failure | None = None


Result = Union[CommandResult, SnapshotResult, SnapshotReleased, ObjectStarted, CatalogueDone,
               OperatingParametersResult, CopyResult, TransferResult, VerifyResult, DigestResult]

Job = Generator[Operation, Result, Any]


def run_job(job: Job, execute: Callable[[Operation], Result]) -> Any:
    """Drive ``job`` synchronously with ``execute`` and return the job's report."""
    try:
        op = next(job)
        while True:
            op = job.send(execute(op))
    except StopIteration as stop:
        return stop.value


def pieces_from_extents(extents: Any) -> tuple[Piece, ...]:
    """Turn (offset, length) extents (list of pairs or an (n, 2) array) into image pieces."""
    out: list[Piece] = []
    pos = 0
    prev_end = -1
    for i, ext in enumerate(extents):
        off, length = int(ext[0]), int(ext[1])
        if off < 0 or length <= 0:
            raise ValueError(f"extent {i}: offset {off} length {length} is not a positive range")
        if off < prev_end:
            raise ValueError(f"extent {i} at offset {off} overlaps or precedes the previous extent")
        out.append(Piece(pos, off, length))
        pos += length
        prev_end = off + length
    return tuple(out)


def slice_pieces(pieces: tuple[Piece, ...] | list[Piece], start: int, end: int | None = None,
                 max_piece: int = 0) -> tuple[Piece, ...]:
    """The part of ``pieces`` covering image bytes [start, end), split to at most ``max_piece``."""
    out: list[Piece] = []
    for p in pieces:
        lo = max(p.image_offset, start)
        hi = p.image_end if end is None else min(p.image_end, end)
        if hi <= lo:
            continue
        delta = lo - p.image_offset
        cur = Piece(lo, p.volume_offset + delta, hi - lo)
        if max_piece and cur.length > max_piece:
            for o in range(0, cur.length, max_piece):
                n = min(max_piece, cur.length - o)
                out.append(Piece(cur.image_offset + o, cur.volume_offset + o, n))
        else:
            out.append(cur)
    return tuple(out)


__all__ = [n for n in dir() if not n.startswith("_") and n not in ("annotations", "field", "Enum")]
