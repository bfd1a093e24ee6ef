"""Chunk digests as rows (DIGEST_ROW) both ways: the DIGEST answer and a commit's digests.

The server digests the pool chunk by chunk into a spool and answers page by
page; a commit's digests go straight from its rows into the catalogue, and a
LAN-free commit compares the pool's digests with the client's as two streams.
Memory is measured with tracemalloc (server threads and client are one
process), not wall time.  The old code (a hasher a chunk until the end, then
tuples and JSON pairs both ways) peaked, at 300,000 chunks, at 175.8 MiB for
the DIGEST answer and 205.7 MiB for the commit (these now stream at 12-16 MiB,
most of it the pieces' rows and columns: bound 24 MiB), and at 100,000 chunks
at 103.1 MiB for the LAN-free commit (now 8.9 MiB: bound 16 MiB).
"""
from __future__ import annotations

import hashlib
import os
import socket
import tracemalloc
import zlib

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from orchestrator.digest_spool import DIGEST_ROW
from orchestrator.job.digest import ChunkDigester
from orchestrator.ops import StoredPiece
from orchestrator.piece_blocks import PieceBlock
from orchestrator.piece_stream import LazySeq, PieceStream
from orchestrator.server import messages, node_digests, piece_rows, wire
from orchestrator.server.client import ServerRefused
from orchestrator.server.node_client import NodeSession
from tests.fixtures.backup_server import NODE_PW, actlog, hostport, with_pool

MIB = 1 << 20
CHUNK = 4096   # the smallest chunk a DIGEST request may name: one chunk a piece
RUN = 16       # image bytes a piece
N = 300_000    # pieces, so chunks


def node(srv) -> NodeSession:
    return NodeSession(*hostport(srv), "NODEA", NODE_PW["NODEA"], timeout=300)


def spread(n: int) -> PieceStream:
    """n pieces of RUN image bytes, one at the start of each volume chunk (columns: no object a piece)."""
    def blocks():
        for o in range(0, n, 65536):
            i = np.arange(o, min(n, o + 65536), dtype=np.int64)
            yield PieceBlock.of(o * RUN, i * CHUNK, np.full(i.size, RUN))
    return PieceStream(blocks, n)


def image_of(n: int) -> bytes:
    return np.random.default_rng(17).integers(0, 256, n * RUN, dtype=np.uint8).tobytes()


def expected(image: bytes, chunks: list[int]) -> list[tuple[int, str]]:
    """The digests of some chunks, computed here from the image (one piece a chunk)."""
    out = []
    for c in chunks:
        d = ChunkDigester(CHUNK)
        d.update(c * CHUNK, image[c * RUN:(c + 1) * RUN])
        out.extend(d.digests())
    return out


def fake_digests(n: int) -> LazySeq:
    """n (chunk, hex) pairs produced on each pass (the client's side holds none of them)."""
    return LazySeq(lambda: ((c, hashlib.sha256(c.to_bytes(8, "little")).hexdigest()) for c in range(n)), n)


