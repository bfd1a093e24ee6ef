"""The mover's I/O driver: batches on a thread pool, block copies pipelined.

pread/pwrite and libiscsi release the GIL, so the pool really keeps several
requests outstanding.  A :class:`BlockCopy` runs in the caller's thread
(``scsi.copymgr.blockcopy``): with libiscsi sessions one thread services both
devices, so more threads would only contend for the GIL.
"""
from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from typing import Sequence

from scsi.copymgr.blockcopy import BufferPool, run_block_copy
from scsi.copymgr.pacing import DepthMemory, FairShare
from scsi.copymgr.io import BlockCopy, IoRequest, IoResult, capture, perform
from scsi.copymgr.writebehind import FLUSH_BEHIND_BYTES
from scsi.luns.base import StreamLun


class ThreadedDriver:
    """Runs batches of requests on a shared thread pool; pipelines BlockCopy requests itself.

    ``copies_blocks`` tells the engine it may hand over whole runs of 02h
    segments as one :class:`BlockCopy`; ``share_budget`` is the mover's chunks
    in flight, split evenly among the copies running at once.
    """

    copies_blocks = True

    def __init__(self, workers: int = 8, share_budget: int = 32, flush_every: int = FLUSH_BEHIND_BYTES):
        self.flush_every = flush_every
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="copymgr-io")
        self.share = FairShare(share_budget)
        self.depths = DepthMemory()
        self.buffers = BufferPool()

    def _block_copy(self, req: BlockCopy) -> IoResult:
        return capture(lambda: run_block_copy(req, self.share, self._pool, self.depths, self.buffers,
                                                    self.flush_every))

    def run_batch(self, batch: Sequence[IoRequest]) -> list[IoResult]:
        if not batch:
            return []
        if any(isinstance(r, BlockCopy) for r in batch):  # in this thread, one after the other
            return [self._block_copy(r) if isinstance(r, BlockCopy) else capture(lambda r=r: perform(r))
                    for r in batch]
        if len(batch) == 1:
            return [capture(lambda: perform(batch[0]))]
        results: list[IoResult | None] = [None] * len(batch)
        chains: dict[int, list[int]] = {}  # stream LUN -> request indexes, kept in order
        futures: list[tuple[list[int], Future]] = []
        for i, req in enumerate(batch):
            lun = getattr(req, "lun", None)
            if isinstance(lun, StreamLun):
                chains.setdefault(id(lun), []).append(i)
            else:
                futures.append(([i], self._pool.submit(capture, lambda r=req: perform(r))))
        for idxs in chains.values():
            futures.append((idxs, self._pool.submit(self._chain, [batch[i] for i in idxs])))
        for idxs, fut in futures:
            out = fut.result()
            if isinstance(out, list):
                for i, r in zip(idxs, out):
                    results[i] = r
            else:
                results[idxs[0]] = out
        return [r if r is not None else IoResult(error=RuntimeError("request not run")) for r in results]

    @staticmethod
    def _chain(reqs: list[IoRequest]) -> list[IoResult]:
        out: list[IoResult] = []
        for req in reqs:
            res = capture(lambda r=req: perform(r))
            out.append(res)
            if not res.ok:  # later requests on a failed tape must not run
                out += [IoResult(error=RuntimeError("not run: an earlier request on this LUN failed"))
                        for _ in reqs[len(out):]]
                break
        return out

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
