"""On-disk format of an emulated tape: a header, then length-prefixed entries.

File = 32-byte header, then entries in tape order.  Each entry is a 12-byte
entry header (kind, length, CRC-32 of the data) followed by ``length`` data
bytes; a filemark is an entry of kind 'F' with no data.  Writing only ever
appends (or truncates first, as overwriting the middle of a tape erases what
followed), so a crash leaves at worst a torn last entry, which opening reports
with its byte offset instead of guessing.
"""
from __future__ import annotations

import os
import zlib
from array import array
from collections.abc import Iterator
from dataclasses import dataclass

from scsi.layout import Field, Layout, LayoutError, raw, reserved

MAGIC = b"SFTAPE1\n"
VERSION = 1
RECORD = 0x52  # 'R'
FILEMARK = 0x46  # 'F'

TAPE_HEADER = Layout("tape header", 32, [
    raw("magic", 0, 8),
    Field("version", 8, size=2),
    reserved(10, 2),
    Field("capacity", 12, size=8, doc="bytes of data the medium holds; 0 = unlimited"),
    reserved(20, 12),
])

ENTRY_HEADER = Layout("tape entry", 12, [
    Field("kind", 0),
    reserved(1, 3),
    Field("length", 4, size=4),
    Field("crc32", 8, size=4),
])


class TapeFormatError(ValueError):
    """A tape file that is not in this format or is damaged, with where."""

    def __init__(self, path: str, offset: int, message: str):
        super().__init__(f"tape file {path}: byte {offset}: {message}")
        self.path = path
        self.offset = offset


@dataclass(frozen=True)
class Entry:
    offset: int  # of the entry header in the file
    kind: int
    length: int
    crc32: int

    @property
    def data_offset(self) -> int:
        return self.offset + ENTRY_HEADER.size

    @property
    def end(self) -> int:
        return self.data_offset + self.length


class EntryIndex:
    """A tape's entries in order as four compact columns: 17 bytes an entry instead of an `Entry` object each
    (a tape holding a 16 TiB image as 256 KiB records has 64 Mi of them).  Indexing gives an `Entry`."""

    __slots__ = ("offset", "length", "crc32", "kind")

    def __init__(self) -> None:
        self.offset = array("q")  # of each entry header in the file
        self.length = array("I")  # 4 bytes (the entry header holds 4)
        self.crc32 = array("I")
        self.kind = bytearray()

    def __len__(self) -> int:
        return len(self.kind)

    def __getitem__(self, i: int) -> Entry:
        return Entry(self.offset[i], self.kind[i], self.length[i], self.crc32[i])

    def __iter__(self) -> Iterator[Entry]:
        return (self[i] for i in range(len(self)))

    def append(self, offset: int, kind: int, length: int, crc32: int) -> None:
        self.offset.append(offset)
        self.length.append(length)
        self.crc32.append(crc32)
        self.kind.append(kind)

    def truncate(self, n: int) -> None:
        """Forget the entries from ``n`` on (the tape was overwritten there)."""
        for column in (self.offset, self.length, self.crc32, self.kind):
            del column[n:]

    def filemarks(self, end: int) -> int:
        """Filemarks among the first ``end`` entries."""
        return self.kind.count(FILEMARK, 0, end)


def new_header(capacity: int = 0) -> bytes:
    return TAPE_HEADER.encode(magic=MAGIC, version=VERSION, capacity=capacity)


def encode_entry(kind: int, data: bytes = b"") -> bytes:
    return ENTRY_HEADER.encode(kind=kind, length=len(data), crc32=zlib.crc32(data)) + data


SCAN_READ = 64 << 10  # bytes read at once while indexing a tape of small entries
_KIND, _LENGTH, _CRC = (ENTRY_HEADER.field(n) for n in ("kind", "length", "crc32"))
_RESERVED = tuple((f.offset, f.offset + f.size) for f in ENTRY_HEADER.fields if f.reserved)


def _plain_entry(buf: bytes, i: int) -> tuple[int, int, int] | None:
    """(kind, length, CRC) of a well-formed entry header at ``buf[i:]``; None when it is short or unusual."""
    if len(buf) - i < ENTRY_HEADER.size or any(buf[i + a:i + b].count(0) != b - a for a, b in _RESERVED):
        return None
    kind = buf[i + _KIND.offset]
    length = int.from_bytes(buf[i + _LENGTH.offset:i + _LENGTH.offset + _LENGTH.size], "big")
    if kind != RECORD and (kind != FILEMARK or length):
        return None
    return kind, length, int.from_bytes(buf[i + _CRC.offset:i + _CRC.offset + _CRC.size], "big")


def _check_entry(raw_head: bytes, pos: int, index: int, path: str) -> None:
    """Raise the TapeFormatError that names what is wrong with the entry header ``raw_head`` at ``pos``."""
    if len(raw_head) < ENTRY_HEADER.size:
        raise TapeFormatError(path, pos, f"entry {index} header is torn ({len(raw_head)} of {ENTRY_HEADER.size} "
                              "bytes)")
    try:
        e = ENTRY_HEADER.unpack_from(raw_head, 0, pos=pos)
    except LayoutError as err:
        raise TapeFormatError(path, err.offset or pos, f"entry {index}: {err.message}") from err
    if e["kind"] not in (RECORD, FILEMARK):
        raise TapeFormatError(path, pos, f"entry {index} has unknown kind {e['kind']:#04x}")
    raise TapeFormatError(path, pos + 4, f"filemark entry {index} claims {e['length']} data bytes")


def scan(fd: int, path: str) -> tuple[int, EntryIndex]:
    """Read the header and index every entry; raise TapeFormatError on damage."""
    size = os.fstat(fd).st_size
    head = os.pread(fd, TAPE_HEADER.size, 0)
    if len(head) < TAPE_HEADER.size:
        raise TapeFormatError(path, len(head), f"file is {size} bytes, shorter than the "
                              f"{TAPE_HEADER.size}-byte tape header")
    try:
        h = TAPE_HEADER.decode(head)
    except LayoutError as e:
        raise TapeFormatError(path, e.offset or 0, e.message) from e
    if h["magic"] != MAGIC:
        raise TapeFormatError(path, 0, f"magic {h['magic']!r} is not {MAGIC!r}: not an emulated tape")
    if h["version"] != VERSION:
        raise TapeFormatError(path, 8, f"format version {h['version']} is not supported (only {VERSION})")
    entries = EntryIndex()
    pos, buf, at = TAPE_HEADER.size, b"", 0  # buf holds the file's bytes from offset ``at``
    while pos < size:
        if not at <= pos <= at + len(buf) - ENTRY_HEADER.size:
            # small entries: read ahead, many headers a read; a large one: just the next header
            want = ENTRY_HEADER.size if entries.length and entries.length[-1] >= SCAN_READ else SCAN_READ
            buf, at = os.pread(fd, want, pos), pos
        fast = _plain_entry(buf, pos - at)
        if fast is None:  # short, or anything unusual: decoded strictly, which names the damage
            _check_entry(buf[pos - at:pos - at + ENTRY_HEADER.size], pos, len(entries), path)
        kind, length, crc32 = fast  # type: ignore[misc]
        end = pos + ENTRY_HEADER.size + length
        if end > size:
            raise TapeFormatError(path, pos + 4, f"entry {len(entries)} claims {length} bytes but "
                                  f"only {size - pos - ENTRY_HEADER.size} remain")
        entries.append(pos, kind, length, crc32)
        pos = end
    return h["capacity"], entries
