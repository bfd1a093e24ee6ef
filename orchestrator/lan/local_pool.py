"""Local mode's LAN path: the pool as the backup server sees it, served inside the job's own process.

In local mode (a site file with ``pool:`` and ``catalogue:``) the process that
runs the job is client and backup server at once: it owns the catalogue and
chooses where on the pool an image goes.  Its LAN path is the server's own
path to the pool -- the volume files or tape drives the site file lists under
``lan_pool:`` -- rather than the client's SAN path (LAN-free).  There is no
network listener: every session is an anonymous socket pair
(:func:`socket.socketpair`) between the job's LAN client and a handler thread
here, speaking the frames of :mod:`orchestrator.lan.frames`.  Data crosses the
network only through the authenticated backup server (``serverfree server``).

Ops: OPEN (payload: JSON {"pool_volume", "pool_offset", "mode"}), PUT (a
piece; payload = stored bytes), GET (ask for a piece; payload = its stored
length as 8 bytes; the answer is a PUT-shaped DATA frame), SYNC (fsync, ends a
write session), DIGEST (payload: JSON {"chunk_size", "pieces": [[image offset,
volume offset, length, compressed, stored length], ...]} in ascending volume
order; the answer is DATA frames of `DIGEST_ROW` rows -- the chunk digests of
what the pool holds, each sent as soon as the pieces have passed its chunk, at
most `DIGEST_FRAME_ROWS` a frame -- then an ACK whose length counts the rows), MARK (tape
sessions: the closing filemark).  An OPEN naming a ``tape_drive`` instead of a
``pool_volume`` starts a tape session on a drive of ``lan_pool.tapes`` (see
:mod:`orchestrator.lan.tape_server`).  Answers: ACK, DATA, ERROR (payload: a
UTF-8 message naming what was wrong).
"""
from __future__ import annotations

import itertools
import json
import logging
import os
import socket
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from orchestrator.digest_spool import DIGEST_ROW
from orchestrator.job.digest import ChunkDigester
from orchestrator.lan import endpoints
from orchestrator.lan.frames import (OP_ACK, OP_DATA, OP_DIGEST, OP_ERROR, OP_GET, OP_MARK, OP_NAMES, OP_OPEN, OP_PUT,
                                     OP_SYNC, Frame, LanProtocolError, read_frame)
from orchestrator.lan.tape_server import TapeDrives, TapeSession, is_tape_open

log = logging.getLogger(__name__)

DIGEST_FRAME_ROWS = 1 << 13  # digest rows in one DATA frame of a DIGEST answer (576 KiB)

