"""The failover ladder every move climbs down: server-free (each mover) -> LAN-free -> LAN.

What a job knows while it moves pieces -- the path it is on, the movers left,
the image ranges a mover's COPY STATUS vouches for -- and the one way to step
down a rung (:func:`step_down`), shared by disk moves (:mod:`orchestrator.job.move`)
and tape moves (:mod:`orchestrator.job.move_tape`).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Literal, Sequence

from orchestrator.job.report import FailoverEvent, JobReport
from orchestrator.job.spec import DeviceSpec, PathPlan
from orchestrator.ops import PathKind, Piece, StoredPiece

log = logging.getLogger(__name__)

AnyPiece = Piece | StoredPiece


class JobFailed(Exception):
    """No path is left to move the remaining data."""


@dataclass
class MoveState:
    """Where the job stands on the failover ladder; shared by every move of one job."""

    path: PathKind
    movers: list[str]
    server_free_failed: bool = False
    # image ranges [start, end) whose lists the mover's COPY STATUS vouches for (no read-back needed)
    accounted: list[tuple[int, int]] = field(default_factory=list)
    accounting_errors: list[str] = field(default_factory=list)  # lists the mover's status contradicts
    tape_location: str = ""  # tape pools: where the backed-up object lies once closed (TapeLocation.encode())


@dataclass
class Endpoints:
    direction: Literal["backup", "restore"]
    client: DeviceSpec  # backup: the volume's LUN (or snapshot); restore: the destination LUN
    client_base: int  # byte offset of the volume on that LUN
    pool_volume: str
    pool_device: str
    pool_offset: int
    compress: bool = False  # backup only: compress on LAN(-free)
    tape_location: str = ""  # restore from a tape pool: where the object lies (TapeLocation.encode())


def stored_piece(p: AnyPiece) -> StoredPiece:
    return p if isinstance(p, StoredPiece) else StoredPiece(p.image_offset, p.volume_offset, p.length)


def remaining(pieces: Sequence[AnyPiece], pos: int, max_piece: int = 0) -> list[AnyPiece]:
    """Pieces (or their tails) at image offsets >= ``pos``; uncompressed ones split to ``max_piece``."""
    out: list[AnyPiece] = []
    for p in pieces:
        end = p.image_offset + p.length
        if end <= pos:
            continue
        compressed = isinstance(p, StoredPiece) and p.compressed
        if p.image_offset < pos:
            if compressed:
                raise JobFailed(f"compressed piece at image offset {p.image_offset} was half moved")
            d = pos - p.image_offset
            p = Piece(pos, p.volume_offset + d, p.length - d)
        if compressed or not max_piece or p.length <= max_piece:
            out.append(p)
            continue
        for o in range(0, p.length, max_piece):
            out.append(Piece(p.image_offset + o, p.volume_offset + o, min(max_piece, p.length - o)))
    return out


def before(pieces: Sequence[AnyPiece], pos: int) -> list[StoredPiece]:
    """The pieces (or their heads) at image offsets below ``pos``, as stored (uncompressed) pieces."""
    out: list[StoredPiece] = []
    for p in pieces:
        if p.image_offset >= pos:
            break
        n = min(p.length, pos - p.image_offset)
        out.append(StoredPiece(p.image_offset, p.volume_offset, n) if n < p.length else stored_piece(p))
    return out


def next_path(current: PathKind, paths: PathPlan) -> PathKind | None:
    if current == PathKind.SERVER_FREE and paths.lan_free:
        return PathKind.LAN_FREE
    if current in (PathKind.SERVER_FREE, PathKind.LAN_FREE) and paths.lan:
        return PathKind.LAN
    return None


def step_down(state: MoveState, paths: PathPlan, report: JobReport, reason: str, pos: int,
               mover: str = "") -> None:
    nxt = next_path(state.path, paths)
    to = nxt.value if nxt else "none"
    report.failovers.append(FailoverEvent(state.path.value, to, reason, pos, mover))
    log.warning("%s failover %s -> %s at image byte %d: %s", report.kind, state.path.value, to, pos, reason)
    if state.path == PathKind.SERVER_FREE:
        state.server_free_failed = True
    if nxt is None:
        raise JobFailed(f"{state.path.value} path failed and no other path is available: {reason}")
    state.path = nxt


