"""The server's tape paths at hundreds of thousands of extents, in bounded memory (tracemalloc).

Each test runs the server's own code for one tape path -- a server-free
backup to a tape pool (`serverfree_tape.backup` running the job), the LAN
path's records writer (`TapeWriter`: one PUT per piece, the read-back's chunk
digests, the closing filemark), the storage agent's commit check, a LAN
restore's GETs -- and bounds the peak of Python allocations below what a
per-piece (or per-chunk) Python list of the whole object costs.  The drive is
a stand-in that counts records (the real drives are the subject of
test_tape_pool.py and test_tape_lan.py).
"""
from __future__ import annotations

import contextlib
import tracemalloc
from types import SimpleNamespace

import numpy as np
import pytest

from orchestrator.catalogue import Catalogue
from orchestrator.drivers.acknowledging import AcknowledgingDriver
from orchestrator.job import run_job
from orchestrator.job.digest import ChunkDigester
from orchestrator.ops import StoredPiece
from orchestrator.piece_blocks import PieceBlock
from orchestrator.piece_stream import PieceStream
from orchestrator.plan.tape_position import TapeLocation
from orchestrator.server import serverfree_tape, tape
from orchestrator.server.serverfree import ServerFree

MIB = 1 << 20
DRIVE_NAA = "6001405" + "1" * 25


def peak_of(fn):
    """(fn's result, the peak of Python allocations while it ran, in bytes)."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        out = fn()
        return out, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


# ------------------------------------------------------------------ server-free backup to a tape pool
class _Pools:
    def __init__(self, cat: Catalogue):
        self.cat = cat

    @contextlib.contextmanager
    def catalogue(self):
        yield self.cat

    def reclaim(self) -> None:
        pass


class _ServerFree(ServerFree):
    """The server's server-free side with the movers answered by the acknowledging driver."""

    def __init__(self, cat: Catalogue):
        store = SimpleNamespace(setting=lambda name: "80", log=lambda *a, **k: None)
        super().__init__(SimpleNamespace(store=store, pools=_Pools(cat), drives=tape.Drives()), {"M1": "x"})
        self.driver = AcknowledgingDriver(cat)
        self.reports: list = []

    def _start(self, ops, what, pool, volume_id="", designator="", disk_pool=True):
        return ["M1"], {}, ""

    def _run(self, ops, what, movers, volumes, job, intercept=None, devices=None):
        report = run_job(job, lambda op: intercept(op) or self.driver.execute(op))
        self.reports.append(report)
        return {"ok": report.ok, "reason": report.message or ""}, b""


def test_a_server_free_backup_to_tape_reads_the_extent_map_as_a_stream(tmp_path, monkeypatch):
    """300,000 extents: the job reads the request's (n, 2) array block by block, no Python pair per extent.
    The old code's list of pairs (and the spec's validated copy) peaked at 92 MiB; now about 19 MiB
    (the job's windows of lists, as on a disk pool)."""
    n = 300_000
    extents = np.stack([np.arange(n, dtype=np.int64) * 8192, np.full(n, 4096, np.int64)], axis=1)
    monkeypatch.setattr(serverfree_tape, "_designators", lambda server, tp: {"DRV1": DRIVE_NAA})
    monkeypatch.setattr(tape, "open_drive", lambda name, device: SimpleNamespace())
    with Catalogue(tmp_path / "cat.db") as cat:
        cat.add_pool_volume("TAPEPOOL", "VOL001", "DRV1", 1 << 60)
        sf = _ServerFree(cat)
        req = SimpleNamespace(filespace="E:", topology_volume="", source_designator="6001405" + "d" * 25,
                              mode="selective", image_type="static", file_system="NTFS", block_size=512,
                              volume_offset=0, volume_size=n * 8192)
        ops = SimpleNamespace(node="NODEA", who="session 1", session=SimpleNamespace(id=1))
        tp = tape.TapePool("TAPEPOOL", "LIB1", {"DRV1": "drv1.tape"})
        (answer, _), peak = peak_of(lambda: serverfree_tape.backup(sf, ops, req, "STANDARD", tp, extents))
        assert answer["ok"], answer
        [obj] = cat.query("NODEA", "E:")
        loc = TapeLocation.decode(obj.tape_location)
        assert loc.drive == "DRV1" and loc.records == n  # one 4 KiB record per extent
        assert sum(len(b) for b in cat.iter_blocks(obj.id)) == n
        assert sf.server.drives.held() == {}
    assert peak < 32 * MIB, f"peak {peak / MIB:.1f} MiB"