# ------------------------------------------------------------------------------------- sessions
class _Session:
    """One session's handler (a thread on the pool's end of a socket pair)."""

    def __init__(self, owner: "LocalPool", sock: socket.socket):
        self.owner, self.request = owner, sock

    def handle(self) -> None:
        sock: socket.socket = self.request
        fd: int | None = None
        tape = None  # a TapeSession when OPEN named a tape drive
        base = 0
        size = 0
        try:
            while True:
                try:
                    f = read_frame(sock)
                except EOFError:
                    return
                if f.op == OP_OPEN:
                    if fd is not None or tape is not None:
                        raise LanProtocolError("OPEN sent twice on one connection")
                    tape = self.owner.open_tape(f.payload)
                    if tape is not None:
                        sock.sendall(tape.opened().encode())
                        continue
                    fd, base, size = self.owner.open_volume(f.payload)
                    sock.sendall(Frame(OP_ACK).encode())
                    continue
                if tape is not None:
                    sock.sendall(tape.handle(f).encode())
                    continue
                if fd is None:
                    raise LanProtocolError(f"{OP_NAMES[f.op]} before OPEN")
                if f.op == OP_PUT:
                    stored = len(f.payload)
                    if stored > f.length or (not f.compressed and stored != f.length):
                        raise LanProtocolError(f"PUT at image offset {f.image_offset}: payload of {stored} "
                                               f"bytes does not fit a piece of {f.length}")
                    self._check_range(base, size, f)
                    os.pwrite(fd, f.payload, base + f.image_offset)
                    sock.sendall(Frame(OP_ACK, f.image_offset, f.length).encode())
                elif f.op == OP_GET:
                    self._check_range(base, size, f)
                    stored = int.from_bytes(f.payload[:8], "big") if f.payload else f.length
                    data = os.pread(fd, stored, base + f.image_offset)
                    sock.sendall(Frame(OP_DATA, f.image_offset, f.length, f.compressed, data).encode())
                elif f.op == OP_SYNC:
                    os.fsync(fd)
                    sock.sendall(Frame(OP_ACK).encode())
                elif f.op == OP_DIGEST:
                    sent = 0
                    for rows in self._digest(fd, base, size, f.payload):
                        sock.sendall(Frame(OP_DATA, payload=rows.tobytes()).encode())
                        sent += rows.size
                    sock.sendall(Frame(OP_ACK, length=sent).encode())
                elif f.op == OP_MARK:
                    raise LanProtocolError("MARK is only part of a tape session")
                else:
                    raise LanProtocolError(f"{OP_NAMES[f.op]} is an answer, not a request")
        except (LanProtocolError, LookupError, OSError, ValueError, zlib.error) as exc:
            log.warning("local LAN session: %s", exc)
            try:
                sock.sendall(Frame(OP_ERROR, payload=str(exc).encode()[:4096]).encode())
            except OSError:
                pass
        finally:
            if fd is not None:
                os.close(fd)
            if tape is not None:
                tape.close()
            sock.close()

    @staticmethod
    def _digest(fd: int, base: int, size: int, payload: bytes) -> Iterator[np.ndarray]:
        """The request's chunk digests as `DIGEST_ROW` pages: a chunk's row is made once the pieces have passed
        it (they come in ascending volume order), so one hasher is open at a time."""
        try:
            req = json.loads(payload.decode())
            digester = ChunkDigester(int(req["chunk_size"]))
            pieces = [(int(a), int(b), int(c), bool(d), int(e)) for a, b, c, d, e in req["pieces"]]
        except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
            raise LanProtocolError(f"DIGEST payload is not {{chunk_size, pieces: [[5 numbers], ...]}}: {exc}") \
                from None
        done: list[tuple[int, bytes]] = []
        end = 0
        for img, vol, length, compressed, stored in pieces:
            if img < 0 or base + img + max(length, stored) > size:
                raise LanProtocolError(f"DIGEST: piece at image offset {img} lies outside the pool volume")
            if vol < end:
                raise LanProtocolError(f"DIGEST: piece at image offset {img} (volume offset {vol}) comes before "
                                       f"the end of the previous one ({end}): pieces must be in volume order")
            done.extend((c, d.encode()) for c, d in digester.take_below(vol // digester.chunk_size))
            if len(done) >= DIGEST_FRAME_ROWS:
                yield np.array(done, dtype=DIGEST_ROW)
                done.clear()
            end = vol + length
            if compressed:
                digester.update(vol, zlib.decompress(os.pread(fd, stored, base + img)))
                continue
            for o in range(0, length, 1 << 20):
                n = min(1 << 20, length - o)
                digester.update(vol + o, os.pread(fd, n, base + img + o))
        done.extend((c, d.encode()) for c, d in digester.take_below(1 << 63))
        for first in range(0, len(done), DIGEST_FRAME_ROWS):
            yield np.array(done[first:first + DIGEST_FRAME_ROWS], dtype=DIGEST_ROW)

    @staticmethod
    def _check_range(base: int, size: int, f: Frame) -> None:
        if f.image_offset + f.length > size - base:
            raise LanProtocolError(f"piece at image offset {f.image_offset} ({f.length} bytes) runs past "
                                   f"the end of the pool volume")


_ids = itertools.count(1)


class LocalPool:
    """The pool volumes (name -> file or block device) and tape drives of local mode's LAN path.

    ``address`` (``local:N``) is what the job's LAN operations name; :func:`orchestrator.lan.client.connect`
    finds this object by it while it is open.  ``tapes``: drive name -> tape LUN file, device URL, StreamLun
    or pyscsi device.
    """

    def __init__(self, volumes: dict[str, str | Path], tapes: dict[str, Any] | None = None):
        self.volumes = {k: Path(v) for k, v in volumes.items()}
        self.tapes = TapeDrives(tapes or {})
        self.address = f"local:{next(_ids)}"
        endpoints.register(self.address, self)

    def connect(self, timeout: float) -> socket.socket:
        """A new session: our end of a socket pair whose other end a handler thread serves."""
        ours, theirs = socket.socketpair()
        ours.settimeout(timeout)
        threading.Thread(target=_Session(self, theirs).handle, name=f"lan-{self.address}", daemon=True).start()
        return ours

    def open_tape(self, payload: bytes):
        """A TapeSession when the OPEN payload names a tape drive, else None (a pool volume session)."""
        return TapeSession(self.tapes, payload) if is_tape_open(payload) else None

    def open_volume(self, payload: bytes) -> tuple[int, int, int]:
        try:
            req = json.loads(payload.decode())
            name, offset, mode = req["pool_volume"], int(req["pool_offset"]), req.get("mode", "write")
        except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
            raise LanProtocolError(f"OPEN payload is not a JSON object with pool_volume and pool_offset: "
                                   f"{exc}") from None
        if name not in self.volumes:
            raise LookupError(f"pool volume {name!r} is not in lan_pool.volumes (known: "
                              f"{', '.join(sorted(self.volumes)) or 'none'})")
        if offset < 0 or mode not in ("read", "write"):
            raise LanProtocolError(f"OPEN: bad pool_offset {offset} or mode {mode!r}")
        path = self.volumes[name]
        fd = os.open(path, os.O_RDWR if mode == "write" else os.O_RDONLY)
        size = os.lseek(fd, 0, os.SEEK_END)
        return fd, offset, size

    def close(self) -> None:
        endpoints.unregister(self.address)
        self.tapes.close()

    def __enter__(self) -> "LocalPool":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
