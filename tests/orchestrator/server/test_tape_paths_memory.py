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
from bisect import bisect_right
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


# ------------------------------------------------------------------ the LAN path's records writer
class _Tape:
    """A drive that keeps no bytes: it counts the records written and answers reads with zeros."""

    def __init__(self):
        self.written = self.filemarks = 0

    def write_piece(self, records, data, fmt):
        self.written += fmt.records(len(data))

    def read_piece(self, records, length, fmt):
        return bytes(length)


@pytest.fixture
def stand_in_drive(monkeypatch):
    from scsi import tape_client

    drive = _Tape()
    monkeypatch.setattr(tape, "write_piece", drive.write_piece)
    monkeypatch.setattr(tape, "read_piece", drive.read_piece)
    monkeypatch.setattr(tape_client, "position", lambda dev, at: (at or 0, 0))

    class Records:
        def __init__(self, dev, name):
            pass

        def write_filemarks(self, n):
            drive.filemarks += n

    monkeypatch.setattr(tape_client, "TapeRecords", Records)
    return drive


def lan_pieces(n: int, length: int = 4096) -> PieceStream:
    """``n`` pieces of ``length`` tiling the image from 0, every other ``length`` of the volume."""
    def blocks():
        for first in range(0, n, 1 << 16):
            k = min(1 << 16, n - first)
            idx = np.arange(first, first + k, dtype=np.int64)
            yield PieceBlock.of(first * length, idx * 2 * length, np.full(k, length, np.int64))
    return PieceStream(blocks)


def test_the_lan_tape_writer_keeps_no_list_of_its_puts(stand_in_drive):
    """120,000 PUTs, then the closing check names them all: the old list of (offset, length) pairs and the
    check's second list peaked at 34.3 MiB; the writer now keeps counts and a digest of the lengths (4.1 MiB:
    the check reads the pieces a block of 64 Ki at a time)."""
    n, data = 120_000, bytes(4096)
    w = tape.TapeWriter("DRV1", "VOL001", object(), 7, 1)

    def write_and_close():
        for i in range(n):
            w.put(i * 4096, data)
        return w.close(lan_pieces(n))

    loc, peak = peak_of(write_and_close)
    loc = TapeLocation.decode(loc)
    assert (loc.first_object, loc.records, loc.file_number) == (7, n, 1)
    assert stand_in_drive.written == n and stand_in_drive.filemarks == 1
    assert peak < 8 * MIB, f"peak {peak / MIB:.1f} MiB"


def test_the_lan_tape_writer_digests_its_records_chunk_by_chunk(stand_in_drive):
    """The read-back of 80,000 one-chunk pieces: the old code held a hasher per chunk and gave a list of
    (chunk, hex) pairs, peaking at 47.2 MiB; now the digests go to a DigestSpool as each chunk is passed
    (12.3 MiB: a block of pieces, two of its columns as Python values, and the spool's in-memory page)."""
    n = 80_000
    w = tape.TapeWriter("DRV1", "VOL001", object(), 0, 0)
    data = bytes(4096)
    for i in range(n):
        w.put(i * 4096, data)
    digests, peak = peak_of(lambda: w.digests(lan_pieces(n), 4096))
    assert peak < 20 * MIB, f"peak {peak / MIB:.1f} MiB"
    one = ChunkDigester(4096)
    one.update(0, data)
    want = one.digests()[0][1]
    assert len(digests) == n
    got = list(digests)
    assert [c for c, _ in got] == list(range(0, 2 * n, 2)) and {d for _, d in got} == {want}


