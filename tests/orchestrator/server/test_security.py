"""Every session authenticates; every refusal is answered, logged, and ends the session."""
from __future__ import annotations

import socket

import pytest

from orchestrator.server import auth, wire
from orchestrator.server.client import ServerRefused, ServerSession

from tests.fixtures.backup_server import ADMIN_PW, NODE_PW, actlog, admin, hostport, node


def raw_connect(srv) -> socket.socket:
    s = socket.create_connection(hostport(srv), timeout=10)
    return s


def answer(sock) -> dict:
    return wire.read_frame(sock).message


def closed(sock) -> bool:
    try:
        return sock.recv(1) == b""
    except OSError:
        return True


def test_admin_and_node_log_in_and_the_server_proves_itself(server):
    with admin(server) as a:
        ok, out = a.command("query node")
        assert ok and "NODEA" in out and "NODEB" in out
    with node(server) as n:
        assert n.session > 0
    assert "ANR0406I" in actlog(server) and "node NODEA" in actlog(server)


def test_no_credentials_is_refused(server):
    s = raw_connect(server)
    wire.send(s, {"type": "command", "text": "register admin evil evil-password"})
    reply = answer(s)
    assert reply == {"type": "error", "message": "authentication required"}
    assert closed(s)
    assert "ANR0440W" in actlog(server) and "no credentials" in actlog(server)
    assert [r["name"] for r in server.store.admins()] == ["ADMIN"]


def test_wrong_password_is_refused(server):
    with pytest.raises(ServerRefused, match="authentication failed"):
        ServerSession(*hostport(server), role="node", name="NODEA", password="not-the-password")
    with pytest.raises(ServerRefused, match="authentication failed"):
        ServerSession(*hostport(server), role="admin", name="NODEA", password=NODE_PW["NODEA"])  # not an admin
    log = actlog(server)
    assert "ANR0424W" in log and "node NODEA" in log and "invalid password submitted" in log
    assert "admin NODEA" in log and "unknown or locked name" in log


def test_unknown_names_get_a_stable_decoy_challenge(server):
    salts = []
    for _ in range(2):
        s = raw_connect(server)
        wire.send(s, {"type": "hello", "role": "node", "name": "GHOST", "client_nonce": auth.new_nonce()})
        salts.append(answer(s)["salt"])
        s.close()
    assert salts[0] == salts[1]
    assert len(auth.unb64(salts[0], "salt")) == 16


def test_a_replayed_exchange_is_refused(server):
    nonce = auth.new_nonce()
    hello = {"type": "hello", "role": "node", "name": "NODEA", "client_nonce": nonce}
    s = raw_connect(server)
    wire.send(s, hello)
    ch = answer(s)
    msg = auth.auth_message("node", "NODEA", nonce, ch["server_nonce"])
    proof, _ = auth.client_proof(NODE_PW["NODEA"], auth.unb64(ch["salt"], "salt"), ch["n"], ch["r"], ch["p"], msg)
    recorded = [wire.Frame(hello).encode(), wire.Frame({"type": "proof", "proof": auth.b64(proof)}).encode()]
    s.sendall(recorded[1])
    assert answer(s)["type"] == "welcome"
    s.close()
    # the eavesdropper sends the same bytes on a new connection
    r = raw_connect(server)
    r.sendall(recorded[0])
    ch2 = answer(r)
    assert ch2["server_nonce"] != ch["server_nonce"]
    r.sendall(recorded[1])
    assert answer(r) == {"type": "error", "message": "authentication failed"}
    assert closed(r)
    assert "invalid password submitted" in actlog(server)


def test_passwords_are_stored_as_salted_scrypt_verifiers(server):
    rows = server.store.db.execute("SELECT name, verifier FROM nodes").fetchall()
    for row in rows:
        assert NODE_PW[row["name"]] not in row["verifier"]
        assert row["verifier"].startswith("scrypt-scram$16384$8$1$")
    salts = {r["verifier"].split("$")[4] for r in rows}
    assert len(salts) == 2


