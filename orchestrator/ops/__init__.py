"""The sans-I/O vocabulary of backup and restore jobs.

A job (see :mod:`orchestrator.job`) is a generator that *yields* one of the
operation objects below and is resumed with the matching result object.  The
job never touches a socket, a device or a clock: a driver (the simulator, the
real pyscsi driver, a test driver) decides how each operation is carried out.
Both sides of this module are plain frozen dataclasses so that the simulator
can build and inspect thousands of them cheaply; validation happens at the
boundaries (the job spec is pydantic, see :mod:`orchestrator.job.spec`).
Value types live in :mod:`orchestrator.ops.types`, results in
:mod:`orchestrator.ops.results`; both are re-exported here.

Positions: a volume is described by *extents* (byte offset, length) relative
to the start of the volume.  Concatenating them gives the *image*; an extent's
``image_offset`` is its place in that concatenation.  On the pool an object
occupies ``[pool_offset, pool_offset + image_size)`` and every byte of the
image has one fixed place there, whatever path moved it -- which is why a
resumed job can never write an extent twice into the final image.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Generator, Literal, Union

from orchestrator.ops.types import (Batch, CopySegment, Failure, FailureKind, ListAccount, MoverLimits,
                                    ParameterListPlan, PathKind, Piece, StoredPiece)


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
    tape_location: str = ""  # tape pools: TapeLocation.encode() of the closed object (orchestrator.plan.tape_position)


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
    """Verify the object on the pool before it is committed.

    ``pieces`` are read back from the pool and compared with the source (and
    digested): the client already handled their data (LAN-free, LAN).
    ``accounted`` pieces were proven by the data mover's own COPY STATUS
    (server-free): the client reads none of their bytes, neither from the
    volume nor from the pool.  With ``pool_server`` the backup server reads
    the object on the pool and returns chunk digests of the whole view (only
    digests cross the LAN); otherwise, or if that fails, the driver checks
    over the SAN that the pool device answers and covers them, and gives no
    digest for the chunks they touch.
    """

    source: str
    pool_device: str
    pool_offset: int
    pieces: tuple[StoredPiece, ...]
    chunk_size: int
    source_offset: int = 0
    server: str = ""  # non-empty: the pool is reached through the backup server (no usable SAN path)
    accounted: tuple[StoredPiece, ...] = ()
    pool_server: str = ""  # backup server that digests the object on the pool side (HOST:PORT)


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
from orchestrator.ops.results import (CatalogueDone, CommandResult, CopyResult, DigestResult,  # noqa: E402,F401
                                      ObjectStarted, OperatingParametersResult, Result, SnapshotReleased,
                                      SnapshotResult, TransferResult, VerifyResult)

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


#: digest of a chunk nobody read back: never equals a real (hex) digest, so it counts as changed; the catalogue
#: stores a run of n consecutive such chunks as one row "unread n"
UNREAD_DIGEST = "unread"


def chunks_touched(pieces: Any, chunk_size: int) -> set[int]:
    """Indices of the digest chunks (``volume_offset // chunk_size``) that ``pieces`` put bytes in."""
    out: set[int] = set()
    for p in pieces:
        if p.length > 0:
            out.update(range(p.volume_offset // chunk_size, (p.volume_offset + p.length - 1) // chunk_size + 1))
    return out


__all__ = [n for n in dir() if not n.startswith("_") and n not in ("annotations", "dataclass", "Any", "Callable",
                                                                  "Generator", "Literal", "Union")]
