"""Jobs that stream their pieces: same lists, same bytes, same catalogue as with a list -- in bounded memory."""
from __future__ import annotations

import random
import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from orchestrator.catalogue import Catalogue
from orchestrator.drivers.acknowledging import AcknowledgingDriver
from orchestrator.drivers.memory import Fault, MemoryDriver
from orchestrator.job import (BackupSpec, DeviceSpec, ObjectSpec, PathPlan, RestoreSpec, backup_job, move,
                              object_spec, restore_job, run_job)
from orchestrator.job.backup import UNREAD
from orchestrator.job.ladder import remaining
from orchestrator.ops import (BeginObject, CommitObject, CopyBatches, LanFreeWrite, LanSend, MoverLimits, PathKind, StoredPiece,
                              chunks_touched)
from orchestrator.chunk_runs import ChunkDigests, coalesce, touched_chunks
from orchestrator.piece_stream import PieceStream, blocks_from_pieces, clip, split_by_ranges

KIB, MIB = 1024, 1 << 20
VOL_SIZE = 24 * MIB
EXTENTS = [(0, 3 * MIB), (4 * MIB, 6 * MIB), (12 * MIB, 64 * KIB), (13 * MIB, 9 * MIB)] + \
    [(23 * MIB + i * 8 * KIB, 4 * KIB) for i in range(100)]
DISK = DeviceSpec(name="disk0", designator="60014051111111111111111111111111")
DEST = DeviceSpec(name="disk1", designator="60014053333333333333333333333333")
POOL_DESIG = {"pool0": "60014052222222222222222222222222"}
LIMITS = MoverLimits(max_target_count=2, max_segment_count=3, max_descriptor_list_length=1024,
                     max_segment_length=MIB, data_segment_granularity=9)
DISK_BYTES = random.Random(11).randbytes(VOL_SIZE)


def world(faults=()):
    cat = Catalogue(":memory:")
    cat.add_pool_volume("POOL1", "VOL1", "pool0", 32 * MIB)
    return MemoryDriver({"disk0": bytearray(DISK_BYTES), "disk1": bytearray(VOL_SIZE),
                         "pool0": bytearray(32 * MIB)}, cat, {m: LIMITS for m in ("DM1", "DM2")}, list(faults))


def paths(**kw):
    base = dict(start=PathKind.SERVER_FREE, movers=["DM1", "DM2"], lan_free=True, lan=True, server="srv:1500",
                pool_designators=POOL_DESIG, batch_mb=10, max_lan_piece=2 * MIB)
    base.update(kw)
    return PathPlan(**base)


def streamed(extents, chunk=7):
    arr = np.array(extents, dtype=np.int64)
    return PieceStream.from_extents(lambda: (arr[i:i + chunk] for i in range(0, len(arr), chunk)), VOL_SIZE)


def backup(drv, streaming, **kw):
    ops = []

    def ex(op):
        result = drv.execute(op)
        ops.append((op, result))
        return result

    source = dict(extent_stream=streamed(EXTENTS)) if streaming else dict(extents=EXTENTS)
    spec = BackupSpec(node="N1", filespace="E:", source=DISK, volume_size=VOL_SIZE, file_system="ntfs",
                      paths=kw.pop("paths", paths()), **source, **kw)
    return run_job(backup_job(spec), ex), ops


def used(dev):
    return b"".join(bytes(dev[o:o + n]) for o, n in EXTENTS)


def lists_sent(ops):
    """Every list a mover was sent, up to and including the one that failed."""
    return [(pl.list_id, pl.payload()) for op, r in ops if isinstance(op, CopyBatches)
            for bi, b in enumerate(op.batches) for li, pl in enumerate(b.lists)
            if r.ok or bi < r.batches_done or (bi == r.batches_done and li <= r.lists_done)]


def copy_ops(ops):
    return sum(isinstance(op, CopyBatches) for op, _ in ops)


@pytest.mark.parametrize("faults", [[], [dict(where="copy", after_bytes=15 * MIB + 100 * KIB, mover="DM1")],
                                    [dict(where="copy", after_bytes=5 * MIB + 3, kind="timeout", mover="DM1"),
                                     dict(where="copy", after_bytes=14 * MIB, mover="DM2")]])
