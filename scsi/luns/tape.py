"""An emulated sequential-access (tape) LUN stored in one file.

See :mod:`scsi.luns.tape_format` for the file layout.  Semantics follow SSC
closely enough for a copy manager: variable- and fixed-block reads and writes,
filemarks, SPACE over blocks/filemarks/to end of data, LOCATE to a logical
object, and the usual sense (FILEMARK DETECTED, END-OF-DATA DETECTED under
BLANK CHECK, ILI for a record of the wrong length, VOLUME OVERFLOW at the end
of a capacity-limited medium, MEDIUM ERROR for a record whose CRC is wrong).
"""
from __future__ import annotations

import os
import threading
import zlib
from pathlib import Path

from scsi.luns.base import LunError, SpaceCode, StreamLun, medium_error
from scsi.luns.identity import serial_for_path
from scsi.luns.tape_format import (ENTRY_HEADER, FILEMARK, RECORD, TAPE_HEADER, Entry, encode_entry,
                                   new_header,
                                   scan)


def _filemark(name: str, pos: int, partial: bytes = b"") -> LunError:
    return LunError(f"tape {name}: filemark at object {pos}", key=0x0, asc=0x00, ascq=0x01,
                    filemark=True, partial=partial, information=pos)


def _end_of_data(name: str, pos: int, partial: bytes = b"") -> LunError:
    return LunError(f"tape {name}: end of data at object {pos}", key=0x8, asc=0x00, ascq=0x05,
                    eom=False, partial=partial, information=pos)


