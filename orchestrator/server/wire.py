"""Frames between client and server: a fixed header, a JSON message, optional bulk data.

One header layout, declared once with :mod:`scsi.layout`::

    magic "SFS1" | version (1) | reserved (3) | message length (4) | data length (4)

followed by the message (UTF-8 JSON, an object with a ``type``) and the data
(image bytes of a PUT or a DATA answer).  Both lengths are checked against
limits before a byte of the body is read, so an oversized frame costs the
server 16 bytes; a message that is not valid JSON, has an unknown ``type`` or
a field of the wrong kind is refused by its pydantic model with the field
named.  Every message class lives in :mod:`orchestrator.server.messages`.

Paging, declared here once for every message in both directions: a JSON
message longer than MAX_MESSAGE (an extent map, a commit's pieces and digests,
a restore chain) travels as continuation frames ``{"type": "more", "final":
false}`` whose data part carries the next PAGE bytes of the JSON text, ended by
one with ``"final": true``.  Each frame stays under MAX_MESSAGE; the receiver
checks the running total against its ``max_paged`` limit before it keeps a byte
(0 before login), so a client cannot make the server buffer more than that.

Rows, for lists of millions (a commit's pieces, an extent map, a restore
chain's pieces): the message says ``"bulk": {field: count}`` and the rows
follow it as frames ``{"type": "rows", "field": F}`` whose data part holds
whole fixed-size records (their numpy layout is declared once, in
:mod:`orchestrator.server.messages`), at most ROW_PAGE bytes a frame.  The
receiver reads them as it consumes them (:class:`RowReader`): a page of
records is checked and stored compactly before the next is read, so neither
end holds the list as JSON or as Python objects.
"""
from __future__ import annotations

import json
import socket
import ssl
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

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
PAGE = MAX_MESSAGE - 1024  # JSON bytes per continuation frame
MAX_PAGED = 192 << 20     # one paged message in all (~1.5 million pieces of a commit, ~4 million extents)
_MORE = "more"
_ROWS = "rows"
ROW_PAGE = 4 << 20        # bytes of records in one rows frame


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


def encode(message: dict, data: bytes = b"") -> bytes:
    """The frames of one message: a single frame, or continuation frames when the JSON exceeds MAX_MESSAGE."""
    body = json.dumps(message, separators=(",", ":")).encode()
    if len(body) <= MAX_MESSAGE:
        return Frame(message, data).encode()
    if data:
        raise FrameError(f"message of {len(body)} bytes with bulk data: only a message without data is paged")
    view, out = memoryview(body), []
    for o in range(0, len(body), PAGE):
        part = view[o:o + PAGE]
        out.append(HEADER.encode(magic=MAGIC, version=VERSION, message_length=len(_more(o + PAGE >= len(body))),
                                 data_length=len(part)) + _more(o + PAGE >= len(body)) + part)
    return b"".join(out)


def _more(final: bool) -> bytes:
    return b'{"type":"more","final":true}' if final else b'{"type":"more","final":false}'


def read_frame(sock: socket.socket, *, max_message: int = MAX_MESSAGE, max_data: int = MAX_DATA,
               max_paged: int = MAX_PAGED) -> Frame:
    """One message (its continuation frames joined); FrameError when a frame breaks a rule or the paged
    message would exceed ``max_paged`` bytes (checked before the bytes are kept)."""
    f = _read_one(sock, max_message, max_data)
    if f.message.get("type") != _MORE:
        return f
    parts, total = [], 0
    while True:
        if set(f.message) - {"type", "final"} or not isinstance(f.message.get("final"), bool):
            raise FrameError("server frame: a continuation frame has only type 'more' and a boolean 'final'")
        total += len(f.data)
        if total > max_paged:
            raise FrameError(f"paged message exceeds {max_paged} bytes")
        parts.append(f.data)
        if f.message["final"]:
            break
        f = _read_one(sock, max_message, max_data)
        if f.message.get("type") != _MORE:
            raise FrameError(f"server frame: a {f.message.get('type')!r} message inside a paged message")
    try:
        message = json.loads(b"".join(parts).decode())
    except (UnicodeDecodeError, ValueError) as exc:
        raise FrameError(f"paged message is not UTF-8 JSON: {exc}") from None
    if not isinstance(message, dict) or message.get("type") == _MORE:
        raise FrameError("paged message is not a JSON object with a type")
    return Frame(message)


def _read_one(sock: socket.socket, max_message: int, max_data: int, in_place: bool = False) -> Frame:
    """One frame; FrameError (nothing more read) when the header or message breaks a rule.  ``in_place``: the
    data part is read into one buffer of its size (a bytearray: rows are viewed there, never copied)."""
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
    n = v["data_length"]
    data = (_recv_buffer(sock, n) if in_place else recv_exact(sock, n, "data")) if n else b""
    return Frame(message, data)  # type: ignore[arg-type]


def _recv_buffer(sock: socket.socket, n: int) -> bytearray:
    """Exactly ``n`` bytes received into one buffer (recv_exact would join its parts, then copy them)."""
    buf = bytearray(n)
    view, got = memoryview(buf), 0
    while got < n:
        k = sock.recv_into(view[got:], n - got)
        if not k:
            raise ConnectionError(f"connection closed after {got} of {n} bytes of the data")
        got += k
    return buf


