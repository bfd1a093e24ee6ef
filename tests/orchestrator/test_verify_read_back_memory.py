"""A server-free backup whose pool-side read-back digests every chunk: from verification to the commit in bounded
memory (the digests go from the driver's spool to the catalogue's rows page by page), with the same rows."""
from __future__ import annotations

import tracemalloc

import numpy as np

from orchestrator.catalogue import Catalogue
from orchestrator.drivers.acknowledging import AcknowledgingDriver
from orchestrator.job import BackupSpec, DeviceSpec, PathPlan, backup_job, run_job
from orchestrator.ops import PathKind
from orchestrator.piece_stream import PieceStream

MIB = 1 << 20
EXTENTS = 22_000  # of 14 MiB every 16 MiB: 308,000 chunks of 1 MiB, each read back
EXTENT_MIB, EVERY_MIB = 14, 16


def _extent_arrays(n: int, step: int = 4096):
    for first in range(0, n, step):
        i = np.arange(first, min(n, first + step), dtype=np.int64)
        yield np.stack([i * EVERY_MIB * MIB, np.full(i.size, EXTENT_MIB * MIB)], axis=1)


def pool_digest(idx: np.ndarray) -> list[str]:
    """What the backup server's read-back names for chunks ``idx`` (a 64-character hex digest each)."""
    return [f"{c * 2654435761 % (1 << 64):064x}" for c in idx.tolist()]


def backup_peak(tmp_path, n: int = EXTENTS) -> tuple[int, Catalogue, int]:
    """(tracemalloc peak of the job from its start to the end of its commit, the catalogue, the object id)."""
    volume = n * EVERY_MIB * MIB
    cat = Catalogue(tmp_path / "cat.db")
    cat.add_pool_volume("POOL", "V", "pool0", volume)
    drv = AcknowledgingDriver(cat, pool_digests=pool_digest)
    plan = PathPlan(start=PathKind.SERVER_FREE, movers=["M1"], lan=False,
                    pool_designators={"pool0": "6001405" + "b" * 25})
    spec = BackupSpec(node="N", filespace="F", source=DeviceSpec(name="d", designator="6001405" + "d" * 25),
                      volume_size=volume, paths=plan,
                      extent_stream=PieceStream.from_extents(lambda: _extent_arrays(n), volume))
    tracemalloc.start()
    try:
        report = run_job(backup_job(spec), drv.execute)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert report.ok, report.summary()
    assert drv.counts["read_back_chunks"] == n * EXTENT_MIB
    return peak, cat, report.object_id


def test_a_read_back_of_every_chunk_reaches_the_catalogue_in_bounded_memory(tmp_path):
    """308,000 digests read back: the old job held them as sorted Python pairs plus an index array (tracemalloc
    peak 72 MiB with this driver's spool, 91 MiB with a tuple as the old drivers answered; the job without a
    read-back peaks at ~5 MiB); now they stay in the spool and go to SQLite a page at a time (~6 MiB)."""
    peak, cat, oid = backup_peak(tmp_path)
    with cat:
        (rec,) = cat.query("N", "F")
        runs = list(cat.digest_runs([rec]))
        want = (np.arange(EXTENTS)[:, None] * EVERY_MIB + np.arange(EXTENT_MIB)[None, :]).ravel()
        assert np.array_equal(np.array([c for c, _, _ in runs]), want)  # every chunk once, none marked unread
        assert {n for _, _, n in runs} == {1}
        assert [d for _, d, _ in runs[:3] + runs[-2:]] == pool_digest(np.concatenate((want[:3], want[-2:])))
        # stored as record blocks, not a row per chunk
        assert cat.db.execute("SELECT count(*) FROM digests").fetchone()[0] == 0
        assert cat.db.execute("SELECT count(*) FROM digest_blocks").fetchone()[0] == -(-want.size // (1 << 14))
    assert peak < 16 * MIB, peak
