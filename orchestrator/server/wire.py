"""Frames between client and server: a fixed header, a JSON message, optional bulk data.

One header layout, declared once with :mod:`scsi.layout`::

    magic "SFS1" | version (1) | reserved (3) | message length (4) | data length (4)

followed by the message (UTF-8 JSON, an object with a ``type``) and the data
(image bytes of a PUT or a DATA answer).  Both lengths are checked against
limits before a byte of the body is read, so an oversized frame costs the
server 16 bytes; a message that is not valid JSON, has an unknown ``type`` or
a field of the wrong kind is refused by its pydantic model with the field
named.  Every message class lives in :mod:`orchestrator.server.messages`.
"""
from __future__ import annotations

import json
import socket
from dataclasses import dataclass

from orchestrator.lan.frames import recv_exact
from scsi.layout import Field, Layout, LayoutError, raw, reserved

HEADER = Layout("server frame", 16, [
    raw("magic", 0, 4),
    Field("version", 4),
    reserved(5, 3),
    Field("message_length", 8, size=4),
    Field("data_length", 12, size=4),
])
MAGIC = b"SFS1"
VERSION = 1
MAX_MESSAGE = 256 << 10   # a JSON message (extent maps travel in pieces of this size at most)
MAX_DATA = 64 << 20       # one PUT/DATA body (the LAN path's piece limit)


class FrameError(ValueError):
    """A frame that breaks the protocol: too large, bad magic, not JSON (says which and where)."""


@dataclass(frozen=True)
class Frame:
    message: dict
    data: bytes = b""

    def encode(self) -> bytes:
        body = json.dumps(self.message, separators=(",", ":")).encode()
        if len(body) > MAX_MESSAGE:
            raise FrameError(f"message of {len(body)} bytes exceeds {MAX_MESSAGE}")
        if len(self.data) > MAX_DATA:
            raise FrameError(f"data of {len(self.data)} bytes exceeds {MAX_DATA}")
        return HEADER.encode(magic=MAGIC, version=VERSION, message_length=len(body),
                             data_length=len(self.data)) + body + self.data


def read_frame(sock: socket.socket, *, max_message: int = MAX_MESSAGE, max_data: int = MAX_DATA) -> Frame:
    """One frame; FrameError (nothing more read) when the header or message breaks a rule."""
    head = recv_exact(sock, HEADER.size, "frame header")
    try:
        v = HEADER.decode(head)
    except LayoutError as err:
        raise FrameError(str(err)) from None
    if v["magic"] != MAGIC:
        raise FrameError(f"server frame.magic at byte 0: expected {MAGIC!r}, found {v['magic']!r}")
    if v["version"] != VERSION:
        raise FrameError(f"server frame.version at byte 4: {v['version']} is not {VERSION}")
    if v["message_length"] > max_message:
        raise FrameError(f"server frame.message_length at byte 8: {v['message_length']} exceeds {max_message}")
    if v["data_length"] > max_data:
        raise FrameError(f"server frame.data_length at byte 12: {v['data_length']} exceeds {max_data}")
    body = recv_exact(sock, v["message_length"], "message")
    try:
        message = json.loads(body.decode())
    except (UnicodeDecodeError, ValueError) as exc:
        raise FrameError(f"server frame message is not UTF-8 JSON: {exc}") from None
    if not isinstance(message, dict):
        raise FrameError("server frame message is not a JSON object")
    data = recv_exact(sock, v["data_length"], "data") if v["data_length"] else b""
    return Frame(message, data)


def send(sock: socket.socket, message: dict, data: bytes = b"") -> None:
    sock.sendall(Frame(message, data).encode())