def send(sock: socket.socket, message: dict, data: bytes = b"") -> None:
    sock.sendall(encode(message, data))


# -- rows ----------------------------------------------------------------------------------------
def rows_frames(name: str, dtype: np.dtype, count: int, pages: Iterable[np.ndarray]) -> Iterator[bytes]:
    """The rows frames of one bulk field: ``pages`` (arrays of ``dtype``) cut to ROW_PAGE bytes; FrameError
    when they hold other than ``count`` rows (the message declared ``count``)."""
    for head, data in _rows_parts(name, dtype, count, pages):
        yield head + data


def _rows_parts(name: str, dtype: np.dtype, count: int, pages: Iterable[np.ndarray]) -> Iterator[tuple[bytes, memoryview]]:
    """`rows_frames` as (header and message, the records' bytes in place): sent as two writes, no copy made."""
    head = json.dumps({"type": _ROWS, "field": name}, separators=(",", ":")).encode()
    per = max(1, ROW_PAGE // dtype.itemsize)
    sent = 0
    for page in pages:
        page = np.ascontiguousarray(page, dtype=dtype)
        for o in range(0, page.size, per):
            part = page[o:o + per]
            sent += part.size
            if sent > count:
                raise FrameError(f"rows of {name}: more than the {count} declared")
            data = memoryview(part).cast("B")
            yield HEADER.encode(magic=MAGIC, version=VERSION, message_length=len(head),
                                data_length=len(data)) + head, data
    if sent != count:
        raise FrameError(f"rows of {name}: {sent} sent, {count} declared")


def send_bulk(sock: socket.socket, message: dict, bulk: dict[str, tuple[np.dtype, int, Iterable[np.ndarray]]],
              data: bytes = b"") -> int:
    """A message and its rows (field -> (layout, count, pages)); returns the bytes sent."""
    message = {**message, "bulk": {k: c for k, (_, c, _) in bulk.items()}} if bulk else message
    frame = encode(message, data)
    sock.sendall(frame)
    n = len(frame)
    for name, (dtype, count, pages) in bulk.items():
        for head, data in _rows_parts(name, dtype, count, pages):
            _send_parts(sock, head, data)
            n += len(head) + len(data)
    return n


def _send_parts(sock: socket.socket, head: bytes, data: memoryview) -> None:
    """A frame whose records are sent from where they lie: one sendmsg of both parts (two writes would leave
    the second to Nagle's wait for an ACK); joined into one buffer when small, or on TLS (no sendmsg)."""
    if len(data) < (64 << 10) or not isinstance(sock, socket.socket) or isinstance(sock, ssl.SSLSocket):
        sock.sendall(head + data)
        return
    parts = [memoryview(head), data]
    while parts:
        sent = sock.sendmsg(parts)
        while parts and sent >= len(parts[0]):
            sent -= len(parts.pop(0))
        if parts and sent:
            parts[0] = parts[0][sent:]


class RowReader:
    """The rows that follow a message, read from the socket only as :meth:`pages` is consumed.

    ``declared``: field -> (count, layout), in the order the rows come.  A rows frame for another field, a
    data part that is not whole records, more rows than declared, or any other message before they are all
    read is a FrameError naming it.
    """

    def __init__(self, sock: socket.socket, declared: dict[str, tuple[int, np.dtype]], max_message: int = MAX_MESSAGE):
        self.sock, self.declared, self.max_message = sock, declared, max_message
        self._left = [k for k, (c, _) in declared.items() if c]
        self._got = 0  # rows of the field at the head of _left read so far (a second pages() goes on from there)
        self.received = 0  # bytes read

    @property
    def done(self) -> bool:
        return not self._left

    def pages(self, name: str) -> Iterator[np.ndarray]:
        """The field's rows, page by page (read-only arrays of its layout)."""
        count, dtype = self.declared.get(name, (0, None))
        if not count:
            return
        if not self._left or self._left[0] != name:
            raise FrameError(f"rows of {name} are not the next to read (expected {self._left[:1] or 'none'})")
        limit = max(ROW_PAGE, dtype.itemsize)
        while self._got < count:
            got = self._got
            f = _read_one(self.sock, self.max_message, limit, in_place=True)
            self.received += HEADER.size + len(f.data)
            if f.message != {"type": _ROWS, "field": name}:
                raise FrameError(f"server frame: {f.message.get('type')!r} {f.message.get('field', '')!r} where "
                                 f"rows of {name} were expected ({got} of {count} read)")
            if not f.data or len(f.data) % dtype.itemsize:
                raise FrameError(f"rows of {name}: a frame of {len(f.data)} bytes is not whole {dtype.itemsize}-byte "
                                 "records")
            n = len(f.data) // dtype.itemsize
            if got + n > count:
                raise FrameError(f"rows of {name}: more than the {count} declared")
            self._got = got + n
            rows = np.frombuffer(f.data, dtype=dtype)
            rows.flags.writeable = False
            if self._got == count:
                self._left.pop(0)
                self._got = 0
                yield rows
                return
            yield rows

    def drain(self) -> None:
        """Read (and drop) what is left."""
        for name in list(self._left):
            for _ in self.pages(name):
                pass
