"""The SQLite catalogue: pending objects are invisible, commits are atomic, versions rotate."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import datetime, timedelta, timezone

import pytest

from orchestrator.catalogue import Catalogue, CatalogueError
from orchestrator.ops import AbandonObject, BeginObject, CommitObject, StoredPiece


class Clock:
    def __init__(self):
        self.t = datetime(2026, 1, 1, tzinfo=timezone.utc)

    def __call__(self):
        self.t += timedelta(minutes=1)
        return self.t


def begin(cat, size=8192, mode="selective", base=None, fs="C:"):
    return cat.begin_object(BeginObject("NODE1", fs, mode, "static", size, 1 << 20, "ntfs", base))


def pieces(size, n=2):
    step = size // n
    return tuple(StoredPiece(i * step, 4096 * 3 * i, step) for i in range(n))


@pytest.fixture
def cat(tmp_path):
    c = Catalogue(tmp_path / "cat.db", clock=Clock())
    c.add_pool_volume("POOL1", "VOL1", "pool0", 1 << 20)
    yield c
    c.close()


def test_pending_object_is_invisible_until_commit(cat):
    started = begin(cat)
    assert started.pool_volume == "VOL1" and started.pool_device == "pool0"
    assert cat.query() == []
    cat.commit_object(CommitObject(started.object_id, pieces(8192), "server-free", False))
    (obj,) = cat.query(with_pieces=True)
    assert obj.id == started.object_id and obj.active and obj.path_used == "server-free"
    assert [p.length for p in obj.pieces] == [4096, 4096]
    assert obj.as_dict()["extents"] == [[0, 4096], [12288, 4096]]


def test_commit_refuses_incomplete_or_overlapping_extents(cat):
    s = begin(cat)
    with pytest.raises(CatalogueError, match="cover 4096 of 8192"):
        cat.commit_object(CommitObject(s.object_id, pieces(8192)[:1], "lan", False))
    with pytest.raises(CatalogueError, match="gap or overlap"):
        cat.commit_object(CommitObject(s.object_id, (StoredPiece(0, 0, 4096), StoredPiece(2048, 0, 6144)),
                                       "lan", False))
    assert cat.query() == [] and cat.states()[s.object_id] == "pending"
    # nothing half-written: no extents rows from the failed attempts
    assert cat.db.execute("SELECT count(*) FROM extent_blocks").fetchone()[0] == 0


def test_pool_space_is_reserved_aligned_and_exhausts_clearly(cat):
    a = begin(cat, size=5000)
    b = begin(cat, size=4096)
    assert a.pool_offset == 0 and b.pool_offset == 8192
    with pytest.raises(CatalogueError, match="no pool volume has"):
        begin(cat, size=1 << 20)


def test_new_full_makes_previous_generation_inactive_and_incrementals_chain(cat):
    f1 = begin(cat)
    cat.commit_object(CommitObject(f1.object_id, pieces(8192), "server-free", False))
    i1 = begin(cat, size=4096, mode="incremental", base=f1.object_id)
    cat.commit_object(CommitObject(i1.object_id, pieces(4096, 1), "lan", True, ((3, "aa"),)))
    chain = cat.restore_chain("node1", "C:", incremental=True)
    assert [o.id for o in chain] == [f1.object_id, i1.object_id]
    assert [o.id for o in cat.restore_chain("NODE1", "C:")] == [f1.object_id]
    cutoff = cat.get(i1.object_id).backup_date
    f2 = begin(cat)
    cat.commit_object(CommitObject(f2.object_id, pieces(8192), "lan-free", False))
    assert [o.id for o in cat.query()] == [f2.object_id]
    assert {o.id: o.state for o in cat.query(inactive=True)} == {
        f1.object_id: "inactive", i1.object_id: "inactive", f2.object_id: "active"}
    # point in time: before the second full, the first generation comes back
    pit = datetime.fromisoformat(cutoff)
    assert [o.id for o in cat.restore_chain("NODE1", "C:", pitdate=pit, incremental=True)] == [
        f1.object_id, i1.object_id]
    with pytest.raises(CatalogueError, match="no restorable image of NODE1:C: at or before"):
        cat.restore_chain("NODE1", "C:", pitdate=datetime(2000, 1, 1, tzinfo=timezone.utc))
    assert cat.digests([chain[0], chain[1]]) == {3: "aa"}


def test_incremental_needs_a_committed_full_base(cat):
    pending = begin(cat)
    with pytest.raises(CatalogueError, match="not a restorable full image"):
        begin(cat, mode="incremental", base=pending.object_id)


def test_abandon_and_sweep(cat):
    a = begin(cat)
    b = begin(cat)
    cat.abandon_object(AbandonObject(a.object_id, "SAN error on every path"))
    assert cat.sweep_pending() == 1
    assert cat.states() == {a.object_id: "abandoned", b.object_id: "abandoned"}
    with pytest.raises(CatalogueError, match="abandoned, not pending"):
        cat.commit_object(CommitObject(b.object_id, pieces(8192), "lan", False))


def test_exception_mid_commit_rolls_back(cat):
    s = begin(cat, size=4096 * 8)

    def boom(i):
        if i == 3:
            raise RuntimeError("power cut")

    with pytest.raises(RuntimeError):
        cat.commit_object(CommitObject(s.object_id, pieces(4096 * 8, 8), "lan", False), _hook=boom)
    assert cat.query() == []
    assert cat.db.execute("SELECT count(*) FROM extent_blocks").fetchone()[0] == 0


CRASHER = textwrap.dedent("""
    import sys, time, pathlib
    from orchestrator.catalogue import Catalogue
    from orchestrator.ops import CommitObject, StoredPiece
    cat = Catalogue(sys.argv[1])
    oid, marker = int(sys.argv[2]), pathlib.Path(sys.argv[3])
    def hook(i):
        if i == 5:
            marker.write_text("half")
            time.sleep(600)
    ps = tuple(StoredPiece(i * 4096, i * 8192, 4096) for i in range(10))
    cat.commit_object(CommitObject(oid, ps, "lan", False), _hook=hook)
