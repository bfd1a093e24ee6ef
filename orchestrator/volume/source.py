"""Where a volume's bytes come from: an image file, a block device, a LUN, or any reader.

Analysis needs only ``read(offset, length) -> bytes`` and ``size``;
`LunVolume` provides that over a block LUN (``read(lba, count)``), so a LUN
read through pyscsi is analysed exactly like an image file.  `ReaderStream` turns such a reader into the seekable binary
file object that parsers like dissect.ntfs expect.
"""
from __future__ import annotations

import io
import os
from collections import OrderedDict
from pathlib import Path
from typing import Protocol, runtime_checkable


class VolumeError(ValueError):
    """The volume's bytes cannot be analysed; the message says what and where."""


@runtime_checkable
class VolumeReader(Protocol):
    """Random-access read of a volume: ``size`` in bytes and ``read(offset, length)``."""

    @property
    def size(self) -> int: ...

    def read(self, offset: int, length: int) -> bytes: ...


class BytesVolume:
    """A volume held in memory (tests, small bundled images)."""

    def __init__(self, data: bytes | bytearray, name: str = "<memory>"):
        self._data = bytes(data)
        self.name = name

    @property
    def size(self) -> int:
        return len(self._data)

    def read(self, offset: int, length: int) -> bytes:
        return self._data[offset:offset + length]


class FileVolume:
    """An image file or a block device opened read-only."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.name = str(path)
        try:
            self._fh = open(self.path, "rb", buffering=0)  # noqa: SIM115 -- closed by close()
        except IsADirectoryError:
            raise VolumeError(f"{self.path}: is a directory, not a volume image or block device") from None
        self._size = self._fh.seek(0, os.SEEK_END)

    @property
    def size(self) -> int:
        return self._size

    def read(self, offset: int, length: int) -> bytes:
        return os.pread(self._fh.fileno(), length, offset)

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> FileVolume:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@runtime_checkable
class BlockDevice(Protocol):
    """A block LUN as scsi.luns.BlockLun shows it: ``read(lba, count)`` of whole blocks."""

    @property
    def block_size(self) -> int: ...

    @property
    def num_blocks(self) -> int: ...

    def read(self, lba: int, count: int) -> bytes: ...


class LunVolume:
    """Byte-addressed reads over a block LUN (e.g. ``scsi.luns.remote.RemoteLun``: READ(16) via pyscsi).

    Parsers read many small, unaligned pieces; they are served from an LRU
    cache of 64 KiB pages so each page crosses the SAN once.
    """

    PAGE_BYTES = 64 * 1024

    def __init__(self, lun: BlockDevice, name: str | None = None, cache_pages: int = 64):
        if lun.block_size <= 0:
            raise VolumeError(f"{name or repr(lun)}: block size {lun.block_size} is not positive")
        self.lun = lun
        self.name = name or getattr(lun, "name", repr(lun))
        self._page_blocks = max(1, self.PAGE_BYTES // lun.block_size)
        self._page_bytes = self._page_blocks * lun.block_size
        self._cache: OrderedDict[int, bytes] = OrderedDict()
        self._cache_pages = max(1, cache_pages)

    @property
    def size(self) -> int:
        return self.lun.block_size * self.lun.num_blocks

    def _page(self, index: int) -> bytes:
        page = self._cache.get(index)
        if page is None:
            lba = index * self._page_blocks
            page = self.lun.read(lba, min(self._page_blocks, self.lun.num_blocks - lba))
            self._cache[index] = page
            if len(self._cache) > self._cache_pages:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(index)
        return page

    def read(self, offset: int, length: int) -> bytes:
        end = min(offset + length, self.size)
        parts = []
        pos = max(offset, 0)
        while pos < end:
            index, inner = divmod(pos, self._page_bytes)
            piece = self._page(index)[inner:inner + end - pos]
            if not piece:
                break
            parts.append(piece)
            pos += len(piece)
        return b"".join(parts)


class ReaderStream(io.RawIOBase):
    """A read-only, seekable file object over a `VolumeReader`."""

    def __init__(self, reader: VolumeReader):
        super().__init__()
        self._reader = reader
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._reader.size}[whence]
        if base + offset < 0:
            raise OSError(f"seek to negative offset {base + offset}")
        self._pos = base + offset
        return self._pos

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def]
        want = min(len(buffer), max(0, self._reader.size - self._pos))
        data = self._reader.read(self._pos, want) if want else b""
        buffer[: len(data)] = data
        self._pos += len(data)
        return len(data)

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            size = max(0, self._reader.size - self._pos)
        want = min(size, max(0, self._reader.size - self._pos))
        data = self._reader.read(self._pos, want) if want else b""
        self._pos += len(data)
        return data


def open_volume(source: str | Path | VolumeReader | BlockDevice) -> VolumeReader:
    """A reader for a path (image file or block device), a block LUN, or an existing reader.

    An object with ``block_size``, ``num_blocks`` and ``read(lba, count)`` is a
    block LUN (scsi.luns.BlockLun, a snapshot view); one with ``size`` and
    ``read(offset, length)`` and no ``num_blocks`` is used as it is.
    """
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.exists():
            raise VolumeError(f"{path}: no such volume image or device")
        return FileVolume(path)
    if isinstance(source, BlockDevice):
        return LunVolume(source)
    if isinstance(source, VolumeReader):
        return source
    raise TypeError(f"cannot read a volume from {type(source).__name__}: need a path, a block LUN "
                    "(block_size, num_blocks, read(lba, count)) or read(offset, length) + size")
