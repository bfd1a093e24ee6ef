"""The client end of local mode's LAN data path: one session (write or read) with the in-process pool."""
from __future__ import annotations

import json
import socket

import numpy as np

from orchestrator.digest_spool import DIGEST_ROW, DigestSpool
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

    def _send(self, frame: Frame) -> None:
        self.sock.sendall(frame.encode())

    def _receive(self) -> Frame:
        return read_frame(self.sock)

    def _call(self, frame: Frame, expect: int) -> Frame:
        self._send(frame)
        reply = self._receive()
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

    def digest(self, pieces, chunk_size: int, into: DigestSpool | None = None) -> DigestSpool:
        """Chunk digests the server computes from the pool (StoredPiece-like objects, ascending volume order).

        The answer comes as DATA frames of `DIGEST_ROW` rows, then an ACK counting them; the rows go to ``into``
        (a new spool if None) as they arrive, so a read-back of millions of chunks is never one message or one
        list.  Windows asked one after the other may share one spool (ascending across them)."""
        spool = DigestSpool() if into is None else into
        req = {"chunk_size": chunk_size, "pieces": [[p.image_offset, p.volume_offset, p.length,
                                                      bool(p.compressed), p.stored] for p in pieces]}
        self._send(Frame(OP_DIGEST, payload=json.dumps(req).encode()))
        got = 0
        while True:
            reply = self._receive()
            if reply.op == OP_ERROR:
                raise LanRemoteError(f"LAN pool: {reply.payload.decode(errors='replace')}")
            if reply.op == OP_ACK:
                if reply.length != got:
                    raise LanProtocolError(f"DIGEST: the pool counted {reply.length} digest rows, {got} came")
                return spool
            if reply.op != OP_DATA:
                raise LanProtocolError(f"expected DATA or ACK after DIGEST, got {OP_NAMES.get(reply.op, reply.op)}")
            if len(reply.payload) % DIGEST_ROW.itemsize:
                raise LanProtocolError(f"DIGEST: a DATA frame of {len(reply.payload)} bytes is not whole "
                                       f"{DIGEST_ROW.itemsize}-byte digest rows")
            rows = np.frombuffer(reply.payload, dtype=DIGEST_ROW)
            try:
                spool.add_rows(rows)
            except ValueError as exc:
                raise LanProtocolError(f"DIGEST: {exc}") from None
            got += rows.size

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> "LanClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
