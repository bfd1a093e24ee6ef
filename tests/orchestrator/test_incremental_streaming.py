"""Image incrementals as streams: the same pieces as the piece-by-piece code they replace, in bounded memory."""
from __future__ import annotations

import tracemalloc

import numpy as np
from hypothesis import given, settings, strategies as st

from orchestrator.catalogue import Catalogue
from orchestrator.chunk_runs import DigestRuns, touched_chunk_arrays
from orchestrator.drivers.acknowledging import AcknowledgingDriver
from orchestrator.job import BackupSpec, DeviceSpec, PathPlan, backup_job, run_job
from orchestrator.job.digest import view_coverage
from orchestrator.job.incremental import coverage_stream, incremental_pieces, merge_ascending
from orchestrator.ops import UNREAD_DIGEST, BeginObject, CommitObject, PathKind, StoredPiece, pieces_from_extents
from orchestrator.piece_stream import LazySeq, PieceStream, blocks_from_pieces
from tests.fixtures.incremental_before_streaming import changed_pieces, covered

MIB = 1 << 20


@st.composite
def extents(draw, max_n=30):
    """Ascending, non-overlapping extents (touching allowed) inside a 600-byte volume."""
    out, pos = [], draw(st.integers(0, 20))
    for _ in range(draw(st.integers(1, max_n))):
        n = draw(st.integers(1, 40))
        if pos + n > 600:
            break
        out.append((pos, n))
        pos += n + draw(st.sampled_from([0, 0, 1, 5, 17, 60]))
    return out or [(0, 1)]


def digest_views(draw, chunks: int):
    """A dict of chunk digests with runs of unread chunks, drawn over ``chunks`` chunks."""
    view = {}
    for c in range(chunks):
        pick = draw(st.sampled_from(["a", "b", "c", UNREAD_DIGEST, None]))
        if pick is not None:
            view[c] = pick
    return view


@st.composite
def incremental_cases(draw):
    cs = draw(st.sampled_from([7, 16, 50, 1000]))
    now = draw(extents())
    chain = [draw(extents()) for _ in range(draw(st.integers(1, 3)))]
    chunks = 600 // cs + 2
    return cs, now, chain, digest_views(draw, chunks), {c: d for c, d in digest_views(draw, chunks).items()
                                                        if d != UNREAD_DIGEST}, draw(st.integers(1, 9))


def _stream(pieces, block: int) -> PieceStream:
    blocks = list(blocks_from_pieces(pieces, size=block))
    return PieceStream(lambda: blocks)


def _joined(ranges):
    out = []
    for off, n in ranges:
        if out and out[-1][0] + out[-1][1] == off:
            out[-1] = (out[-1][0], out[-1][1] + n)
        else:
            out.append((off, n))
    return out


@settings(max_examples=300, deadline=None)
@given(incremental_cases(), st.booleans())
def test_streamed_incremental_gives_the_pieces_of_the_piece_by_piece_code(case, with_coverage):
    cs, now, chain, previous, current, block = case
    pieces = pieces_from_extents(now)
    objects = [pieces_from_extents(e) for e in chain]
    coverage = view_coverage(objects, cs) if with_coverage else []
    fresh = covered(pieces, coverage, cs) if coverage else set()
    old = changed_pieces(pieces, current, previous, cs, fresh)

    stream = coverage_stream([_stream(o, block) for o in objects], cs)
    assert _joined((p.volume_offset, p.length) for p in stream) == _joined(coverage or
                                                                             view_coverage(objects, cs))
    runs = DigestRuns(lambda: ((c, d, 1) for c, d in sorted(previous.items())))
    for prev in (previous, runs):
        for cur in (tuple(current.items())[::-1], LazySeq(lambda: sorted(current.items()))):
            new = incremental_pieces(_stream(pieces, block), cur, prev, stream if with_coverage else None, cs)
            assert [(p.image_offset, p.volume_offset, p.length) for p in new] == \
                [(p.image_offset, p.volume_offset, p.length) for p in old]
            assert all(b.tiles for b in new.blocks())


