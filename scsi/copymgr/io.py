"""I/O requests the engine core yields, and the threaded driver that runs them.

The core (sans-I/O) decides WHAT to read and write and hands a batch of
requests to a driver, which decides HOW: :class:`InlineDriver` here runs them
one by one in the caller's thread, ``scsi.copymgr.threaded.ThreadedDriver``
on a thread pool with pipelined block copies; the simulator executes the same
requests in simulated time.  Requests on one stream LUN keep their order;
everything else in a batch may run concurrently.
"""
from __future__ import annotations

import logging
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
class Extent:
    """Whole blocks from one block LUN to another (a 02h segment whose block sizes agree)."""

    src: BlockLun
    src_lba: int
    dst: BlockLun
    dst_lba: int
    blocks: int


@dataclass(frozen=True)
class BlockCopy:
    """Copy ``extents`` in order, pipelined as the driver sees fit (see scsi/copymgr/blockcopy.py).

    ``chunk`` bytes per command at most and ``depth`` commands in flight at
    most; ``written(index, nbytes)`` is called as each write of extent
    ``index`` lands, so COPY STATUS stays live through a long copy.  ``check``,
    when given, is asked before each chunk starts and may return an exception
    that ends the copy (a fault plan's COPY ABORTED); the chunks in flight
    finish first.  The result is the byte count; a failure is a
    :class:`BlockCopyFailed`, or the exception ``check`` returned.
    """

    extents: tuple[Extent, ...]
    chunk: int
    depth: int
    written: Callable[[int, int], None] = field(repr=False, compare=False)
    check: Callable[[], BaseException | None] | None = field(default=None, repr=False, compare=False)


class BlockCopyFailed(Exception):
    """An extent of a BlockCopy failed: which one, on which side, and the LUN's error."""

    def __init__(self, index: int, role: str, error: BaseException):
        super().__init__(f"extent {index}: {role}: {error}")
        self.index, self.role, self.error = index, role, error


@dataclass(frozen=True)
class Flush:
    lun: Lun


@dataclass(frozen=True)
class TestReady:
    lun: Lun


IoRequest = Union[BlockRead, BlockWrite, StreamRead, StreamWrite, WriteFilemarks, Flush, TestReady, BlockCopy]


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
    if isinstance(req, BlockCopy):
        return copy_in_order(req)
    raise TypeError(f"unknown I/O request {req!r}")


def copy_in_order(req: BlockCopy) -> int:
    """A BlockCopy one chunk at a time (for drivers that do not pipeline it themselves)."""
    total = 0
    for index, ext in enumerate(req.extents):
        per = max(1, req.chunk // ext.src.block_size)
        for off in range(0, ext.blocks, per):
            n = min(per, ext.blocks - off)
            abort = req.check() if req.check is not None else None
            if abort is not None:
                raise abort
            try:
                data = ext.src.read(ext.src_lba + off, n)
            except Exception as e:  # noqa: BLE001 - the engine maps it to sense
                raise BlockCopyFailed(index, "source", e) from None
            try:
                ext.dst.write(ext.dst_lba + off, data)
            except Exception as e:  # noqa: BLE001
                raise BlockCopyFailed(index, "destination", e) from None
            total += len(data)
            req.written(index, len(data))
    return total


def capture(fn: Callable[[], Any]) -> IoResult:
    try:
        return IoResult(value=fn())
    except Exception as e:  # a LUN may fail any way; the core maps it to sense
        return IoResult(error=e)


class InlineDriver:
    """Runs each request in the caller's thread, in order: deterministic, no worker threads to stop.

    For drivers that own time themselves (the simulator) or run outside it (in-memory tests).
    """

    def run_batch(self, batch: Sequence[IoRequest]) -> list[IoResult]:
        return [capture(lambda r=req: perform(r)) for req in batch]