def test_streamed_extents_and_small_windows_give_the_same_job(monkeypatch, faults):
    """A streamed source cut into windows of 2 segments: same lists, failovers, pool bytes, catalogue, restore."""
    ref_drv = world([Fault(**f) for f in faults])
    ref, ref_ops = backup(ref_drv, streaming=False)
    monkeypatch.setattr(move, "WINDOW_SEGMENTS", 2)
    drv = world([Fault(**f) for f in faults])
    got, ops = backup(drv, streaming=True)
    assert got.ok and ref.ok, (got.summary(), ref.summary())
    assert copy_ops(ops) > copy_ops(ref_ops)
    assert lists_sent(ops) == lists_sent(ref_ops)
    assert [(f.from_path, f.to_path, f.image_offset) for f in got.failovers] == \
        [(f.from_path, f.to_path, f.image_offset) for f in ref.failovers]
    assert got.bytes_by_path == ref.bytes_by_path and got.stored_size == ref.stored_size
    (a,), (b,) = drv.catalogue.query(with_pieces=True), ref_drv.catalogue.query(with_pieces=True)
    assert a.pieces == b.pieces and a.path_used == b.path_used
    assert drv.catalogue.digests([a]) == ref_drv.catalogue.digests([b])
    assert bytes(drv.devices["pool0"][:a.image_size]) == used(drv.devices["disk0"])
    # the restore reads the catalogue's blocks as a stream, in windows too
    chain = [o for o in drv.catalogue.restore_chain("N1", "E:")]
    spec = object_spec(chain[0])
    stream = PieceStream(lambda: drv.catalogue.iter_blocks(chain[0].id))
    rs = RestoreSpec(node="N1", filespace="E:", chain=[spec.model_copy(update={"pieces": stream})],
                     destination=DEST, destination_size=VOL_SIZE, paths=paths())
    r = run_job(restore_job(rs), drv.execute)
    assert r.ok, r.summary()
    assert used(drv.devices["disk1"]) == used(drv.devices["disk0"])


def test_lan_transfers_go_in_windows_and_resume_by_position(monkeypatch):
    monkeypatch.setattr(move, "LAN_WINDOW_PIECES", 5)
    drv = world([Fault("lan-free", after_bytes=12 * MIB + 4 * KIB)])
    report, ops = backup(drv, streaming=True, paths=paths(start=PathKind.LAN_FREE, movers=[]), compression=True)
    assert report.ok, report.summary()
    assert [f.to_path for f in report.failovers] == ["lan"]
    sent = [len(o.pieces) for o, _ in ops if isinstance(o, (LanFreeWrite, LanSend))]
    assert max(sent) == 5 and sum(sent) > 5
    r = run_job(restore_job(RestoreSpec(node="N1", filespace="E:", chain=[
        object_spec(o) for o in drv.catalogue.restore_chain("N1", "E:")], destination=DEST,
        destination_size=VOL_SIZE, paths=paths(start=PathKind.LAN_FREE, movers=[]))), drv.execute)
    assert r.ok and used(drv.devices["disk1"]) == used(drv.devices["disk0"])


def test_a_bad_streamed_extent_fails_the_job_naming_it():
    drv = world()
    bad = EXTENTS[:3] + [(EXTENTS[2][0], MIB)] + EXTENTS[3:]
    spec = BackupSpec(node="N1", filespace="E:", source=DISK, volume_size=VOL_SIZE, extent_stream=streamed(bad),
                      paths=paths())
    report = run_job(backup_job(spec), drv.execute)
    assert report.outcome == "failed"
    assert report.message == f"extents: extent 3 at offset {12 * MIB} overlaps or precedes the previous extent"
    with pytest.raises(ValueError, match="extents or an extent_stream"):
        BackupSpec(node="N1", filespace="E:", source=DISK, volume_size=VOL_SIZE, extents=EXTENTS,
                   extent_stream=streamed(EXTENTS))


# -- the column operations against the piece-by-piece ones they replace -------------------------------------
def _old_split(pieces, ranges):
    """The piece-by-piece split_accounted of before (the oracle)."""
    by_bytes, by_mover = [], []
    spans = sorted(ranges)
    for p in pieces:
        if p.compressed or not spans:
            by_bytes.append(p)
            continue
        pos, end = p.image_offset, p.image_offset + p.length
        for lo, hi in spans:
            lo, hi = max(lo, pos), min(hi, end)
            if hi <= lo:
                continue
            if lo > pos:
                by_bytes.append(StoredPiece(pos, p.volume_offset + pos - p.image_offset, lo - pos))
            by_mover.append(StoredPiece(lo, p.volume_offset + lo - p.image_offset, hi - lo))
            pos = hi
        if pos < end:
            by_bytes.append(StoredPiece(pos, p.volume_offset + pos - p.image_offset, end - pos))
    return by_bytes, by_mover