def test_read_back_digests_are_the_digests_of_the_whole_object():
    """Chunk by chunk (pieces in volume order) or all at once (not): the digests of one ChunkDigester fed
    everything, for pieces cut anywhere across chunks."""
    import random

    rng = random.Random(5)
    data = rng.randbytes(1 << 20)
    pieces, img, vol = [], 0, 0
    while vol < (1 << 20) - 64:
        vol += rng.randrange(0, 3000)
        n = min(rng.randrange(1, 9000), (1 << 20) - vol)
        if n <= 0:
            break
        pieces.append(StoredPiece(img, vol, n))
        img, vol = img + n, vol + n
    k = next(i for i in range(len(pieces) // 2, len(pieces))  # a piece starting a chunk the one before ends before
             if pieces[i].volume_offset // 4096 > (pieces[i - 1].volume_offset + pieces[i - 1].length - 1) // 4096)
    for order in (pieces, pieces[k:] + pieces[:k]):
        whole = ChunkDigester(4096)
        for p in order:
            whole.update(p.volume_offset, data[p.volume_offset:p.volume_offset + p.length])
        it = iter(order)
        ascending = tape.volume_ascending(PieceStream.of(order))
        assert ascending == (order is pieces)
        read = lambda n: (lambda p: data[p.volume_offset:p.volume_offset + n])(next(it))  # noqa: E731
        assert list(tape.read_back_digests(order, read, 4096, ascending)) == list(whole.digests())


def test_the_writer_refuses_pieces_that_are_not_its_puts(stand_in_drive):
    w = tape.TapeWriter("DRV1", "VOL001", object(), 0, 0)
    for off, n in ((0, 4096), (4096, 100), (4196, 8192)):
        w.put(off, bytes(n))
    good = [StoredPiece(0, 0, 4096), StoredPiece(4096, 8192, 100), StoredPiece(4196, 9000, 8192)]
    for bad in (good[:2], good + [StoredPiece(12388, 20000, 1)], [good[0], StoredPiece(4096, 8192, 101), good[2]],
                [good[1], good[0], good[2]], [good[0], StoredPiece(4096, 8192, 100, True, 50), good[2]]):
        with pytest.raises(ValueError, match="not the pieces written on tape"):
            w.close(bad)
        with pytest.raises(ValueError, match="digested as written"):
            w.digests(bad, 4096)
    assert [c for c, _ in w.digests(good, 4096)] == [0, 2, 3, 4]
    assert TapeLocation.decode(w.close(tuple(good))).records == 3


# ------------------------------------------------------------------ a storage agent's commit
def test_a_storage_agent_commit_compares_the_digests_in_step(stand_in_drive, monkeypatch):
    """80,000 one-chunk pieces the agent wrote: the server reads them back and compares its digests with the
    client's as it goes.  The old code sorted the pieces into a list, held a hasher per chunk and two dicts
    of digests: 47.2 MiB; now 12.8 MiB (a block of pieces, a page of the client's digests)."""
    from orchestrator.ops import tape_records
    from orchestrator.server.node_tape import TapeOps
    from orchestrator.server.service import Refused

    n, fmt = 80_000, tape.FORMAT
    monkeypatch.setattr(tape_records, "read_piece", stand_in_drive.read_piece)
    monkeypatch.setattr(tape, "open_drive", lambda name, device: SimpleNamespace())
    monkeypatch.setattr(tape, "tape_pool", lambda store, pool: tape.TapePool(pool, "LIB1", {"DRV1": "x"}))
    one = ChunkDigester(4096)
    one.update(0, bytes(4096))
    digest = one.digests()[0][1]
    theirs = [(2 * i, digest) for i in range(n)]

    class Ops(TapeOps):
        def __init__(self):
            self.cat = SimpleNamespace(get=lambda oid, with_pieces: SimpleNamespace(pool="TAPEPOOL",
                                                                                   pool_volume="VOL001"))
            self.server = SimpleNamespace(store=None)

        def refuse(self, text, code="ANR0440W"):
            return Refused(code, text, text)

    loc = TapeLocation(volume="VOL001", drive="tape1", file_number=0, first_object=3, records=n,
                       record_bytes=fmt.record_bytes).encode()
    g = SimpleNamespace(object_id=9, tape_drive="DRV1")
    req = SimpleNamespace(tape_location=loc, digests=theirs, chunk_size=4096)
    out, peak = peak_of(lambda: Ops()._commit_agent_tape(g, req, lan_pieces(n)))
    assert TapeLocation.decode(out).drive == "DRV1" and TapeLocation.decode(out).first_object == 3
    assert peak < 20 * MIB, f"peak {peak / MIB:.1f} MiB"
    n = 2000  # the comparison itself, on a smaller object
    theirs = theirs[:n]
    loc = TapeLocation(**{**TapeLocation.decode(loc).model_dump(), "records": n}).encode()
    for wrong in (theirs[:-1], theirs + [(2 * n, digest)], theirs[:5] + [(10, "0" * 64)] + theirs[6:]):
        with pytest.raises(Refused, match="are not the data the client's digests describe"):
            Ops()._commit_agent_tape(g, SimpleNamespace(tape_location=loc, digests=wrong, chunk_size=4096),
                                     lan_pieces(n))
    shuffled = theirs[1:] + theirs[:1]  # in any order, as the dicts compared them
    assert TapeLocation.decode(Ops()._commit_agent_tape(g, SimpleNamespace(
        tape_location=loc, digests=shuffled, chunk_size=4096), lan_pieces(n))).records == n


# ------------------------------------------------------------------ a LAN restore's GETs of a tape object
def tape_object(cat: Catalogue, n: int, length: int = 4096) -> tuple[int, PieceStream]:
    from orchestrator.ops import BeginObject, CommitObject

    cat.add_pool_volume("TAPEPOOL", "VOL001", "DRV1", 1 << 60)
    started = cat.begin_object(BeginObject("NODEA", "E:", "selective", "static", n * length, 2 * n * length,
                                           "NTFS", pool="TAPEPOOL"))
    pieces = lan_pieces(n, length)
    loc = TapeLocation(volume="VOL001", drive="DRV1", file_number=0, first_object=5, records=n,
                       record_bytes=tape.RECORD_BYTES).encode()
    cat.commit_object(CommitObject(started.object_id, pieces, "lan", False, (), loc))
    return started.object_id, pieces


def test_a_lan_restore_gets_a_tape_objects_pieces_without_listing_them(tmp_path, stand_in_drive, monkeypatch):
    """GETs of a 150,000-piece tape object, in image order across its blocks, then back to its start: each
    GET used to read the object's whole map as a list of pieces (6 GETs: 26.5 MiB, 14 s under tracemalloc);
    the session now walks the map's blocks with a cursor (1,003 GETs: 13.0 MiB, 0.2 s)."""
    from orchestrator.server import messages as m
    from orchestrator.server.node_ops import NodeOps

    n = 150_000
    monkeypatch.setattr(tape, "open_drive", lambda name, device: SimpleNamespace())
    monkeypatch.setattr(tape, "tape_pool", lambda store, pool: tape.TapePool(pool, "LIB1", {"DRV1": "x"}))
    located: list[int] = []
    from scsi import tape_client

    monkeypatch.setattr(tape_client, "position", lambda dev, at: located.append(at) or (at, 0))
    with Catalogue(tmp_path / "cat.db") as cat:
        oid, _ = tape_object(cat, n)
    server = SimpleNamespace(pools=SimpleNamespace(catalogue=lambda: Catalogue(tmp_path / "cat.db")),
                             drives=tape.Drives(), metrics=None, store=None)
    ops = NodeOps(server, SimpleNamespace(name="NODEA", id=1))
    wanted = list(range(65_000, 66_000)) + [149_999, 3, 4]  # across a block edge, the last piece, back again

    def gets():
        return [ops.get(m.Get(type="get", object_id=oid, image_offset=i * 4096, length=4096), b"")[1]
                for i in wanted]

    try:
        out, peak = peak_of(gets)
    finally:
        ops.close()
    assert [len(x) for x in out] == [4096] * len(wanted)
    # LOCATE only where the reads jump: the first, the last piece, back to piece 3
    assert located == [5 + 65_000, 5 + 149_999, 5 + 3]
    assert peak < 20 * MIB, f"peak {peak / MIB:.1f} MiB"


def test_the_record_cursor_finds_what_record_of_finds():
    """Any order of reads, pieces of any length: the same piece and record as a walk over the whole list."""
    import random

    from orchestrator.piece_blocks import blocks_of
    from orchestrator.plan.tape import TapeFormat
    from orchestrator.plan.tape_position import RecordCursor, record_of

    rng = random.Random(7)
    fmt = TapeFormat(4096)
    pieces, img = [], 0
    for i in range(3000):
        n = rng.choice((1, 100, 4096, 4097, 3 * 4096, 50_000))
        pieces.append(StoredPiece(img, 2 * img, n))
        img += n
    blocks = list(blocks_of(pieces, size=256))
    cursor = RecordCursor(lambda k: blocks[k] if k < len(blocks) else None, fmt)
    starts = [p.image_offset for p in pieces]
    before = [0]  # records before each piece, as record_of counts them
    for p in pieces:
        before.append(before[-1] + fmt.records(p.length))
    assert all(record_of(pieces, fmt, pieces[i].image_offset) == before[i] for i in (0, 1, 1500, 2999))
    for off in [rng.randrange(img + 10) for _ in range(400)] + list(range(0, img, 997)) + [img, img + 1]:
        got = cursor.piece(off)
        if off >= img:
            assert got is None
            continue
        i = max(j for j in (bisect_right(starts, off) - 1,) if j >= 0)
        p = pieces[i]
        assert got[:2] == (p.image_offset, p.length), off
        assert got[2] == before[i]


# ------------------------------------------------------------------ a LAN / LAN-free tape write's result
def test_a_tape_writes_result_names_its_pieces_without_a_copy(monkeypatch):
    """A window of 65,536 pieces written over the LAN (the backup server lays the records) and LAN-free (the
    client writes them): the old results built a StoredPiece per piece, 5.5 MiB a window; now they read the
    operation's own pieces again when asked, 0.0 MiB (the same values, a failure's as well)."""
    from orchestrator.lan import tape_server
    from orchestrator.ops import Failure, Piece
    from orchestrator.ops.tape import TapeClientWrite, TapeServerWrite
    from orchestrator.ops.tape_records import client_write

    class Client:
        def __init__(self, *a, **k):
            self.puts = 0

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def put(self, image_offset, length, data):
            self.puts += 1

        def mark(self):
            pass

        def sync(self):
            pass

    class Tape:
        def write(self, data, fixed=False, block_size=0):
            pass

        def write_filemarks(self, n):
            pass

    monkeypatch.setattr(tape_server, "TapeLanClient", Client)
    n = 1 << 16
    pieces = tuple(Piece(i * 512, i * 1024, 512) for i in range(n))
    data = bytes(512)
    classify = lambda exc, what, dev: Failure("error", f"{what}: {exc}", dev)  # noqa: E731
    fmt = tape.FORMAT
    lan = TapeServerWrite("srv:1", "disk0", "DRV1", pieces, fmt)
    lan_free = TapeClientWrite("disk0", "DRV1", pieces, fmt)
    for write in (lambda: tape_server.server_write(lan, lambda p: data, classify),
                  lambda: client_write(lan_free, lambda p: data, Tape(), classify)):
        r, peak = peak_of(write)
        assert r.ok and r.pieces_done == n and len(r.stored) == n
        assert r.stored[n - 1] == StoredPiece(pieces[-1].image_offset, pieces[-1].volume_offset, 512)
        assert peak < 2 * MIB, f"peak {peak / MIB:.1f} MiB"
    failing = iter(range(n))
    r = tape_server.server_write(lan, lambda p: data if next(failing) < 10 else 1 / 0, classify)
    assert r.pieces_done == 10 and list(r.stored) == [StoredPiece(p.image_offset, p.volume_offset, p.length)
                                                      for p in pieces[:10]] and "read failed" in r.failure.message
