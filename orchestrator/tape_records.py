"""A piece's bytes as tape transfers, and back: the client-side (LAN-free) half of the tape layout.

The records are the ones a data mover writes for the same piece (see
:mod:`orchestrator.plan_tape`): variable mode, one record per ``record_bytes``
with a short last one; fixed mode, ``block_length`` blocks written
``record_bytes`` at a time.  ``tape`` is anything with the
:class:`scsi.luns.base.StreamLun` ``read``/``write`` signatures.
"""
from __future__ import annotations

from typing import Any

from orchestrator.plan_tape import TapeFormat


def transfers(data: bytes, fmt: TapeFormat) -> list[bytes]:
    """The WRITE transfers that lay ``data`` (one piece) on tape."""
    if fmt.fixed and len(data) % fmt.block_length:
        raise ValueError(f"{len(data)} bytes are not whole {fmt.block_length}-byte fixed tape blocks")
    step = fmt.record_bytes
    return [data[i:i + step] for i in range(0, len(data), step)]


def write_piece(tape: Any, data: bytes, fmt: TapeFormat) -> None:
    for chunk in transfers(data, fmt):
        tape.write(chunk, fixed=fmt.fixed, block_size=fmt.block_length)


def read_piece(tape: Any, length: int, fmt: TapeFormat) -> bytes:
    """Read one piece of ``length`` bytes at the tape's position; ValueError when the records disagree."""
    if fmt.fixed:
        if length % fmt.block_length:
            raise ValueError(f"{length} bytes are not whole {fmt.block_length}-byte fixed tape blocks")
        return tape.read(length // fmt.block_length, fixed=True, block_size=fmt.block_length)
    out = bytearray()
    while len(out) < length:
        rec = tape.read(fmt.record_bytes)
        want = min(fmt.record_bytes, length - len(out))
        if len(rec) != want:
            raise ValueError(f"tape record of {len(rec)} bytes where the object's layout has {want}")
        out += rec
    return bytes(out)