@settings(max_examples=100, deadline=None)
@given(st.lists(st.lists(st.integers(0, 200), max_size=30), min_size=1, max_size=4), st.integers(1, 7))
def test_merge_ascending_sorts_sources_that_are_each_ascending(sources, step):
    arrays = []
    for values in sources:
        v = np.unique(np.array(values, dtype=np.int64))
        arrays.append([np.stack([v[i:i + step], v[i:i + step]], axis=1) for i in range(0, v.size, step)])
    got = [int(x) for a in merge_ascending(arrays) for x in a[:, 0]]
    assert got == sorted(int(x) for a in arrays for part in a for x in part[:, 0])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.dictionaries(st.integers(0, 60), st.sampled_from(["a", "b", UNREAD_DIGEST])),
                min_size=1, max_size=3))
def test_the_catalogue_streams_a_chains_digests_as_the_dict_it_gives(views):
    cat = Catalogue(":memory:")
    cat.add_pool_volume("P", "V", "pool0", 1 << 30)
    chain = []
    for i, view in enumerate(views):
        mode = "selective" if i == 0 else "incremental"
        started = cat.begin_object(BeginObject("N", "F", mode, "static", 10, 10, "raw",
                                               chain[0].id if chain else None, pool="P"))
        cat.commit_object(CommitObject(started.object_id, (StoredPiece(0, 0, 10),), "lan", False,
                                       tuple(sorted(view.items()))))
        chain.append(cat.get(started.object_id, with_pieces=False))
    expanded = {}
    last = -1
    for c, d, n in cat.digest_runs(chain):
        assert c > last and (n == 1 or d == UNREAD_DIGEST)
        expanded.update(dict.fromkeys(range(c, c + n), d))
        last = c + n - 1
    assert expanded == cat.digests(chain)
    merged = {}
    for view in views:
        merged.update(view)
    assert expanded == merged


# -- memory: an incremental of many extents holds flags per chunk, not objects per extent ---------------------
def _extent_arrays(n, step=50_000):
    for first in range(0, n, step):
        i = np.arange(first, min(n, first + step), dtype=np.int64)
        yield np.stack([i * 40960, 8192 + 4096 * (i % 5)], axis=1)


def _digest(idx: np.ndarray, changed: bool) -> list[str]:
    return [f"{'c' if changed and c % 100 == 7 else 'd'}{c:063x}" for c in idx.tolist()]


def incremental_peak(n: int) -> tuple[int, int]:
    """(tracemalloc peak in bytes, image bytes) of an incremental of ``n`` extents, 1 % of its chunks changed,
    against a full image whose every chunk has a real digest in the catalogue."""
    desig = {"pool0": "6001405" + "b" * 25}
    volume = n * 40960
    full = PieceStream.from_extents(lambda: _extent_arrays(n), volume)
    with Catalogue(":memory:") as cat:
        cat.add_pool_volume("POOL", "V", "pool0", 2 * volume)
        started = cat.begin_object(BeginObject("N", "F", "selective", "static", full.nbytes(), volume, "raw",
                                               pool="POOL"))
        digests = LazySeq(lambda: ((c, d) for idx in touched_chunk_arrays(full, MIB)
                                   for c, d in zip(idx.tolist(), _digest(idx, False))))
        cat.commit_object(CommitObject(started.object_id, full, "lan", False, digests))
        (base,) = cat.restore_chain("N", "F", incremental=True, stream=True)
        drv = AcknowledgingDriver(cat, volume_digests=lambda idx: _digest(idx, True))
        plan = PathPlan(start=PathKind.SERVER_FREE, movers=["M1", "M2"], lan=False, pool_designators=desig)
        spec = BackupSpec(node="N", filespace="F", source=DeviceSpec(name="d", designator="6001405" + "d" * 25),
                          volume_size=volume, paths=plan, mode="incremental", base_object_id=base.id,
                          extent_stream=PieceStream.from_extents(lambda: _extent_arrays(n), volume),
                          base_digests=cat.digest_runs([base]), base_coverage=coverage_stream([base.pieces], MIB))
        tracemalloc.start()
        try:
            report = run_job(backup_job(spec), drv.execute)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert report.ok, report.summary()
        assert drv.counts["scanned_chunks"] == cat.db.execute(
            "SELECT sum(count) FROM digest_blocks WHERE object_id=?", (base.id,)).fetchone()[0]
    return peak, report.image_size


