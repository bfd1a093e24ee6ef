"""Node objects behind the server: grants, ownership, commits of only what was written."""
from __future__ import annotations

import pytest

from orchestrator.ops import StoredPiece
from orchestrator.server.app import open_server
from orchestrator.server.client import ServerRefused
from orchestrator.server.node_client import NodeSession
from tests.fixtures.backup_server import ADMIN_PW, NODE_PW, actlog, admin, hostport, with_pool


def node(srv, name="NODEA") -> NodeSession:
    return NodeSession(*hostport(srv), name, NODE_PW[name])


@pytest.fixture
def pooled(server, tmp_path):
    paths = with_pool(server, tmp_path, "4m")
    return server, paths[0]


def backup(n: NodeSession, data: bytes, fs: str = "E:") -> int:
    g = n.begin(fs, len(data), len(data))
    n.put(g["object_id"], 0, len(data), data)
    n.commit(g["object_id"], [StoredPiece(0, 0, len(data))])
    return g["object_id"]


def test_backup_and_restore_of_own_objects(pooled):
    srv, _ = pooled
    with node(srv) as a:
        oid = backup(a, b"A" * 8192)
        assert [o["id"] for o in a.query()] == [oid]
        assert a.get(oid, 0, 8192) == b"A" * 8192
        assert "pool_device" not in a.query()[0]
    with admin(srv) as ad:
        ok, out = ad.command("query occupancy")
        assert ok and "NODEA" in out and "POOL1" in out


def test_node_b_can_neither_see_nor_restore_nor_delete_node_a_objects(pooled):
    srv, _ = pooled
    with node(srv) as a:
        oid = backup(a, b"secret-A" * 1024)
    with node(srv, "NODEB") as b:
        assert b.query() == []
        with pytest.raises(ServerRefused, match="not an object of node NODEB"):
            b.get(oid, 0, 8192)
    for call in (lambda b: b.delete(oid), lambda b: b.query(object_id=oid),
                 lambda b: b.digest(oid, 4096)):
        with node(srv, "NODEB") as b, pytest.raises(ServerRefused):
            call(b)
    with node(srv) as a:
        assert a.get(oid, 0, 8) == b"secret-A"
    assert actlog(srv).count("refused - object") >= 4


def test_node_b_cannot_write_into_node_a_grant(pooled):
    srv, pool = pooled
    before = pool.read_bytes()
    with node(srv) as a, node(srv, "NODEB") as b:
        g = a.begin("E:", 8192, 8192)
        with pytest.raises(ServerRefused, match="not granted to this session"):
            b.put(g["object_id"], 0, 8192, b"B" * 8192)
    assert pool.read_bytes() == before
    assert "was not granted to this session; nothing written" in actlog(srv)


def test_a_forged_write_at_an_arbitrary_pool_offset_is_refused(pooled):
    srv, pool = pooled
    with node(srv) as a:
        victim = backup(a, b"V" * 8192)
    before = pool.read_bytes()
    with node(srv) as a:
        g = a.begin("F:", 4096, 4096)
        # the client names image offsets inside its grant only; the pool offset is the server's
        with pytest.raises(ServerRefused, match="outside the 4096 bytes granted"):
            a.put(g["object_id"], 1 << 20, 4096, b"X" * 4096)
    with node(srv) as a:
        with pytest.raises(ServerRefused):
            a.put(victim, 0, 4096, b"X" * 4096)  # a committed object is granted to nobody
    assert pool.read_bytes() == before
    with node(srv) as a:
        assert a.get(victim, 0, 8192) == b"V" * 8192


def test_commit_of_bytes_never_written_is_refused_and_the_object_abandoned(pooled):
    srv, _ = pooled
    with node(srv) as a:
        g = a.begin("E:", 8192, 8192)
        a.put(g["object_id"], 0, 4096, b"x" * 4096)
        with pytest.raises(ServerRefused, match="never wrote"):
            a.commit(g["object_id"], [StoredPiece(0, 0, 8192)])
    with node(srv) as a:
        assert a.query() == []
    with srv.pools.catalogue() as cat:
        assert cat.states()[g["object_id"]] == "abandoned"
    assert "abandoned" in actlog(srv)


def test_the_server_allocates_disjoint_space(pooled):
    srv, _ = pooled
    with node(srv) as a, node(srv, "NODEB") as b:
        ga, gb = a.begin("E:", 100_000, 100_000), b.begin("E:", 100_000, 100_000)
        a.put(ga["object_id"], 0, 100_000, b"a" * 100_000)
        b.put(gb["object_id"], 0, 100_000, b"b" * 100_000)
        a.commit(ga["object_id"], [StoredPiece(0, 0, 100_000)])
        b.commit(gb["object_id"], [StoredPiece(0, 0, 100_000)])
        assert a.get(ga["object_id"], 0, 100_000) == b"a" * 100_000
        assert b.get(gb["object_id"], 0, 100_000) == b"b" * 100_000
    with srv.pools.catalogue() as cat:
        objs = sorted(cat.query(inactive=True), key=lambda o: o.pool_offset)
    assert objs[0].pool_offset + objs[0].image_size <= objs[1].pool_offset


def test_pool_full_and_unknown_policy_are_refused(pooled):
    srv, _ = pooled
    with node(srv) as a, pytest.raises(ServerRefused, match="no pool volume"):
        a.begin("E:", 64 << 20, 64 << 20)
    with node(srv) as a, pytest.raises(ServerRefused, match="management class GOLD"):
        a.begin("E:", 4096, 4096, management_class="GOLD")


def test_pending_objects_are_swept_when_the_server_starts_again(server, tmp_path):
    with_pool(server, tmp_path, "4m")
    with srv_catalogue(server) as cat:
        from orchestrator.ops import BeginObject
        started = cat.begin_object(BeginObject("NODEA", "E:", "selective", "static", 4096, 4096, "raw",
                                               pool="POOL1"))
    server.close()
    again = open_server(server.data, admin_password=ADMIN_PW)
    try:
        with again.pools.catalogue() as cat:
            assert cat.states()[started.object_id] == "abandoned"
        assert "ANR1341I" in actlog(again)
    finally:
        again.close()


def srv_catalogue(srv):
    return srv.pools.catalogue()
