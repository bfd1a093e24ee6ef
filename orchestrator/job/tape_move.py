"""Server-free moves to and from a tape pool, as sans-I/O generators (see :mod:`orchestrator.ops`).

Backup: LOCATE the drive to end of data, copy the pieces with 00h segments
and close the object with a filemark (10h).  When a list fails the mover's
COPY STATUS says how many bytes reached the tape; the move either continues
after the last whole record known written (LOCATE there, next data mover) or,
when the drive or its medium failed, restarts the object on the next drive's
end of data (:func:`orchestrator.plan.tape_position.resume_decision`).  Restore:
LOCATE to the object's first record and copy with 01h segments, resuming on
the next mover at the first record not yet restored.

Nothing here commits anything: the caller catalogues the returned
:class:`TapeLocation` only when ``closed`` -- the filemark is on tape -- so a
half object is never restorable.  When no data mover is left the result says
how far the tape got, for the caller's LAN-free/LAN failover.
"""
from __future__ import annotations

import logging
from collections.abc import Generator, Iterator, Sequence
from itertools import islice
from dataclasses import dataclass, field

from orchestrator.ops import (
    CopyBatches,
    CopyResult,
    OperatingParametersResult,
    Piece,
    ReadOperatingParameters,
    StoredPiece,
    TransferResult,
)
from orchestrator.plan.windows import next_window
from orchestrator.plan.disk import CscdRef, PlanError, image_position
from orchestrator.piece_stream import PieceStream
from orchestrator.plan.tape import TapeFormat, TapeRef
from orchestrator.plan.tape_columns import iter_tape_batches
from orchestrator.ops.tape import (
    CopyStatusResult,
    LocateTape,
    ReadCopyStatus,
    TapeClientRead,
    TapeClientWrite,
    TapePositioned,
    TapeServerRead,
    TapeServerWrite,
)
from orchestrator.plan.tape_position import OnTape, TapeLocation, known_on_tape, record_of, resume_decision

log = logging.getLogger(__name__)

AnyPiece = Piece | StoredPiece

# at most this many segments go to the driver in one CopyBatches of a tape move (then the next are planned),
# and at most this many pieces in one LAN-free or LAN tape write or read
WINDOW_SEGMENTS = 1 << 16
LAN_WINDOW_PIECES = 1 << 16


@dataclass(frozen=True)
class DriveRef:
    """A tape drive the pool may use: its name for the driver, its designator for the CSCD."""

    name: str
    designator: str


@dataclass
class TapeMove:
    """What a tape move achieved; ``location`` is set once the object's filemark is on tape."""

    drive: str
    image_offset: int  # image bytes known at the destination
    next_record: int = 0  # backup: record number (from the object's first) to write next
    first_object: int | None = None
    file_number: int | None = 0
    closed: bool = False
    location: TapeLocation | None = None
    movers_used: list[str] = field(default_factory=list)
    events: list[str] = field(default_factory=list)  # why each mover/drive was left, in order
    paths: list[str] = field(default_factory=list)  # "server-free" / "lan-free", in the order they moved data
    failure: str = ""
    elapsed: float = 0.0
    movers_left: list[str] = field(default_factory=list)  # data movers not given up on, in order
    fatal: bool = False  # no path can finish it: the drive failed with none left, or the mover's status lied

    @property
    def ok(self) -> bool:
        return not self.failure


def _limits_stream(r: OperatingParametersResult, fallback: int) -> int:
    return int(getattr(r.limits, "max_stream_transfer", 0) or fallback)


