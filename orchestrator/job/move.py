"""Moving image pieces with failover: server-free (each mover in order) -> LAN-free -> LAN.

Shared by backup (volume -> pool) and restore (pool -> volume).  Progress is
tracked as the image offset up to which data is known at the destination:
whole batches, whole lists, and the segments COPY STATUS / FAILED SEGMENT
DETAILS vouch for; LAN transfers count acknowledged pieces.  Every image byte
has one fixed place at the destination, so resuming from that offset on
another path never writes a byte twice into the final image nor skips one.
A copy that timed out may still finish late on its mover: it can only write
the same source bytes to the same places, which is harmless for a static
image (host snapshots never go server-free, see job_backup).
"""
from __future__ import annotations

import logging
from itertools import islice
from typing import Generator, Iterator, Sequence

from orchestrator.job.ladder import (AnyPiece, Endpoints, JobFailed, MoveState, remaining, step_down,  # noqa: F401
                                     stored_piece)
from orchestrator.job.move_tape import move_tape
from orchestrator.job.report import FailoverEvent, JobReport
from orchestrator.job.spec import PathPlan
from orchestrator.ops import (Batch, CopyBatches, CopyResult, LanFreeRead, LanFreeWrite, LanReceive, LanSend,
                              OperatingParametersResult, PathKind, Piece, ReadOperatingParameters,
                              StoredPiece, TransferResult)
from orchestrator.piece_blocks import PieceBlock
from orchestrator.piece_stream import HalfMovedCompressed, PieceStream, blocks_from_pieces
from orchestrator.plan.columns import iter_column_batches
from orchestrator.plan.windows import next_window
from orchestrator.plan.disk import CscdRef, PlanError, default_encoder, image_position

log = logging.getLogger(__name__)

# at most this many segments go to the driver in one CopyBatches (then the next window is planned), and at
# most this many pieces in one LAN(-free) transfer: memory is bounded by these, not by the image's extent count
WINDOW_SEGMENTS = 1 << 16
LAN_WINDOW_PIECES = 1 << 16


class Moved:
    """What a move put at the destination, in image order, without holding the pieces.

    Data moved as planned (server-free) is a range of the source stream;
    pieces a driver acknowledged with their own stored form (LAN, possibly
    compressed) are kept as compact blocks.
    """

    def __init__(self, source: PieceStream):
        self.source = source
        self.parts: list[tuple[int, int] | tuple[PieceBlock, ...]] = []

    def add_range(self, lo: int, hi: int) -> None:
        if hi <= lo:
            return
        last = self.parts[-1] if self.parts else None
        if last is not None and len(last) == 2 and isinstance(last[0], int) and last[1] == lo:
            self.parts[-1] = (last[0], hi)
        else:
            self.parts.append((lo, hi))

    def add_pieces(self, pieces: Sequence[StoredPiece]) -> None:
        if pieces:
            self.parts.append(tuple(blocks_from_pieces(pieces)))

    def stream(self) -> PieceStream:
        parts = tuple(self.parts)
        source = self.source

        def blocks() -> Iterator[PieceBlock]:
            for part in parts:
                if part and isinstance(part[0], int):
                    yield from source.blocks(part[0], part[1])  # type: ignore[arg-type]
                else:
                    yield from part  # type: ignore[misc]
        return PieceStream(blocks)


def move(ends: Endpoints, state: MoveState, paths: PathPlan, report: JobReport,
         pieces: Sequence[AnyPiece] | PieceStream, *, server_free_ok: bool = True,
         ) -> Generator[object, object, Sequence[StoredPiece]]:
    """Move ``pieces`` to the destination, failing over as needed; returns what was moved.

    ``pieces`` may be a `PieceStream`: then it is read block by block, the
    lists are planned window by window as they are sent, and a resumption
    starts from the image position reached, so memory does not grow with the
    extent count.  The result is a `PieceStream`.
    """
    if ends.tape_location or (ends.direction == "backup" and paths.tape is not None):
        # tape pools: records, positions, no rewriting; even an empty object is written (its filemark
        # is what makes it exist on tape)
        # the pieces go as a stream, planned window by window
        return (yield from move_tape(ends, state, paths, report, pieces, server_free_ok=server_free_ok))
    stream = PieceStream.of(pieces)
    moved = Moved(stream)
    span = stream.span()
    if span is None:
        return moved.stream()
    pos, end = span
    try:
        while pos < end:
            if state.path == PathKind.SERVER_FREE and server_free_ok:
                pos = yield from _server_free(ends, state, paths, report, stream, pos, moved)
                continue
            path = state.path if state.path != PathKind.SERVER_FREE else (
                PathKind.LAN_FREE if paths.lan_free else PathKind.LAN)
            pos = yield from _lan(ends, state, path, paths, report, stream, pos, moved)
    except HalfMovedCompressed as exc:
        raise JobFailed(str(exc)) from None
    return moved.stream()


def _cscds(ends: Endpoints, paths: PathPlan) -> tuple[CscdRef, CscdRef, int, int]:
    client = ends.client
    pool_desig = paths.pool_designators.get(ends.pool_device, "")
    if not client.designator:
        raise PlanError(f"{client.name} has no VPD 83h designator to name it in a target descriptor")
    if not pool_desig:
        raise PlanError(f"pool device {ends.pool_device} has no designator for a target descriptor")
    c = CscdRef(client.name, client.designator, client.block_size)
    p = CscdRef(ends.pool_device, pool_desig, client.block_size)
    if ends.direction == "backup":
        return c, p, ends.client_base, ends.pool_offset
    return p, c, ends.pool_offset, ends.client_base


