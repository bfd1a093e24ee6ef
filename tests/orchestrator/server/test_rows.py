"""Pieces and extents as rows (wire.py): a commit of 200,000 pieces keeps the catalogue content the JSON commit
gave, a malformed row deep in the stream is refused naming its index with nothing committed, and the server's
memory does not grow with the piece count (tracemalloc peak, not wall time)."""
from __future__ import annotations

import socket
import tracemalloc

import numpy as np
import pytest

from orchestrator.catalogue import Catalogue
from orchestrator.ops import BeginObject, CommitObject, StoredPiece
from orchestrator.piece_blocks import PieceBlock
from orchestrator.piece_stream import PieceStream
from orchestrator.server import messages, piece_rows, wire
from orchestrator.server.client import ServerRefused
from orchestrator.server.node_client import NodeSession
from tests.fixtures.backup_server import NODE_PW, actlog, hostport, with_pool

MIB = 1 << 20
RUN = 16  # image bytes a piece


def node(srv) -> NodeSession:
    return NodeSession(*hostport(srv), "NODEA", NODE_PW["NODEA"], timeout=300)


def pieces_of(n: int) -> list[StoredPiece]:
    """n pieces of RUN bytes, 3*RUN apart on the volume; every 7th stored compressed in RUN // 2 bytes."""
    return [StoredPiece(i * RUN, i * 3 * RUN, RUN, i % 7 == 0, RUN // 2 if i % 7 == 0 else 0) for i in range(n)]


def stream_of(n: int) -> PieceStream:
    """The same pieces as `pieces_of`, as columns (no object a piece)."""
    def blocks():
        for o in range(0, n, 65536):
            i = np.arange(o, min(n, o + 65536), dtype=np.int64)
            packed = i % 7 == 0
            yield PieceBlock.of(o * RUN, i * 3 * RUN, np.full(i.size, RUN), np.where(packed, RUN // 2, 0), packed)
    return PieceStream(blocks, n)


def committed(srv, n: int, pieces) -> int:
    with node(srv) as s:
        g = s.begin("E:", n * RUN, n * 3 * RUN)
        s.put(g["object_id"], 0, n * RUN, bytes(n * RUN))
        s.commit(g["object_id"], pieces)
        return g["object_id"]


def blobs(cat: Catalogue, object_id: int) -> list[tuple]:
    return [tuple(r) for r in cat.db.execute("SELECT block, image_offset, count, data FROM extent_blocks "
                                             "WHERE object_id=? ORDER BY block", (object_id,))]


def test_a_commit_of_200000_pieces_as_rows_stores_what_the_json_commit_stored(server, tmp_path):
    n = 200_000
    with_pool(server, tmp_path, "64m")
    pieces = pieces_of(n)
    oid = committed(server, n, pieces)
    with Catalogue(":memory:") as before:  # what the catalogue stored for the same pieces before rows existed
        before.add_pool_volume("P", "V", "/dev/null", 64 * MIB)
        started = before.begin_object(BeginObject("NODEA", "E:", "selective", "static", n * RUN, n * 3 * RUN,
                                                  "raw", None, "STANDARD", "P"))
        before.commit_object(CommitObject(started.object_id, tuple(reversed(pieces)), "lan", True))
        expected = [b[1:] for b in blobs(before, started.object_id)]
    with server.pools.catalogue() as cat:
        assert [b[1:] for b in blobs(cat, oid)] == expected
        assert cat.get(oid, with_pieces=False).stored_size == sum(p.stored for p in pieces)
    with node(server) as s:  # and back, as rows again: the same pieces
        objects, _ = s.chain("E:")
        assert len(objects) == 1 and list(objects[0]["pieces"]) == pieces
        [shown] = s.query()
        assert shown["pieces"] == pieces and shown["id"] == oid
    assert f"committed ({n} extents, lan)" in actlog(server)


def raw_rows(n: int, bad: int, field: str, value: int) -> np.ndarray:
    rows = np.concatenate(list(piece_rows.piece_pages(stream_of(n))[1]))
    rows[field][bad] = value
    return rows


@pytest.mark.parametrize("field, value, why", [
    ("length", 0, "pieces.123457.length: Input should be greater than 0"),
    ("volume_offset", -4096, "pieces.123457.volume_offset: Input should be greater than or equal to 0"),
    ("stored", 1 << 51, "pieces.123457.stored: Input should be less than or equal to 1125899906842624"),
    ("compressed", 2, "pieces.123457.compressed: Input should be a valid boolean"),
])
def test_a_malformed_piece_deep_in_the_rows_is_refused_by_index_and_nothing_is_committed(server, tmp_path, field,
                                                                                         value, why):
    n = 150_000
    with_pool(server, tmp_path, "64m")
    s = node(server)
    g = s.begin("E:", n * RUN, n * 3 * RUN)
    s.put(g["object_id"], 0, n * RUN, bytes(n * RUN))
    rows = raw_rows(n, 123_457, field, value)
    with pytest.raises(ServerRefused, match="malformed request"):  # the rest skipped: the answer is the refusal
        s.call({"type": "commit", "object_id": g["object_id"]}, bulk={"pieces": (messages.PIECE_ROW, n, [rows])})
    s.sock.close()
    assert f"refused - malformed request: {why}." in actlog(server)
    with server.pools.catalogue() as cat:
        assert cat.states() == {g["object_id"]: "abandoned"}
        assert cat.db.execute("SELECT count(*) FROM extent_blocks").fetchone()[0] == 0


def test_pieces_out_of_order_are_sorted_and_a_gap_is_named_as_before(server, tmp_path):
    n = 70_000
    with_pool(server, tmp_path, "64m")
    pieces = pieces_of(n)
    oid = committed(server, n, pieces[65_000:] + pieces[:65_000])  # two pages, the second first
    with server.pools.catalogue() as cat:
        assert list(PieceStream(lambda: cat.iter_blocks(oid))) == pieces
    s = node(server)
    g = s.begin("F:", n * RUN, n * 3 * RUN)
    s.put(g["object_id"], 0, n * RUN, bytes(n * RUN))
    with pytest.raises(ServerRefused, match=f"object {g['object_id']}: extent at image offset {66_001 * RUN} leaves "
                                            f"a gap or overlap at {66_000 * RUN}"):
        s.commit(g["object_id"], pieces[:66_000] + pieces[66_001:])
    s.sock.close()


def test_a_malformed_extent_deep_in_an_extent_map_is_refused_by_index(server):
    extents = np.stack([np.arange(300_000, dtype=np.int64) * 8192, np.full(300_000, 4096)], axis=1)
    extents[250_001, 1] = -1
    s = node(server)
    with pytest.raises(ServerRefused, match="extents.250001.1"):
        s.serverfree_backup(extents, filespace="E:", volume_size=1 << 40, file_system="raw",
                            source_designator="60014050abcdef01")
    s.sock.close()
    assert "refused - malformed request: extents.250001.1: Input should be greater than 0." in actlog(server)


@pytest.mark.parametrize("frames, why", [
    ([({"type": "rows", "field": "extents"}, b"\0" * 33)], "frame: 'rows' 'extents' where rows of pieces were expected"),
    ([({"type": "rows", "field": "pieces"}, b"\0" * 32)], "a frame of 32 bytes is not whole 33-byte records"),
    ([({"type": "rows", "field": "pieces"}, b"\0" * 66)], "more than the 1 declared"),
    ([({"type": "bye"}, b"")], "'bye' '' where rows of pieces were expected"),
])
def test_malformed_rows_frames_are_refused(server, tmp_path, frames, why):
    with_pool(server, tmp_path, "64m")
    s = node(server)
    g = s.begin("E:", 4096, 4096)
    s.put(g["object_id"], 0, 4096, b"x" * 4096)
    s.sock.sendall(wire.encode({"type": "commit", "object_id": g["object_id"], "bulk": {"pieces": 1}}))
    for message, data in frames:
        s.sock.sendall(wire.Frame(message, data).encode())
    answer = wire.read_frame(s.sock)
    s.sock.close()
    assert answer.message["type"] == "error"
    assert why in actlog(server)


@pytest.mark.parametrize("message, why", [
    ({"type": "commit", "object_id": 1, "bulk": {"extents": 3}}, "bulk.extents: a 'commit' message carries no rows"),
    ({"type": "commit", "object_id": 1, "bulk": {"pieces": -1}}, "bulk.pieces: Input should be a row count of 0 to"),
    ({"type": "get", "object_id": 1, "image_offset": 0, "length": 1, "bulk": {"pieces": 1}},
     "bulk.pieces: a 'get' message carries no rows"),
])
def test_a_bulk_declaration_that_breaks_a_rule_is_refused(server, message, why):
    s = node(server)
    s.sock.sendall(wire.encode(message))
    assert wire.read_frame(s.sock).message["type"] == "error"
    s.sock.close()
    assert why in actlog(server)


def _commit_and_chain_peak(server, n: int) -> int:
    """tracemalloc peak (server threads and client, one process) of a commit of n pieces and its chain read back."""
    with node(server) as s:
        g = s.begin(f"V{n}", n * RUN, n * 3 * RUN)
        s.put(g["object_id"], 0, n * RUN, bytes(n * RUN))
        tracemalloc.start()
        try:
            s.commit(g["object_id"], stream_of(n))
            objects, _ = s.chain(f"V{n}")
            assert len(objects[0]["pieces"]) == n
            del objects
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    return peak


def test_commit_and_chain_memory_does_not_grow_as_objects_would(server, tmp_path):
    """4x the pieces (100k -> 400k) cost the compact columns (~60 bytes a piece between both ends), not the
    1.3 KB a piece of a JSON commit parsed into models."""
    with_pool(server, tmp_path, "64m")
    small, large = _commit_and_chain_peak(server, 100_000), _commit_and_chain_peak(server, 400_000)
    assert large - small < 300_000 * 64, (small, large)
    assert large < 40 * MIB, large


def test_rows_frames_cut_pages_and_refuse_a_wrong_count():
    rows = np.concatenate(list(piece_rows.piece_pages(stream_of(200_000))[1]))
    frames = list(wire.rows_frames("pieces", messages.PIECE_ROW, 200_000, [rows]))
    assert len(frames) == -(-rows.nbytes // (wire.ROW_PAGE // 33 * 33))
    a, b = socket.socketpair()
    try:
        import threading

        t = threading.Thread(target=a.sendall, args=(b"".join(frames),))
        t.start()
        reader = wire.RowReader(b, {"pieces": (200_000, messages.PIECE_ROW)})
        back = np.concatenate(list(reader.pages("pieces")))
        t.join()
    finally:
        a.close()
        b.close()
    assert reader.done and (back == rows).all()
    with pytest.raises(wire.FrameError, match="199999 sent, 200000 declared"):
        list(wire.rows_frames("pieces", messages.PIECE_ROW, 200_000, [rows[1:]]))


def test_a_lan_restore_reads_its_pieces_many_to_a_get_ranges(server, tmp_path, monkeypatch):
    """5,000 pieces of a committed object come back in two GET_RANGES (4096 pieces at most each), in order,
    through the driver's batched reads, not 5,000 GETs."""
    from orchestrator.server import node_driver

    n = 5000
    with_pool(server, tmp_path, "64m")
    image = np.random.default_rng(5).integers(0, 256, n * RUN, dtype=np.uint8).tobytes()
    pieces = [StoredPiece(i * RUN, i * 3 * RUN, RUN) for i in range(n)]
    with node(server) as s:
        g = s.begin("E:", len(image), n * 3 * RUN)
        s.put(g["object_id"], 0, len(image), image)
        s.commit(g["object_id"], pieces)
        calls = {"get_ranges": 0, "get": 0}
        for name in calls:
            real = getattr(s, name)
            monkeypatch.setattr(s, name, lambda *a, real=real, name=name: calls.__setitem__(name, calls[name] + 1)
                                or real(*a))
        objects, _ = s.chain("E:")
        read = node_driver.BatchedReads(s, g["object_id"], objects[0]["pieces"])
        back = b"".join(read(p) for p in objects[0]["pieces"])
    assert back == image and calls == {"get_ranges": 2, "get": 0}
    with node(server) as s, pytest.raises(ServerRefused, match="lies outside object"):
        s.get_ranges(g["object_id"], [(0, RUN), (len(image) - 8, RUN)])


def test_query_backup_json_through_the_server_writes_the_extents_from_the_rows(server, tmp_path, capsys, monkeypatch):
    """`query backup --json` of a node whose catalogue is the server's: the same text as the record's as_dict gives
    (the extents written block by block from the answer's rows)."""
    import json

    from orchestrator.cli import main

    n = 70_000
    with_pool(server, tmp_path, "64m")
    oid = committed(server, n, pieces_of(n))
    monkeypatch.setenv("SERVERFREE_PASSWORD", NODE_PW["NODEA"])
    host, port = hostport(server)
    assert main(["query", "backup", "E:", "--json", f"-tcpserveraddress={host}", f"-tcpport={port}",
                 "-nodename=NODEA"]) == 0
    [shown] = json.loads(capsys.readouterr().out)
    with server.pools.catalogue() as cat:
        rec = cat.get(oid)
    assert shown["id"] == oid and shown["extents"] == rec.as_dict()["extents"] and len(shown["extents"]) == n
    assert shown["image_size"] == rec.image_size and shown["pool_volume"] == f"object:{oid}"


def test_a_commit_refused_before_its_rows_are_read_answers_the_refusal(server, tmp_path):
    """The server skips the rows it will not use, so the client (still sending them) reads why, not a reset."""
    with_pool(server, tmp_path, "64m")
    s = node(server)
    with pytest.raises(ServerRefused, match="object 99 was not granted to this session"):
        s.commit(99, stream_of(300_000))
    s.sock.close()
    assert "object 99 was not granted to this session; nothing written" in actlog(server)
