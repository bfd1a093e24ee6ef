"""The image restore job: pool -> volume, the backup's path in reverse.

The full image is applied first, then (with ``-incremental``) each image
incremental in order, as the seed describes.  Its caveats are reported, not
hidden: ``-deletefiles`` is ignored after image + image incremental (the server
knows no deleted files, so files deleted later may reappear), and a
destination too small for the volume is refused before any byte moves.
Uncompressed data can go server-free (EXTENDED COPY pool -> disk); compressed
pieces need the client to decompress and go LAN-free or LAN.
"""
from __future__ import annotations

import logging

from orchestrator.job.ladder import Endpoints, JobFailed, MoveState
from orchestrator.job.move import move
from orchestrator.job.report import JobReport
from orchestrator.job.spec import RestoreSpec
from orchestrator.ops import Job, PathKind
from orchestrator.piece_stream import PieceStream

log = logging.getLogger(__name__)

#: the seed's rule: after image + image incremental the server knows no deleted files, so -deletefiles is ignored
DELETEFILES_IGNORED = ("-deletefiles ignored: after image + image incremental the server is not aware of deleted "
                       "files; deleted files may reappear")


def restore_job(spec: RestoreSpec) -> Job:
    """Restore a volume from its catalogue chain; returns a :class:`JobReport`."""
    paths = spec.paths
    report = JobReport("restore", spec.node, spec.filespace, start_path=paths.start.value,
                       reasons=list(paths.reasons), object_id=spec.chain[0].object_id)
    state = MoveState(paths.start, list(paths.movers))
    try:
        streams = [PieceStream.of(o.pieces) for o in spec.chain]  # columns, or the catalogue's blocks re-read
        needed = max(spec.chain[0].volume_size, max(s.volume_end() for s in streams))
        if spec.destination_size < needed:
            raise JobFailed(f"out of space: {spec.destination.name} offers {spec.destination_size} bytes, "
                            f"the image needs {needed}")
        if spec.deletefiles and len(spec.chain) > 1:
            report.warnings.append(DELETEFILES_IGNORED)
        if len(spec.chain) > 1 and not spec.incremental:
            raise JobFailed("the chain holds incrementals but -incremental was not given")
        if spec.incremental and len(spec.chain) > 1:
            report.warnings.append("incremental restore may bring back files deleted after the full image "
                                   "and may run out of space on a volume near capacity")
        for obj, pieces in zip(spec.chain, streams):
            ends = Endpoints("restore", spec.destination, spec.destination_offset, obj.pool_volume,
                             obj.pool_device, obj.pool_offset, tape_location=obj.tape_location)
            plain = pieces.where_compressed(False)
            packed = pieces.where_compressed(True)
            report.image_size += pieces.nbytes()
            if plain:
                yield from move(ends, state, paths, report, plain)
            if packed:
                if state.path == PathKind.SERVER_FREE:
                    report.warnings.append(f"object {obj.object_id}: {len(packed)} compressed pieces cannot "
                                           "go server-free; the client restores them")
                yield from move(ends, state, paths, report, packed, server_free_ok=False)
        report.outcome = "completed"
    except JobFailed as exc:
        report.outcome, report.message = "failed", str(exc)
        log.error("restore of %s:%s failed: %s", spec.node, spec.filespace, exc)
    return report
