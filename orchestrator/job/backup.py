"""The image backup job: a generator yielding operations (see :mod:`orchestrator.ops`).

Order of events: presnapshotcmd, snapshot (imagetype snapshot), postsnapshotcmd,
incremental scan (mode incremental), pending catalogue object, data movement
with failover, verification on the pool (server-free bytes from the data
mover's COPY STATUS plus a pool-side check, so the client reads none of them;
bytes the client moved itself by reading them back), snapshot release (a cache that ran
out fails the job: never a silently inconsistent image), commit.  Any failure
after the pending object exists abandons it, so nothing half-written is ever
listed or restored.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from itertools import chain

from orchestrator.job.incremental import coverage_of, incremental_pieces
from orchestrator.job.ladder import Endpoints, JobFailed, MoveState
from orchestrator.job.move import move
from orchestrator.job.report import FailoverEvent, JobReport
from orchestrator.job.spec import BackupSpec, DeviceSpec
from orchestrator.ops import (AbandonObject, BeginObject, CommandResult, CommitObject, DigestResult,
                              DigestVolume, Job, ObjectStarted, PathKind, ReleaseSnapshot, RunCommand,
                              SnapshotReleased, SnapshotResult, StoredPiece, TakeSnapshot, VerifyPool,
                              UNREAD_DIGEST, VerifyResult, pieces_from_extents)
from orchestrator.chunk_runs import ChunkDigests
from orchestrator.piece_stream import PieceStream, split_by_ranges

log = logging.getLogger(__name__)

UNREAD = UNREAD_DIGEST  # digest of a chunk nobody read back: never equals a real digest, so it counts as changed


def split_accounted(pieces: Iterable[StoredPiece], ranges: list[tuple[int, int]],
                    ) -> tuple[PieceStream, PieceStream]:
    """Cut ``pieces`` into (to compare byte for byte, proven by the mover) along image ``ranges``.

    Both are streams over ``pieces`` (see `orchestrator.piece_stream.split_by_ranges`): nothing is held.
    """
    return split_by_ranges(PieceStream.of(pieces), ranges)


def unread_chunks(digests: Iterable[tuple[int, str]], unread: Iterable[StoredPiece],
                  chunk_size: int) -> Sequence[tuple[int, str]]:
    """The object's chunk digests, with every chunk of ``unread`` the driver gave none for marked :data:`UNREAD`.

    The catalogue's view takes later objects' digests over earlier ones, so a
    stale digest must never survive for a chunk this object rewrote.
    ``digests`` come in ascending chunk order (a driver's `DigestSpool` when it
    read back every chunk); the result merges them with ``unread`` page by page
    on each pass, so an image of millions of chunks is never held.
    """
    stream = PieceStream.of(unread)
    return ChunkDigests(digests, stream, chunk_size, UNREAD)


def backup_job(spec: BackupSpec) -> Job:
    """Back up one volume; returns a :class:`JobReport` (as the generator's return value)."""
    paths = spec.paths
    report = JobReport("backup", spec.node, spec.filespace, start_path=paths.start.value,
                       reasons=list(paths.reasons), warnings=list(paths.notes))
    state = MoveState(paths.start, list(paths.movers))
    source = spec.source
    snapshot = ""
    object_id: int | None = None
    try:
        if spec.presnapshotcmd:
            r: CommandResult = yield RunCommand(spec.presnapshotcmd, "pre")
            if r.returncode != 0:
                raise JobFailed(f"presnapshotcmd exited with {r.returncode}; no data was moved "
                                f"({r.output.strip()[:200]})")
        if spec.image_type == "snapshot":
            s: SnapshotResult = yield TakeSnapshot(spec.filespace, source.name, spec.snapshot_cache_size,
                                                   spec.snapshot_cache_location,
                                                   spec.snapshot_fsidle_retries, spec.snapshot_fsidle_wait)
            if not s.ok and not s.available:
                # as TSM does without the LVSA: an offline (static) image instead of an online one
                report.warnings.append(f"no snapshot facility for {spec.filespace} ({s.reason}); "
                                       "backing up an offline (static) image instead")
            elif not s.ok:
                raise JobFailed(f"snapshot of {spec.filespace} failed: {s.reason}")
            else:
                snapshot = s.snapshot
            designator = getattr(s, "designator", "")
            if snapshot:
                source = DeviceSpec(name=s.snapshot, designator=designator, block_size=spec.source.block_size)
            if snapshot and state.path == PathKind.SERVER_FREE and not designator:
                # a host-side copy-on-write snapshot is invisible to the data mover
                reason = "the snapshot lives on the client; a data mover cannot read it"
                report.reasons.append(reason)
                if not (paths.lan_free or paths.lan):
                    raise JobFailed(f"{reason}, and neither a LAN-free path nor a LAN path is "
                                    "configured; use -imagetype=static for a server-free image")
                state.path = PathKind.LAN_FREE if paths.lan_free else PathKind.LAN
                report.start_path = state.path.value
        if spec.postsnapshotcmd:
            r = yield RunCommand(spec.postsnapshotcmd, "post")
            if r.returncode != 0:
                report.warnings.append(f"postsnapshotcmd exited with {r.returncode}")

        pieces: Sequence = spec.extent_stream if spec.extent_stream is not None else \
            pieces_from_extents(spec.extents)
        base_id = None
        if spec.mode == "incremental":
            # digest the volume over exactly what the stored digests cover (so a different gap size or
            # path than the base's changes nothing), and treat newly used space as changed
            # (all as streams: see orchestrator.job.incremental)
            whole = PieceStream.of(pieces)
            try:
                whole.summary()  # a streamed source is checked here, on its first pass
            except ValueError as exc:
                raise JobFailed(f"extents: {exc}") from None
            known = coverage_of(spec.base_coverage)
            scan = known if known is not None else whole
            d: DigestResult = yield DigestVolume(source.name, scan, spec.chunk_size, spec.volume_offset)
            if d.failure is not None:
                raise JobFailed(f"incremental scan failed: {d.failure.describe()}")
            try:
                pieces = incremental_pieces(whole, d.digests, spec.base_digests, known, spec.chunk_size)
            except ValueError as exc:  # (a driver's streamed scan that could not read on reports it so)
                raise JobFailed(f"incremental scan failed: {exc}") from None
            base_id = spec.base_object_id
        stream = PieceStream.of(pieces)
        try:
            image_size = stream.nbytes()  # a streamed source is checked here, on its first pass
        except ValueError as exc:
            raise JobFailed(f"extents: {exc}") from None
        report.image_size = image_size

        started: ObjectStarted = yield BeginObject(
            spec.node, spec.filespace, spec.mode, spec.image_type, image_size, spec.volume_size,
            spec.file_system, base_id, spec.management_class, spec.pool)
        object_id = started.object_id
        report.object_id = object_id

        ends = Endpoints("backup", source, spec.volume_offset, started.pool_volume, started.pool_device,
                         started.pool_offset, compress=spec.compression and state.path != PathKind.SERVER_FREE)
        if spec.compression and state.path == PathKind.SERVER_FREE:
            report.warnings.append("compression yes is not applied: server-free data (and data after a "
                                   "server-free failover) stays uncompressed for a server-free restore")
        moving = stream
        if spec.resume is not None:  # the server-free copy of this object stopped here: move only the rest
            at = spec.resume.image_offset
            if at > image_size:
                raise JobFailed(f"resume: image offset {at} is past the image's {image_size} bytes")
            moving = PieceStream(lambda: stream.blocks(at))
            report.add_bytes(PathKind.SERVER_FREE.value, at)
            report.failovers.append(FailoverEvent(PathKind.SERVER_FREE.value, state.path.value,
                                                  spec.resume.reason or "server-free copy stopped", at,
                                                  spec.resume.mover))
            state.accounted.append((0, at))  # vouched for by the mover's COPY STATUS where it ran
            state.server_free_failed = True
        stored = yield from move(ends, state, paths, report, moving)
        if spec.resume is not None:  # the pieces the earlier copy moved, then this job's
            moved, at = PieceStream.of(stored), spec.resume.image_offset
            stored = PieceStream(lambda: chain(stream.blocks(0, at), moved.blocks()))

        if paths.tape is not None and not state.tape_location:
            raise JobFailed("the tape object was never closed with its filemark; it is not restorable")
        if paths.tape is not None:
            # a tape object is proven by the mover's COPY STATUS of every list and its closing filemark
            # (server-free) or by the client's acknowledged record writes (LAN-free); no chunk was read back
            digests = unread_chunks((), stored, spec.chunk_size)
        else:
            if state.accounting_errors:
                raise JobFailed("verification on the pool failed: the data mover's COPY STATUS does not match "
                                f"the plan: {'; '.join(state.accounting_errors[:3])}")
            # server-free bytes are proven by the mover's accounting: the client reads none of them back
            # (unless asked to); only what the client moved itself is compared byte for byte
            ranges = [] if spec.verify_server_free_data else state.accounted
            by_bytes, by_mover = split_accounted(stored, ranges)
            # the client reaches the pool device itself only over a LAN-free path that is still alive
            lan_free_lost = any(f.from_path == PathKind.LAN_FREE.value for f in report.failovers)
            via_server = paths.server if (not paths.lan_free or lan_free_lost) else ""
            v: VerifyResult = yield VerifyPool(source.name, started.pool_device, started.pool_offset,
                                               by_bytes, spec.chunk_size, spec.volume_offset, via_server,
                                               by_mover, paths.server if by_mover.span() else "")
            if not v.ok:
                raise JobFailed(f"verification on the pool failed: {v.message}")
            digests = unread_chunks(v.digests, by_mover, spec.chunk_size)
        if snapshot:
            rel: SnapshotReleased = yield ReleaseSnapshot(spec.filespace, snapshot)
            snapshot = ""
            if rel.cache_exhausted:
                raise JobFailed(f"snapshot cache exhausted ({rel.cache_used_bytes} bytes used, "
                                f"snapshotcachesize {spec.snapshot_cache_size}%); the image would be "
                                "inconsistent and is discarded")
        kept = PieceStream.of(stored)
        report.stored_size, report.compressed = kept.stored()
        yield CommitObject(object_id, kept, report.path_used, report.compressed, digests,
                           state.tape_location)
        report.outcome = "completed"
    except JobFailed as exc:
        report.outcome, report.message = "failed", str(exc)
        log.error("backup of %s:%s failed: %s", spec.node, spec.filespace, exc)
        if snapshot:
            yield ReleaseSnapshot(spec.filespace, snapshot)
        if object_id is not None:
            yield AbandonObject(object_id, str(exc))
    return report