class TapeLun(StreamLun):
    """A tape in a file; position counts records and filemarks from 0."""

    def __init__(self, name: str, path: str | os.PathLike[str], *, create: bool = False,
                 capacity: int = 0, serial: str | None = None, naa: bytes | None = None,
                 read_only: bool = False):
        self.path = Path(path)
        super().__init__(name, serial=serial or serial_for_path(str(self.path.resolve())), naa=naa)
        self.read_only = read_only
        self._lock = threading.Lock()
        if create and not self.path.exists():
            with open(self.path, "wb") as f:
                f.write(new_header(capacity))
        try:
            self._fd = os.open(self.path, (os.O_RDONLY if read_only else os.O_RDWR) | os.O_CLOEXEC)
        except OSError as e:
            raise ValueError(f"tape {name}: cannot open {self.path}: {e.strerror}") from e
        try:
            self.capacity, self._entries = scan(self._fd, str(self.path))
        except ValueError:
            os.close(self._fd)
            raise
        self._pos = 0

    # -- inspection ------------------------------------------------------------------
    @property
    def end_of_data(self) -> int:
        return len(self._entries)

    def position(self) -> int:
        return self._pos

    def file_number(self, position: int | None = None) -> int:
        """Filemarks before ``position`` (the current one by default): the SSC logical file identifier."""
        with self._lock:
            end = self._pos if position is None else max(0, min(position, len(self._entries)))
            return self._entries.filemarks(end)

    def objects(self) -> list[bytes | None]:
        """Every record's data (None for a filemark), in tape order -- for tests and tools."""
        with self._lock:
            return [None if e.kind == FILEMARK else self._data(e, i) for i, e in enumerate(self._entries)]

    def _data(self, e: Entry, index: int) -> bytes:
        data = os.pread(self._fd, e.length, e.data_offset)
        if len(data) != e.length or zlib.crc32(data) != e.crc32:
            raise medium_error(self.name, f"record at object {index} (byte {e.offset}) fails its CRC check",
                               information=index)
        return data

    # -- reading -----------------------------------------------------------------------
    def read(self, length: int, *, fixed: bool = False, block_size: int = 0) -> bytes:
        if length < 0:
            raise ValueError("negative transfer length")
        with self._lock:
            if not fixed:
                return self._read_one(length)
            if block_size <= 0:
                raise ValueError(f"tape {self.name}: fixed-block read needs a block size")
            out = bytearray()
            for _ in range(length):
                try:
                    rec = self._read_one(block_size, partial=bytes(out))
                except LunError as e:
                    e.partial = bytes(out) + (e.partial if e.ili else b"")
                    raise
                if len(rec) != block_size:
                    raise LunError(f"tape {self.name}: record of {len(rec)} bytes in fixed "
                                   f"{block_size}-byte mode", key=0x0, asc=0x00, ascq=0x00, ili=True,
                                   partial=bytes(out), information=block_size - len(rec))
                out += rec
            return bytes(out)

    def _read_one(self, length: int, partial: bytes = b"") -> bytes:
        if self._pos >= len(self._entries):
            raise _end_of_data(self.name, self._pos, partial)
        e = self._entries[self._pos]
        self._pos += 1
        if e.kind == FILEMARK:
            raise _filemark(self.name, self._pos - 1, partial)
        data = self._data(e, self._pos - 1)
        if len(data) > length:
            raise LunError(f"tape {self.name}: record of {len(data)} bytes is longer than the "
                           f"{length} requested", key=0x0, asc=0x00, ascq=0x00, ili=True,
                           partial=data[:length], information=(length - len(data)) & 0xFFFFFFFF)
        return data

    # -- writing -------------------------------------------------------------------------
    def _offset_here(self) -> int:
        """The file offset a write at the current position starts at."""
        if self._pos < len(self._entries):
            return self._entries[self._pos].offset
        return self._entries[-1].end if self._entries else TAPE_HEADER.size

    def _truncate_here(self) -> int:
        """Erase everything after the current position (writing mid-tape); return the append offset."""
        cut = self._offset_here()
        if self._pos < len(self._entries):
            os.ftruncate(self._fd, cut)
            self._entries.truncate(self._pos)
        return cut

    def _append(self, kind: int, records: list[bytes]) -> None:
        if self.read_only:
            raise LunError(f"tape {self.name} is write protected", key=0x7, asc=0x27, ascq=0x00)
        size = sum(ENTRY_HEADER.size + len(r) for r in records)
        end = self._offset_here()
        if self.capacity and end + size - TAPE_HEADER.size > self.capacity:
            raise LunError(f"tape {self.name}: medium full ({self.capacity} bytes)", key=0xD,
                           asc=0x00, ascq=0x02, eom=True)
        at = self._truncate_here()
        blob = b"".join(encode_entry(kind, r) for r in records)
        view = memoryview(blob)
        off = at
        while view:
            n = os.pwrite(self._fd, view, off)
            view = view[n:]
            off += n
        for r in records:
            self._entries.append(at, kind, len(r), zlib.crc32(r))
            at += ENTRY_HEADER.size + len(r)
        self._pos = len(self._entries)

    def write(self, data: bytes, *, fixed: bool = False, block_size: int = 0) -> None:
        with self._lock:
            if not fixed:
                self._append(RECORD, [bytes(data)])
                return
            if block_size <= 0 or len(data) % block_size:
                raise ValueError(f"tape {self.name}: {len(data)} bytes is not a whole number of "
                                 f"{block_size}-byte blocks")
            self._append(RECORD, [bytes(data[i:i + block_size]) for i in range(0, len(data), block_size)])

    def write_filemarks(self, count: int) -> None:
        if count < 0:
            raise ValueError("negative filemark count")
        with self._lock:
            for done in range(0, count, 4096):  # bounded memory for huge counts
                self._append(FILEMARK, [b""] * min(4096, count - done))

    def flush(self) -> None:
        if not self.read_only:
            os.fsync(self._fd)

    # -- positioning -------------------------------------------------------------------
    def space(self, code: int, count: int) -> None:
        with self._lock:
            if code == SpaceCode.END_OF_DATA:
                self._pos = len(self._entries)
            elif code == SpaceCode.BLOCKS:
                self._space_blocks(count)
            elif code == SpaceCode.FILEMARKS:
                self._space_filemarks(count)
            else:
                raise LunError(f"tape {self.name}: SPACE code {code} is not supported",
                               key=0x5, asc=0x24, ascq=0x00)

    def _step(self, step: int) -> int:
        """Move one object forward (``step`` 1) or back (-1); return the index of the object passed over."""
        nxt = self._pos if step > 0 else self._pos - 1
        if nxt < 0:
            raise LunError(f"tape {self.name}: beginning of medium", key=0x0, asc=0x00, ascq=0x04, eom=True)
        if nxt >= len(self._entries):
            raise _end_of_data(self.name, self._pos)
        self._pos += step
        return nxt

    def _space_blocks(self, count: int) -> None:
        step = 1 if count >= 0 else -1
        for _ in range(abs(count)):
            nxt = self._step(step)
            if self._entries.kind[nxt] == FILEMARK:
                raise _filemark(self.name, nxt)

    def _space_filemarks(self, count: int) -> None:
        step = 1 if count >= 0 else -1
        left = abs(count)
        while left:
            if self._entries.kind[self._step(step)] == FILEMARK:
                left -= 1

    def locate(self, position: int) -> None:
        with self._lock:
            if not 0 <= position <= len(self._entries):
                raise LunError(f"tape {self.name}: object {position} lies past end of data "
                               f"({len(self._entries)})", key=0x8, asc=0x00, ascq=0x05)
            self._pos = position

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
