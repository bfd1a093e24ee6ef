"""The LAN path to a tape pool: the backup server owns the drive and lays the client's pieces as records.

On the LAN path the client cannot (or may not) drive the tape: it streams the
pieces to the pool's side (:mod:`orchestrator.lan.local_pool`, in-process in local
mode), which writes them on its drive as the
very records a data mover or a LAN-free client would write
(:mod:`orchestrator.ops.tape_records`), so an object stays restorable by any path.
A tape session on the wire is the disk session's frames with a different
OPEN payload (:class:`TapeOpen`)::

    OPEN  {"tape_drive", "mode", "position", "record_bytes", "fixed", "block_length"}
          -> ACK {"position", "file_number"}: the server LOCATEs (or SPACEs to end
             of data when position is null) and says where the drive stands
    PUT   a piece (uncompressed), written as records at the drive's position -> ACK
    GET   a piece's records read back -> DATA
    MARK  the closing filemark (ends the object) -> ACK
    SYNC  flush the drive's buffer (WRITE FILEMARKS 0) -> ACK

Pieces must come in image order (a tape is written and read in sequence).
The server's drive is a tape LUN file it opens itself, or any pyscsi device
(an ``iscsi://`` URL, ``/dev/sgN``, an in-process device): one session at a
time per drive, as a tape has one position.
"""
from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from orchestrator.lan.client import LanClient, connect
from orchestrator.lan.frames import (OP_ACK, OP_DATA, OP_GET, OP_MARK, OP_NAMES, OP_OPEN, OP_PUT, OP_SYNC, Frame,
                                     LanProtocolError)
from orchestrator.ops import Piece, TransferResult
from orchestrator.ops.tape import TapeFormat, TapeServerRead, TapeServerWrite
from orchestrator.ops.tape_records import Classify, acknowledged, read_piece, restore_pieces, write_piece
from scsi import tape_client
from scsi.devices import open_device
from scsi.luns.base import SpaceCode
from scsi.luns.tape import TapeLun
from scsi.tape_client import TapeRecords

log = logging.getLogger(__name__)


class TapeLanError(OSError):
    """The server's tape drive refused or failed a command (the message names the drive and what)."""


class TapeOpen(BaseModel):
    """The OPEN payload of a tape session (checked at the server's boundary)."""

    model_config = ConfigDict(extra="forbid")

    tape_drive: str = Field(min_length=1)
    mode: Literal["read", "write"]
    position: int | None = Field(None, ge=0, description="logical object to LOCATE to; None: end of data")
    record_bytes: int = Field(gt=0)
    fixed: bool = False
    block_length: int = Field(0, ge=0)

    @model_validator(mode="after")
    def _read_needs_position(self) -> "TapeOpen":
        if self.mode == "read" and self.position is None:
            raise ValueError("a read session needs the position of the object's first record")
        return self

    @property
    def fmt(self) -> TapeFormat:
        return TapeFormat(self.record_bytes, self.fixed, self.block_length)


def is_tape_open(payload: bytes) -> bool:
    """Whether an OPEN payload asks for a tape session (it names a tape_drive, not a pool_volume)."""
    try:
        req = json.loads(payload.decode())
    except (ValueError, UnicodeDecodeError):
        return False
    return isinstance(req, dict) and "tape_drive" in req


# ----------------------------------------------------------------------------------- drives
class _LunDrive:
    """A tape LUN (file) the server opened itself: positioned and written directly."""

    def __init__(self, name: str, lun: Any):
        self.name, self.records = name, lun

    def position_at(self, position: int | None) -> tuple[int, int | None]:
        if position is None:
            self.records.space(SpaceCode.END_OF_DATA, 0)
        else:
            self.records.locate(position)
        count = getattr(self.records, "file_number", None)
        return self.records.position(), count() if callable(count) else None

    def flush(self) -> None:
        self.records.flush()

    def close(self) -> None:
        self.records.close()


class _ScsiDrive:
    """A tape drive reached through pyscsi: LOCATE / SPACE / READ POSITION and READ/WRITE(6) as SCSI commands."""

    def __init__(self, name: str, device: Any):
        self.name, self.device = name, device
        self.records = TapeRecords(device, name)

    def position_at(self, position: int | None) -> tuple[int, int | None]:
        try:
            at, file_number = tape_client.position(self.device, position)
        except Exception as exc:  # noqa: BLE001 - refused or gone, any transport: the session fails
            what = "LOCATE" if position is not None else "SPACE to end of data"
            raise TapeLanError(f"tape drive {self.name}: {what} failed: {exc}") from None
        if position is not None and at != position:
            raise TapeLanError(f"tape drive {self.name}: LOCATE to logical object {position} left the drive at {at}")
        return at, file_number

    def flush(self) -> None:
        self.records.write_filemarks(0)  # zero filemarks: flush the drive's buffer (SSC)

    def close(self) -> None:
        close = getattr(self.device, "close", None)
        if callable(close):
            close()