def _peak(call):
    tracemalloc.start()
    try:
        out = call()
        return out, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_the_digest_answer_of_300k_chunks_comes_as_rows_in_bounded_memory(server, tmp_path):
    with_pool(server, tmp_path, "64m")
    image = image_of(N)
    with node(server) as s:
        g = s.begin("D:", len(image), N * CHUNK)
        s.put(g["object_id"], 0, len(image), image)
        digests, peak = _peak(lambda: s.digest(g["object_id"], CHUNK, spread(N)))
        assert len(digests) == N
        assert [digests[0], digests[N // 2], digests[N - 1]] == expected(image, [0, N // 2, N - 1])
    print(f"DIGEST answer of {N} chunks: tracemalloc peak {peak / MIB:.1f} MiB")
    assert peak < 24 * MIB, peak  # the old code: see the module docstring


def test_a_commit_of_300k_digests_goes_as_rows_into_the_catalogue_in_bounded_memory(server, tmp_path):
    with_pool(server, tmp_path, "64m")
    image = image_of(N)
    digests = fake_digests(N)
    with node(server) as s:
        g = s.begin("C:", len(image), N * CHUNK)
        s.put(g["object_id"], 0, len(image), image)
        _, peak = _peak(lambda: s.commit(g["object_id"], spread(N), digests=digests, chunk_size=CHUNK))
    with server.pools.catalogue() as cat:
        view = cat.digests([cat.get(g["object_id"], with_pieces=False)])
    assert len(view) == N and [(c, view[c]) for c in (0, N - 1)] == [digests[0], digests[N - 1]]
    print(f"commit of {N} digests: tracemalloc peak {peak / MIB:.1f} MiB")
    assert peak < 24 * MIB, peak  # the old code: see the module docstring


def test_a_lan_free_commit_of_100k_chunks_compares_the_pool_with_the_clients_digests_in_bounded_memory(
        server, tmp_path):
    """The storage agent wrote the image over the SAN: the server digests every piece it never saw on the pool
    and compares them with the commit's digest rows, chunk by chunk."""
    [pool] = with_pool(server, tmp_path, "64m")
    n = N // 3  # the server hashes every chunk under tracemalloc: a third of the chunks keeps the test short
    image = image_of(n)
    with node(server) as s:
        g = s.begin("F:", len(image), n * CHUNK, lan_free=True)
        fd = os.open(pool, os.O_RDWR)
        try:
            os.pwrite(fd, image, g["lan_free"]["pool_offset"])
            theirs = node_digests.pool_digests(fd, g["lan_free"]["pool_offset"], spread(n), CHUNK)  # the client's
        finally:
            os.close(fd)
        assert theirs[n - 1] == expected(image, [n - 1])[0]
        _, peak = _peak(lambda: s.commit(g["object_id"], spread(n), "lan-free", digests=theirs, chunk_size=CHUNK))
    with server.pools.catalogue() as cat:
        assert cat.get(g["object_id"], with_pieces=False).state == "active"
    print(f"LAN-free commit of {n} chunks: tracemalloc peak {peak / MIB:.1f} MiB")
    assert peak < 16 * MIB, peak  # the old code: see the module docstring


# -- malformed rows: one line naming the field and the row ------------------------------------------
def digest_rows(chunks: list[int], digests: list[bytes] | None = None) -> np.ndarray:
    return np.array([(c, d) for c, d in zip(chunks, digests or [b"ab" * 32] * len(chunks))], dtype=DIGEST_ROW)


@pytest.mark.parametrize("rows, why", [
    (digest_rows([0, 5, 3]), "digests.2.0: chunks go in ascending order, each once"),
    (digest_rows([0, 1, 1]), "digests.2.0: chunks go in ascending order, each once"),
    (digest_rows([-1, 0]), "digests.0.0: Input should be greater than or equal to 0"),
    (digest_rows([0, 1], [b"ab", b""]), "digests.1.1: a digest is 1-64 printable ASCII characters"),
    (digest_rows([0, 1], [b"ab", b"a\tb"]), "digests.1.1: a digest is 1-64 printable ASCII characters"),
])
def test_malformed_digest_rows_of_a_commit_are_refused_by_row_and_nothing_is_committed(server, tmp_path, rows, why):
    with_pool(server, tmp_path, "64m")
    s = node(server)
    g = s.begin("E:", 4096, 4096)
    s.put(g["object_id"], 0, 4096, b"x" * 4096)
    with pytest.raises(ServerRefused, match="malformed request: " + why):
        s.call({"type": "commit", "object_id": g["object_id"], "chunk_size": CHUNK},
               bulk={"pieces": (messages.PIECE_ROW, 1, piece_rows.piece_pages([StoredPiece(0, 0, 4096)])[1]),
                     "digests": (DIGEST_ROW, rows.size, [rows])})
    s.sock.close()
    assert f"refused - malformed request: {why}" in actlog(server)
    with server.pools.catalogue() as cat:
        assert cat.states() == {g["object_id"]: "abandoned"}
        assert cat.digests([cat.get(g["object_id"], with_pieces=False)]) == {}


@pytest.mark.parametrize("declared, sent, why", [
    (3, 4, "protocol error: rows of digests: more than the 3 declared"),
    (3, 2, "protocol error: server frame: 'bye' '' where rows of digests were expected (2 of 3 read)"),
])
def test_a_commit_whose_digest_rows_are_not_the_count_declared_is_refused(server, tmp_path, declared, sent, why):
    with_pool(server, tmp_path, "64m")
    s = node(server)
    g = s.begin("E:", 4096, 4096)
    s.put(g["object_id"], 0, 4096, b"x" * 4096)
    s.sock.sendall(wire.encode({"type": "commit", "object_id": g["object_id"], "bulk": {"pieces": 1, "digests": declared}}))
    s.sock.sendall(wire.Frame({"type": "rows", "field": "pieces"},
                              np.array([(0, 0, 4096, 0, 4096)], dtype=messages.PIECE_ROW).tobytes()).encode())
    s.sock.sendall(wire.Frame({"type": "rows", "field": "digests"}, digest_rows(list(range(sent))).tobytes()).encode())
    if sent < declared:
        s.sock.sendall(wire.Frame({"type": "bye"}).encode())
    answer = wire.read_frame(s.sock)
    s.sock.close()
    assert answer.message["type"] == "error"
    assert why in actlog(server)
    with server.pools.catalogue() as cat:
        assert cat.digests([cat.get(g["object_id"], with_pieces=False)]) == {}


def test_digests_a_commit_carries_as_json_are_still_stored_in_chunk_order(server, tmp_path):
    with_pool(server, tmp_path, "64m")
    with node(server) as s:
        g = s.begin("E:", 4096, 4096)
        s.put(g["object_id"], 0, 4096, b"x" * 4096)
        s.call({"type": "commit", "object_id": g["object_id"], "chunk_size": CHUNK,
                "digests": [[1, "b" * 64], [0, "a" * 64]]},
               bulk={"pieces": (messages.PIECE_ROW, 1, piece_rows.piece_pages([StoredPiece(0, 0, 4096)])[1])})
    with server.pools.catalogue() as cat:
        assert cat.digests([cat.get(g["object_id"], with_pieces=False)]) == {0: "a" * 64, 1: "b" * 64}


def answering(frames: list[bytes]) -> NodeSession:
    """A node session whose server is this test: ``frames`` are the answer to its next request."""
    a, b = socket.socketpair()
    s = NodeSession.__new__(NodeSession)
    s.sock = a
    b.sendall(b"".join(frames))
    s._peer = b  # kept open (closed with the test)
    return s


def answer(declared: int, *pages: np.ndarray) -> list[bytes]:
    return [wire.encode({"type": "digests", "bulk": {"digests": declared}}),
            *(wire.Frame({"type": "rows", "field": "digests"}, p.tobytes()).encode() for p in pages)]


@pytest.mark.parametrize("frames, why", [
    (answer(3, digest_rows([0, 5, 3])), "the server's DIGEST answer is malformed: digests.2.0: chunks go in "
                                        "ascending order"),
    (answer(4, digest_rows([0, 1]), digest_rows([1, 2])), "the server's DIGEST answer is malformed: digests.2.0: "
                                                          "chunks go in ascending order"),
    (answer(1, digest_rows([-4])), "the server's DIGEST answer is malformed: digests.0.0: Input should be greater "
                                   "than or equal to 0"),
    (answer(2, digest_rows([0, 1, 2])), "the server's DIGEST answer is malformed: rows of digests: more than the 2 "
                                        "declared"),
    (answer(3, digest_rows([0, 1])), "the server closed the session within the DIGEST answer's rows"),
    ([wire.encode({"type": "digests"})], "the server's DIGEST answer is malformed: it carries no digest rows"),
])
def test_a_malformed_digest_answer_is_one_line_naming_the_row(frames, why):
    s = answering(frames)
    if "closed" in why:
        s._peer.shutdown(socket.SHUT_WR)
    try:
        with pytest.raises(ConnectionError) as err:
            s.digest(7, CHUNK)
    finally:
        s.sock.close()
        s._peer.close()
    assert str(err.value).startswith(why) and "\n" not in str(err.value)


def test_a_digest_answer_of_many_pages_reads_back_as_sent():
    chunks = list(range(0, 3 * 70_000, 3))  # 5 MB of rows
    rows = digest_rows(chunks, [f"{c:064x}".encode() for c in chunks])
    a, b = socket.socketpair()
    s = NodeSession.__new__(NodeSession)
    s.sock = a
    import threading

    frames = [wire.encode({"type": "digests", "bulk": {"digests": rows.size}}),
              *wire.rows_frames("digests", DIGEST_ROW, rows.size, [rows[:5], rows[5:]])]  # 3 frames, 2 of 4 MiB
    t = threading.Thread(target=lambda: (wire.read_frame(b), b.sendall(b"".join(frames))), daemon=True)
    t.start()
    try:
        got = s.digest(7, CHUNK)
    finally:
        a.close()
        b.close()
        t.join()
    assert len(got) == rows.size and list(got)[:2] == [(0, "0" * 64), (3, f"{3:064x}")] and got[-1][0] == chunks[-1]


# -- the pool's digests, chunk by chunk, are ChunkDigester's ----------------------------------------
@st.composite
def laid_out(draw):
    """Pieces in ascending volume order (lengths across chunk edges, some stored compressed) and the pool bytes
    they lie in, one after the other in the image from a base offset, or with gaps (a subset of an image)."""
    chunk = draw(st.sampled_from([16, 64, 4096]))
    pieces, pool, vol, img = [], bytearray(b"\0" * 7), draw(st.integers(0, 100)), 0
    base = len(pool)
    for _ in range(draw(st.integers(1, 40))):
        vol += draw(st.integers(0, 70))
        n = draw(st.integers(1, 300))
        data = bytes(draw(st.binary(min_size=1, max_size=1)) * n)
        gap = draw(st.sampled_from([0, 0, 0, 5]))
        pool += b"\1" * gap
        img += gap
        packed = draw(st.booleans())
        stored = zlib.compress(data) if packed else data
        pool += stored
        pieces.append(StoredPiece(img, vol, n, packed, len(stored) if packed else 0))
        img, vol = img + len(stored), vol + n
    return chunk, base, pieces, bytes(pool)


@settings(max_examples=150, deadline=None)
@given(laid_out())
def test_the_pool_digests_stream_as_chunk_digester_computes_them(tmp_path_factory, case):
    chunk, base, pieces, pool = case
    path = tmp_path_factory.mktemp("pool") / "pool.img"
    path.write_bytes(pool)
    want = ChunkDigester(chunk)
    for p in pieces:
        raw = pool[base + p.image_offset:base + p.image_offset + p.stored]
        want.update(p.volume_offset, zlib.decompress(raw) if p.compressed else raw)
    fd = os.open(path, os.O_RDONLY)
    try:
        got = node_digests.pool_digests(fd, base, pieces, chunk)
        assert list(got) == list(want.digests())
        step, node_digests.READ_STEP = node_digests.READ_STEP, 37  # long pieces read in parts
        try:
            again = node_digests.pool_digest_stream(fd, base, PieceStream.of(pieces), chunk)
            assert list(again) == list(want.digests())
        finally:
            node_digests.READ_STEP = step
    finally:
        os.close(fd)


def test_pieces_out_of_volume_order_are_named(tmp_path):
    path = tmp_path / "pool.img"
    path.write_bytes(bytes(100))
    fd = os.open(path, os.O_RDONLY)
    try:
        with pytest.raises(ValueError, match="piece at image offset 10 lies at volume offset 5, before the end of "
                                             "the one before it \\(10\\)"):
            node_digests.pool_digests(fd, 0, [StoredPiece(0, 0, 10), StoredPiece(10, 5, 10)], 16)
    finally:
        os.close(fd)


@pytest.mark.parametrize("ours, theirs, same", [
    ([(1, "a"), (5, "b")], [(0, "z"), (1, "a"), (3, "y"), (5, "b"), (9, "x")], True),  # theirs may hold more
    ([(1, "a"), (5, "b")], [(1, "a"), (5, "c")], False),
    ([(1, "a"), (5, "b")], [(1, "a")], False),
    ([(1, "a"), (4, "b")], [(1, "a"), (5, "b")], False),
    ([(1, "a"), (4, "b"), (6, "c"), (9, "d")], [(1, "a"), (2, "x"), (4, "b"), (6, "c"), (8, "y"), (9, "d")], True),
    ([(1, "a"), (4, "b"), (6, "c"), (9, "d")], [(1, "a"), (2, "x"), (4, "b"), (6, "c"), (8, "y"), (9, "e")], False),
    ([(7, "a")], [(1, "a"), (2, "x")], False),
    ([], [(1, "a")], False),  # nothing of ours digested proves nothing
])
def test_a_lan_free_check_walks_both_sides_in_step(ours, theirs, same):
    def pages(pairs, size):
        rows = np.array([(c, d.encode()) for c, d in pairs], dtype=DIGEST_ROW)
        return [rows[o:o + size] for o in range(0, max(rows.size, 1), size)]
    for a in (1, 2, 5):
        for b in (1, 3, 5):
            assert node_digests.same_digests(pages(ours, a), pages(theirs, b)) is same, (a, b)


def test_an_incremental_scan_is_a_spool_checked_by_row(monkeypatch):
    from orchestrator import digest_spool

    monkeypatch.setattr(digest_spool, "SPOOL_ROWS", 100)  # most of it on the spool's file
    rows = digest_rows(list(range(0, 3000, 3)), [f"{c:064x}".encode() for c in range(0, 3000, 3)])
    scan = piece_rows.Scan.of_rows([rows[:7], rows[7:]])
    assert scan.spool._on_file and list(scan.pairs())[:2] == [(0, "0" * 64), (3, f"{3:064x}")]
    assert scan.covers_exactly([np.arange(0, 1500, 3), np.arange(1500, 3000, 3)])
    assert not scan.covers_exactly([np.arange(0, 2997, 3)]) and not scan.covers_exactly([np.arange(0, 3003, 3)])
    assert not scan.covers_exactly([np.arange(1, 3000, 3)])
    bad = rows.copy()
    bad["chunk"][500] = bad["chunk"][499]
    with pytest.raises(piece_rows.MalformedRows, match="malformed request: scan_digests.500.0: chunks go in "
                                                       "ascending order"):
        piece_rows.Scan.of_rows([bad[:300], bad[300:]])
    assert list(piece_rows.Scan.of_pairs([(5, "b"), (2, "a"), (5, "c")]).pairs()) == [(2, "a"), (5, "c")]


if __name__ == "__main__":  # pragma: no cover
    pytest.main([__file__, "-q", "-s"])
