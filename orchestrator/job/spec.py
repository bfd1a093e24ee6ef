"""What a backup or restore job is asked to do (pydantic: the boundary into the job core).

The CLI (or the simulator, or a scenario runner) composes a spec from the
options, the volume analysis, the topology verdict and the catalogue; the job
itself only reads the spec, so it cannot tell where the facts came from.
"""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from orchestrator.chunk_runs import DigestRuns
from orchestrator.piece_stream import PieceStream

from orchestrator.ops import PathKind, StoredPiece
from orchestrator.ops.tape import TapeFormat
from orchestrator.ops.types import PlanError
from orchestrator.plan.disk import DEFAULT_BATCH_MB, MAX_BATCH_MB, MIN_BATCH_MB

MIB = 1 << 20


class DeviceSpec(BaseModel):
    """A LUN as the job names it: a driver-resolvable name, its designator and block size."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    designator: str = ""  # hex VPD 83h designator (needed for server-free)
    block_size: int = Field(512, gt=0)

    @field_validator("designator")
    @classmethod
    def _hex(cls, v: str) -> str:
        v = v.lower().removeprefix("naa.").removeprefix("0x").replace(":", "")
        if v and (len(v) % 2 or any(c not in "0123456789abcdef" for c in v)):
            raise ValueError(f"designator {v!r} is not an even number of hex digits")
        return v


class TapePlan(BaseModel):
    """A tape storage pool: how objects become records, and the drives the pool may mount, in order."""

    model_config = ConfigDict(extra="forbid")

    record_bytes: int = Field(256 * 1024, gt=0, le=0xFFFFFF)  # bytes per record (variable) or transfer (fixed)
    fixed: bool = False
    block_length: int = Field(0, ge=0)  # fixed mode: the drives' block length
    drives: list[str] = Field(default_factory=list)  # spare drives, tried after the object's own

    @model_validator(mode="after")
    def _format(self) -> "TapePlan":
        try:
            self.fmt()
        except PlanError as exc:
            raise ValueError(str(exc)) from None
        return self

    def fmt(self):
        return TapeFormat(self.record_bytes, self.fixed, self.block_length)


class PathPlan(BaseModel):
    """Which paths the job may use, in failover order, and why it starts where it does."""

    model_config = ConfigDict(extra="forbid")

    start: PathKind = PathKind.LAN
    reasons: list[str] = Field(default_factory=list)  # why server-free (or LAN-free) is not used
    notes: list[str] = Field(default_factory=list)  # caveats the report repeats (e.g. no encryption)
    movers: list[str] = Field(default_factory=list)  # server-free data movers in configured order
    lan_free: bool = False  # a verified client -> pool device path exists
    lan: bool = True  # the backup server is reachable over the LAN
    server: str = ""  # the LAN path as the driver understands it (local mode: local:N; the backup server's: host:port)
    pool_designators: dict[str, str] = Field(default_factory=dict)  # pool device -> designator hex
    batch_mb: int = Field(DEFAULT_BATCH_MB, ge=MIN_BATCH_MB, le=MAX_BATCH_MB)
    max_lan_piece: int = Field(8 * MIB, gt=0)  # LAN(-free) resumption granularity
    tape: TapePlan | None = None  # set when the destination pool is a tape pool

    @model_validator(mode="after")
    def _consistent(self) -> "PathPlan":
        if self.start == PathKind.SERVER_FREE and not self.movers:
            raise ValueError("server-free start needs at least one data mover")
        return self


class ResumePoint(BaseModel):
    """Where an earlier server-free copy of this very object stopped: its image bytes below
    ``image_offset`` are on the pool already (batches the mover's COPY STATUS vouched for), so the
    job moves only the rest and records the earlier copy as a failover."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    image_offset: int = Field(gt=0)
    reason: str = ""  # why the server-free copy stopped
    mover: str = ""


class BackupSpec(BaseModel):
    """One image backup of one volume.

    The used extents come as ``extents`` (pairs, checked here) or, for
    millions of them, as ``extent_stream`` (a `PieceStream` read again on each
    pass and checked by the job as it reads them).
    """

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    node: str = Field(min_length=1)
    filespace: str = Field(min_length=1)
    source: DeviceSpec
    volume_offset: int = Field(0, ge=0)  # byte offset of the volume on the source LUN
    volume_size: int = Field(gt=0)
    file_system: str = "raw"
    extents: list[tuple[int, int]] = Field(default_factory=list)
    extent_stream: PieceStream | None = Field(None, exclude=True)
    mode: Literal["selective", "incremental"] = "selective"
    image_type: Literal["static", "snapshot", "dynamic"] = "static"
    management_class: str = "DEFAULT"
    pool: str = ""
    compression: bool = False
    presnapshotcmd: str = ""
    postsnapshotcmd: str = ""
    snapshot_cache_size: int = Field(100, ge=1, le=100)
    snapshot_cache_location: str = ""
    snapshot_fsidle_retries: int = Field(2, ge=0)
    snapshot_fsidle_wait: float = Field(1.0, ge=0)
    chunk_size: int = Field(MIB, gt=0)  # digest grid for image incrementals
    # also read server-free bytes back on the client (off: the mover's COPY STATUS proves them)
    verify_server_free_data: bool = False
    base_object_id: int | None = None
    # the base view's chunk digests: a dict, or for millions of chunks the catalogue's runs as a stream
    # (a stream is tried first: validating one as a list would read all of it)
    base_digests: DigestRuns | dict[int, str] = Field(default_factory=dict, union_mode="left_to_right")
    # volume ranges base_digests cover: pairs, or a stream (`orchestrator.job.incremental.coverage_stream`)
    base_coverage: PieceStream | list[tuple[int, int]] = Field(default_factory=list, union_mode="left_to_right")
    paths: PathPlan = Field(default_factory=PathPlan)
    resume: ResumePoint | None = None  # continue an object a server-free copy left half done

    @model_validator(mode="after")
    def _check(self) -> "BackupSpec":
        if self.extent_stream is None and "extents" not in self.model_fields_set:
            raise ValueError("extents: field required (or an extent_stream)")
        if self.extent_stream is not None and self.extents:
            raise ValueError("give extents or an extent_stream, not both")
        prev = -1
        for i, (off, length) in enumerate(self.extents):
            if off < 0 or length <= 0 or off < prev:
                raise ValueError(f"extents[{i}] = ({off}, {length}) is empty, negative or out of order")
            prev = off + length
            if prev > self.volume_size:
                raise ValueError(f"extents[{i}] ends at {prev}, past the volume size {self.volume_size}")
        if self.mode == "incremental" and self.base_object_id is None:
            raise ValueError("mode incremental needs the base (full) image object; none was given")
        if self.resume is not None and (self.mode != "selective" or self.paths.tape is not None or (
                self.extent_stream is None and self.resume.image_offset > sum(n for _, n in self.extents))):
            raise ValueError("resume: only a full image on a disk pool resumes, inside its image")
        return self


class ObjectSpec(BaseModel):
    """One catalogue object to restore (a full image or an incremental)."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    object_id: int
    mode: Literal["selective", "incremental"] = "selective"
    pool_volume: str
    pool_device: str
    pool_offset: int = Field(ge=0)
    volume_size: int = Field(gt=0)
    pieces: PieceStream | list[StoredPiece]  # a PieceStream reads the catalogue's blocks as the job goes
    tape_location: str = ""  # tape pools: TapeLocation.encode() (orchestrator.plan.tape_position)


class RestoreSpec(BaseModel):
    """Restore of a volume: the base image and optionally its incrementals, in order."""

    model_config = ConfigDict(extra="forbid")

    node: str
    filespace: str
    chain: list[ObjectSpec] = Field(min_length=1)
    destination: DeviceSpec
    destination_offset: int = Field(0, ge=0)
    destination_size: int = Field(gt=0)
    incremental: bool = False
    deletefiles: bool = False
    paths: PathPlan = Field(default_factory=PathPlan)

    @model_validator(mode="after")
    def _chain(self) -> "RestoreSpec":
        if self.chain[0].mode != "selective":
            raise ValueError("a restore chain must start with a full (selective) image")
        if any(o.mode != "incremental" for o in self.chain[1:]):
            raise ValueError("only incremental objects may follow the full image in a restore chain")
        return self


def object_spec(record) -> ObjectSpec:
    """Build an ObjectSpec from a :class:`orchestrator.catalogue.ObjectRecord`."""
    return ObjectSpec(object_id=record.id, mode=record.mode, pool_volume=record.pool_volume,
                      pool_device=record.pool_device, pool_offset=record.pool_offset,
                      volume_size=record.volume_size,
                      pieces=record.pieces if isinstance(record.pieces, PieceStream) else list(record.pieces),
                      tape_location=getattr(record, "tape_location", None) or "")
