"""I/O requests the engine core yields, and the threaded driver that runs them.

The core (sans-I/O) decides WHAT to read and write and hands a batch of
requests to a driver, which decides HOW: :class:`ThreadedDriver` runs a batch
on a thread pool (pread/pwrite and libiscsi release the GIL, so several
requests are really outstanding); the simulator executes the same requests in
simulated time.  Requests on one stream LUN keep their order; everything else
in a batch may run concurrently.
"""
from __future__ import annotations

import logging
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence, Union

from scsi.luns.base import BlockLun, Lun, LunError, StreamLun

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BlockRead:
    lun: BlockLun
    lba: int
    count: int


@dataclass(frozen=True)
class BlockWrite:
    lun: BlockLun
    lba: int
    data: bytes = field(repr=False)


@dataclass(frozen=True)
class StreamRead:
    """``reads`` successive READs of ``length`` (bytes, or blocks in fixed mode).

    The result is the list of what each READ returned; a failure part-way
    raises LunError whose ``partial`` holds the bytes read so far.
    """

    lun: StreamLun
    length: int
    reads: int = 1
    fixed: bool = False
    block_size: int = 0


@dataclass(frozen=True)
class StreamWrite:
    lun: StreamLun
    records: tuple[bytes, ...] = field(repr=False)
    fixed: bool = False
    block_size: int = 0


@dataclass(frozen=True)
class WriteFilemarks:
    lun: StreamLun
    count: int


@dataclass(frozen=True)
class Flush:
    lun: Lun


@dataclass(frozen=True)
class TestReady:
    lun: Lun


IoRequest = Union[BlockRead, BlockWrite, StreamRead, StreamWrite, WriteFilemarks, Flush, TestReady]


@dataclass
class IoResult:
    """What one request came back with: ``value`` or ``error``."""

    value: Any = None
    error: BaseException | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def perform(req: IoRequest) -> Any:
    """Carry out one request against its LUN (the synchronous LUN interface)."""
    if isinstance(req, BlockRead):
        return req.lun.read(req.lba, req.count)
    if isinstance(req, BlockWrite):
        req.lun.write(req.lba, req.data)
        return len(req.data)
    if isinstance(req, StreamRead):
        out: list[bytes] = []
        for _ in range(req.reads):
            try:
                out.append(req.lun.read(req.length, fixed=req.fixed, block_size=req.block_size))
            except LunError as e:
                e.partial = b"".join(out) + e.partial
                raise
        return out
    if isinstance(req, StreamWrite):
        for r in req.records:
            req.lun.write(r, fixed=req.fixed, block_size=req.block_size)
        return sum(len(r) for r in req.records)
    if isinstance(req, WriteFilemarks):
        req.lun.write_filemarks(req.count)
        return req.count
    if isinstance(req, Flush):
        req.lun.flush()
        return None
    if isinstance(req, TestReady):
        req.lun.test_unit_ready()
        return None
    raise TypeError(f"unknown I/O request {req!r}")


def _run(fn: Callable[[], Any]) -> IoResult:
    try:
        return IoResult(value=fn())
    except Exception as e:  # a LUN may fail any way; the core maps it to sense
        return IoResult(error=e)


class InlineDriver:
    """Runs each request in the caller's thread, in order: deterministic, no worker threads to stop.

    For drivers that own time themselves (the simulator) or run outside it (in-memory tests).
    """

    def run_batch(self, batch: Sequence[IoRequest]) -> list[IoResult]:
        return [_run(lambda r=req: perform(r)) for req in batch]


class ThreadedDriver:
    """Runs batches of requests on a shared thread pool."""

    def __init__(self, workers: int = 8):
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="copymgr-io")

    def run_batch(self, batch: Sequence[IoRequest]) -> list[IoResult]:
        if not batch:
            return []
        if len(batch) == 1:
            return [_run(lambda: perform(batch[0]))]
        results: list[IoResult | None] = [None] * len(batch)
        chains: dict[int, list[int]] = {}  # stream LUN -> request indexes, kept in order
        futures: list[tuple[list[int], Future]] = []
        for i, req in enumerate(batch):
            lun = getattr(req, "lun", None)
            if isinstance(lun, StreamLun):
                chains.setdefault(id(lun), []).append(i)
            else:
                futures.append(([i], self._pool.submit(_run, lambda r=req: perform(r))))
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
            res = _run(lambda r=req: perform(r))
            out.append(res)
            if not res.ok:  # later requests on a failed tape must not run
                out += [IoResult(error=RuntimeError("not run: an earlier request on this LUN failed"))
                        for _ in reqs[len(out):]]
                break
        return out

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
