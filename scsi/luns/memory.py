"""A sparse in-memory block LUN for tests and simulation.

Only written chunks take memory, so a simulated 1 TiB disk costs nothing
until data lands on it; unwritten blocks read as zeros.
"""
from __future__ import annotations

import threading

from scsi.luns.base import BlockLun, write_protected

CHUNK = 1 << 16  # bytes per stored piece


class MemoryBlockLun(BlockLun):
    """Block LUN kept in a dict of 64 KiB chunks (absent chunk = zeros)."""

    def __init__(self, name: str, *, block_size: int = 512, num_blocks: int,
                 serial: str | None = None, naa: bytes | None = None, read_only: bool = False):
        super().__init__(name, serial=serial or f"mem-{name}", naa=naa)
        if block_size <= 0:
            raise ValueError(f"LUN {name}: block size {block_size} must be positive")
        if num_blocks < 0:
            raise ValueError(f"LUN {name}: negative block count {num_blocks}")
        self._block_size = block_size
        self._num_blocks = num_blocks
        self.read_only = read_only
        self._chunks: dict[int, bytearray] = {}
        self._lock = threading.Lock()

    @property
    def block_size(self) -> int:
        return self._block_size

    @property
    def num_blocks(self) -> int:
        return self._num_blocks

    def read(self, lba: int, count: int) -> bytes:
        self.check_range(lba, count)
        return self.read_bytes(lba * self._block_size, count * self._block_size)

    def write(self, lba: int, data: bytes) -> None:
        if len(data) % self._block_size:
            raise ValueError(f"LUN {self.name}: {len(data)} bytes is not a whole number of "
                             f"{self._block_size}-byte blocks")
        self.check_range(lba, len(data) // self._block_size)
        if self.read_only:
            raise write_protected(self.name)
        self.write_bytes(lba * self._block_size, data)

    # byte-level helpers (also handy for tests that fill a LUN)
    def read_bytes(self, offset: int, length: int) -> bytes:
        out = bytearray(length)
        pos = 0
        with self._lock:
            while pos < length:
                index, inner = divmod(offset + pos, CHUNK)
                n = min(CHUNK - inner, length - pos)
                chunk = self._chunks.get(index)
                if chunk is not None:
                    out[pos:pos + n] = chunk[inner:inner + n]
                pos += n
        return bytes(out)

    def write_bytes(self, offset: int, data: bytes) -> None:
        view = memoryview(data)
        pos = 0
        with self._lock:
            while pos < len(data):
                index, inner = divmod(offset + pos, CHUNK)
                n = min(CHUNK - inner, len(data) - pos)
                chunk = self._chunks.get(index)
                if chunk is None:
                    if not any(view[pos:pos + n]):
                        pos += n
                        continue
                    chunk = self._chunks[index] = bytearray(CHUNK)
                chunk[inner:inner + n] = view[pos:pos + n]
                pos += n

    @property
    def stored_bytes(self) -> int:
        """Memory actually held (for simulation sanity checks)."""
        return len(self._chunks) * CHUNK


class BytearrayLun(BlockLun):
    """A block LUN over a caller's bytearray, so a driver and a copy manager share the same bytes."""

    def __init__(self, name: str, buf: bytearray, *, block_size: int = 512, naa: bytes | None = None,
                 serial: str | None = None):
        super().__init__(name, serial=serial or f"buf-{name}", naa=naa)
        self.buf, self._bs = buf, block_size

    @property
    def block_size(self) -> int:
        return self._bs

    @property
    def num_blocks(self) -> int:
        return len(self.buf) // self._bs

    def read(self, lba: int, count: int) -> bytes:
        self.check_range(lba, count)
        return bytes(self.buf[lba * self._bs:(lba + count) * self._bs])

    def write(self, lba: int, data: bytes) -> None:
        self.check_range(lba, len(data) // self._bs)
        self.buf[lba * self._bs:lba * self._bs + len(data)] = data
