"""The backup server's pool-side digests asked for in windows cut at chunk edges: same digests, bounded memory."""
from __future__ import annotations

import json
import tracemalloc

import numpy as np
from hypothesis import given, settings, strategies as st

import orchestrator.drivers.real_verify as real_verify
from orchestrator.job.digest import chunk_digests, digest_windows
from orchestrator.lan.client import LanClient
from orchestrator.lan.frames import OP_ACK, Frame
from orchestrator.ops import StoredPiece, VerifyPool
from orchestrator.piece_stream import PieceStream, split_by_ranges

MIB = 1 << 20


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 40), st.integers(1, 60)), min_size=1, max_size=40),
       st.sampled_from([7, 16, 100]), st.integers(1, 6))
def test_windows_give_the_digests_of_all_the_pieces(spans, chunk, window):
    pieces, image, vol = [], 0, 0
    for gap, n in spans:
        vol += gap
        pieces.append(StoredPiece(image, vol, n))
        image, vol = image + n, vol + n
    read = lambda p: bytes((p.volume_offset + i) % 251 for i in range(p.length))  # noqa: E731
    windows = list(digest_windows(pieces, chunk, window))
    assert [p for w in windows for p in w] == pieces
    assert all(len(w) <= window or len({(p.volume_offset + p.length - 1) // chunk for p in w[window - 1:]}) >= 1
               for w in windows)
    assert tuple(d for w in windows for d in chunk_digests(w, read, chunk)) == chunk_digests(pieces, read, chunk)


class _Counting(LanClient):
    """A LanClient whose requests are encoded as the real one's but answered here (no socket)."""

    sent: list[int] = []

    def __init__(self, *args, **kw):  # noqa: D107 - no session to open
        pass

    def _send(self, frame: Frame) -> None:
        self.sent.append(len(json.loads(frame.payload)["pieces"]))

    def _receive(self) -> Frame:
        return Frame(OP_ACK, length=0)  # no digest rows

    def close(self) -> None:
        pass


def _server_view_peak(n: int, monkeypatch) -> int:
    monkeypatch.setattr(real_verify, "LanClient", _Counting)
    _Counting.sent = []
    i = np.arange(n, dtype=np.int64)
    stream = PieceStream.from_extents(lambda: (np.stack([i * 40960, 8192 + 4096 * (i % 5)], axis=1),))
    by_bytes, by_mover = split_by_ranges(stream, [(0, stream.nbytes() // 3)])
    op = VerifyPool("disk0", "pool0", 0, by_bytes, MIB, 0, "", by_mover, "local:1")
    ops = real_verify.VerifyOps()
    ops._pool_volume_of = lambda device: "VOL1"  # type: ignore[method-assign]
    ops.lan_timeout = 1.0
    tracemalloc.start()
    try:
        assert ops._server_view(op) == ()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert sum(_Counting.sent) == len(by_bytes) + len(by_mover)
    return peak


def test_the_pool_side_digest_request_goes_in_windows(monkeypatch):
    """300,000 pieces: sorting them all into one request peaked at 178 MiB (tracemalloc); in windows 41 MiB,
    most of it the two streams' decoded blocks, whatever the piece count."""
    peak = _server_view_peak(300_000, monkeypatch)
    assert len(_Counting.sent) > 1
    assert peak < 64 * MIB, peak