def backup_to_tape(pieces: Sequence[AnyPiece] | PieceStream, *, disk: CscdRef, disk_base: int,
                   drives: Sequence[DriveRef], fmt: TapeFormat, volume: str, movers: Sequence[str],
                   batch_bytes: int = 80 << 20, max_transfer: int = 0) -> Generator[object, object, TapeMove]:
    """Write ``pieces`` as one tape object; see the module doc for resumption.

    The pieces are read as a stream and planned window by window as the lists
    are sent (`iter_tape_batches`), so memory does not grow with the extent count.
    """
    stream = _plain_stream(pieces)
    movers, drives = list(movers), list(drives)
    if not drives:
        raise PlanError("a tape backup needs at least one tape drive")
    span = stream.span()
    start = span[0] if span else 0
    drive = drives.pop(0)
    move = TapeMove(drive.name, start)
    on = OnTape(start, 0)
    pos = yield from _locate(move, drive, None)
    if pos is None:
        return move
    while movers:
        mover = movers[0]
        r = yield from _operating_parameters(move, movers)
        if r is None:
            continue
        ref = TapeRef(drive.name, drive.designator, fmt)
        try:
            plan = iter_tape_batches(stream.blocks(on.image_offset), direction="backup", disk=disk, tape=ref,
                                     disk_base=disk_base, limits=r.limits, batch_bytes=batch_bytes,
                                     max_transfer=_limits_stream(r, max_transfer), mover=mover,
                                     first_record=on.next_record)
            batches = next_window(plan, WINDOW_SEGMENTS)
        except PlanError as exc:
            _leave(move, movers, str(exc))
            continue
        while True:
            cr: CopyResult = yield CopyBatches(mover, disk.name, drive.name, batches)  # type: ignore[misc]
            _count_copy(move, mover, cr)
            lie = _mismatch(batches, cr, mover)
            if lie:
                move.fatal, move.failure = True, lie
                move.events.append(lie)
                return move
            if not cr.ok:
                break
            on = known_on_tape(batches, fmt, cr)
            if on.closed:
                break
            try:
                batches = next_window(plan, WINDOW_SEGMENTS)
            except PlanError as exc:  # a piece further on this mover cannot copy: the next goes on from here
                _leave(move, movers, str(exc))
                break
        if on.closed:
            break
        if cr.ok:  # left for a plan error: the tape stands right after the last list written
            continue
        moved = None
        failed = _failed_list(batches, cr)
        if failed is not None and cr.failure is not None and cr.failure.kind == "sense":
            st: CopyStatusResult = yield ReadCopyStatus(mover, failed)  # type: ignore[misc]
            moved = st.bytes_transferred if st.ok else None
        on = known_on_tape(batches, fmt, cr, moved)
        decision = resume_decision(move.first_object or 0, on, cr.failure)
        why = cr.failure.describe() if cr.failure else "copy failed"
        if decision.action == "restart":
            move.events.append(f"drive {drive.name}: {why}; {decision.reason}")
            if not drives:
                move.fatal = True
                move.failure = f"tape drive {drive.name} failed and no other drive is left: {why}"
                move.image_offset, move.next_record = start, 0
                return move
            drive = drives.pop(0)
            move.drive = drive.name
            on = OnTape(start, 0)
            if (yield from _locate(move, drive, None)) is None:
                return move
            continue  # the same mover writes the object again on the new drive
        _leave(move, movers, f"data mover {mover}: {why}; {decision.reason}")
        if movers and (yield from _locate(move, drive, decision.locate_to)) is None:
            move.image_offset, move.next_record = on.image_offset, on.next_record
            return move
    move.image_offset, move.next_record, move.closed = on.image_offset, on.next_record, on.closed
    move.movers_left = list(movers)
    if not move.closed:
        move.failure = move.failure or "no data mover is left to write the tape: " + (
            move.events[-1] if move.events else "none configured")
        return move
    move.location = _location(move, volume, fmt, on.next_record)
    return move


def _plain_stream(pieces: Sequence[AnyPiece] | PieceStream) -> PieceStream:
    """The pieces as a stream; PlanError if one is stored compressed (a mover moves records as they are)."""
    stream = PieceStream.of(pieces)
    if stream.summary().compressed:
        p = next(q for q in stream if q.compressed)
        raise PlanError(f"piece at image offset {p.image_offset} is stored compressed: a data mover "
                        "cannot restore it server-free")
    return stream


def _location(move: TapeMove, volume: str, fmt: TapeFormat, records: int) -> TapeLocation:
    return TapeLocation(volume=volume, drive=move.drive, file_number=move.file_number,
                        first_object=move.first_object or 0,
                        records=records, record_bytes=fmt.record_bytes, fixed=fmt.fixed,
                        block_length=fmt.block_length)


def lan_free_to_tape(pieces: Sequence[AnyPiece] | PieceStream, *, source: str, source_offset: int,
                     drive: DriveRef, fmt: TapeFormat, volume: str, move: TapeMove | None = None, server: str = ""
                     ) -> Generator[object, object, TapeMove]:
    """The client writes the object's records itself (LAN-free), continuing ``move`` where the tape got.

    Without ``move`` (or before its object started) the object starts at end of data.  The client
    writes the same records a mover would, so the object stays restorable server-free.  With
    ``server`` the client streams over the LAN and that server writes the records (the LAN path).
    The pieces go in writes of at most `LAN_WINDOW_PIECES`, the last one closing the object.
    """
    stream = _plain_stream(pieces)
    start = (stream.span() or (0, 0))[0]
    if move is None or move.first_object is None:
        move = move or TapeMove(drive.name, start)
        move.image_offset, move.next_record, move.drive = start, 0, drive.name
        at = yield from _locate(move, drive, None)
    else:
        at = yield from _locate(move, drive, move.first_object + move.next_record)
    if at is None:
        return move
    move.failure = ""
    ahead = _windows(stream, move.image_offset)
    rest, more = next(ahead)
    first = True
    while True:
        if server:  # the server owns the drive: it LOCATEs to the same logical object itself
            r: TransferResult = yield TapeServerWrite(server, source, drive.name, rest, fmt,  # type: ignore[misc]
                                                      source_offset, close=not more, position=at)
        else:
            r = yield TapeClientWrite(source, drive.name, rest, fmt, source_offset,  # type: ignore[misc]
                                      close=not more)
        move.elapsed += r.elapsed
        if first:
            move.paths.append("lan" if server else "lan-free")
            first = False
        done = max(0, min(r.pieces_done, len(rest)))
        for p in rest[:done]:
            move.image_offset, move.next_record = p.image_end, move.next_record + fmt.records(p.length)
        if not r.ok:
            move.failure = (f"{'LAN' if server else 'LAN-free'} write to {drive.name} failed: "
                            f"{r.failure.describe() if r.failure else ''}")
            move.events.append(move.failure)
            return move
        if not more:
            break
        rest, more = next(ahead)
        at = move.first_object + move.next_record  # (the client's drive stands there already)
    move.closed = True
    move.location = _location(move, volume, fmt, move.next_record)
    return move


