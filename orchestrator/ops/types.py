"""The value types jobs, drivers and planners share: pieces, failures, mover limits, batches.

Import them from :mod:`orchestrator.ops`, which re-exports every name.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Callable, Literal

from scsi.sense import Sense


class PlanError(ValueError):
    """The extents cannot be expressed within the mover's operating parameters (or a tape format is bad)."""


class PathKind(str, Enum):
    """Data paths, in failover order."""

    SERVER_FREE = "server-free"
    LAN_FREE = "lan-free"
    LAN = "lan"


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
            try:  # decoded for the humans reading the report
                return f"{self.message}{where}: {Sense.decode(self.sense)}"
            except Exception:  # noqa: BLE001 - garbled bytes: keep the raw form
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
    max_stream_transfer: int = 0  # MAXIMUM STREAM DEVICE TRANSFER SIZE, bytes (0 = not reported)

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
            max_stream_transfer=int(first("max_stream_device_transfer_size", "max_stream_transfer", default=0)),
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
    """One EXTENDED COPY parameter list: its segments and its bytes (``data``, or built by ``encode``).

    The planner fills ``data``; ``encode`` lets another producer defer the
    bytes until a driver sends the list (``payload()`` returns either).
    """

    segments: tuple[CopySegment, ...]
    data: bytes = b""
    list_id: int = 1
    encode: Callable[[], bytes] | None = field(default=None, compare=False, repr=False)

    def payload(self) -> bytes:
        """The encoded parameter list (empty when no encoder was available)."""
        return self.data or (self.encode() if self.encode is not None else b"")

    @property
    def nbytes(self) -> int:
        columns = getattr(self.segments, "nbytes", None)  # segments held as columns count themselves
        return columns if columns is not None else sum(s.length for s in self.segments)

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




# --------------------------------------------------------------------------- mover accounting
@dataclass(frozen=True, slots=True)
class ListAccount:
    """What a data mover reports for one finished parameter list (RECEIVE COPY RESULTS, COPY STATUS).

    A server-free object is verified from these, so the client never reads
    the volume back: the list must be COMPLETED with every planned segment
    processed and the planned bytes counted (``bytes_transferred`` is the
    TRANSFER COUNT scaled by its units, so rounded down to ``unit_bytes``).
    ``problem`` says why no status could be read (the list is then unproven).
    """

    list_id: int
    completed: bool
    segments_processed: int
    bytes_transferred: int
    unit_bytes: int = 1
    problem: str = ""

    def mismatch(self, plan: ParameterListPlan) -> str:
        """Why this status does not vouch for ``plan`` ("" when it does)."""
        if self.problem:
            return f"list {plan.list_id}: no COPY STATUS ({self.problem})"
        if self.list_id != plan.list_id:
            return f"status of list {self.list_id} answered for list {plan.list_id}"
        if not self.completed:
            return f"list {plan.list_id} is not reported COMPLETED"
        if self.segments_processed != len(plan.segments):
            return (f"list {plan.list_id}: {self.segments_processed} segments processed, "
                    f"{len(plan.segments)} planned")
        unit = max(1, self.unit_bytes)
        if self.bytes_transferred != plan.nbytes // unit * unit:
            return f"list {plan.list_id}: {self.bytes_transferred} bytes transferred, {plan.nbytes} planned"
        return ""