def open_drive(name: str, spec: Any) -> _LunDrive | _ScsiDrive:
    """The server's drive ``name`` from ``spec``: a tape LUN file path, a device URL, a StreamLun or a pyscsi device."""
    if isinstance(spec, (str, Path)):
        text = str(spec)
        if text.startswith(("iscsi://", "/dev/")):
            return _ScsiDrive(name, open_device(text))
        if not Path(text).is_file():
            raise ValueError(f"tape drive {name}: {text} is neither an iscsi:// URL, a /dev/ path nor a tape file")
        return _LunDrive(name, TapeLun(name, text))
    if callable(getattr(spec, "locate", None)) and callable(getattr(spec, "write_filemarks", None)):
        return _LunDrive(name, spec)
    if callable(getattr(spec, "execute", None)):
        return _ScsiDrive(name, spec)
    raise ValueError(f"tape drive {name}: {spec!r} is not a tape file, a device URL, a tape LUN or a pyscsi device")


class TapeDrives:
    """The drives a backup server owns, opened on first use; one LAN session at a time per drive."""

    def __init__(self, specs: dict[str, Any]):
        self._specs = dict(specs)
        self._open: dict[str, _LunDrive | _ScsiDrive] = {}
        self._busy: dict[str, threading.Lock] = {n: threading.Lock() for n in specs}
        self._guard = threading.Lock()

    def names(self) -> list[str]:
        return sorted(self._specs)

    def acquire(self, name: str) -> _LunDrive | _ScsiDrive:
        if name not in self._specs:
            raise LookupError(f"tape drive {name!r} is not served here (known: {', '.join(self.names()) or 'none'})")
        if not self._busy[name].acquire(blocking=False):
            raise TapeLanError(f"tape drive {name} is busy with another LAN session")
        try:
            with self._guard:
                if name not in self._open:
                    self._open[name] = open_drive(name, self._specs[name])
                return self._open[name]
        except BaseException:
            self._busy[name].release()
            raise

    def release(self, name: str) -> None:
        self._busy[name].release()

    def close(self) -> None:
        with self._guard:
            for drive in self._open.values():
                try:
                    drive.close()
                except Exception as exc:  # noqa: BLE001 - closing is best effort
                    log.info("closing tape drive %s: %s", drive.name, exc)
            self._open.clear()


class TapeSession:
    """One connection's tape session on the server (created by OPEN, ended by the connection)."""

    def __init__(self, drives: TapeDrives, payload: bytes):
        try:
            self.req = TapeOpen.model_validate_json(payload)
        except ValidationError as e:
            first = e.errors()[0]
            raise LanProtocolError(f"tape OPEN payload field {'.'.join(map(str, first['loc'])) or '(root)'}: "
                                   f"{first['msg']}") from None
        self.fmt = self.req.fmt
        self._drives = drives
        self.drive = drives.acquire(self.req.tape_drive)
        self._next = 0  # image offset the next piece may start at (pieces come in image order)
        try:
            self.position, self.file_number = self._drive_call("positioning", self.drive.position_at,
                                                               self.req.position)
        except BaseException:
            drives.release(self.req.tape_drive)
            raise
        log.info("LAN tape session on %s (%s) at logical object %d", self.drive.name, self.req.mode, self.position)

    def opened(self) -> Frame:
        return Frame(OP_ACK, payload=json.dumps({"position": self.position,
                                                 "file_number": self.file_number}).encode())

    def _drive_call(self, what: str, fn: Callable[..., Any], *args: Any) -> Any:
        """Run a drive command; its refusal becomes a TapeLanError naming the drive (the client's ERROR)."""
        try:
            return fn(*args)
        except (LanProtocolError, TapeLanError):
            raise
        except Exception as exc:  # noqa: BLE001 - LunError, CHECK CONDITION, transport: all end the session
            raise TapeLanError(f"tape drive {self.drive.name}: {what} failed: {exc}") from exc

    def _in_order(self, f: Frame) -> None:
        if f.image_offset < self._next:
            raise LanProtocolError(f"{OP_NAMES[f.op]} at image offset {f.image_offset}: a tape session takes "
                                   f"pieces in image order (next may start at {self._next})")
        self._next = f.image_offset + f.length

    def handle(self, f: Frame) -> Frame:
        """Answer one request frame of this session."""
        if f.op == OP_PUT:
            if self.req.mode != "write":
                raise LanProtocolError("PUT in a tape read session")
            if f.compressed or len(f.payload) != f.length:
                raise LanProtocolError(f"PUT at image offset {f.image_offset}: a tape piece is sent uncompressed "
                                       f"and whole ({len(f.payload)} bytes for a piece of {f.length})")
            self._in_order(f)
            self._drive_call(f"writing the piece at image offset {f.image_offset}", write_piece, self.drive.records,
                             f.payload, self.fmt)
            return Frame(OP_ACK, f.image_offset, f.length)
        if f.op == OP_GET:
            if f.compressed:
                raise LanProtocolError(f"GET at image offset {f.image_offset}: tape records are never compressed")
            self._in_order(f)
            data = self._drive_call(f"reading the piece at image offset {f.image_offset}", read_piece,
                                    self.drive.records, f.length, self.fmt)
            return Frame(OP_DATA, f.image_offset, f.length, False, data)
        if f.op == OP_MARK:
            if self.req.mode != "write":
                raise LanProtocolError("MARK in a tape read session")
            self._drive_call("WRITE FILEMARKS", self.drive.records.write_filemarks, 1)
            return Frame(OP_ACK)
        if f.op == OP_SYNC:
            if self.req.mode == "write":
                self._drive_call("flushing", self.drive.flush)
            return Frame(OP_ACK)
        raise LanProtocolError(f"{OP_NAMES[f.op]} is not part of a tape session")

    def close(self) -> None:
        self._drives.release(self.req.tape_drive)


