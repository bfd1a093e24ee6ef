"""Sequential-access (tape) storage pools behind the server: its drives, one job per drive, its records.

A storage pool is a tape pool when its device class has a tape DEVTYPE (LTO,
3592, ...) and a LIBRARY; the library's DRIVEs are the pool's drives, and each
drive's device is the DEVICE= of the server's PATH to it (``DEFINE PATH SRV1
DRV1 SRCTYPE=SERVER DESTTYPE=DRIVE LIBRARY=LIB1 DEVICE=iscsi://...``), an
``iscsi://`` tape LUN, ``/dev/sgN`` or an emulated tape file on the server.
Its volumes are cartridges: ``DEFINE VOLUME TAPEPOOL VOL001 DRIVE=DRV1``
(the cartridge sits in that drive, a manual library).

The server owns the drives: a job holds a drive from its first to its last
record (:class:`Drives`), and another job wanting it is refused with the
holder's name.  On the LAN path the client sends its pieces over the session
in image order and the server lays them as the very records a data mover
writes (variable-block, :data:`RECORD_BYTES` per record, the last of a piece
short), so an object is restorable server-free or over the LAN whichever path
wrote it; the catalogue keeps its :class:`TapeLocation`.  Server-free copies
to and from tape are the job core's (:mod:`orchestrator.job.move_tape`), run
by :mod:`orchestrator.server.serverfree` with the drive held.
"""
from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from orchestrator.digest_spool import DigestSpool
from orchestrator.job.digest import ChunkDigester
from orchestrator.piece_stream import PieceStream
from orchestrator.ops.tape import DEFAULT_RECORD_BYTES, TapeFormat
from orchestrator.ops.tape_records import read_piece, write_piece
from orchestrator.plan.tape_position import RecordCursor, TapeLocation

RECORD_BYTES = DEFAULT_RECORD_BYTES
FORMAT = TapeFormat(RECORD_BYTES)
DISK_DEVTYPES = {"DISK", "FILE"}


class DriveBusy(LookupError):
    """The drive a job needs is held by another job (one job per drive)."""


@dataclass(frozen=True)
class TapePool:
    name: str
    library: str
    drives: dict[str, str]  # drive name -> its device on the server (PATH ... DEVICE=), in definition order


def tape_pool(store: Any, pool: str) -> TapePool | None:
    """The tape pool ``pool`` (None: a disk or FILE pool), from the server's definitions; LookupError says what
    is missing (device class, library, drives, a drive's PATH DEVICE=)."""
    from orchestrator.server.commands import current_topology

    topo = current_topology(store)
    sp = next((p for p in topo.stgpools if p.name.upper() == pool.upper()), None)
    if sp is None or sp.devclass.upper() == "DISK":
        return None
    dc = next((d for d in topo.devclasses if d.name.upper() == sp.devclass.upper()), None)
    if dc is None or dc.devtype.upper() in DISK_DEVTYPES:
        return None
    if not dc.library:
        raise LookupError(f"device class {dc.name} of tape pool {sp.name} names no LIBRARY=")
    lib = next((x for x in topo.libraries if x.name.upper() == dc.library.upper()), None)
    if lib is None or not lib.drives:
        raise LookupError(f"library {dc.library} of tape pool {sp.name} has no drive (DEFINE DRIVE {dc.library} "
                          "NAME WWN=...)")
    drives: dict[str, str] = {}
    for d in lib.drives:
        path = next((p for p in topo.tsm_paths if p.desttype == "DRIVE" and p.srctype == "SERVER"
                     and p.destination.upper() == d.name.upper() and p.device), None)
        if path is not None and d.online and path.online:
            drives[d.name.upper()] = str(path.device)
    if not drives:
        raise LookupError(f"no drive of library {lib.name} has an online PATH from the server with DEVICE= "
                          f"(DEFINE PATH SERVER1 DRIVE SRCTYPE=SERVER DESTTYPE=DRIVE LIBRARY={lib.name} DEVICE=...)")
    return TapePool(sp.name.upper(), lib.name.upper(), drives)


