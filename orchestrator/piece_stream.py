"""An image's pieces as a stream of `PieceBlock` columns, read again on every pass: jobs of millions of extents.

A job walks its pieces several times -- image size, planning, resumption
after a failover, verification, commit -- and a Python object per piece costs
about 100 bytes, so 5,000,000 extents held as objects cost gigabytes.  A
`PieceStream` holds no pieces: it re-reads its source (the volume's extent
arrays, the catalogue's blocks, a list, or another stream clipped, filtered or
split) on each pass, one block of at most `BLOCK_PIECES` pieces at a time, so
a job's memory is bounded by the block and batch sizes, not by the extent
count.  Clipping and splitting work on whole columns with numpy.

It is also a `Sequence` of `StoredPiece`, so the operations that carry pieces
to drivers (VerifyPool, CommitObject) keep their meaning: a driver may
iterate, count, index or compare it as a tuple; one that wants columns calls
`PieceStream.blocks`.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, NamedTuple

import numpy as np

from orchestrator.lazy_seq import LazySeq  # noqa: F401 - re-exported: streams and their users import it here
from orchestrator.ops import StoredPiece
from orchestrator.piece_blocks import BLOCK_PIECES, PieceBlock



class HalfMovedCompressed(ValueError):
    """A compressed piece would be cut: its stored bytes only make sense whole."""


def _no_items() -> Iterable:
    raise AssertionError("a PieceStream iterates its blocks")  # PieceStream.__iter__ overrides LazySeq's


class StreamSummary(NamedTuple):
    count: int  # pieces
    first: int  # image offset of the first piece
    end: int  # image end of the last
    nbytes: int  # image bytes
    stored: int  # bytes as stored (compressed pieces: their stored length)
    compressed: int  # compressed pieces
    volume_end: int  # largest volume offset + length


class PieceStream(LazySeq[StoredPiece]):
    """Pieces in image order as blocks from ``blocks()`` (a fresh iterator per pass); see the module text."""

    __slots__ = ("_blocks", "_summary")

    def __init__(self, blocks: Callable[[], Iterable[PieceBlock]], length: int | None = None):
        # not ``self._pieces`` as the items: a bound method would make every stream a reference cycle, whose
        # blocks (an object's millions of pieces) only the cyclic collector would free
        super().__init__(_no_items, length)
        self._blocks = blocks
        self._summary: StreamSummary | None = None

    # -- sources ----------------------------------------------------------------------
    @classmethod
    def of(cls, pieces: Iterable[Any]) -> PieceStream:
        """A stream over pieces given as objects (held as columns: ~33 bytes a piece)."""
        if isinstance(pieces, PieceStream):
            return pieces
        blocks = tuple(blocks_from_pieces(pieces))
        return cls(lambda: blocks, sum(len(b) for b in blocks))

    @classmethod
    def from_extents(cls, chunks: Callable[[], Iterable[Any]], volume_size: int | None = None) -> PieceStream:
        """The image of a volume's used extents, given as (offset, length) arrays chunk by chunk, each pass anew.

        The extents are checked as they are read (positive, in order, inside
        the volume); the first bad one raises ValueError naming it.
        """
        def blocks() -> Iterator[PieceBlock]:
            image, prev_end, index = 0, -1, 0
            for chunk in chunks():
                arr = np.asarray(chunk, dtype=np.int64).reshape(-1, 2)
                for first in range(0, arr.shape[0], BLOCK_PIECES):
                    part = arr[first:first + BLOCK_PIECES]
                    off, length = part[:, 0], part[:, 1]
                    _check_extents(off, length, prev_end, index, volume_size)
                    yield PieceBlock.of(image, off, length)
                    image += int(length.sum())
                    prev_end = int(off[-1] + length[-1])
                    index += off.size
        return cls(blocks)

    # -- passes -----------------------------------------------------------------------
    def blocks(self, lo: int = 0, hi: int | None = None) -> Iterator[PieceBlock]:
        """Non-empty blocks of the pieces inside image bytes [lo, hi), the pieces at the edges cut."""
        for block in self._blocks():
            if not len(block) or block.image_end <= lo:
                continue
            if hi is not None and block.image_offset >= hi:
                break
            cut = clip(block, lo, hi)
            if cut is not None:
                yield cut

    def _pieces(self) -> Iterator[StoredPiece]:
        for block in self.blocks():
            yield from block.pieces()

    def __iter__(self) -> Iterator[StoredPiece]:
        return self._pieces()

    def __len__(self) -> int:
        if self._len is None:
            self.summary()
        return self._len  # type: ignore[return-value]

    def __bool__(self) -> bool:
        return self.summary().count > 0

    def summary(self) -> StreamSummary:
        """Counts and bounds of the pieces, from one pass (then kept: the sources do not change)."""
        if self._summary is None:
            first = end = None
            count = total = stored = compressed = volume_end = 0
            for b in self.blocks():
                first = b.image_offset if first is None else first
                end = b.image_end
                count += len(b)
                total += int(b.length.sum())
                stored += b.stored_bytes
                compressed += int(b.compressed.sum())
                volume_end = max(volume_end, int((b.volume_offset + b.length).max()))
            self._len = count
            self._summary = StreamSummary(count, first or 0, end or 0, total, stored, compressed, volume_end)
        return self._summary

    def span(self) -> tuple[int, int] | None:
        """(image offset of the first piece, end of the last) or None when empty."""
        s = self.summary()
        return (s.first, s.end) if s.count else None

    def nbytes(self) -> int:
        """Image bytes the pieces cover."""
        return self.summary().nbytes

    def stored(self) -> tuple[int, bool]:
        """(bytes the pieces take where they are stored, whether any is compressed)."""
        s = self.summary()
        return s.stored, s.compressed > 0

    def volume_end(self) -> int:
        """Largest volume offset + length of any piece (0 when empty)."""
        return self.summary().volume_end

    def where_compressed(self, compressed: bool) -> PieceStream:
        """The pieces whose compressed flag is ``compressed`` (they leave gaps in the image)."""
        s = self.summary()
        if s.compressed == (s.count if compressed else 0):  # all of them: no filter, and no pass to count
            return self
        if s.compressed == (0 if compressed else s.count):
            return PieceStream(tuple, 0)

        def blocks() -> Iterator[PieceBlock]:
            for b in self.blocks():
                keep = b.compressed == compressed
                if keep.all():
                    yield b
                elif keep.any():
                    yield _take(b, keep)
        return PieceStream(blocks)

    def pieces(self, lo: int = 0, max_piece: int = 0) -> Iterator[StoredPiece]:
        """Pieces (or their tails) from image offset ``lo``; uncompressed ones split to ``max_piece``."""
        for block in self.blocks(lo):
            for p in block.pieces():
                if p.compressed or not max_piece or p.length <= max_piece:
                    yield p
                    continue
                for o in range(0, p.length, max_piece):
                    yield StoredPiece(p.image_offset + o, p.volume_offset + o, min(max_piece, p.length - o))


def _check_extents(off: np.ndarray, length: np.ndarray, prev_end: int, index: int,
                   volume_size: int | None) -> None:
    bad = np.flatnonzero((off < 0) | (length <= 0))
    if bad.size:
        i = int(bad[0])
        raise ValueError(f"extent {index + i}: offset {int(off[i])} length {int(length[i])} is not a positive range")
    ends = off + length
    starts_before = np.concatenate(([prev_end], ends[:-1]))
    bad = np.flatnonzero(off < starts_before)
    if bad.size:
        i = int(bad[0])
        raise ValueError(f"extent {index + i} at offset {int(off[i])} overlaps or precedes the previous extent")
    if volume_size is not None and int(ends[-1]) > volume_size:
        i = int(np.flatnonzero(ends > volume_size)[0])
        raise ValueError(f"extent {index + i} ends at {int(ends[i])}, past the volume size {volume_size}")


def _take(b: PieceBlock, keep: np.ndarray) -> PieceBlock:
    return PieceBlock.of(0, b.volume_offset[keep], b.length[keep], b.stored_length[keep], b.compressed[keep],
                         image=b.image_offsets()[keep])


def clip(b: PieceBlock, lo: int, hi: int | None) -> PieceBlock | None:
    """The part of a block inside image bytes [lo, hi); cut pieces become plain (uncompressed, stored whole).

    A compressed piece cut at its start raises `HalfMovedCompressed` (its
    stored bytes cannot be resumed in the middle).
    """
    image = b.image_offsets()
    end = image + b.length
    i = int(np.searchsorted(end, lo, "right"))
    j = b.length.size if hi is None else int(np.searchsorted(image, hi, "left"))
    if i >= j:
        return None
    head, tail = int(image[i]) < lo, hi is not None and int(end[j - 1]) > hi
    if i == 0 and j == b.length.size and not head and not tail:
        return b
    img, vol, length = image[i:j].copy(), b.volume_offset[i:j].copy(), b.length[i:j].copy()
    stored, comp = b.stored_length[i:j].copy(), b.compressed[i:j].copy()
    if head:
        if comp[0]:
            raise HalfMovedCompressed(f"compressed piece at image offset {int(img[0])} was half moved")
        d = lo - int(img[0])
        img[0], vol[0], length[0], stored[0] = lo, vol[0] + d, length[0] - d, 0
    if tail:
        length[-1] = hi - int(img[-1])
        stored[-1], comp[-1] = 0, False
    return PieceBlock.of(int(img[0]), vol, length, stored, comp, image=img)


def blocks_from_pieces(pieces: Iterable[Any], size: int = BLOCK_PIECES) -> Iterator[PieceBlock]:
    """Pieces (``Piece`` or ``StoredPiece``, ascending image offsets, gaps allowed) as blocks."""
    buf: list[tuple[int, int, int, int, bool]] = []

    def flush() -> PieceBlock:
        cols = np.array([r[:4] for r in buf], dtype=np.int64).reshape(-1, 4)
        comp = np.fromiter((r[4] for r in buf), bool, len(buf))
        buf.clear()
        return PieceBlock.of(int(cols[0, 0]), cols[:, 1], cols[:, 2], cols[:, 3], comp, image=cols[:, 0])

    for p in pieces:
        buf.append((p.image_offset, p.volume_offset, p.length, getattr(p, "stored_length", 0),
                    getattr(p, "compressed", False)))
        if len(buf) == size:
            yield flush()
    if buf:
        yield flush()


def merged_ranges(ranges: Iterable[tuple[int, int]]) -> np.ndarray:
    """Image ranges [lo, hi) sorted and merged where they touch, as a flat array lo0, hi0, lo1, hi1, ..."""
    out: list[list[int]] = []
    for lo, hi in sorted(ranges):
        if hi <= lo:
            continue
        if out and lo <= out[-1][1]:
            out[-1][1] = max(out[-1][1], hi)
        else:
            out.append([lo, hi])
    return np.array(out, dtype=np.int64).reshape(-1)


def split_by_ranges(stream: PieceStream, ranges: Iterable[tuple[int, int]]) -> tuple[PieceStream, PieceStream]:
    """(pieces outside ``ranges``, pieces inside), cut at the range edges; compressed pieces are always outside.

    With no range every piece is outside, whole.  Cut parts, and with any
    range every uncompressed piece outside, are plain pieces (stored whole).
    """
    bounds = merged_ranges(ranges)

    def side(inside: bool) -> Iterator[PieceBlock]:
        for b in stream.blocks():
            if not bounds.size:
                if not inside:
                    yield b
                continue
            part = split_block(b, bounds, inside)
            if part is not None:
                yield part

    return PieceStream(lambda: side(False)), PieceStream(lambda: side(True))


def split_block(b: PieceBlock, bounds: np.ndarray, inside: bool) -> PieceBlock | None:
    """The parts of ``b``'s pieces inside (or outside) flat image ``bounds`` lo0, hi0, ...; None if none."""
    image = b.image_offsets()
    end = image + b.length
    comp = b.compressed
    i0 = np.searchsorted(bounds, image, "right")
    cuts = np.where(comp, 0, np.maximum(np.searchsorted(bounds, end, "left") - i0, 0))
    parts = cuts + 1
    which = np.repeat(np.arange(image.size), parts)
    k = np.arange(which.size) - np.repeat(np.cumsum(parts) - parts, parts)
    top = bounds.size - 1
    lo = np.where(k == 0, image[which], bounds[np.minimum(i0[which] + k - 1, top)])
    hi = np.where(k == cuts[which], end[which], bounds[np.minimum(i0[which] + k, top)])
    within = (np.searchsorted(bounds, lo, "right") % 2 == 1) & ~comp[which]
    sel = within if inside else ~within
    if not sel.any():
        return None
    which, lo, hi = which[sel], lo[sel], hi[sel]
    c = comp[which]
    stored = np.where(c, b.stored_length[which], 0)
    return PieceBlock.of(int(lo[0]), b.volume_offset[which] + (lo - image[which]), hi - lo, stored, c, image=lo)
