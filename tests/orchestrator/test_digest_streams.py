"""Chunk digests as streams: `ChunkDigests` and `without_chunks` over spools of many pages, the spooling digester
and the pairwise comparison -- each against the whole-collection code it replaces (dicts, sets, tuples)."""
from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import orchestrator.digest_spool as digest_spool
from orchestrator.chunk_runs import ChunkDigests, aligned, coalesce, without_chunks
from orchestrator.digest_spool import DigestSpool
from orchestrator.job.digest import ChunkDigester, SpoolingDigester, first_difference
from orchestrator.ops import StoredPiece, chunks_touched
from orchestrator.piece_stream import PieceStream, blocks_from_pieces


def _pieces(spans):
    pieces, image, vol = [], 0, 0
    for gap, n in spans:
        vol += gap
        pieces.append(StoredPiece(image, vol, n))
        image, vol = image + n, vol + n
    return pieces


SPANS = st.lists(st.tuples(st.integers(0, 40), st.integers(1, 50)), min_size=0, max_size=30)


@settings(max_examples=150, deadline=None)
@given(SPANS, st.sampled_from([4, 7, 16]), st.integers(1, 4), st.integers(1, 5), st.randoms(use_true_random=False))
def test_chunk_digests_over_many_pages_are_the_dict_merge(spans, cs, block, page, rnd):
    """Digested chunks (some unread, some not) win over the marker; pages of 1..5 rows, blocks of 1..4 pieces."""
    pieces = _pieces(spans)
    touched = chunks_touched(pieces, cs)
    universe = sorted(touched | {rnd.randrange(0, 60) for _ in range(5)})
    have = [(c, f"d{c}") for c in universe if rnd.random() < 0.5]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(digest_spool, "SPOOL_ROWS", page)
        unread = PieceStream(lambda: blocks_from_pieces(pieces, size=block))
        got = ChunkDigests(DigestSpool(have), unread, cs, "u")
        want = sorted({**dict.fromkeys(touched, "u"), **dict(have)}.items())
        assert list(got) == want and list(got) == want  # produced again on a second pass
        assert list(got.runs()) == list(coalesce(((c, d, 1) for c, d in want), "u"))
        kept = without_chunks(DigestSpool(have), unread, cs)
        assert list(kept) == [(c, d) for c, d in have if c not in touched]
        assert ChunkDigests(tuple(have), unread, cs, "u") == want  # pairs are made a spool


def test_aligned_cuts_both_streams_at_the_same_chunk():
    left = [np.array([1, 5, 9]), np.array([12, 30])]
    right = [np.array([2, 3]), np.array([4, 10, 11, 40])]
    parts = [(a.tolist(), b.tolist()) for a, b in aligned(left, right)]
    assert parts == [([1], [2, 3]), ([5, 9], [4]), ([12, 30], [10, 11]), ([], [40])]
    assert [(a.tolist(), b.tolist()) for a, b in aligned([], right[:1])] == [([], [2, 3])]


def test_digests_out_of_chunk_order_are_refused_naming_the_pair():
    with pytest.raises(ValueError, match="digest of chunk 3 .pair 1. comes after chunk 5"):
        ChunkDigests([(5, "a"), (3, "b")], PieceStream.of([]), 4, "u")


@settings(max_examples=100, deadline=None)
@given(SPANS, st.sampled_from([7, 16, 100]), st.integers(1, 9))
def test_the_spooling_digester_gives_the_chunk_digesters_digests(spans, cs, step):
    pieces = _pieces(spans)
    whole, spooled = ChunkDigester(cs), SpoolingDigester(cs)
    for p in pieces:
        for o in range(0, p.length, step):
            data = bytes((p.volume_offset + o + i) % 251 for i in range(min(step, p.length - o)))
            whole.update(p.volume_offset + o, data)
            spooled.update(p.volume_offset + o, data)
    assert list(spooled.digests()) == list(whole.digests())


def test_the_spooling_digester_refuses_data_before_what_it_has_passed():
    d = SpoolingDigester(16)
    d.update(40, b"x" * 8)
    with pytest.raises(ValueError, match="volume offset 20 comes before the end of the data before it .48."):
        d.update(20, b"y")


def test_first_difference_names_the_first_chunk_that_differs():
    ours = [(0, "a"), (2, "b"), (5, "c")]
    assert first_difference(iter(ours), DigestSpool(ours)) is None
    assert first_difference(ours, [(0, "a"), (2, "x"), (5, "y")]) == 2
    assert first_difference(ours, [(0, "a"), (3, "b"), (5, "c")]) == 2  # a chunk only ours has
    assert first_difference(ours, ours[:2]) == 5  # theirs ended
    assert first_difference(ours[:1], ours) == 2
    assert first_difference([], []) is None


def test_a_long_spool_compares_without_a_tuple():
    rnd = random.Random(3)
    pairs = [(c, f"{rnd.getrandbits(256):064x}") for c in range(0, 90_000, 3)]
    spool = DigestSpool(pairs)
    changed = pairs[:20_000] + [(pairs[20_000][0], "0" * 64)] + pairs[20_001:]
    assert first_difference(iter(changed), spool) == pairs[20_000][0]
