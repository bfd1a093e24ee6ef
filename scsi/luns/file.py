"""A block LUN backed by a regular file or a block device (os.pread/pwrite).

pread/pwrite release the GIL and carry no shared file offset, so several
reads and writes may be outstanding at once from the driver's threads.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path

from scsi.luns.base import BlockLun, LunError, medium_error, write_protected
from scsi.luns.identity import serial_for_path


class FileBlockLun(BlockLun):
    """Logical blocks at ``block_size`` granularity of a file or block device."""

    def __init__(self, name: str, path: str | os.PathLike[str], *, block_size: int = 512,
                 serial: str | None = None, naa: bytes | None = None, read_only: bool = False,
                 size: int | None = None):
        self.path = Path(path)
        super().__init__(name, serial=serial or serial_for_path(str(self.path.resolve())), naa=naa)
        if block_size <= 0 or block_size & (block_size - 1):
            raise ValueError(f"LUN {name}: block size {block_size} is not a power of two")
        self._block_size = block_size
        self.read_only = read_only
        flags = (os.O_RDONLY if read_only else os.O_RDWR) | getattr(os, "O_CLOEXEC", 0)
        try:
            if size is not None and not self.path.exists():
                with open(self.path, "wb") as f:
                    f.truncate(size)
            self._fd = os.open(self.path, flags)
        except OSError as e:
            raise ValueError(f"LUN {name}: cannot open {self.path}: {e.strerror}") from e
        st = os.fstat(self._fd)
        if stat.S_ISBLK(st.st_mode):
            length = os.lseek(self._fd, 0, os.SEEK_END)
        elif stat.S_ISREG(st.st_mode):
            length = st.st_size
        else:
            os.close(self._fd)
            raise ValueError(f"LUN {name}: {self.path} is neither a regular file nor a block device")
        self._num_blocks = length // block_size
        if self._num_blocks == 0:
            os.close(self._fd)
            raise ValueError(f"LUN {name}: {self.path} is smaller than one {block_size}-byte block")

    @property
    def block_size(self) -> int:
        return self._block_size

    @property
    def num_blocks(self) -> int:
        return self._num_blocks

    def _fd_or_fail(self) -> int:
        if self._fd < 0:
            raise LunError(f"LUN {self.name} is closed", key=0x2, asc=0x3A, ascq=0x00)
        return self._fd

    def read(self, lba: int, count: int) -> bytes:
        self.check_range(lba, count)
        want = count * self._block_size
        offset = lba * self._block_size
        try:
            data = os.pread(self._fd_or_fail(), want, offset)
        except OSError as e:
            raise medium_error(self.name, f"read at LBA {lba} failed: {e.strerror}", lba) from e
        if len(data) < want:  # file shrank under us
            raise medium_error(self.name, f"short read at LBA {lba}: {len(data)} of {want} bytes", lba)
        return data

    def write(self, lba: int, data: bytes) -> None:
        """Write whole blocks, holding their range shared (COMPARE AND WRITE / ORWRITE hold it exclusive)."""
        with self.ranges.hold(lba, len(data) // self._block_size):
            self.write_unlocked(lba, data)

    def write_unlocked(self, lba: int, data: bytes) -> None:
        if len(data) % self._block_size:
            raise ValueError(f"LUN {self.name}: {len(data)} bytes is not a whole number of blocks")
        self.check_range(lba, len(data) // self._block_size)
        if self.read_only:
            raise write_protected(self.name)
        view = memoryview(data)
        offset = lba * self._block_size
        fd = self._fd_or_fail()
        try:
            while view:
                n = os.pwrite(fd, view, offset)
                view = view[n:]
                offset += n
        except OSError as e:
            raise LunError(f"LUN {self.name}: write at LBA {lba} failed: {e.strerror}",
                           key=0x3, asc=0x0C, ascq=0x00, information=lba) from e

    def flush(self) -> None:
        if self._fd >= 0 and not self.read_only:
            os.fsync(self._fd)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __del__(self) -> None:  # best effort; explicit close() is the rule
        try:
            self.close()
        except Exception:
            pass
