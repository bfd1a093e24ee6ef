"""DigestSpool: the pairs come back as they went in, past the in-memory page, and bad order is refused."""
from __future__ import annotations

import hashlib
import tracemalloc

import numpy as np
import pytest

from orchestrator import digest_spool
from orchestrator.digest_spool import DIGEST_ROW, DigestSpool


def pairs(n: int, step: int = 3) -> list[tuple[int, str]]:
    return [(i * step, hashlib.sha256(str(i).encode()).hexdigest()) for i in range(n)]


def test_pairs_round_trip_through_the_file_and_the_buffer(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(digest_spool, "SPOOL_ROWS", 100)
    want = pairs(1234)
    spool = DigestSpool(want)
    assert spool._on_file == 1200 and len(spool._buf) == 34  # most of it left memory
    assert len(spool) == 1234
    assert list(spool) == want
    assert list(spool) == want  # a second pass reads it again
    assert spool == tuple(want) and spool[5] == want[5]
    assert [p.size for p in spool.pages()][:2] == [100, 100]


def test_rows_and_pairs_mix_in_order(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(digest_spool, "SPOOL_ROWS", 8)
    want = pairs(30)
    spool = DigestSpool(want[:5])
    spool.add_rows(np.array([(c, d.encode()) for c, d in want[5:20]], dtype=DIGEST_ROW))
    for c, d in want[20:]:
        spool.add(c, d)
    assert list(spool) == want
    assert np.concatenate(list(spool.chunk_pages())).tolist() == [c for c, _ in want]


@pytest.mark.parametrize("chunks, where", [([0, 2, 2], "row 2: chunk 2"), ([0, 5, 4], "row 2: chunk 4"),
                                           ([-1], "row 0: chunk -1")])
def test_rows_out_of_order_or_negative_name_the_row(chunks: list[int], where: str):
    spool = DigestSpool()
    with pytest.raises(ValueError, match=where):
        spool.add_rows(np.array([(c, b"ab") for c in chunks], dtype=DIGEST_ROW))


def test_pairs_out_of_order_or_too_long_are_refused():
    spool = DigestSpool([(4, "a")])
    with pytest.raises(ValueError, match="chunk 4 .*pair 1.* after chunk 4"):
        spool.add(4, "b")
    with pytest.raises(ValueError, match="65 characters"):
        spool.add(5, "x" * 65)
    assert list(spool) == [(4, "a")]


def test_a_million_digests_hold_a_few_megabytes():
    digest = "ab" * 32
    tracemalloc.start()
    try:
        spool = DigestSpool()
        for c in range(1_000_000):
            spool.add(c, digest)
        seen = sum(1 for _ in spool)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert seen == 1_000_000
    # as tuples in a list they were ~200 MB; the spool keeps one page (16 Ki rows) in memory at a time
    assert peak < 12 << 20, peak