""")


def test_killed_process_mid_commit_leaves_no_half_object(tmp_path):
    db = tmp_path / "cat.db"
    with Catalogue(db) as cat:
        cat.add_pool_volume("POOL1", "VOL1", "pool0", 1 << 20)
        s = begin(cat, size=4096 * 10)
    marker = tmp_path / "marker"
    proc = subprocess.Popen([sys.executable, "-c", CRASHER, str(db), str(s.object_id), str(marker)])
    try:
        for _ in range(600):
            if marker.exists() or proc.poll() is not None:
                break
            time.sleep(0.05)
        assert marker.exists(), "crasher never reached the middle of the commit"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    with Catalogue(db) as cat:
        assert cat.query(inactive=True) == []
        assert cat.db.execute("SELECT count(*) FROM extent_blocks").fetchone()[0] == 0
        assert cat.states()[s.object_id] == "pending"
        # the catalogue is usable again: the same object can still be committed in full
        cat.commit_object(CommitObject(s.object_id, tuple(StoredPiece(i * 4096, i * 8192, 4096)
                                                          for i in range(10)), "lan", False))
        assert [o.id for o in cat.query()] == [s.object_id]


def test_query_json_streams_the_same_text_as_whole_records(cat):
    """`query backup --json` writes extents block by block; the text equals json.dumps of the whole records."""
    import io
    import json

    from orchestrator.cli.query_cmd import write_json

    cat.add_pool_volume("POOL1", "VOL1", "pool0", 1 << 30)
    for n in (3, 70_000):  # the second spans two catalogue blocks
        s = begin(cat, size=4096 * n)
        cat.commit_object(CommitObject(s.object_id, tuple(StoredPiece(i * 4096, i * 8192, 4096) for i in range(n)),
                                       "lan", False))
    objs = cat.query(inactive=True)
    out = io.StringIO()
    write_json(cat, objs, out)
    whole = [cat.get(o.id, with_pieces=True).as_dict() for o in objs]
    assert out.getvalue() == json.dumps(whole) + "\n"
    assert len(json.loads(out.getvalue())[1]["extents"]) == 70_000
