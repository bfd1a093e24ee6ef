"""Messages longer than one frame (wire.py's paging): extent maps, commits, digests and restore chains of tens of
thousands of pieces, and continuation sequences the server refuses."""
from __future__ import annotations

import random
import socket

import pytest

from orchestrator.ops import StoredPiece
from orchestrator.server import node_client, wire
from orchestrator.server.client import ServerRefused
from orchestrator.server.node_client import NodeSession
from tests.fixtures.backup_server import NODE_PW, actlog, hostport, with_pool

PIECES = 25_000   # each piece 512 bytes of the image, 1 KiB apart on the volume: ~2.6 MB of JSON in a commit


def node(srv) -> NodeSession:
    return NodeSession(*hostport(srv), "NODEA", NODE_PW["NODEA"])


def fragmented(n: int = PIECES) -> tuple[bytes, list[StoredPiece]]:
    image = random.Random(7).randbytes(n * 512)
    return image, [StoredPiece(i * 512, i * 1024, 512) for i in range(n)]


def test_encode_pages_a_long_message_and_read_frame_joins_it():
    message = {"type": "commit", "object_id": 1, "pieces": [[i, i] for i in range(100_000)]}
    frames = wire.encode(message)
    assert len(frames) > wire.MAX_MESSAGE
    a, b = socket.socketpair()
    try:
        import threading

        t = threading.Thread(target=a.sendall, args=(frames,))
        t.start()
        assert wire.read_frame(b) == wire.Frame(message)
        t.join()
        t = threading.Thread(target=a.sendall, args=(frames[:wire.HEADER.size + 40 + wire.PAGE],))
        t.start()
        with pytest.raises(wire.FrameError, match="paged message exceeds 1000 bytes"):
            wire.read_frame(b, max_paged=1000)
        t.join()
    finally:
        a.close()
        b.close()


def test_a_lan_backup_and_restore_of_25000_pieces_through_the_server(server, tmp_path):
    with_pool(server, tmp_path, "64m")
    image, pieces = fragmented()
    with node(server) as n:
        g = n.begin("E:", len(image), PIECES * 1024)
        n.put(g["object_id"], 0, len(image), image)
        digests = n.digest(g["object_id"], 1 << 20, pieces)  # a digest request of 25,000 pieces, paged
        assert len(digests) == PIECES * 1024 // (1 << 20) + 1  # chunks of the volume the pieces cover
        n.commit(g["object_id"], pieces, digests=digests, chunk_size=1 << 20)
    with node(server) as n:
        objects, view = n.chain("E:")  # the chain's pieces and digest runs come back as rows
        assert len(objects) == 1 and len(objects[0]["pieces"]) == PIECES
        assert [(c, d) for c, d, count in view] == list(digests) and {count for *_, count in view} == {1}
        assert [(p.image_offset, p.volume_offset, p.length) for p in objects[0]["pieces"][:2]] == \
            [(0, 0, 512), (512, 1024, 512)]
        assert n.get(g["object_id"], 0, len(image)) == image
    assert f"committed ({PIECES} extents, lan)" in actlog(server)


def _raw_session(srv):
    """A logged-in node session whose socket the test writes frames on by hand."""
    n = node(srv)
    return n, n.sock


def test_an_oversized_continuation_sequence_is_refused_and_nothing_committed(server, tmp_path, monkeypatch):
    with_pool(server, tmp_path, "64m")
    image, pieces = fragmented(5000)
    monkeypatch.setattr(wire, "MAX_PAGED", 300 << 10)  # the server's limit for this test: ~300 KiB
    n = node(server)
    g = n.begin("E:", len(image), len(image) * 2)
    n.put(g["object_id"], 0, len(image), image)
    with pytest.raises((ServerRefused, ConnectionError)):  # NodeSession sends digests as rows; JSON ones still page
        n.call({"type": "commit", "object_id": g["object_id"], "chunk_size": 1 << 20,
                "digests": [[c, f"{c:064x}"] for c in range(5000)]}, bulk=node_client._piece_rows(pieces))
    n.sock.close()
    assert "refused - protocol error: paged message exceeds 307200 bytes" in actlog(server)
    with node(server) as again:
        assert again.query() == []


@pytest.mark.parametrize("frames, why", [
    ([({"type": "more", "final": False}, b'{"type":"bye"'), ({"type": "bye"}, b"")],
     "a 'bye' message inside a paged message"),
    ([({"type": "more", "final": "yes"}, b"{}")], "a continuation frame has only type 'more'"),
    ([({"type": "more", "final": True}, b'{"type":"more"}')], "paged message is not a JSON object with a type"),
    ([({"type": "more", "final": True}, b'{"type":"commit",')], "paged message is not UTF-8 JSON"),
])
def test_malformed_continuation_sequences_are_refused(server, tmp_path, frames, why):
    with_pool(server, tmp_path, "64m")
    n = node(server)
    g = n.begin("E:", 4096, 4096)
    n.put(g["object_id"], 0, 4096, b"x" * 4096)
    for message, data in frames:
        n.sock.sendall(wire.Frame(message, data).encode())
    answer = wire.read_frame(n.sock)
    n.sock.close()
    assert answer.message["type"] == "error"
    assert why in actlog(server)
    with node(server) as again:
        assert again.query() == []


def test_no_paging_before_login(server):
    s = socket.create_connection(hostport(server))
    try:
        s.sendall(wire.Frame({"type": "more", "final": False}, b"{" * 10).encode())
        answer = wire.read_frame(s)
        assert answer.message["type"] == "error"
    finally:
        s.close()
    assert "refused - protocol error" in actlog(server)


def test_a_serverfree_request_of_20000_extents_and_4000_scan_digests_is_one_paged_message():
    from orchestrator.server.messages import ServerFreeBackup, parse_request

    message = {"type": "serverfree_backup", "filespace": "E:", "volume_size": 1 << 40, "file_system": "raw",
               "extents": [[i * 4096, 512] for i in range(20_000)], "source_designator": "60014050abcdef01",
               "mode": "incremental", "base_object_id": 1,
               "scan_digests": [[c, f"{c:064x}"] for c in range(4000)]}
    frames = wire.encode(message)
    assert len(frames) > 2 * wire.MAX_MESSAGE  # once refused by the model (10,000 extents, 3,000 digests)
    a, b = socket.socketpair()
    try:
        import threading

        t = threading.Thread(target=a.sendall, args=(frames,))
        t.start()
        req = parse_request(wire.read_frame(b).message)
        t.join()
    finally:
        a.close()
        b.close()
    assert isinstance(req, ServerFreeBackup) and len(req.extents) == 20_000 and len(req.scan_digests) == 4000
