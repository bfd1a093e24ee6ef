"""The real driver's verification (`orchestrator.drivers.real_verify`) against local mode's in-process pool: the
backup server's digests arrive as spools, are compared with the volume's pair by pair, and a difference names its
chunk -- with the digests the whole-tuple code gave."""
from __future__ import annotations

import os

import pytest

from orchestrator.digest_spool import DigestSpool
from orchestrator.drivers.real_verify import VerifyOps
from orchestrator.job.digest import chunk_digests
from orchestrator.lan.local_pool import LocalPool
from orchestrator.ops import StoredPiece, VerifyPool
from orchestrator.piece_stream import PieceStream

CS = 4096
VOLUME = os.urandom(64 * CS)
# an image of five pieces (1..3 chunks each, gaps between them); its bytes lie on the pool at POOL_AT
PIECES = [StoredPiece(0, 0, 3 * CS), StoredPiece(3 * CS, 5 * CS + 100, CS), StoredPiece(4 * CS, 9 * CS, 2 * CS),
          StoredPiece(6 * CS, 20 * CS, 3 * CS - 7), StoredPiece(9 * CS - 7, 40 * CS, CS)]
POOL_AT = 8192


class _Volume:
    block_size = 512

    def __init__(self, data: bytes):
        self.data, self.size = data, len(data)

    def read(self, offset: int, length: int) -> bytes:
        return self.data[offset:offset + length]

    def test_unit_ready(self) -> None:
        pass


@pytest.fixture
def pool(tmp_path):
    path = tmp_path / "pool.img"
    image = b"".join(VOLUME[p.volume_offset:p.volume_offset + p.length] for p in PIECES)
    path.write_bytes(bytes(POOL_AT) + image + bytes(CS))
    with LocalPool({"VOL1": path}) as lp:
        yield lp, path


def _ops(pool_path) -> VerifyOps:
    ops = VerifyOps()
    devices = {"disk0": _Volume(VOLUME), "pool0": _Volume(pool_path.read_bytes())}
    ops.io = devices.__getitem__  # type: ignore[assignment]
    ops._pool_volume_of = lambda device: "VOL1"  # type: ignore[method-assign]
    ops.lan_timeout = 5.0
    return ops


def _op(pieces, accounted=(), server="", pool_server="") -> VerifyPool:
    return VerifyPool("disk0", "pool0", POOL_AT, PieceStream.of(pieces), CS, 0, server, PieceStream.of(accounted),
                      pool_server)


def _want(pieces):
    return chunk_digests(pieces, lambda p: VOLUME[p.volume_offset:p.volume_offset + p.length], CS)


def test_by_digest_gives_the_servers_spool_and_a_difference_names_its_chunk(pool, monkeypatch):
    import orchestrator.drivers.real_verify as real_verify
    monkeypatch.setattr(real_verify, "DIGEST_WINDOW_PIECES", 2)  # three windows into one spool
    lp, path = pool
    r = _ops(path)._verify_by_digest(_op(PIECES, server=lp.address))
    assert r.ok and isinstance(r.digests, DigestSpool) and r.digests == _want(PIECES)
    raw = bytearray(path.read_bytes())
    raw[POOL_AT + 6 * CS + CS + 5] ^= 0xFF  # the fourth piece's second chunk: volume chunk 21
    path.write_bytes(bytes(raw))
    r = _ops(path)._verify_by_digest(_op(PIECES, server=lp.address))
    assert (r.ok, r.message) == (False, "pool and volume differ in chunk 21 (digests from the backup server)")


def test_the_server_view_covers_both_streams_and_the_san_check_reads_only_the_clients_pieces(pool):
    lp, path = pool
    mine, proven = [PIECES[0], PIECES[2]], [PIECES[1], PIECES[3], PIECES[4]]
    r = _ops(path)._VerifyPool(_op(mine, proven, pool_server=lp.address))
    assert r.ok and r.digests == _want(PIECES)
    # no backup server: the client's pieces compared over the SAN, a chunk the mover's pieces share with them gets
    # no digest (the first piece cut in chunk 1: the client's part digests chunks 0 and 1, the mover's 1 and 2)
    mine = [StoredPiece(0, 0, CS + 100), PIECES[2]]
    proven = [StoredPiece(CS + 100, CS + 100, 2 * CS - 100), PIECES[1], PIECES[3], PIECES[4]]
    r = _ops(path)._VerifyPool(_op(mine, proven))
    assert r.ok and [c for c, _ in r.digests] == [0, 9, 10]
    assert list(r.digests) == [d for d in _want(mine) if d[0] in (0, 9, 10)]