def open_drive(name: str, device: str) -> Any:
    """A pyscsi device for a drive's DEVICE=: iscsi:// or /dev/sg through scsi.devices, else an emulated tape file."""
    from scsi.devices import InProcessDevice, open_device

    if device.startswith(("iscsi://", "/dev/")):
        return open_device(device)
    from scsi.luns import TapeLun
    from scsi.target.tapedev import TapeLunDevice

    try:
        lun = TapeLun(name, device)
    except (OSError, ValueError) as exc:
        raise LookupError(f"drive {name}: DEVICE={device}: {exc}") from None
    dev = InProcessDevice(TapeLunDevice(lun))
    dev.lun = lun  # closed with the device (close_drive)
    return dev


def close_drive(dev: Any) -> None:
    if dev is None:
        return
    for what in (dev, getattr(dev, "lun", None)):
        close = getattr(what, "close", None)
        if close is not None:
            try:
                close()
            except Exception:  # noqa: BLE001 - closing a drive that is gone
                pass


def designator(dev: Any, name: str) -> str:
    """The drive's VPD 83h designator (hex), as a data mover names it in a target descriptor."""
    from pyscsi.pyscsi.scsi import SCSI

    from scsi.designators import choose_lu_designator, parse_vpd83, read_vpd83

    try:
        return choose_lu_designator(parse_vpd83(read_vpd83(SCSI(dev)))).designator
    except Exception as exc:  # noqa: BLE001 - reported with the drive's name
        raise LookupError(f"drive {name}: cannot read its designator (VPD 83h): {exc}") from None


class Drives:
    """Which job holds which drive: one job per drive, the others refused with the holder's name."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: dict[str, str] = {}

    def acquire(self, drive: str, who: str) -> None:
        with self._lock:
            holder = self._held.get(drive)
            if holder is not None and holder != who:
                raise DriveBusy(f"drive {drive} is in use by {holder} (one job per drive); try again when it ends")
            self._held[drive] = who

    def release(self, drive: str, who: str) -> None:
        with self._lock:
            if self._held.get(drive) == who:
                del self._held[drive]

    def held(self) -> dict[str, str]:
        with self._lock:
            return dict(self._held)


@dataclass
class TapeWriter:
    """A LAN backup's records on the drive the server holds: pieces in image order, then the filemark.

    The PUTs tile the image from 0, so what the closing check needs of them is their count, their records
    and a digest of their lengths in order -- not a list of millions of (offset, length) pairs."""

    drive: str
    volume: str
    dev: Any
    first_object: int
    file_number: int | None
    next_offset: int = 0
    pieces: int = 0  # PUTs so far (one PUT = one piece)
    records: int = 0  # records they occupy
    _lengths: Any = field(default_factory=lambda: hashlib.blake2b(digest_size=16), repr=False)

    @classmethod
    def at_end_of_data(cls, drive: str, volume: str, dev: Any) -> "TapeWriter":
        from scsi import tape_client

        pos, file_number = tape_client.position(dev, None)
        return cls(drive, volume, dev, pos, file_number)

    def put(self, image_offset: int, data: bytes) -> None:
        from scsi.tape_client import TapeRecords

        if image_offset != self.next_offset:
            raise ValueError(f"a tape object is written in image order: the next piece starts at image offset "
                             f"{self.next_offset}, not {image_offset}")
        write_piece(TapeRecords(self.dev, self.drive), data, FORMAT)
        self._lengths.update(len(data).to_bytes(8, "little"))
        self.pieces += 1
        self.records += FORMAT.records(len(data))
        self.next_offset = image_offset + len(data)

    def _same(self, pieces: Any) -> bool:
        """Whether ``pieces`` are the PUTs: the same lengths in order, tiling the image from 0, none compressed
        (read block by block)."""
        lengths, pos, count = hashlib.blake2b(digest_size=16), 0, 0
        for b in PieceStream.of(pieces).blocks():
            if b.image_offset != pos or not b.tiles or b.compressed.any():
                return False
            lengths.update(b.length.astype("<i8").tobytes())
            pos, count = b.image_end, count + len(b)
        return (count, pos, lengths.digest()) == (self.pieces, self.next_offset, self._lengths.digest())

    def digests(self, pieces: Any, chunk_size: int) -> DigestSpool:
        """Chunk digests of the records read back from the tape (``pieces``: the PUTs with their volume offsets),
        in ascending chunk order, each kept as soon as the pieces have passed its chunk."""
        from scsi import tape_client
        from scsi.tape_client import TapeRecords

        if not self._same(pieces):
            raise ValueError("a tape object is digested as written: name every piece PUT, in image order")
        tape_client.position(self.dev, self.first_object)
        tape = TapeRecords(self.dev, self.drive)
        stream = PieceStream.of(pieces)
        return DigestSpool(read_back_digests(stream, lambda n: read_piece(tape, n, FORMAT), chunk_size,
                                             volume_ascending(stream)))

    def close(self, pieces: Any) -> str:
        """Write the closing filemark after the last record; the catalogue's tape location."""
        from scsi import tape_client
        from scsi.tape_client import TapeRecords

        if not self._same(pieces):
            raise ValueError("the committed pieces are not the pieces written on tape (one PUT per piece, "
                             "uncompressed, in image order)")
        tape_client.position(self.dev, self.first_object + self.records)  # a read-back may have moved it
        TapeRecords(self.dev, self.drive).write_filemarks(1)
        return TapeLocation(volume=self.volume, drive=self.drive, file_number=self.file_number,
                            first_object=self.first_object, records=self.records,
                            record_bytes=FORMAT.record_bytes).encode()