def _windows(stream: PieceStream, lo: int) -> Iterator[tuple[tuple[Piece, ...], bool]]:
    """(the next `LAN_WINDOW_PIECES` pieces from image offset ``lo``, whether more follow); at least one,
    possibly empty, window."""
    it = (Piece(p.image_offset, p.volume_offset, p.length) for p in stream.pieces(lo))
    window = tuple(islice(it, LAN_WINDOW_PIECES))
    while True:
        after = tuple(islice(it, LAN_WINDOW_PIECES))
        yield window, bool(after)
        if not after:
            return
        window = after


def backup_to_tape_with_failover(pieces: Sequence[AnyPiece], *, disk: CscdRef, disk_base: int,
                                 drives: Sequence[DriveRef], fmt: TapeFormat, volume: str, movers: Sequence[str],
                                 lan_free: bool = True, batch_bytes: int = 80 << 20, max_transfer: int = 0
                                 ) -> Generator[object, object, TapeMove]:
    """Server-free through each mover in order, then LAN-free on the same tape position."""
    move = yield from backup_to_tape(pieces, disk=disk, disk_base=disk_base, drives=drives, fmt=fmt, volume=volume,
                                     movers=movers, batch_bytes=batch_bytes, max_transfer=max_transfer)
    if move.ok or not lan_free:
        return move
    drive = next((d for d in drives if d.name == move.drive), None)
    if drive is None or move.fatal:
        return move
    log.warning("tape backup fails over server-free -> lan-free at image byte %d: %s", move.image_offset,
                move.failure)
    move.events.append(f"server-free -> lan-free at image byte {move.image_offset}: {move.failure}")
    return (yield from lan_free_to_tape(pieces, source=disk.name, source_offset=disk_base, drive=drive, fmt=fmt,
                                        volume=volume, move=move))


def lan_free_from_tape(pieces: Sequence[AnyPiece] | PieceStream, *, location: TapeLocation, drive: DriveRef,
                       destination: str, destination_offset: int, move: TapeMove | None = None, server: str = ""
                       ) -> Generator[object, object, TapeMove]:
    """The client reads the object's records itself (LAN-free restore), from where ``move`` stopped;
    with ``server`` that server reads them and streams them to the client (the LAN path).  The pieces
    go in reads of at most `LAN_WINDOW_PIECES`."""
    stream = _plain_stream(pieces)
    fmt = location.fmt
    first, end = stream.span() or (0, 0)
    start = move.image_offset if move is not None else first
    move = move or TapeMove(drive.name, start, first_object=location.first_object,
                            file_number=location.file_number)
    at = location.first_object + record_of(stream, fmt, start)
    if (yield from _locate(move, drive, at)) is None:
        return move
    move.failure = ""
    first = True
    for rest, more in _windows(stream, start):
        if server:  # the server owns the drive: it LOCATEs to the same logical object itself
            r: TransferResult = yield TapeServerRead(server, drive.name, destination, rest, fmt,  # type: ignore[misc]
                                                     destination_offset, position=at)
        else:
            r = yield TapeClientRead(drive.name, destination, rest, fmt, destination_offset)  # type: ignore[misc]
        move.elapsed += r.elapsed
        if first:
            move.paths.append("lan" if server else "lan-free")
            first = False
        done = max(0, min(r.pieces_done, len(rest)))
        if done:
            move.image_offset = rest[done - 1].image_end
        if not r.ok or done < len(rest):
            break
        if more:
            at = location.first_object + record_of(stream, fmt, move.image_offset)
    move.closed = move.image_offset >= end
    if not r.ok or not move.closed:
        move.failure = (f"{'LAN' if server else 'LAN-free'} read of {drive.name} failed: "
                        f"{r.failure.describe() if r.failure else 'short'}")
    return move


