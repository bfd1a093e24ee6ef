"""The client end of local mode's LAN data path: one session (write or read) with the in-process pool."""
from __future__ import annotations

import json
import socket

from orchestrator.lan import endpoints
from orchestrator.lan.frames import (OP_ACK, OP_DATA, OP_DIGEST, OP_ERROR, OP_GET, OP_NAMES, OP_OPEN, OP_PUT, OP_SYNC,
                                     Frame, LanProtocolError, LanRemoteError, read_frame)


def connect(address: str, timeout: float) -> socket.socket:
    """A session with the in-process pool at ``address`` (``local:N``; see :mod:`orchestrator.lan.local_pool`)."""
    return endpoints.connect(address, timeout)


class LanClient:
    """The client end of one session (write or read) with the in-process pool."""

    def __init__(self, address: str, pool_volume: str, pool_offset: int, mode: str = "write",
                 timeout: float = 30.0):
        self.sock = connect(address, timeout)
        self._call(Frame(OP_OPEN, payload=json.dumps(
            {"pool_volume": pool_volume, "pool_offset": pool_offset, "mode": mode}).encode()), OP_ACK)

    def _call(self, frame: Frame, expect: int) -> Frame:
        self.sock.sendall(frame.encode())
        reply = read_frame(self.sock)
        if reply.op == OP_ERROR:
            raise LanRemoteError(f"LAN pool: {reply.payload.decode(errors='replace')}")
        if reply.op != expect:
            raise LanProtocolError(f"expected {OP_NAMES[expect]}, got {OP_NAMES.get(reply.op, reply.op)}")
        return reply

    def put(self, image_offset: int, length: int, payload: bytes, compressed: bool = False) -> None:
        ack = self._call(Frame(OP_PUT, image_offset, length, compressed, payload), OP_ACK)
        if ack.image_offset != image_offset:
            raise LanProtocolError(f"ACK for image offset {ack.image_offset}, sent {image_offset}")

    def get(self, image_offset: int, length: int, stored: int, compressed: bool = False) -> bytes:
        reply = self._call(Frame(OP_GET, image_offset, length, compressed, stored.to_bytes(8, "big")),
                           OP_DATA)
        if len(reply.payload) != stored:
            raise LanProtocolError(f"DATA for image offset {image_offset}: {len(reply.payload)} of {stored} "
                                   "bytes")
        return reply.payload

    def sync(self) -> None:
        self._call(Frame(OP_SYNC), OP_ACK)

    def digest(self, pieces, chunk_size: int) -> tuple[tuple[int, str], ...]:
        """Chunk digests the server computes from the pool (StoredPiece-like objects)."""
        req = {"chunk_size": chunk_size, "pieces": [[p.image_offset, p.volume_offset, p.length,
                                                      bool(p.compressed), p.stored] for p in pieces]}
        reply = self._call(Frame(OP_DIGEST, payload=json.dumps(req).encode()), OP_DATA)
        return tuple((int(c), str(h)) for c, h in json.loads(reply.payload.decode()))

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> "LanClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
