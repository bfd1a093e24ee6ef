"""The LAN frame protocol between the client and the backup server: one layout, declared once.

Every message is one frame (declared with :mod:`scsi.layout`)::

    magic "SFL1" | op | flags (bit 0 compressed) | reserved(2) | image offset (8)
    | length (8, raw bytes of the piece) | payload length (4) | payload

The operations and their payloads are described in :mod:`orchestrator.lan.local_pool`.
"""
from __future__ import annotations

import socket
from dataclasses import dataclass

from scsi.layout import Field, Layout, LayoutError, flag, raw, reserved

FRAME = Layout("LAN frame", 28, [
    raw("magic", 0, 4),
    Field("op", 4),
    reserved(5, bit=1, width=7),
    flag("compressed", 5, 0),
    reserved(6, 2),
    Field("image_offset", 8, size=8),
    Field("length", 16, size=8),
    Field("payload_length", 24, size=4),
])
MAGIC = b"SFL1"
OP_OPEN, OP_PUT, OP_GET, OP_SYNC, OP_DIGEST, OP_MARK = 1, 2, 3, 4, 5, 6
OP_ACK, OP_DATA, OP_ERROR = 0x81, 0x82, 0x8F
OP_NAMES = {OP_OPEN: "OPEN", OP_PUT: "PUT", OP_GET: "GET", OP_SYNC: "SYNC", OP_DIGEST: "DIGEST", OP_MARK: "MARK",
            OP_ACK: "ACK", OP_DATA: "DATA", OP_ERROR: "ERROR"}
MAX_PAYLOAD = 64 << 20


class LanProtocolError(ValueError):
    """A frame that breaks the protocol (what and where)."""


class LanRemoteError(OSError):
    """The other side answered ERROR."""


@dataclass(frozen=True)
class Frame:
    op: int
    image_offset: int = 0
    length: int = 0
    compressed: bool = False
    payload: bytes = b""

    def encode(self) -> bytes:
        return FRAME.encode(magic=MAGIC, op=self.op, compressed=int(self.compressed),
                            image_offset=self.image_offset, length=self.length,
                            payload_length=len(self.payload)) + self.payload


def recv_exact(sock: socket.socket, n: int, what: str) -> bytes:
    """Exactly ``n`` bytes; EOFError when the peer closed cleanly before a frame, else ConnectionError."""
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(min(n - len(buf), 1 << 20))
        if not chunk:
            if not buf and what == "frame header":
                raise EOFError("connection closed")
            raise ConnectionError(f"connection closed after {len(buf)} of {n} bytes of the {what}")
        buf += chunk
    return bytes(buf)


def read_frame(sock: socket.socket) -> Frame:
    head = recv_exact(sock, FRAME.size, "frame header")
    try:
        v = FRAME.decode(head)
    except LayoutError as err:
        raise LanProtocolError(str(err)) from None
    if v["magic"] != MAGIC:
        raise LanProtocolError(f"LAN frame.magic at byte 0: expected {MAGIC!r}, found {v['magic']!r}")
    if v["op"] not in OP_NAMES:
        raise LanProtocolError(f"LAN frame.op at byte 4: unknown operation {v['op']:#04x}")
    if v["payload_length"] > MAX_PAYLOAD:
        raise LanProtocolError(f"LAN frame.payload_length at byte 24: {v['payload_length']} exceeds "
                               f"{MAX_PAYLOAD}")
    payload = recv_exact(sock, v["payload_length"], "payload")
    return Frame(v["op"], v["image_offset"], v["length"], bool(v["compressed"]), payload)