def _merge(pieces):
    """Adjacent pieces joined (the old split cut at every list edge; the new one at the merged ranges')."""
    out = []
    for p in pieces:
        q = out[-1] if out else None
        if q and not p.compressed and not q.compressed and q.image_offset + q.length == p.image_offset \
                and q.volume_offset + q.length == p.volume_offset:
            out[-1] = StoredPiece(q.image_offset, q.volume_offset, q.length + p.length)
        else:
            out.append(StoredPiece(p.image_offset, p.volume_offset, p.length, p.compressed,
                                   p.stored_length if p.compressed else 0))
    return out


@st.composite
def pieces_and_ranges(draw):
    lengths = draw(st.lists(st.integers(1, 50), min_size=1, max_size=40))
    gaps = draw(st.lists(st.integers(0, 30), min_size=len(lengths), max_size=len(lengths)))
    comp = draw(st.lists(st.booleans(), min_size=len(lengths), max_size=len(lengths)))
    pieces, image, vol = [], 0, 0
    for n, g, c in zip(lengths, gaps, comp):
        vol += g
        pieces.append(StoredPiece(image, vol, n, c, n // 2 if c else 0))
        image, vol = image + n, vol + n
    cuts = sorted(draw(st.lists(st.integers(0, image), max_size=8)))
    ranges = [(cuts[i], cuts[i + 1]) for i in range(0, len(cuts) - 1, 2)]
    return pieces, ranges, draw(st.integers(1, 7))


@settings(max_examples=150, deadline=None)
@given(pieces_and_ranges())
def test_split_by_ranges_matches_the_piece_by_piece_split(case):
    pieces, ranges, block = case
    blocks = list(blocks_from_pieces(pieces, size=block))
    outside, inside = split_by_ranges(PieceStream(lambda: blocks), ranges)
    old_out, old_in = _old_split(pieces, ranges)
    assert _merge(inside) == _merge(old_in)
    assert _merge(outside) == _merge(old_out)
    for cs in (3, 16, 1000):
        assert list(touched_chunks(PieceStream(lambda: blocks), cs)) == sorted(chunks_touched(pieces, cs))
        # the commit's digests: the driver's for some chunks, the rest marked; as pairs and as runs
        have = [(c, f"d{c}") for c in sorted(chunks_touched(pieces, cs))[::3]]
        digests = ChunkDigests(have, PieceStream(lambda: blocks), cs, "u")
        assert [c for c, _ in digests] == sorted(chunks_touched(pieces, cs))
        assert dict(digests) == {**{c: "u" for c in chunks_touched(pieces, cs)}, **dict(have)}
        assert list(digests.runs()) == list(coalesce(((c, d, 1) for c, d in digests), "u"))
    plain = [p for p in pieces if not p.compressed]
    plain_blocks = list(blocks_from_pieces(plain, size=block))
    for lo in range(0, pieces[-1].image_offset + pieces[-1].length + 1, 5):
        for hi in (None, lo + 9):
            ref = [p for p in remaining(plain, lo) if hi is None or p.image_offset < hi]
            if hi is not None and ref and ref[-1].image_offset + ref[-1].length > hi:
                ref[-1] = StoredPiece(ref[-1].image_offset, ref[-1].volume_offset, hi - ref[-1].image_offset)
            got = [q for b in plain_blocks for c in [clip(b, lo, hi)] if c is not None for q in c.pieces()]
            assert [(p.image_offset, p.volume_offset, p.length) for p in ref] == \
                [(p.image_offset, p.volume_offset, p.length) for p in got]


def test_unread_chunks_are_stored_as_runs_and_read_back_one_by_one():
    cat = Catalogue(":memory:")
    cat.add_pool_volume("P", "V", "pool0", 1 << 40)
    started = cat.begin_object(BeginObject("N", "F", "selective", "image", 10, 10, "raw", pool="P"))
    digests = [(0, "a" * 64)] + [(c, UNREAD) for c in range(1, 1000)] + [(1000, "b" * 64), (1002, UNREAD)] + \
        [(c, UNREAD) for c in range(5000, 5003)]
    cat.commit_object(CommitObject(started.object_id, (StoredPiece(0, 0, 10),), "server-free", False,
                                   tuple(digests)))
    rows = cat.db.execute("SELECT count(*) FROM digests").fetchone()[0]
    assert rows == 3  # the unread runs; the two digests are one block of records
    assert tuple(cat.db.execute("SELECT count(*), sum(count) FROM digest_blocks").fetchone()) == (1, 2)
    (rec,) = cat.query("N", "F")
    assert cat.digests([rec]) == dict(digests)


# -- memory: bounded by windows and blocks, not by the extent count ------------------------------------------
def _extent_arrays(n, step=50_000):
    for first in range(0, n, step):
        i = np.arange(first, min(n, first + step), dtype=np.int64)
        yield np.stack([i * 40960, 8192 + 4096 * (i % 5)], axis=1)


def _backup_and_restore_peak(n):
    """tracemalloc peak of a streamed backup (one mover fails mid-list) and its streamed restore, in bytes."""
    desig = {"pool0": "6001405" + "b" * 25}
    volume = n * 40960
    with Catalogue(":memory:") as cat:
        cat.add_pool_volume("POOL", "V", "pool0", volume)
        drv = AcknowledgingDriver(cat, fail_at={"M1": 300})
        plan = PathPlan(start=PathKind.SERVER_FREE, movers=["M1", "M2"], lan=False, pool_designators=desig)
        dev = DeviceSpec(name="d", designator="6001405" + "d" * 25)
        spec = BackupSpec(node="N", filespace="F", source=dev, volume_size=volume, paths=plan,
                          extent_stream=PieceStream.from_extents(lambda: _extent_arrays(n), volume))
        tracemalloc.start()
        try:
            report = run_job(backup_job(spec), drv.execute)
            assert report.ok and len(report.failovers) == 1, report.summary()
            (rec,) = cat.query("N", "F")
            obj = ObjectSpec(object_id=rec.id, pool_volume=rec.pool_volume, pool_device=rec.pool_device,
                             pool_offset=rec.pool_offset, volume_size=volume,
                             pieces=PieceStream(lambda: cat.iter_blocks(rec.id)))
            r = run_job(restore_job(RestoreSpec(node="N", filespace="F", chain=[obj], destination=dev,
                                                destination_size=volume, paths=plan)), drv.execute)
            assert r.ok, r.summary()
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert cat.db.execute("SELECT sum(count) FROM extent_blocks").fetchone()[0] == n
        assert drv.counts["verify_accounted_bytes"] + drv.counts["verify_read_bytes"] == report.image_size
    return peak


def test_memory_does_not_grow_with_the_extent_count():
    """4x the extents (100k -> 400k) may not cost what holding them would (>= 33 bytes each as columns)."""
    small, large = _backup_and_restore_peak(100_000), _backup_and_restore_peak(400_000)
    assert large - small < 4 * MIB, (small, large)
    assert large < 40 * MIB, large


def test_a_streamed_backup_resumes_where_a_server_side_copy_stopped():
    """The earlier copy's bytes are a range of the stream; only the rest moves; the same object as with a list."""
    from orchestrator.job.spec import ResumePoint
    got = []
    for streaming in (False, True):
        drv = world()
        image = used(drv.devices["disk0"])
        drv.devices["pool0"][:5 * MIB] = image[:5 * MIB]  # what the server-side copy wrote before it stopped
        report, ops = backup(drv, streaming, paths=paths(start=PathKind.LAN_FREE, movers=[]),
                             resume=ResumePoint(image_offset=5 * MIB, reason="mover gone", mover="DM9"))
        assert report.ok, report.summary()
        sent = [p for o, _ in ops if isinstance(o, LanFreeWrite) for p in o.pieces]
        assert sent[0].image_offset == 5 * MIB
        (obj,) = drv.catalogue.query(with_pieces=True)
        assert bytes(drv.devices["pool0"][:obj.image_size]) == image
        got.append((obj.pieces, report.bytes_by_path, [(f.from_path, f.image_offset) for f in report.failovers]))
    assert got[0] == got[1]
