"""A node session's tape side: the drive a LAN backup writes through, the drive a LAN restore reads from.

Both hold the drive for the session (:class:`orchestrator.server.tape.Drives`):
a backup from its BEGIN to its COMMIT or ABANDON, a restore from its first GET
to the session's end.  Mixed into :class:`orchestrator.server.node_ops.NodeOps`.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from itertools import islice
from typing import Any

from orchestrator.server import tape
from orchestrator.server.service import Refused


class TapeOps:
    server: Any
    session: Any
    node: str
    who: str
    _tape_reads: dict
    refuse: Any  # NodeOps.refuse
    cat: Any

    def _tape_writer(self, pool: str, started: Any) -> Any:
        """Hold the object's drive for this session and stand at the end of data (LookupError/DriveBusy: why not)."""
        drive = self._hold_drive(pool, started)
        try:
            dev = tape.open_drive(drive, tape.tape_pool(self.server.store, pool).drives[drive])
            try:
                return tape.TapeWriter.at_end_of_data(drive, started.pool_volume, dev)
            except BaseException:
                tape.close_drive(dev)
                raise
        except BaseException:
            self.server.drives.release(drive, self.who)
            raise

    def _tape_get(self, rec: Any, image_offset: int, length: int) -> bytes:
        """A tape object's bytes: the drive is held by this session from its first read to its end."""
        from orchestrator.plan.tape_position import RecordCursor, TapeLocation

        drive = TapeLocation.decode(rec.tape_location, f"object {rec.id}").drive or rec.pool_device
        if drive not in self._tape_reads:
            try:
                tp = tape.tape_pool(self.server.store, rec.pool)
                if tp is None or drive not in tp.drives:
                    raise LookupError(f"drive {drive} of object {rec.id} has no online PATH from the server")
                self.server.drives.acquire(drive, self.who)
                try:
                    self._tape_reads[drive] = (tape.open_drive(drive, tp.drives[drive]), [-1])
                except BaseException:
                    self.server.drives.release(drive, self.who)
                    raise
            except (LookupError, OSError) as exc:
                raise Refused("ANR8447E", f"Session {self.session.id} node {self.node}: {exc}.", str(exc)) from None
        dev, at = self._tape_reads[drive]
        if len(at) < 2 or at[1][0] != rec.id:  # the object's map, read a block at a time as the GETs go on
            at[1:] = [(rec.id, RecordCursor(self._map_block(rec.id), TapeLocation.decode(
                rec.tape_location, f"object {rec.id}").fmt))]
        try:
            return tape.read_range(dev, drive, rec, image_offset, length, at, at[1][1])
        except ValueError as exc:
            raise self.refuse(f"GET of object {rec.id}: {exc}", "ANR0440W") from None
        except Exception as exc:  # noqa: BLE001 - the drive or its transport: named, the session ends
            at[0] = -1  # where the drive stands is unknown now
            raise self.drive_failed(drive, "READ", exc) from None

    def _map_block(self, object_id: int) -> Callable[[int], Any]:
        """The k-th block of an object's map from the catalogue (None past the last): the blocks before it are
        read over again, and the read ends there, so no statement stays open on the catalogue between GETs."""
        def block_at(k: int) -> Any:
            return next(islice(self.cat.iter_blocks(object_id), k, None), None)
        return block_at

    def drive_failed(self, drive: str, what: str, exc: BaseException) -> Refused:
        """A drive that failed a command: one line naming it, in the activity log; the session ends."""
        text = f"drive {drive}: {what} failed: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
        return Refused("ANR8448E", f"Session {self.session.id} node {self.node}: {text}.", text)

    def _hold_drive(self, pool: str, started: Any) -> str:
        """Hold the object's drive for this session (the server writes the records, or on LAN-free to tape the
        storage agent does); LookupError when the server has no PATH to it, DriveBusy when another holds it."""
        tp = tape.tape_pool(self.server.store, pool)
        drive = started.pool_device
        if drive not in tp.drives:
            raise LookupError(f"volume {started.pool_volume} sits in drive {drive}, which has no online PATH from "
                              "the server with DEVICE=")
        self.server.drives.acquire(drive, self.who)
        return drive

    def _commit_agent_tape(self, g: Any, req: Any, pieces: Any) -> str:
        """The tape location of an object the storage agent wrote, once the server has read its records back
        from the drive it held and found the chunk digests the client sent (the source's).

        The records are digested chunk by chunk as they are read and compared in step with the client's
        digests (ascending), so neither side is held as a Python pair per chunk."""
        from orchestrator.ops.tape_records import read_piece
        from orchestrator.piece_stream import PieceStream
        from orchestrator.plan.tape_position import TapeLocation, object_records
        from scsi import tape_client
        from scsi.tape_client import TapeRecords

        try:
            loc = TapeLocation.decode(req.tape_location, "COMMIT tape_location")
        except ValueError as exc:
            raise self.refuse(f"COMMIT of object {g.object_id}: {exc}", "ANR0440W") from None
        rec = self.cat.get(g.object_id, with_pieces=False)
        stream = pieces if isinstance(pieces, PieceStream) else \
            PieceStream.of(sorted(pieces, key=lambda q: q.image_offset))  # a stream is in image order already
        why = ("the pieces are compressed" if stream.summary().compressed else
               "the tape location's record count is not the pieces'" if loc.records != object_records(stream, loc.fmt)
               else "the record format is not the pool's" if loc.fmt != tape.FORMAT else
               "the client's chunk digests are missing" if not req.digests or not req.chunk_size else "")
        if why:
            raise self.refuse(f"COMMIT of object {g.object_id}: {why}", "ANR0440W")
        tp = tape.tape_pool(self.server.store, rec.pool)
        dev = None
        try:
            dev = tape.open_drive(g.tape_drive, tp.drives[g.tape_drive])
            tape_client.position(dev, loc.first_object)
            records = TapeRecords(dev, g.tape_drive)
            same = same_digests(tape.read_back_digests(stream, lambda n: read_piece(records, n, loc.fmt),
                                                       req.chunk_size, tape.volume_ascending(stream)),
                                client_digests(req.digests))
        except Exception as exc:  # noqa: BLE001 - a drive that cannot give the records back proves nothing
            raise self.refuse(f"COMMIT of object {g.object_id}: the records cannot be read back from drive "
                              f"{g.tape_drive}: {exc}", "ANR0440W") from None
        finally:
            tape.close_drive(dev)
        if not same:
            raise self.refuse(f"COMMIT of object {g.object_id}: the records on drive {g.tape_drive} at logical "
                              f"object {loc.first_object} are not the data the client's digests describe")
        return TapeLocation(**{**loc.model_dump(), "volume": rec.pool_volume, "drive": g.tape_drive}).encode()


def client_digests(digests: Any) -> Iterable[tuple[int, str]]:
    """The client's (chunk, digest) pairs in ascending chunk order, one per chunk: as given when they are (a
    DigestSpool, or pairs in order), else as a dict of them would be (the last digest of a chunk counts)."""
    from orchestrator.digest_spool import DigestSpool

    try:
        return DigestSpool.of(digests)
    except ValueError:  # out of order or repeated: what the comparison of two dicts made of them
        return sorted(dict(digests).items())


def same_digests(ours: Iterable[tuple[int, str]], theirs: Iterable[tuple[int, str]]) -> bool:
    """Whether two ascending (chunk, digest) sequences are equal, compared in step; ``ours`` is read to its end
    either way (a read-back that fails later still says so)."""
    same, it = True, iter(theirs)
    for pair in ours:
        if same and tuple(next(it, (None, None))) != tuple(pair):
            same = False
    return same and next(it, None) is None
