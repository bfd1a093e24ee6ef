"""The tests' own view of the lab's backing files: outside judges of what the job claims."""
from __future__ import annotations

from pathlib import Path

from tests.fixtures.sanlab import SanLab


def read_extents(path: Path, extents: list[tuple[int, int]]) -> bytes:
    """The bytes of ``extents`` of a LUN's backing file, concatenated."""
    with open(path, "rb") as f:
        out = bytearray()
        for off, n in extents:
            f.seek(off)
            out += f.read(n)
    return bytes(out)


def pool_image(lab: SanLab, record) -> bytes:
    """An object's image as the pool file holds it (uncompressed pieces only)."""
    assert not any(p.compressed for p in record.pieces), "compressed pieces cannot be compared raw"
    return read_extents(lab.pool_img, [(record.pool_offset + p.image_offset, p.length) for p in record.pieces])


def volume_view(path: Path, record) -> bytes:
    """The volume bytes an object claims to hold, read from a volume image file."""
    return read_extents(path, [(p.volume_offset, p.length) for p in record.pieces])