# ----------------------------------------------------------------------------------- client
class TapeLanClient(LanClient):
    """The client end of a tape session: the server positions its drive and says where it stands."""

    def __init__(self, address: str, drive: str, mode: str, fmt: TapeFormat, position: int | None,
                 timeout: float = 30.0):
        self.sock = connect(address, timeout)
        try:
            ack = self._call(Frame(OP_OPEN, payload=json.dumps(
                {"tape_drive": drive, "mode": mode, "position": position, "record_bytes": fmt.record_bytes,
                 "fixed": fmt.fixed, "block_length": fmt.block_length}).encode()), OP_ACK)
            where = json.loads(ack.payload.decode())
            self.position = int(where["position"])
            self.file_number = None if where.get("file_number") is None else int(where["file_number"])
        except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
            self.sock.close()
            raise LanProtocolError(f"tape OPEN answer is not {{position, file_number}}: {exc}") from None
        except BaseException:
            self.sock.close()
            raise
        if position is not None and self.position != position:
            self.sock.close()
            raise LanProtocolError(f"the backup server's drive {drive} stands at logical object {self.position}, "
                                   f"not {position}")

    def mark(self) -> None:
        self._call(Frame(OP_MARK), OP_ACK)

    def close(self) -> None:
        """End the session and wait until the server has released the drive (it closes its end after that),
        so a next session on the drive does not find it busy."""
        try:
            self.sock.shutdown(socket.SHUT_WR)
            while self.sock.recv(4096):
                pass
        except OSError:  # already gone or timed out: nothing more to wait for
            pass
        finally:
            self.sock.close()


def server_write(op: TapeServerWrite, read: Callable[[Piece], bytes], classify: Classify,
                 timeout: float = 60.0) -> TransferResult:
    """Carry out a :class:`TapeServerWrite`: stream each piece to the server, which writes its records.

    Only acknowledged pieces count; a source failure is blamed on the source,
    anything else on the server.
    """
    try:
        client = TapeLanClient(op.server, op.drive, "write", op.fmt, op.position, timeout)
    except Exception as exc:  # noqa: BLE001 - no session: nothing moved
        return TransferResult(0, failure=classify(exc, "LAN tape session could not start", op.server))
    done = 0
    with client:
        for p in op.pieces:
            try:
                data = read(p)
            except Exception as exc:  # noqa: BLE001
                return TransferResult(done, acknowledged(op.pieces, done), classify(exc, "read failed", op.source))
            try:
                client.put(p.image_offset, p.length, data)
            except Exception as exc:  # noqa: BLE001
                return TransferResult(done, acknowledged(op.pieces, done),
                                      classify(exc, "LAN tape write failed", op.server))
            done += 1
        try:
            if op.close:
                client.mark()
            client.sync()
        except Exception as exc:  # noqa: BLE001 - not closed: the caller must not catalogue the object
            return TransferResult(done, acknowledged(op.pieces, done),
                                  classify(exc, "closing filemark failed", op.server))
    return TransferResult(done, acknowledged(op.pieces, done))


def server_read(op: TapeServerRead, write: Callable[[Piece, bytes], None], classify: Classify,
                timeout: float = 60.0) -> TransferResult:
    """Carry out a :class:`TapeServerRead`: the server reads each piece's records and streams them back."""
    if not op.pieces:
        return TransferResult(0)
    try:
        client = TapeLanClient(op.server, op.drive, "read", op.fmt, op.position, timeout)
    except Exception as exc:  # noqa: BLE001
        return TransferResult(0, failure=classify(exc, "LAN tape session could not start", op.server))
    with client:
        return restore_pieces(op.pieces, lambda p: client.get(p.image_offset, p.length, p.length), write,
                              classify, "LAN tape read failed", op.server, op.destination)
