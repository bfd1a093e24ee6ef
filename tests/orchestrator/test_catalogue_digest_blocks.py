"""The catalogue's chunk digests as record blocks (`orchestrator.catalogue_digests`): whatever form the commit's
digests take, they read back as the dict of the pairs, with unread runs and odd digests as rows of their own."""
from __future__ import annotations

import random

import pytest

import orchestrator.catalogue_digests as catalogue_digests
from orchestrator.catalogue import Catalogue
from orchestrator.chunk_runs import ChunkDigests
from orchestrator.digest_spool import DigestSpool
from orchestrator.ops import UNREAD_DIGEST, BeginObject, CommitObject, StoredPiece
from orchestrator.piece_stream import LazySeq, PieceStream


def _commit(cat: Catalogue, digests) -> int:
    started = cat.begin_object(BeginObject("N", "F", "selective", "image", 10, 10, "raw", pool="P"))
    cat.commit_object(CommitObject(started.object_id, (StoredPiece(0, 0, 10),), "server-free", False, digests))
    return started.object_id


@pytest.fixture
def cat(monkeypatch):
    monkeypatch.setattr(catalogue_digests, "DIGEST_BLOCK_ROWS", 5)
    with Catalogue(":memory:") as c:
        c.add_pool_volume("P", "V", "pool0", 1 << 40)
        yield c


def _pairs(seed: int) -> list[tuple[int, str]]:
    rnd = random.Random(seed)
    chunks = sorted(rnd.sample(range(200), 60))
    return [(c, UNREAD_DIGEST if rnd.random() < 0.3 else f"{rnd.getrandbits(256):064x}") for c in chunks]


@pytest.mark.parametrize("form", ["tuple", "shuffled list", "stream", "spool"])
def test_every_form_reads_back_as_its_pairs(cat, form):
    pairs = _pairs(1)
    digests = {"tuple": lambda: tuple(pairs), "shuffled list": lambda: random.Random(2).sample(pairs, len(pairs)),
               "stream": lambda: LazySeq(lambda: iter(pairs)),
               "spool": lambda: DigestSpool(pairs)}[form]()
    oid = _commit(cat, digests)
    (rec,) = cat.query("N", "F")
    assert cat.digests([rec]) == dict(pairs)
    blocks = cat.db.execute("SELECT count(*), sum(count) FROM digest_blocks WHERE object_id=?", (oid,)).fetchone()
    if form != "spool":  # (a spool's "unread" pairs are records like any other)
        assert tuple(blocks) == (-(-sum(d != UNREAD_DIGEST for _, d in pairs) // 5),
                                 sum(d != UNREAD_DIGEST for _, d in pairs))


def test_a_chunk_digests_merge_goes_to_blocks_and_unread_runs(cat):
    pieces = [StoredPiece(0, 0, 40 * 4096), StoredPiece(40 * 4096, 60 * 4096, 4096)]
    have = [(c, f"{c:064x}") for c in range(0, 30, 2)]
    digests = ChunkDigests(DigestSpool(have), PieceStream.of(pieces), 4096, UNREAD_DIGEST)
    oid = _commit(cat, digests)
    rows = cat.db.execute("SELECT chunk, digest FROM digests WHERE object_id=? ORDER BY chunk", (oid,)).fetchall()
    assert [tuple(r) for r in rows] == [(c, UNREAD_DIGEST) for c in range(1, 29, 2)] + [(29, "unread 11"),
                                                                                          (60, UNREAD_DIGEST)]
    (rec,) = cat.query("N", "F")
    assert cat.digests([rec]) == dict(digests)
    assert list(cat.digest_runs([rec])) == list(digests.runs())


def test_a_digest_the_record_cannot_hold_is_a_row_and_rows_of_older_catalogues_merge(cat):
    long = "x" * 80
    oid = _commit(cat, [(3, "a" * 64), (4, long), (5, "b" * 64)])
    cat.db.execute("INSERT INTO digests VALUES (?,?,?)", (oid, 9, "c" * 64))  # as a catalogue before the blocks
    (rec,) = cat.query("N", "F")
    assert list(cat.digest_runs([rec])) == [(3, "a" * 64, 1), (4, long, 1), (5, "b" * 64, 1), (9, "c" * 64, 1)]


def test_digests_out_of_order_fail_the_commit_and_leave_nothing(cat):
    with pytest.raises(ValueError, match="digest of chunk 2 comes after chunk 7"):
        _commit(cat, LazySeq(lambda: iter([(7, "a"), (2, "b")])))
    assert cat.db.execute("SELECT count(*) FROM digest_blocks").fetchone()[0] == 0
    assert cat.states() == {1: "pending"}