def volume_ascending(pieces: PieceStream) -> bool:
    """Whether each piece starts at or after the end of the one before it in the volume (what an image's
    pieces do), checked block by block."""
    end = -1
    for b in pieces.blocks():
        if int(b.volume_offset[0]) < end or not (b.volume_offset[1:] >= b.volume_offset[:-1] + b.length[:-1]).all():
            return False
        end = int(b.volume_offset[-1] + b.length[-1])
    return True


def read_back_digests(pieces: Iterable[Any], read: Callable[[int], bytes], chunk_size: int,
                      ascending: bool) -> Iterator[tuple[int, str]]:
    """Chunk digests of pieces read back from tape in order (``read(length)``: the next piece's bytes), in
    ascending chunk order.  Pieces in ascending volume order give each chunk's digest as soon as they have
    passed it (one or two open chunks, not a hasher per chunk of the image); others are digested whole first."""
    digester = ChunkDigester(chunk_size)
    for volume_offset, length in _volume_ranges(pieces):
        digester.update(volume_offset, read(length))
        if ascending:
            yield from digester.take_below((volume_offset + length - 1) // chunk_size)
    yield from digester.take_below(1 << 63)


def _volume_ranges(pieces: Iterable[Any]) -> Iterator[tuple[int, int]]:
    """(volume offset, length) of each piece; a stream's from its columns, two of them at a time."""
    if not isinstance(pieces, PieceStream):
        yield from ((p.volume_offset, p.length) for p in pieces)
        return
    for b in pieces.blocks():
        yield from zip(b.volume_offset.tolist(), b.length.tolist())


def read_range(dev: Any, drive: str, rec: Any, image_offset: int, length: int, at: list[int],
               pieces: RecordCursor) -> bytes:
    """``length`` image bytes of tape object ``rec`` from ``image_offset`` (a record boundary, inside one piece).

    ``at`` holds the drive's logical object after the previous read of this session (LOCATE only when needed);
    ``pieces`` finds the piece and its record in the object's map (a cursor: the map is not listed).
    """
    from scsi import tape_client
    from scsi.tape_client import TapeRecords

    loc = TapeLocation.decode(rec.tape_location, f"object {rec.id}")
    piece = pieces.piece(image_offset)
    if piece is None or image_offset + length > piece[0] + piece[1]:
        raise ValueError(f"image bytes {image_offset}-{image_offset + length} are not inside one piece of "
                         f"object {rec.id}")
    start, size, record = piece
    inside = image_offset - start
    if inside % loc.fmt.unit:
        raise ValueError(f"image offset {image_offset} falls inside a {loc.fmt.unit}-byte tape record "
                         f"of the piece at {start}")
    first = loc.first_object + record + inside // loc.fmt.unit
    if at[0] != first:
        tape_client.position(dev, first)
    data = read_piece(TapeRecords(dev, drive), length, loc.fmt) if (inside + length == size or
                                                                     length % loc.fmt.unit == 0) else None
    if data is None:
        raise ValueError(f"a read of {length} bytes at image offset {image_offset} ends inside a tape record")
    at[0] = first + loc.fmt.records(length)
    return data
