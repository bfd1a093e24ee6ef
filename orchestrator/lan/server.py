"""The backup server's LAN data path: a TCP stream from the client, the server writes the pool.

When neither server-free nor LAN-free works, the client streams the image
pieces to this server process, which writes them at their fixed place on a
pool volume (a file or block device it owns) and acknowledges each one; for
restores (and verification) it reads them back.  One frame layout, declared
once with :mod:`scsi.layout`, carries every message::

    magic "SFL1" | op | flags (bit 0 compressed) | reserved(2) | image offset (8)
    | length (8, raw bytes of the piece) | payload length (4) | payload

Ops: OPEN (payload: JSON {"pool_volume", "pool_offset", "mode"}), PUT (a
piece; payload = stored bytes), GET (ask for a piece; payload = its stored
length as 8 bytes; the answer is a PUT-shaped DATA frame), SYNC (fsync, ends a write session),
DIGEST (payload: JSON {"chunk_size", "pieces": [[image offset, volume offset,
length, compressed, stored length], ...]}; the answer is a DATA frame with
the JSON chunk digests of what the pool holds -- verification without moving
the image over the LAN).
MARK (tape sessions: the closing filemark).  An OPEN naming a ``tape_drive``
instead of a ``pool_volume`` starts a tape session on a drive the server owns
(see :mod:`orchestrator.lan.tape_server`): the pieces become tape records.
Answers: ACK, DATA, ERROR (payload: a UTF-8 message naming what was wrong).
Malformed input gets an ERROR naming the field and the connection is closed;
the server itself never dies of a bad client.

Run it: ``python -m orchestrator.lan.server --listen 127.0.0.1:0 --volume VOL1=/path/pool.img``
(prints ``listening HOST:PORT`` once ready); ``--tape DRV1=/path/drv1.tape`` (or
``DRV1=iscsi://host/iqn/lun``) serves a tape drive.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import socketserver
import sys
import threading
import zlib
from pathlib import Path
from typing import Any

from orchestrator.job.digest import ChunkDigester
from orchestrator.lan.frames import (OP_ACK, OP_DATA, OP_DIGEST, OP_ERROR, OP_GET, OP_MARK, OP_NAMES, OP_OPEN, OP_PUT,
                                     OP_SYNC, Frame, LanProtocolError, read_frame)
from orchestrator.lan.tape_server import TapeDrives, TapeSession, is_tape_open

log = logging.getLogger(__name__)

# ------------------------------------------------------------------------------------- server
class _Handler(socketserver.BaseRequestHandler):
    server: "LanServer._Tcp"

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
                    tape = self.server.owner.open_tape(f.payload)
                    if tape is not None:
                        sock.sendall(tape.opened().encode())
                        continue
                    fd, base, size = self.server.owner.open_volume(f.payload)
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
                    digests = self._digest(fd, base, size, f.payload)
                    sock.sendall(Frame(OP_DATA, payload=json.dumps(digests).encode()).encode())
                elif f.op == OP_MARK:
                    raise LanProtocolError("MARK is only part of a tape session")
                else:
                    raise LanProtocolError(f"{OP_NAMES[f.op]} is an answer, not a request")
        except (LanProtocolError, LookupError, OSError, ValueError, zlib.error) as exc:
            log.warning("LAN client %s: %s", self.client_address, exc)
            try:
                sock.sendall(Frame(OP_ERROR, payload=str(exc).encode()[:4096]).encode())
            except OSError:
                pass
        finally:
            if fd is not None:
                os.close(fd)
            if tape is not None:
                tape.close()

    @staticmethod
    def _digest(fd: int, base: int, size: int, payload: bytes) -> list:
        try:
            req = json.loads(payload.decode())
            digester = ChunkDigester(int(req["chunk_size"]))
            pieces = [(int(a), int(b), int(c), bool(d), int(e)) for a, b, c, d, e in req["pieces"]]
        except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
            raise LanProtocolError(f"DIGEST payload is not {{chunk_size, pieces: [[5 numbers], ...]}}: {exc}") \
                from None
        for img, vol, length, compressed, stored in pieces:
            if img < 0 or base + img + max(length, stored) > size:
                raise LanProtocolError(f"DIGEST: piece at image offset {img} lies outside the pool volume")
            if compressed:
                digester.update(vol, zlib.decompress(os.pread(fd, stored, base + img)))
                continue
            for o in range(0, length, 1 << 20):
                n = min(1 << 20, length - o)
                digester.update(vol + o, os.pread(fd, n, base + img + o))
        return [list(d) for d in digester.digests()]

    @staticmethod
    def _check_range(base: int, size: int, f: Frame) -> None:
        if f.image_offset + f.length > size - base:
            raise LanProtocolError(f"piece at image offset {f.image_offset} ({f.length} bytes) runs past "
                                   f"the end of the pool volume")


class LanServer:
    """A threaded TCP server writing pool volumes; ``start()`` in a thread or ``serve_forever()``."""

    class _Tcp(socketserver.ThreadingTCPServer):
        daemon_threads = True
        allow_reuse_address = True
        owner: "LanServer"

    def __init__(self, volumes: dict[str, str | Path], host: str = "127.0.0.1", port: int = 0,
                 tapes: dict[str, Any] | None = None):
        """``tapes``: drive name -> tape LUN file, device URL, StreamLun or pyscsi device (the server owns it)."""
        self.volumes = {k: Path(v) for k, v in volumes.items()}
        self.tapes = TapeDrives(tapes or {})
        self._tcp = self._Tcp((host, port), _Handler)
        self._tcp.owner = self
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> str:
        host, port = self._tcp.server_address[:2]
        return f"{host}:{port}"

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
            raise LookupError(f"pool volume {name!r} is not served here (known: "
                              f"{', '.join(sorted(self.volumes)) or 'none'})")
        if offset < 0 or mode not in ("read", "write"):
            raise LanProtocolError(f"OPEN: bad pool_offset {offset} or mode {mode!r}")
        path = self.volumes[name]
        fd = os.open(path, os.O_RDWR if mode == "write" else os.O_RDONLY)
        size = os.lseek(fd, 0, os.SEEK_END)
        return fd, offset, size

    def start(self) -> "LanServer":
        self._thread = threading.Thread(target=self._tcp.serve_forever, name="lanserver", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._tcp.serve_forever()

    def close(self) -> None:
        self._tcp.shutdown()
        self._tcp.server_close()
        if self._thread:
            self._thread.join(5)
        self.tapes.close()

    def __enter__(self) -> "LanServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m orchestrator.lan.server",
                                 description="serverfree backup server: LAN data path to the pool")
    ap.add_argument("--listen", default="127.0.0.1:0", help="HOST:PORT (port 0 = any free port)")
    ap.add_argument("--volume", action="append", default=[], metavar="NAME=PATH",
                    help="pool volume served (file or block device); repeatable")
    ap.add_argument("--tape", action="append", default=[], metavar="NAME=PATH|URL",
                    help="tape drive served: an emulated tape file or an iscsi:// / /dev/sg URL; repeatable")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    vols = {}
    for v in args.volume:
        name, sep, path = v.partition("=")
        if not sep or not name or not Path(path).exists():
            print(f"lanserver: error: --volume {v!r} must be NAME=PATH of an existing file", file=sys.stderr)
            return 2
        vols[name] = path
    tapes = {}
    for t in args.tape:
        name, sep, where = t.partition("=")
        if not sep or not name or not (where.startswith(("iscsi://", "/dev/")) or Path(where).is_file()):
            print(f"lanserver: error: --tape {t!r} must be NAME=PATH of an emulated tape file or NAME=URL",
                  file=sys.stderr)
            return 2
        tapes[name] = where
    host, _, port = args.listen.rpartition(":")
    if not port.isdigit():
        print(f"lanserver: error: --listen {args.listen!r} is not HOST:PORT", file=sys.stderr)
        return 2
    server = LanServer(vols, host or "127.0.0.1", int(port), tapes)
    print(f"listening {server.address}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