def _server_free(ends: Endpoints, state: MoveState, paths: PathPlan, report: JobReport,
                 stream: PieceStream, pos: int, moved: Moved) -> Generator[object, object, int]:
    if not state.movers:
        step_down(state, paths, report, "no data mover is left to try", pos)
    while state.movers:
        mover = state.movers[0]
        reason = ""
        r: OperatingParametersResult = yield ReadOperatingParameters(mover)  # type: ignore[misc]
        if r.failure is not None or r.limits is None:
            reason = f"operating parameters unavailable: {r.failure.describe() if r.failure else 'no data'}"
        else:
            first = ends.client.name if ends.direction == "backup" else ends.pool_device
            second = ends.pool_device if ends.direction == "backup" else ends.client.name
            try:
                src, dst, sbase, dbase = _cscds(ends, paths)
                plan = iter_column_batches(stream.blocks(pos), direction=ends.direction, src=src, dst=dst,
                                           src_base=sbase, dst_base=dbase, limits=r.limits,
                                           batch_bytes=paths.batch_mb << 20, mover=mover,
                                           encoder=default_encoder())
                batches = next_window(plan, WINDOW_SEGMENTS)
            except PlanError as exc:
                reason = str(exc)
                batches = ()
            else:
                if not batches:
                    return pos
            while batches:
                cr: CopyResult = yield CopyBatches(mover, first, second, batches)  # type: ignore[misc]
                report.elapsed += cr.elapsed
                if cr.ok:
                    new = batches[-1].image_end
                else:
                    new = image_position(batches, cr.batches_done, cr.lists_done, cr.segments_done)
                moved.add_range(pos, new)
                _account(state, batches, cr, mover)
                report.add_bytes(PathKind.SERVER_FREE.value, new - pos)
                if mover not in report.movers_used and new > pos:
                    report.movers_used.append(mover)
                pos = new
                if not cr.ok:
                    reason = cr.failure.describe() if cr.failure else "copy failed"
                    break
                try:
                    batches = next_window(plan, WINDOW_SEGMENTS)
                except PlanError as exc:  # a piece further on the mover cannot copy: the next one resumes here
                    reason = str(exc)
                    break
                if not batches:
                    return pos
        state.movers.pop(0)
        if state.movers:
            report.failovers.append(FailoverEvent(PathKind.SERVER_FREE.value, PathKind.SERVER_FREE.value,
                                                  reason, pos, mover))
            log.warning("mover %s failed, trying %s: %s", mover, state.movers[0], reason)
        else:
            step_down(state, paths, report, reason, pos, mover)
    return pos


def _account(state: MoveState, batches: Sequence[Batch], cr: CopyResult, mover: str) -> None:
    """Match the mover's COPY STATUS of each completed list against the plan (see :class:`ListAccount`)."""
    if cr.accounting is None:  # the driver cannot ask: those bytes get verified by reading them
        return
    done = [pl for b in batches[:cr.batches_done] for pl in b.lists]
    if cr.batches_done < len(batches):
        done += batches[cr.batches_done].lists[:cr.lists_done]
    for i, pl in enumerate(done):
        acct = cr.accounting[i] if i < len(cr.accounting) else None
        why = acct.mismatch(pl) if acct is not None else f"list {pl.list_id}: no COPY STATUS reported"
        if why:
            state.accounting_errors.append(f"data mover {mover}: {why}")
        elif state.accounted and state.accounted[-1][1] == pl.image_start:  # one range per run of lists
            state.accounted[-1] = (state.accounted[-1][0], pl.image_end)
        else:
            state.accounted.append((pl.image_start, pl.image_end))


def _lan(ends: Endpoints, state: MoveState, path: PathKind, paths: PathPlan, report: JobReport,
         stream: PieceStream, pos: int, moved: Moved) -> Generator[object, object, int]:
    # after a failover from server-free the data goes uncompressed (a later server-free restore)
    compress = ends.compress and not state.server_free_failed
    pieces = stream.pieces(pos, paths.max_lan_piece)
    while True:
        rest = list(islice(pieces, LAN_WINDOW_PIECES))
        if not rest:
            return pos
        if ends.direction == "backup":
            plain = tuple(Piece(p.image_offset, p.volume_offset, p.length) for p in rest)
            if path == PathKind.LAN_FREE:
                op: object = LanFreeWrite(ends.client.name, ends.pool_device, ends.pool_offset, plain, compress,
                                          ends.client_base)
            else:
                op = LanSend(paths.server, ends.client.name, ends.pool_volume, ends.pool_offset, plain, compress,
                             ends.client_base)
        else:
            stored = tuple(rest)
            if path == PathKind.LAN_FREE:
                op = LanFreeRead(ends.pool_device, ends.pool_offset, ends.client.name, ends.client_base, stored)
            else:
                op = LanReceive(paths.server, ends.pool_volume, ends.pool_offset, ends.client.name,
                                ends.client_base, stored)
        r: TransferResult = yield op  # type: ignore[misc]
        report.elapsed += r.elapsed
        done = max(0, min(r.pieces_done, len(rest)))
        got_all = []
        for i in range(done):
            got = r.stored[i] if ends.direction == "backup" and i < len(r.stored) else rest[i]
            if (got.image_offset, got.length) != (rest[i].image_offset, rest[i].length):
                raise JobFailed(f"driver acknowledged image offset {got.image_offset} for the piece at "
                                f"{rest[i].image_offset}")
            got_all.append(got)
        moved.add_pieces(got_all)
        if done:
            new = rest[done - 1].image_offset + rest[done - 1].length
            report.add_bytes(path.value, new - pos)
            pos = new
        if r.failure is not None:
            state.path = path
            step_down(state, paths, report, r.failure.describe(), pos)
            return pos
        if done < len(rest):
            state.path = path
            step_down(state, paths, report, f"{path.value} transfer stopped after {done} of {len(rest)} "
                       "pieces without an error", pos)
            return pos
