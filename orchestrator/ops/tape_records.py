"""A piece's bytes as tape transfers, and back: the client-side (LAN-free) half of the tape layout.

The records are the ones a data mover writes for the same piece (see
:mod:`orchestrator.plan.tape`): variable mode, one record per ``record_bytes``
with a short last one; fixed mode, ``block_length`` blocks written
``record_bytes`` at a time.  ``tape`` is anything with the
:class:`scsi.luns.base.StreamLun` ``read``/``write`` signatures.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import islice
from typing import Any

from orchestrator.lazy_seq import LazySeq
from orchestrator.ops import Failure, Piece, StoredPiece, TransferResult
from orchestrator.ops.tape import TapeClientRead, TapeClientWrite, TapeFormat


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
        want = min(fmt.record_bytes, length - len(out))
        rec = tape.read(want)  # exactly the record's length: a longer record is an ILI, a layout mismatch
        if len(rec) != want:
            raise ValueError(f"tape record of {len(rec)} bytes where the object's layout has {want}")
        out += rec
    return bytes(out)


Classify = Callable[[BaseException, str, str], Failure]  # (error, what failed, device) -> Failure


class Acknowledged(LazySeq[StoredPiece]):
    """The first ``n`` pieces of a transfer as written (a StoredPiece each), made on each access from the
    operation's own pieces: a transfer's result holds no second copy of its window.  Compares as a tuple."""

    __slots__ = ("_pieces",)

    def __init__(self, pieces: Sequence[Piece], n: int):
        super().__init__(lambda: (StoredPiece(p.image_offset, p.volume_offset, p.length)
                                  for p in islice(pieces, n)), n)
        self._pieces = pieces  # (the closure holds the pieces, not the result: no reference cycle)

    def __getitem__(self, i):  # type: ignore[no-untyped-def,override]
        n = len(self)
        if isinstance(i, slice):
            return tuple(self[k] for k in range(*i.indices(n)))
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError("piece index out of range")
        p = self._pieces[i]
        return StoredPiece(p.image_offset, p.volume_offset, p.length)


def acknowledged(pieces: Sequence[Piece], n: int) -> Acknowledged:
    return Acknowledged(pieces, n)


def client_write(op: TapeClientWrite, read: Callable[[Piece], bytes], tape: Any, classify: Classify
                 ) -> TransferResult:
    """Carry out a :class:`TapeClientWrite`: read each piece, lay it on ``tape``, then the filemark.

    A failure stops at the piece it hit: only whole pieces count (their
    records are known written); a source failure is blamed on the source.
    """
    done = 0
    for p in op.pieces:
        try:
            data = read(p)
        except Exception as exc:  # noqa: BLE001 - any read trouble stops the transfer, blamed on the source
            return TransferResult(done, acknowledged(op.pieces, done), classify(exc, "read failed", op.source))
        try:
            write_piece(tape, data, op.fmt)
        except Exception as exc:  # noqa: BLE001 - any drive or transport trouble stops it here
            return TransferResult(done, acknowledged(op.pieces, done), classify(exc, "tape write failed", op.drive))
        done += 1
    if op.close:
        try:
            tape.write_filemarks(1)
        except Exception as exc:  # noqa: BLE001 - the object is not closed: the caller must not catalogue it
            return TransferResult(done, acknowledged(op.pieces, done),
                                  classify(exc, "WRITE FILEMARKS failed", op.drive))
    return TransferResult(done, acknowledged(op.pieces, done))


def client_read(op: TapeClientRead, write: Callable[[Piece, bytes], None], tape: Any, classify: Classify
                ) -> TransferResult:
    """Carry out a :class:`TapeClientRead`: read each piece's records and write them to the destination."""
    return restore_pieces(op.pieces, lambda p: read_piece(tape, p.length, op.fmt), write, classify,
                          "tape read failed", op.drive, op.destination)


def restore_pieces(pieces: Sequence[Piece], read: Callable[[Piece], bytes], write: Callable[[Piece, bytes], None],
                   classify: Classify, read_failed: str, reader: str, destination: str) -> TransferResult:
    """Read each piece and write it to ``destination``; the first failure stops it, blamed on its side.

    ``read_failed`` names a read failure on ``reader`` (the drive or the server).
    """
    for i, p in enumerate(pieces):
        try:
            data = read(p)
        except Exception as exc:  # noqa: BLE001 - drive, transport or layout trouble stops it here
            return TransferResult(i, (), classify(exc, read_failed, reader))
        try:
            write(p, data)
        except Exception as exc:  # noqa: BLE001
            return TransferResult(i, (), classify(exc, "write failed", destination))
    return TransferResult(len(pieces))
