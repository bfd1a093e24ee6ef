"""Chunk digests of an image's view of the volume (used by verification and image incrementals).

A chunk is ``[c * chunk_size, (c + 1) * chunk_size)`` of the volume.  Its
digest covers the bytes of the image's pieces inside it, each prefixed by its
position and length, so the volume side (DigestVolume) and the pool side
(VerifyPool) compute the same value for the same data.  Drivers supply the
reading; this module only does arithmetic, so every driver agrees.
"""
from __future__ import annotations

import hashlib
import struct
from typing import Callable, Iterable

from orchestrator.ops import Piece

READ_STEP = 1 << 20


def split_by_chunk(pieces: Iterable, chunk_size: int) -> Iterable[tuple[int, Piece]]:
    """Yield (chunk index, sub-piece) for every piece, cut at chunk boundaries."""
    for p in pieces:
        off, img, left = p.volume_offset, p.image_offset, p.length
        while left > 0:
            chunk = off // chunk_size
            n = min(left, (chunk + 1) * chunk_size - off)
            yield chunk, Piece(img, off, n)
            off, img, left = off + n, img + n, left - n


def chunk_digests(pieces: Iterable, read: Callable[[Piece], bytes],
                  chunk_size: int) -> tuple[tuple[int, str], ...]:
    """SHA-256 per chunk of the pieces' bytes; ``read(piece)`` returns a sub-piece's data."""
    hashers: dict[int, "hashlib._Hash"] = {}
    for chunk, sub in split_by_chunk(pieces, chunk_size):
        h = hashers.setdefault(chunk, hashlib.sha256())
        h.update(struct.pack(">QQ", sub.volume_offset - chunk * chunk_size, sub.length))
        for o in range(0, sub.length, READ_STEP):
            part = Piece(sub.image_offset + o, sub.volume_offset + o, min(READ_STEP, sub.length - o))
            data = read(part)
            if len(data) != part.length:
                raise OSError(f"short read at volume offset {part.volume_offset}: {len(data)} of "
                              f"{part.length} bytes")
            h.update(data)
    return tuple((c, h.hexdigest()) for c, h in sorted(hashers.items()))


def changed_pieces(pieces: Iterable, current: dict[int, str], previous: dict[int, str],
                   chunk_size: int) -> tuple[Piece, ...]:
    """Sub-pieces in chunks whose digest differs from ``previous``, renumbered as a new image."""
    out: list[Piece] = []
    pos = 0
    for chunk, sub in split_by_chunk(pieces, chunk_size):
        if current.get(chunk) == previous.get(chunk):
            continue
        if out and out[-1].volume_offset + out[-1].length == sub.volume_offset:
            last = out.pop()
            out.append(Piece(last.image_offset, last.volume_offset, last.length + sub.length))
        else:
            out.append(Piece(pos, sub.volume_offset, sub.length))
        pos += sub.length
    return tuple(out)
