"""Local mode's LAN path (the in-process pool): frames, pool writes at fixed places, errors, robustness.

The open LAN data process is retired: no module runs it, a LocalPool listens on no network port, and a
site file naming lan_server is refused with one line.
"""
from __future__ import annotations

import importlib.util
import os
import socket
import zlib

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from orchestrator.lan.client import LanClient
from orchestrator.lan.frames import FRAME, MAGIC, OP_PUT, Frame, LanRemoteError
from orchestrator.lan.local_pool import LocalPool


@pytest.fixture
def server(tmp_path):
    pool = tmp_path / "pool.img"
    pool.write_bytes(bytes(1 << 20))
    with LocalPool({"VOL1": pool}) as srv:
        yield srv, pool


def test_frame_header_is_byte_exact():
    f = Frame(OP_PUT, image_offset=0x1122, length=0x200, compressed=True, payload=b"ab")
    # magic | op 02 | flags 01 | reserved | offset | length | payload length | payload
    assert f.encode() == (b"SFL1" + bytes([2, 1, 0, 0]) + (0x1122).to_bytes(8, "big")
                          + (0x200).to_bytes(8, "big") + (2).to_bytes(4, "big") + b"ab")
    assert FRAME.size == 28


def test_put_get_sync_round_trip_at_fixed_places(server):
    srv, pool = server
    data = os.urandom(8192)
    packed = zlib.compress(bytes(4096))
    with LanClient(srv.address, "VOL1", 65536) as c:
        c.put(0, 8192, data)
        c.put(8192, 4096, packed, compressed=True)
        c.sync()
    raw = pool.read_bytes()
    assert raw[65536:65536 + 8192] == data
    assert raw[65536 + 8192:65536 + 8192 + len(packed)] == packed
    with LanClient(srv.address, "VOL1", 65536, mode="read") as c:
        assert c.get(0, 8192, 8192) == data
        assert zlib.decompress(c.get(8192, 4096, len(packed), compressed=True)) == bytes(4096)


def test_errors_name_what_is_wrong(server):
    srv, _ = server
    with pytest.raises(LanRemoteError, match="pool volume 'NOPE' is not in lan_pool.volumes"):
        LanClient(srv.address, "NOPE", 0)
    with LanClient(srv.address, "VOL1", (1 << 20) - 4096) as c:
        with pytest.raises(LanRemoteError, match="runs past the end of the pool volume"):
            c.put(0, 8192, bytes(8192))
    with LanClient(srv.address, "VOL1", 0) as c:
        with pytest.raises(LanRemoteError, match="does not fit a piece of 100"):
            c.put(0, 100, bytes(50))
    with pytest.raises(ConnectionRefusedError, match="is not open in this process"):
        LanClient("127.0.0.1:1500", "VOL1", 0)


def raw_exchange(srv: LocalPool, data: bytes) -> bytes:
    out = b""
    with srv.connect(5) as s:
        try:  # the server may answer ERROR and close before we finish sending
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        try:
            while chunk := s.recv(65536):
                out += chunk
        except ConnectionResetError:
            pass
    return out


def test_bad_magic_and_unknown_op_get_an_error_frame(server):
    srv, _ = server
    reply = raw_exchange(srv, b"XXXX" + bytes(24))
    assert reply[4] == 0x8F and b"LAN frame.magic at byte 0" in reply
    reply = raw_exchange(srv, MAGIC + bytes([0x33]) + bytes(23))
    assert b"LAN frame.op at byte 4: unknown operation 0x33" in reply
    reply = raw_exchange(srv, Frame(OP_PUT, 0, 4, payload=b"abcd").encode())
    assert b"PUT before OPEN" in reply


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=200), st.booleans())
def test_fuzzed_streams_never_kill_the_server(server, junk, with_magic):
    srv, _ = server
    raw_exchange(srv, (MAGIC + junk) if with_magic else junk)
    with LanClient(srv.address, "VOL1", 0) as c:  # still serving
        c.put(0, 512, bytes(512))


def _listening_inodes() -> set[str]:
    """Socket inodes in LISTEN state (TCP and TCP6) on this machine."""
    out = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = open(table).read().splitlines()[1:]
        except OSError:
            continue
        out |= {cols[9] for cols in (ln.split() for ln in lines) if cols[3] == "0A"}
    return out


def _our_socket_inodes() -> set[str]:
    fds = f"/proc/{os.getpid()}/fd"
    links = (os.readlink(os.path.join(fds, fd)) for fd in os.listdir(fds) if os.path.exists(os.path.join(fds, fd)))
    return {link[8:-1] for link in links if link.startswith("socket:[")}