@pytest.mark.parametrize("frame,why", [
    (wire.HEADER.encode(magic=b"SFS1", version=1, message_length=10 << 20, data_length=0), "message_length"),
    (wire.HEADER.encode(magic=b"SFS1", version=1, message_length=100, data_length=1 << 30), "data_length"),
    (wire.HEADER.encode(magic=b"HTTP", version=1, message_length=2, data_length=0) + b"{}", "magic"),
    (wire.HEADER.encode(magic=b"SFS1", version=1, message_length=5, data_length=0) + b"{nope", "not UTF-8 JSON"),
    (wire.Frame({"type": "hello", "role": "root", "name": "X", "client_nonce": "AAAA"}).encode(), "role"),
    (wire.Frame({"type": "hello", "role": "node", "name": "NODEA", "client_nonce": "AAAA",
                 "extra": 1}).encode(), "extra"),
    (wire.Frame({"type": "launch"}).encode(), "type"),
])
def test_malformed_and_oversized_frames_are_refused_before_login(server, frame, why):
    s = raw_connect(server)
    s.sendall(frame)
    assert answer(s)["type"] == "error"
    assert closed(s)
    assert why in actlog(server)


def test_oversized_frames_after_login_are_refused(server):
    with node(server) as n:
        n.sock.sendall(wire.HEADER.encode(magic=b"SFS1", version=1, message_length=wire.MAX_MESSAGE + 1,
                                          data_length=0))
        assert wire.read_frame(n.sock).message["type"] == "error"
    assert "exceeds" in actlog(server)


def test_before_login_only_small_frames_are_read(server):
    s = raw_connect(server)
    s.sendall(wire.Frame({"type": "hello", "role": "node", "name": "NODEA",
                          "client_nonce": "A" * 120}).encode() + b"")
    # a valid-looking hello with a large data part: refused at the header, before the data is read
    s2 = raw_connect(server)
    s2.sendall(wire.HEADER.encode(magic=b"SFS1", version=1, message_length=20, data_length=1 << 20))
    assert answer(s2)["type"] == "error"
    s.close()
    assert "data_length" in actlog(server)


def test_a_node_has_no_administrator_authority(server):
    with node(server) as n:
        with pytest.raises(ServerRefused, match="not authorized"):
            n.command("register admin evil evil-password")
    assert "ANR0425W" in actlog(server)
    assert [r["name"] for r in server.store.admins()] == ["ADMIN"]


def test_an_administrator_does_not_move_node_data(server):
    with admin(server) as a:
        with pytest.raises(ServerRefused):
            a.call({"type": "put", "object_id": 1, "image_offset": 0, "length": 4}, b"evil")
    assert "administrators send commands" in actlog(server)


def test_locked_node_cannot_log_in_and_cancel_session_ends_one(server):
    with admin(server) as a, node(server, "NODEB") as b:
        ok, out = a.command("lock node nodeb")
        assert ok, out
        with pytest.raises(ServerRefused):
            node(server, "NODEB")
        ok, out = a.command("query session")
        assert "NODEB" in out
        ok, out = a.command(f"cancel session {b.session}")
        assert ok, out
        with pytest.raises((ConnectionError, OSError)):
            b.call({"type": "query_backup"})
    assert "forced by administrator" in actlog(server)


def test_tls_with_a_pinned_fingerprint(tmp_path):
    from orchestrator.server.app import open_server

    srv = open_server(tmp_path / "tls", admin_password=ADMIN_PW, tls=True).start()
    try:
        assert len(srv.tls_fingerprint) == 64
        assert (tmp_path / "tls" / "server-cert.pem").exists()
        with ServerSession(*hostport(srv), role="admin", name="admin", password=ADMIN_PW,
                           tls_fingerprint=srv.tls_fingerprint) as a:
            assert a.command("query status")[1].count(srv.tls_fingerprint) == 1
        with pytest.raises(ConnectionError, match="not the pinned"):
            ServerSession(*hostport(srv), role="admin", name="admin", password=ADMIN_PW, tls_fingerprint="ab" * 32)
        # a plain-text client gets no session either, and is told what it misses
        with pytest.raises(ConnectionError, match="answers only TLS: give tlsfingerprint"):
            ServerSession(*hostport(srv), role="admin", name="admin", password=ADMIN_PW, timeout=5)
    finally:
        srv.close()
    # the certificate survives a restart: clients keep their pin
    again = open_server(tmp_path / "tls", tls=True)
    try:
        assert again.tls_fingerprint == srv.tls_fingerprint
    finally:
        again.close()


def test_first_start_needs_an_administrator_password(tmp_path):
    from orchestrator.server.app import open_server

    with pytest.raises(ValueError, match="SERVERFREE_ADMIN_PASSWORD"):
        open_server(tmp_path / "a")
    with pytest.raises(ValueError, match="at least 8"):
        open_server(tmp_path / "b", admin_password="short")
