"""The failover ladder for tape storage pools: server-free (each mover) -> LAN-free, on records.

`orchestrator.job.move.move` hands a move here when the pool is a tape
pool (backup: ``paths.tape``; restore: the object has a tape location).  The
tape rules of :mod:`orchestrator.job.tape_move` apply: a backup continues after
the last record known written, or restarts the object on the next drive when
the drive failed; the LAN-free client writes and reads the very same records,
so an object is restorable server-free whichever path wrote it.  The object's
:class:`~orchestrator.plan.tape_position.TapeLocation` is left in
``state.tape_location`` for the commit.  On the LAN path the backup server
writes (reads) those records for the client.
"""
from __future__ import annotations

import logging
from collections.abc import Generator, Sequence

from orchestrator.job.ladder import AnyPiece, Endpoints, JobFailed, MoveState, step_down
from orchestrator.job.report import FailoverEvent, JobReport
from orchestrator.job.spec import PathPlan
from orchestrator.ops import PathKind, StoredPiece
from orchestrator.piece_stream import PieceStream
from orchestrator.plan.disk import CscdRef
from orchestrator.job.tape_move import (
    DriveRef,
    TapeMove,
    backup_to_tape,
    lan_free_from_tape,
    lan_free_to_tape,
    restore_from_tape,
)
from orchestrator.plan.tape_position import TapeLocation

log = logging.getLogger(__name__)


def move_tape(ends: Endpoints, state: MoveState, paths: PathPlan, report: JobReport, pieces: Sequence[AnyPiece],
              *, server_free_ok: bool = True) -> Generator[object, object, Sequence[StoredPiece]]:
    """Move ``pieces`` to or from a tape pool, failing over as needed; returns what was moved (as a
    `PieceStream`)."""
    if ends.direction == "backup":
        return (yield from _backup(ends, state, paths, report, pieces, server_free_ok))
    return (yield from _restore(ends, state, paths, report, pieces, server_free_ok))


def _drive(paths: PathPlan, name: str) -> DriveRef:
    return DriveRef(name, paths.pool_designators.get(name, ""))


def _disk(ends: Endpoints) -> CscdRef | None:
    c = ends.client
    return CscdRef(c.name, c.designator, c.block_size) if c.designator else None


def _server_free_report(m: TapeMove, state: MoveState, report: JobReport, moved_from: int) -> None:
    report.elapsed += m.elapsed
    for mv in m.movers_used:
        if mv not in report.movers_used:
            report.movers_used.append(mv)
    for why in m.events[:-1] if not m.ok else m.events:  # movers (and drives) given up on along the way
        report.failovers.append(FailoverEvent(PathKind.SERVER_FREE.value, PathKind.SERVER_FREE.value, why,
                                              moved_from, ""))
    state.movers = list(m.movers_left)


def _client_path(state: MoveState, paths: PathPlan) -> PathKind:
    """The path the client side takes now (server-free is not one of them)."""
    if state.path != PathKind.SERVER_FREE:
        return state.path
    return PathKind.LAN_FREE if paths.lan_free else PathKind.LAN


def _backup(ends, state, paths, report, pieces, server_free_ok):
    fmt = paths.tape.fmt()
    names = [ends.pool_device] + [d for d in paths.tape.drives if d != ends.pool_device]
    drives = [_drive(paths, n) for n in names]
    pieces = PieceStream.of(pieces)  # read as a stream, block by block, on every pass
    start, end = pieces.span() or (0, 0)
    if ends.compress:
        report.warnings.append("compression is not applied on a tape pool: records stay uncompressed so the "
                               "object can be restored server-free")
    m: TapeMove | None = None
    if state.path == PathKind.SERVER_FREE and server_free_ok:
        disk = _disk(ends)
        missing = [d.name for d in drives if not d.designator]
        if disk is None or missing or not state.movers:
            reason = ("no data mover is left to try" if not state.movers else
                      f"{ends.client.name} has no VPD 83h designator" if disk is None else
                      f"tape drive(s) {', '.join(missing)} have no designator for a target descriptor")
            step_down(state, paths, report, reason, start)
        else:
            m = yield from backup_to_tape(pieces, disk=disk, disk_base=ends.client_base, drives=drives, fmt=fmt,
                                          volume=ends.pool_volume, movers=list(state.movers),
                                          batch_bytes=paths.batch_mb << 20)
            _server_free_report(m, state, report, start)
            report.add_bytes(PathKind.SERVER_FREE.value, (end if m.ok else m.image_offset) - start)
            if m.ok:
                state.tape_location = m.location.encode()
                return pieces
            if m.fatal:
                raise JobFailed(m.failure)
            step_down(state, paths, report, m.failure, m.image_offset, m.movers_used[-1] if m.movers_used else "")
    drive = _drive(paths, m.drive if m is not None else ends.pool_device)
    while True:  # LAN-free, then LAN: each goes on from the last record known written
        path = _client_path(state, paths)
        lan = path == PathKind.LAN
        before = m.image_offset if m is not None else start
        m = yield from lan_free_to_tape(pieces, source=ends.client.name, source_offset=ends.client_base,
                                        drive=drive, fmt=fmt, volume=ends.pool_volume, move=m,
                                        server=paths.server if lan else "")
        report.elapsed += m.elapsed
        report.add_bytes(path.value, m.image_offset - before)
        if m.ok:
            state.tape_location = m.location.encode()
            return pieces
        state.path = path
        step_down(state, paths, report, m.failure, m.image_offset)  # raises when no path is left


def _restore(ends, state, paths, report, pieces, server_free_ok):
    pieces = PieceStream.of(pieces)  # read as a stream, block by block, on every pass
    if not pieces:
        return pieces
    try:
        loc = TapeLocation.decode(ends.tape_location, f"object on {ends.pool_volume}")
    except ValueError as exc:
        raise JobFailed(str(exc)) from None
    drive = _drive(paths, loc.drive or ends.pool_device)
    start, end = pieces.span()
    m: TapeMove | None = None
    if state.path == PathKind.SERVER_FREE and server_free_ok:
        disk = _disk(ends)
        if disk is None or not drive.designator or not state.movers:
            reason = ("no data mover is left to try" if not state.movers else
                      f"{ends.client.name} has no VPD 83h designator" if disk is None else
                      f"tape drive {drive.name} has no designator for a target descriptor")
            step_down(state, paths, report, reason, start)
        else:
            m = yield from restore_from_tape(pieces, location=loc, drive=drive, disk=disk, disk_base=ends.client_base,
                                             movers=list(state.movers), batch_bytes=paths.batch_mb << 20)
            _server_free_report(m, state, report, start)
            report.add_bytes(PathKind.SERVER_FREE.value, m.image_offset - start)
            if m.ok:
                return pieces
            step_down(state, paths, report, m.failure, m.image_offset, m.movers_used[-1] if m.movers_used else "")
    while True:  # LAN-free, then LAN: each goes on from the first record not yet restored
        path = _client_path(state, paths)
        lan = path == PathKind.LAN
        before = m.image_offset if m is not None else start
        m = yield from lan_free_from_tape(pieces, location=loc, drive=drive, destination=ends.client.name,
                                          destination_offset=ends.client_base, move=m,
                                          server=paths.server if lan else "")
        report.elapsed += m.elapsed
        report.add_bytes(path.value, m.image_offset - before)
        if m.ok and m.image_offset >= end:
            return pieces
        state.path = path
        step_down(state, paths, report, m.failure or "restore stopped early", m.image_offset)