def test_the_pool_listens_on_no_network_port(tmp_path):
    pool = tmp_path / "p.img"
    pool.write_bytes(bytes(65536))
    assert importlib.util.find_spec("orchestrator.lan.server") is None  # `python -m orchestrator.lan.server` is gone
    before = _our_socket_inodes() & _listening_inodes()
    with LocalPool({"VOL1": pool}) as srv, LanClient(srv.address, "VOL1", 0) as c:
        c.put(512, 512, b"z" * 512)
        c.sync()
        assert _our_socket_inodes() & _listening_inodes() == before  # nothing of ours listens
        assert c.sock.family == socket.AF_UNIX  # an anonymous socket pair
    assert pool.read_bytes()[512:1024] == b"z" * 512
    with pytest.raises(ConnectionRefusedError):  # closed: its address resolves no more
        LanClient(srv.address, "VOL1", 0)


def test_a_site_file_naming_lan_server_is_refused_with_the_way_out(tmp_path, capsys):
    from orchestrator.cli import main

    (tmp_path / "site.yaml").write_text("lan_server: 127.0.0.1:1500\ndevices: {d: x.img}\nvolumes: {E: {device: d}}\n")
    assert main(["backup", "image", "E", "--site", str(tmp_path / "site.yaml")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "lan_server: the open LAN data process is retired" in err
    assert "lan_pool" in err and "serverfree server" in err


def test_digest_matches_the_client_side_digest_of_the_same_pieces(server):
    from orchestrator.job.digest import chunk_digests
    from orchestrator.ops import StoredPiece

    srv, pool = server
    a, b = os.urandom(8192), bytes(4096)
    packed = zlib.compress(b)
    pieces = (StoredPiece(0, 65536, 8192), StoredPiece(8192, 1 << 20, 4096, True, len(packed)))
    with LanClient(srv.address, "VOL1", 4096) as c:
        c.put(0, 8192, a)
        c.put(8192, 4096, packed, compressed=True)
        theirs = c.digest(pieces, 1 << 20)
    volume = {65536: a, 1 << 20: b}
    ours = chunk_digests(pieces, lambda p: volume[p.volume_offset][:p.length], 1 << 20)
    assert theirs == ours and [c for c, _ in theirs] == [0, 1]
    with LanClient(srv.address, "VOL1", 4096) as c:
        with pytest.raises(LanRemoteError, match="DIGEST payload"):
            c._call(Frame(5, payload=b"{}"), 0x82)


def test_digest_answers_come_in_frames_of_rows_into_one_spool(server, monkeypatch):
    """Five chunks' digests two rows a frame, two windows into one spool; pieces out of volume order refused."""
    import orchestrator.lan.local_pool as local_pool
    from orchestrator.digest_spool import DigestSpool
    from orchestrator.job.digest import chunk_digests
    from orchestrator.ops import StoredPiece

    monkeypatch.setattr(local_pool, "DIGEST_FRAME_ROWS", 2)
    srv, pool = server
    data = os.urandom(5 * 4096)
    pool.write_bytes(data + bytes((1 << 20) - len(data)))
    pieces = [StoredPiece(i * 4096, i * 8192 + 100, 4096) for i in range(5)]  # chunk size 8 KiB: chunks 0..4
    frames = []
    with LanClient(srv.address, "VOL1", 0, "read") as c:
        receive = c._receive
        c._receive = lambda: frames.append(receive()) or frames[-1]  # type: ignore[method-assign]
        spool = DigestSpool()
        c.digest(pieces[:3], 8192, into=spool)
        c.digest(pieces[3:], 8192, into=spool)
        with pytest.raises(LanRemoteError, match=r"volume offset 100\) comes before the end of the previous one"):
            c.digest([pieces[1], pieces[0]], 8192)
    volume = {p.volume_offset: data[p.image_offset:p.image_offset + 4096] for p in pieces}
    assert spool == chunk_digests(pieces, lambda p: volume[p.volume_offset][:p.length], 8192)
    assert [(f.op, len(f.payload) // 72, f.length) for f in frames[:3]] == [(0x82, 2, 0), (0x82, 1, 0), (0x81, 0, 3)]


@pytest.mark.parametrize("lan_pool, words", [
    ("{volumes: {VOL9: p.img}}", ["lan_pool.volumes.VOL9: not one of the pool's volumes (VOL1)"]),
    ("{volumes: {}}", ["lan_pool.volumes: no path for pool volume VOL1"]),
    ("{tapes: {drv1: t.tape}}", ["lan_pool.tapes.drv1: not one of the pool's drives (none)"]),
])
def test_lan_pool_names_only_the_pools_own_volumes(tmp_path, capsys, lan_pool, words):
    from orchestrator.cli import main

    (tmp_path / "p.img").write_bytes(bytes(1 << 20))
    (tmp_path / "site.yaml").write_text(f"lan_pool: {lan_pool}\ndevices: {{d: p.img, pool0: p.img}}\n"
                                        "pool: {volumes: [{name: VOL1, device: pool0, capacity: 1m}]}\n"
                                        "volumes: {E: {device: d}}\n")
    assert main(["backup", "image", "E", "--site", str(tmp_path / "site.yaml")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and all(w in err for w in words), err
