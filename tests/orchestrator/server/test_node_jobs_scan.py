"""The client's incremental scan before it asks the backup server for a server-free copy (`node_jobs.server_free`):
its chunk digests go into a spool as they are made and leave as SCAN_ROW pages -- no pair per chunk is held."""
from __future__ import annotations

import hashlib
import tracemalloc
from types import SimpleNamespace

import numpy as np

from orchestrator.job.digest import chunk_digests
from orchestrator.piece_stream import PieceStream
from orchestrator.server import node_jobs
from orchestrator.server.messages import SCAN_ROW

MIB = 1 << 20


class _Volume:
    block_size = 512

    def read(self, offset: int, length: int) -> bytes:
        return hashlib.sha256(offset.to_bytes(8, "little")).digest()[:1] * length

    def designator(self) -> str:
        return "6001405" + "d" * 25


class _Session:
    """Takes the request as the real session sends it: the pages of the scan consumed one after the other."""

    def __init__(self):
        self.count, self.rows, self.kept = 0, 0, []

    def serverfree_backup(self, extents, scan, **fields):
        self.count, pages = scan
        for page in pages:
            assert page.dtype == SCAN_ROW
            self.rows += page.size
            if len(self.kept) < 2:
                self.kept.append(page.copy())
        return {"ok": True, "report": {"outcome": "completed"}}


def scan(chunks: int) -> tuple[_Session, int, PieceStream]:
    """server_free with an incremental scan of ``chunks`` chunks (4 KiB used in each); the tracemalloc peak."""
    def ranges():  # as coverage_stream gives them: arrays of volume ranges, one batch at a time
        for first in range(0, chunks, 4096):
            i = np.arange(first, min(chunks, first + 4096), dtype=np.int64)
            yield np.stack([i * MIB, np.full(i.size, 4096)], axis=1)
    coverage = PieceStream.from_extents(ranges)
    vopts = SimpleNamespace(imagetype="static", mgmtclass=None, gap_size=lambda path: 0)
    vsite = SimpleNamespace(offset=0, topology_volume="")
    layout = SimpleNamespace(extents=lambda gap: np.array([[0, 4096]], dtype=np.int64))
    session = _Session()
    tracemalloc.start()
    try:
        done, why, _, _ = node_jobs.server_free(session, vopts, "E:", vsite, _Volume(), chunks * MIB, "ntfs", layout,
                                                scan={"mode": "incremental", "base_object_id": 1,
                                                      "coverage": coverage})
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert done is not None and done.ok, why
    return session, peak, coverage


def test_the_scan_goes_as_rows_of_the_same_digests():
    session, _, coverage = scan(40)
    want = chunk_digests(coverage, lambda p: _Volume().read(p.volume_offset, p.length), MIB)
    got = [(int(c), d.decode()) for page in session.kept for c, d in zip(page["chunk"], page["digest"])]
    assert session.count == session.rows == 40 and got == list(want)


def test_a_long_scan_is_never_held_as_pairs():
    """60,000 chunks: chunk_digests' hasher per chunk, its tuple of pairs and their pages peaked at 36.0 MiB under
    tracemalloc (88.8 MiB at 150,000); the spool 6.6 MiB (5.9 at 150,000: its 16 Ki rows in memory and a page)."""
    session, peak, _ = scan(60_000)
    assert session.count == session.rows == 60_000
    assert peak < 10 * MIB, peak