def test_an_incremental_of_many_extents_runs_in_bounded_memory():
    """400,000 extents (16 GB, 15,600 chunks): the piece-by-piece code held the scan, two digest dicts and
    the changed pieces as objects (tracemalloc peak 168 MiB; 42 MiB at 100,000 extents); the streams hold
    ~12 MiB whatever the extent count (the blocks and windows), and only the changed 1 % of chunks move."""
    peak, image = incremental_peak(400_000)
    chunks_changed = len(range(7, (400_000 * 40960) // MIB + 1, 100))
    assert 0 < image <= chunks_changed * MIB
    assert peak < 24 * MIB, peak


# -- the drivers' scan: each chunk digested as the job comes to it ------------------------------------------
def test_a_streamed_scan_holds_open_chunks_only():
    """50,000 chunks: digesting them all before answering held every chunk's hash (tracemalloc ~17 MiB);
    the stream holds the chunk being read."""
    from orchestrator.job.digest import chunk_digests, iter_chunk_digests
    from orchestrator.ops import Piece

    def pieces():
        return (Piece(i * 16, i * 1024 + 8, 16) for i in range(50_000))

    def read(p):
        return bytes([p.volume_offset % 251]) * p.length

    def peak(consume):
        tracemalloc.start()
        try:
            consume()
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    last = []
    streamed = peak(lambda: last.append(sum(1 for _ in iter_chunk_digests(pieces(), read, 1024))))
    whole = peak(lambda: chunk_digests(pieces(), read, 1024))
    assert last == [50_000]
    assert streamed < 1 * MIB < 8 * MIB < whole, (streamed, whole)


def test_a_scan_that_cannot_read_on_fails_the_job_with_its_reason():
    from orchestrator.drivers.memory import MemoryDriver
    from orchestrator.ops import DigestResult, DigestVolume

    volume = 8 * MIB
    cat = Catalogue(":memory:")
    cat.add_pool_volume("P", "V", "pool0", 4 * volume)
    disk = bytearray(range(256)) * (volume // 256)
    drv = MemoryDriver({"d": disk, "pool0": bytearray(4 * volume)}, cat, {})
    plan = PathPlan(start=PathKind.LAN_FREE, lan_free=True, lan=False)
    base = BackupSpec(node="N", filespace="F", source=DeviceSpec(name="d"), volume_size=volume, paths=plan,
                      extents=[(0, 3 * MIB), (4 * MIB, 2 * MIB)])
    assert run_job(backup_job(base), drv.execute).ok
    (rec,) = cat.restore_chain("N", "F", incremental=True, stream=True)

    def failing(op):
        result = drv.execute(op)
        if isinstance(op, DigestVolume):
            def scan():
                for n, pair in enumerate(result.digests):
                    if n == 2:
                        raise ValueError("reading the volume failed: unrecovered read error")
                    yield pair
            return DigestResult(LazySeq(scan))
        return result

    inc = base.model_copy(update={"mode": "incremental", "base_object_id": rec.id,
                                  "base_digests": cat.digest_runs([rec]),
                                  "base_coverage": coverage_stream([rec.pieces], MIB)})
    report = run_job(backup_job(inc), failing)
    assert report.outcome == "failed"
    assert report.message == "incremental scan failed: reading the volume failed: unrecovered read error"
    assert run_job(backup_job(inc), drv.execute).ok  # the same incremental with a scan that reads on


def test_the_real_drivers_scan_names_a_read_that_fails_on_the_way():
    from orchestrator.drivers.real_verify import VerifyOps
    from orchestrator.ops import DigestVolume, Piece

    class Disk:
        reads = 0

        def read(self, offset, n):
            Disk.reads += 1
            if Disk.reads == 3:
                raise OSError("LUN d: unrecovered read error")
            return bytes(n)

    ops = VerifyOps()
    ops.io = lambda name: Disk()  # type: ignore[method-assign]
    pieces = tuple(Piece(i * 4096, i * MIB, 4096) for i in range(5))
    result = ops._DigestVolume(DigestVolume("d", pieces, MIB))
    assert result.failure is None and Disk.reads == 0  # nothing is read before the job asks
    got = []
    try:
        for pair in result.digests:
            got.append(pair)
    except ValueError as exc:
        assert "reading the volume failed: LUN d: unrecovered read error" in str(exc)
    else:
        raise AssertionError("the failed read was not reported")
    assert [c for c, _ in got] == [0]  # (a chunk is given once the scan has passed it)
