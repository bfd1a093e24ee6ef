"""An image object's pieces as compact numpy blocks: how the catalogue keeps millions of extents.

A fragmented 16 TiB volume gives tens of millions of extents; one SQLite row
and one Python object per extent costs gigabytes.  A `PieceBlock` holds up to
`BLOCK_PIECES` consecutive pieces of an image as numpy columns; the
catalogue stores each block as one row whose blob is the columns
delta-encoded (volume offsets as differences; stored lengths are mostly 0,
"the whole length") and zlib-compressed.  Image offsets are not
stored at all: the pieces of an object tile the image from 0, so each is the
block's first image offset plus the lengths before it.
"""
from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from orchestrator.ops import StoredPiece

BLOCK_PIECES = 65536  # pieces per catalogue row: 64 Ki pieces, ~1.5 MiB of columns before compression
_COLUMNS = 4  # volume offset deltas, lengths, stored lengths, compressed flags


@dataclass(frozen=True)
class PieceBlock:
    """Consecutive pieces of one image as int64 columns (``stored_length`` 0 means the whole length)."""

    image_offset: int  # of the first piece
    volume_offset: np.ndarray
    length: np.ndarray
    stored_length: np.ndarray
    compressed: np.ndarray  # bool
    # image offsets of each piece when they do not tile (a filtered or split stream); None: they tile
    image: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.length.size)

    @property
    def image_end(self) -> int:
        if self.image is not None:
            return int(self.image[-1] + self.length[-1]) if self.length.size else self.image_offset
        return self.image_offset + int(self.length.sum())

    @property
    def stored_bytes(self) -> int:
        return int(np.where(self.stored_length > 0, self.stored_length, self.length).sum())

    def image_offsets(self) -> np.ndarray:
        if self.image is not None:
            return self.image
        out = np.empty(self.length.size, dtype=np.int64)
        out[0:1] = self.image_offset
        np.cumsum(self.length[:-1], out=out[1:])
        out[1:] += self.image_offset
        return out

    def pieces(self) -> Iterator[StoredPiece]:
        """The block as `StoredPiece` objects, one at a time."""
        for image, volume, length, compressed, stored in zip(
                self.image_offsets().tolist(), self.volume_offset.tolist(), self.length.tolist(),
                self.compressed.tolist(), self.stored_length.tolist()):
            yield StoredPiece(image, volume, length, compressed, stored)

    @classmethod
    def of(cls, image_offset: int, volume_offset: np.ndarray, length: np.ndarray,
           stored_length: np.ndarray | None = None, compressed: np.ndarray | None = None,
           image: np.ndarray | None = None) -> PieceBlock:
        """A block; ``image`` (each piece's image offset) is kept only where the pieces leave gaps."""
        length = np.asarray(length, dtype=np.int64)
        n = length.size
        if image is not None:
            image = np.asarray(image, dtype=np.int64)
            if n:
                image_offset = int(image[0])
            if n < 2 or np.array_equal(image[1:], image[:-1] + length[:-1]):
                image = None  # they tile: the offsets follow from the lengths
        return cls(image_offset, np.asarray(volume_offset, dtype=np.int64), length,
                   np.zeros(n, dtype=np.int64) if stored_length is None else np.asarray(stored_length, np.int64),
                   np.zeros(n, dtype=bool) if compressed is None else np.asarray(compressed, dtype=bool), image)

    @property
    def tiles(self) -> bool:
        """Whether the pieces follow each other in the image with no gap (what a catalogue row holds)."""
        return self.image is None

    def encode(self) -> bytes:
        """The columns, delta-encoded and zlib-compressed (one catalogue row)."""
        if not self.tiles:
            raise ValueError(f"extent block at image offset {self.image_offset} leaves gaps in the image")
        n = self.length.size
        cols = np.empty((_COLUMNS, n), dtype="<i8")
        cols[0, :1] = self.volume_offset[:1]
        np.subtract(self.volume_offset[1:], self.volume_offset[:-1], out=cols[0, 1:])
        cols[1] = self.length
        cols[2] = self.stored_length
        cols[3] = self.compressed
        return zlib.compress(cols.tobytes(), 1)

    @classmethod
    def decode(cls, image_offset: int, count: int, blob: bytes) -> PieceBlock:
        cols = np.frombuffer(zlib.decompress(blob), dtype="<i8")
        if cols.size != _COLUMNS * count:
            raise ValueError(f"extent block holds {cols.size} values, not {_COLUMNS} x {count}")
        cols = cols.reshape(_COLUMNS, count)
        return cls(image_offset, np.cumsum(cols[0]), cols[1].copy(), cols[2].copy(), cols[3].astype(bool))


def blocks_of(pieces: Iterable[StoredPiece], size: int = BLOCK_PIECES) -> Iterator[PieceBlock]:
    """Group pieces (ascending, tiling the image) into blocks; ValueError naming the first gap or overlap."""
    pos = None
    buf: list[StoredPiece] = []

    def flush() -> PieceBlock:
        block = PieceBlock.of(buf[0].image_offset, np.fromiter((p.volume_offset for p in buf), np.int64, len(buf)),
                              np.fromiter((p.length for p in buf), np.int64, len(buf)),
                              np.fromiter((p.stored_length for p in buf), np.int64, len(buf)),
                              np.fromiter((p.compressed for p in buf), bool, len(buf)))
        buf.clear()
        return block

    for p in pieces:
        if pos is not None and p.image_offset != pos:
            raise ValueError(f"extent at image offset {p.image_offset} leaves a gap or overlap at {pos}")
        pos = p.image_offset + p.length
        buf.append(p)
        if len(buf) == size:
            yield flush()
    if buf:
        yield flush()


def pieces_of(blocks: Iterable[PieceBlock]) -> Iterator[StoredPiece]:
    """The pieces of a stream of blocks, one at a time."""
    for block in blocks:
        yield from block.pieces()