def restore_from_tape(pieces: Sequence[AnyPiece] | PieceStream, *, location: TapeLocation, drive: DriveRef,
                      disk: CscdRef, disk_base: int, movers: Sequence[str], batch_bytes: int = 80 << 20,
                      max_transfer: int = 0) -> Generator[object, object, TapeMove]:
    """Read the object at ``location`` back onto ``disk`` with 01h segments (server-free restore), planned
    window by window from the pieces read as a stream."""
    stream = _plain_stream(pieces)
    movers = list(movers)
    fmt = location.fmt
    pos, end = stream.span() or (0, 0)
    move = TapeMove(drive.name, pos, first_object=location.first_object, file_number=location.file_number)
    ref = TapeRef(drive.name, drive.designator, fmt)
    while pos < end and movers:
        record = record_of(stream, fmt, pos)
        if (yield from _locate(move, drive, location.first_object + record)) is None:
            return move
        mover = movers[0]
        r = yield from _operating_parameters(move, movers)
        if r is None:
            continue
        try:
            plan = iter_tape_batches(stream.blocks(pos), direction="restore", disk=disk, tape=ref,
                                     disk_base=disk_base, limits=r.limits, batch_bytes=batch_bytes,
                                     max_transfer=_limits_stream(r, max_transfer), mover=mover, first_record=record)
            batches = next_window(plan, WINDOW_SEGMENTS)
        except PlanError as exc:
            _leave(move, movers, str(exc))
            continue
        while batches:
            cr: CopyResult = yield CopyBatches(mover, drive.name, disk.name, batches)  # type: ignore[misc]
            _count_copy(move, mover, cr)
            if not cr.ok:
                pos = max(pos, image_position(batches, cr.batches_done, cr.lists_done, cr.segments_done))
                _leave(move, movers, f"data mover {mover}: {cr.failure.describe() if cr.failure else 'copy failed'}")
                break
            pos = batches[-1].lists[-1].image_end
            try:
                batches = next_window(plan, WINDOW_SEGMENTS)
            except PlanError as exc:  # a piece further on this mover cannot copy: the next goes on from here
                _leave(move, movers, str(exc))
                break
    move.image_offset = pos
    move.closed = pos >= end
    move.movers_left = list(movers)
    if not move.closed:
        move.failure = "no data mover is left to read the tape: " + (move.events[-1] if move.events else "none")
    return move


def _count_copy(move: TapeMove, mover: str, cr: CopyResult) -> None:
    """Book a server-free copy attempt on the move: its time, its mover, its path."""
    move.elapsed += cr.elapsed
    if mover not in move.movers_used:
        move.movers_used.append(mover)
    if "server-free" not in move.paths:
        move.paths.append("server-free")


def _operating_parameters(move: TapeMove, movers: list[str]):
    """Ask the first mover for its limits; on failure leave it (the caller tries the next) and give None."""
    mover = movers[0]
    r: OperatingParametersResult = yield ReadOperatingParameters(mover)  # type: ignore[misc]
    if r.failure is not None or r.limits is None:
        _leave(move, movers, f"operating parameters unavailable on {mover}: "
               f"{r.failure.describe() if r.failure else 'no data'}")
        return None
    return r


def _leave(move: TapeMove, movers: list[str], reason: str) -> None:
    log.warning("tape move leaves %s", reason)
    move.events.append(reason)
    movers.pop(0)


def _mismatch(batches, cr: CopyResult, mover: str) -> str:
    """Why the mover's COPY STATUS of a completed list contradicts the plan ("" when it does not)."""
    if cr.accounting is None:  # the driver cannot ask the mover
        return ""
    done = [pl for b in batches[:cr.batches_done] for pl in b.lists]
    if cr.batches_done < len(batches):
        done += batches[cr.batches_done].lists[:cr.lists_done]
    for i, pl in enumerate(done):
        why = cr.accounting[i].mismatch(pl) if i < len(cr.accounting) else f"list {pl.list_id}: no COPY STATUS"
        if why:
            return f"verification failed: data mover {mover}'s COPY STATUS does not match the plan: {why}"
    return ""


def _failed_list(batches, cr: CopyResult) -> int | None:
    if cr.batches_done < len(batches) and cr.lists_done < len(batches[cr.batches_done].lists):
        return batches[cr.batches_done].lists[cr.lists_done].list_id
    return None


def _locate(move: TapeMove, drive: DriveRef, position: int | None) -> Generator[object, object, int | None]:
    """LOCATE ``drive``; on an appending locate the object's first object and file number are taken."""
    r: TapePositioned = yield LocateTape(drive.name, position)  # type: ignore[misc]
    if not r.ok:
        move.failure = f"cannot position tape drive {drive.name}: {r.failure.describe() if r.failure else ''}"
        return None
    if position is None:
        move.first_object, move.file_number = r.position, r.file_number
    return r.position
