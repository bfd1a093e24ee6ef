"""A driver that acknowledges every list without moving data: jobs of millions of extents, measured in-process.

Copying 5,000,000 extents through a real mover (or the simulator's exact
mode) takes far longer than the job's own work, so scale benchmarks and
memory tests run the real backup and restore jobs against this driver.  It
does what a driver must with every operation except the I/O: it reads each
parameter list's encoded bytes and answers COPY STATUS for it as a mover
would, walks the pieces a verification names (block by block), and carries
the catalogue operations out on a real `Catalogue`.  ``fail_at`` makes a
mover abort one list part way (COPY ABORTED with the failed segment), so
failover resumption runs at scale too.  ``volume_digests`` answers an
image incremental's scan (DigestVolume): it names the digest of each chunk
the scan touches, produced as a stream in chunk order like a real scan's.
``pool_digests`` answers verification (VerifyPool) as the backup server's
read-back of the pool does: a digest for every chunk the object's pieces
touch (both those to compare and those the mover vouches for), in a
`DigestSpool` built page by page, so the job's commit handles a full read-back.
For tape pools it answers LOCATE (end of data is logical object 0: every
job starts a fresh tape) and COPY STATUS of an aborted list (the bytes of
the segments it completed), so a tape backup resumes as with a real mover.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from orchestrator.catalogue import Catalogue
from orchestrator.chunk_runs import aligned, touched_chunk_arrays
from orchestrator.digest_spool import DIGEST_ROW, SPOOL_ROWS, DigestSpool
from orchestrator.ops import (AbandonObject, BeginObject, CommitObject, CopyBatches, CopyResult, DigestResult,
                              DigestVolume, Failure, ListAccount, MoverLimits, OperatingParametersResult,
                              Operation, ReadOperatingParameters, Result, VerifyPool, VerifyResult)
from orchestrator.ops.tape import CopyStatusResult, LocateTape, ReadCopyStatus, TapePositioned
from orchestrator.piece_stream import LazySeq, PieceStream

#: RECEIVE COPY RESULTS OPERATING PARAMETERS of a capable mover: 64 segments a list, 16 MiB a segment
CAPABLE_MOVER = MoverLimits(max_segment_count=64, max_descriptor_list_length=4096, max_segment_length=16 << 20,
                            implemented_codes=(0x00, 0x01, 0x02, 0x10, 0xE4))


@dataclass
class AcknowledgingDriver:
    catalogue: Catalogue
    movers: dict[str, MoverLimits] = field(default_factory=dict)
    fail_at: dict[str, int] = field(default_factory=dict)  # mover -> list number (1-based, per mover) it aborts
    counts: dict[str, int] = field(default_factory=dict)  # what was seen: lists, segments, list_bytes, ...
    volume_digests: Callable[[np.ndarray], list[str]] | None = None  # chunk indices -> the volume's digests
    aborted: dict[tuple[str, int], tuple[int, int]] = field(default_factory=dict)  # (mover, list) -> segs, bytes
    pool_digests: Callable[[np.ndarray], list[str]] | None = None  # chunk indices -> the pool's digests

    def _count(self, what: str, n: int = 1) -> None:
        self.counts[what] = self.counts.get(what, 0) + n

    def execute(self, op: Operation) -> Result:
        self._count(type(op).__name__)
        if isinstance(op, (BeginObject, CommitObject, AbandonObject)):
            return self.catalogue.execute(op)
        if isinstance(op, ReadOperatingParameters):
            return OperatingParametersResult(self.movers.get(op.mover, CAPABLE_MOVER))
        if isinstance(op, CopyBatches):
            return self._copy(op)
        if isinstance(op, VerifyPool):
            # what a driver plans to read (pieces) and to check covered on the pool (accounted), block by block
            for name, pieces in (("verify_read", op.pieces), ("verify_accounted", op.accounted)):
                for block in PieceStream.of(pieces).blocks():
                    self._count(name + "_bytes", int(block.length.sum()))
            return VerifyResult(True, "", self._read_back(op) if self.pool_digests is not None else ())
        if isinstance(op, LocateTape):
            return TapePositioned(op.position or 0, 0)
        if isinstance(op, ReadCopyStatus):
            segments, nbytes = self.aborted.get((op.mover, op.list_id), (0, 0))
            return CopyStatusResult(segments, nbytes)
        if isinstance(op, DigestVolume) and self.volume_digests is not None:
            return DigestResult(LazySeq(lambda: self._scan(op)))  # type: ignore[arg-type]
        raise TypeError(f"the acknowledging driver does not carry out {type(op).__name__}")

    def _copy(self, op: CopyBatches) -> CopyResult:
        accounts: list[ListAccount] = []
        for bi, batch in enumerate(op.batches[op.first_batch:]):
            for li, plist in enumerate(batch.lists):
                self._count(f"lists:{op.mover}")
                if self.counts[f"lists:{op.mover}"] == self.fail_at.get(op.mover):
                    half = len(plist.segments) // 2
                    self.aborted[(op.mover, plist.list_id)] = (half, sum(plist.segments[i].length
                                                                         for i in range(half)))
                    return CopyResult(bi, Failure("sense", "EXTENDED COPY aborted (injected)", op.mover, b"", 2),
                                      li, half, accounting=tuple(accounts))
                self._count("list_bytes", len(plist.payload()))
                self._count("segments", len(plist.segments))
                accounts.append(ListAccount(plist.list_id, True, len(plist.segments), plist.nbytes))
        return CopyResult(len(op.batches) - op.first_batch, accounting=tuple(accounts))

    def _read_back(self, op: VerifyPool) -> DigestSpool:
        """The pool's digest of every chunk the object touches, chunk arrays of both streams merged page by page."""
        assert self.pool_digests is not None
        spool = DigestSpool()
        for a, b in aligned(touched_chunk_arrays(PieceStream.of(op.pieces), op.chunk_size),
                            touched_chunk_arrays(PieceStream.of(op.accounted), op.chunk_size)):
            both = np.union1d(a, b)
            for first in range(0, both.size, SPOOL_ROWS):  # a page of digests at a time
                idx = both[first:first + SPOOL_ROWS]
                rows = np.empty(idx.size, dtype=DIGEST_ROW)
                rows["chunk"], rows["digest"] = idx, self.pool_digests(idx)
                spool.add_rows(rows)
            self._count("read_back_chunks", int(both.size))
        return spool

    def _scan(self, op: DigestVolume) -> Iterator[tuple[int, str]]:
        assert self.volume_digests is not None
        for idx in touched_chunk_arrays(PieceStream.of(op.pieces), op.chunk_size):
            self._count("scanned_chunks", int(idx.size))
            yield from zip(idx.tolist(), self.volume_digests(idx))
