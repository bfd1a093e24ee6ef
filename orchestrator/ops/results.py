"""Results a driver answers a job's operations with (see :mod:`orchestrator.ops`).

Kept apart from the operations only for size; import them from
:mod:`orchestrator.ops`, which re-exports every name.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Union

from orchestrator.ops.types import Failure, ListAccount, MoverLimits, StoredPiece


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
    available: bool = True  # False: no snapshot facility at all (TSM without LVSA): back up offline


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
    boundaries are known (timeout, lost connection).  ``accounting`` holds the
    mover's COPY STATUS of every list that completed, in order, or None when
    the driver cannot ask (the job then verifies those bytes by reading them).
    """

    batches_done: int
    failure: Failure | None = None
    lists_done: int = 0
    segments_done: int | None = None
    elapsed: float = 0.0
    accounting: tuple[ListAccount, ...] | None = None

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
    #: (chunk, digest) pairs in ascending chunk order; a read-back of a whole image is a
    #: `orchestrator.digest_spool.DigestSpool` (one per chunk, held on file past a page)
    digests: Sequence[tuple[int, str]] = ()


@dataclass(frozen=True, slots=True)
class DigestResult:
    digests: Sequence[tuple[int, str]]  # in chunk order; drivers give a stream read once (a scan of every chunk)
    failure: Failure | None = None


Result = Union[CommandResult, SnapshotResult, SnapshotReleased, ObjectStarted, CatalogueDone,
               OperatingParametersResult, CopyResult, TransferResult, VerifyResult, DigestResult]

