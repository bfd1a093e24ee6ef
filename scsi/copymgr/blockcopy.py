"""Pipelined block copies: how a :class:`BlockCopy` request is carried out.

Both devices are kept busy: each of up to ``depth`` slots owns one reusable
buffer and cycles read -> write -> read on its own, so reads of later chunks
overlap writes of earlier ones without a batch barrier between them.  When
both LUNs offer a zero-copy session (:meth:`BlockLun.lease_async`, libiscsi
here) the payload is never copied in Python: libiscsi reads Data-In into the
slot's buffer and sends Data-Out from the same buffer, and one thread
services both sessions with one poll.  Otherwise the slots run on the
driver's thread pool with the LUNs' plain ``read``/``write``.

How deep to go is measured, not configured, and concurrent copies share the
mover's budget of chunks in flight (scsi/copymgr/pacing.py).
"""
from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any, Iterator

from scsi.copymgr.io import BlockCopy, BlockCopyFailed, Extent
from scsi.copymgr.pacing import DepthMemory, DepthTuner, FairShare
from scsi.copymgr.writebehind import FLUSH_BEHIND_BYTES, WriteBehind
from scsi.luns.base import BlockLun
from scsi.luns.remote_async import RETRY, AsyncSession, service

log = logging.getLogger(__name__)

UNIT_ATTENTION_RETRIES = 5
TUNER_WINDOW_BYTES = 16 << 20


class BufferPool:
    """Chunk buffers kept between copies, so a backup's many lists reuse the same memory.

    Keeps at most ``limit`` bytes of idle buffers; a buffer is only ever
    handed to one slot at a time.
    """

    def __init__(self, limit: int = 64 << 20):
        self.limit = limit
        self._free: dict[int, list[bytearray]] = {}
        self._kept = 0
        self._lock = threading.Lock()

    def take(self, size: int) -> bytearray:
        with self._lock:
            free = self._free.get(size)
            if free:
                self._kept -= size
                return free.pop()
        return bytearray(size)

    def give(self, buf: bytearray) -> None:
        with self._lock:
            if self._kept + len(buf) <= self.limit:
                self._free.setdefault(len(buf), []).append(buf)
                self._kept += len(buf)


def chunks(extents: tuple[Extent, ...], chunk: int) -> Iterator[tuple[int, Extent, int, int, int]]:
    """(extent index, extent, source LBA, destination LBA, blocks) pieces of at most ``chunk`` bytes."""
    for i, ext in enumerate(extents):
        per = max(1, chunk // ext.src.block_size)
        for off in range(0, ext.blocks, per):
            n = min(per, ext.blocks - off)
            yield i, ext, ext.src_lba + off, ext.dst_lba + off, n


def chunk_size(req: BlockCopy) -> int:
    """The request's chunk, lowered to the LUNs' maximum transfer and rounded to their optimal one (VPD B0h)."""
    size = req.chunk
    optimal = 0
    for lun in {id(l): l for e in req.extents for l in (e.src, e.dst)}.values():
        most, best = lun.transfer_limits()
        if most:
            size = min(size, most)
        optimal = max(optimal, best)
    if optimal and size > optimal:
        size -= size % optimal
    block = max((e.src.block_size for e in req.extents), default=512)
    return max(block, size - size % block)


def run_block_copy(req: BlockCopy, share: FairShare, pool: ThreadPoolExecutor | None,
                   memory: DepthMemory | None = None, buffers: BufferPool | None = None,
                   flush_every: int = FLUSH_BEHIND_BYTES) -> int:
    """Carry out ``req``; returns the bytes copied or raises BlockCopyFailed.

    On zero-copy sessions each destination is also flushed in the background
    every ``flush_every`` bytes (:mod:`scsi.copymgr.writebehind`; 0: never).
    """
    if not req.extents:
        return 0
    memory = memory or DepthMemory()
    tuner = memory.tuner(req)
    # judge at least TUNER_WINDOW_BYTES per window: small chunks finish fast and their windows are noisy
    tuner.window = max(tuner.window, TUNER_WINDOW_BYTES // chunk_size(req))
    behind = WriteBehind(flush_every)
    share.join()
    t0 = time.monotonic()
    try:
        with ExitStack() as stack:
            sessions: dict[int, AsyncSession] = {}
            for lun in {id(l): l for e in req.extents for l in (e.src, e.dst)}.values():
                s = stack.enter_context(lun.lease_async())
                if s is None:
                    break
                sessions[id(lun)] = s
            else:
                return _AsyncCopy(req, sessions, share, tuner, buffers or BufferPool(0), behind).run()
        return _threaded_copy(req, share, pool, tuner)
    finally:
        share.leave()
        memory.keep(req, tuner)
        log.info("block copy of %d extents: %.2f s, chunk %d, depth %d -> %d over %d windows, "
                 "%d write-behind flushes", len(req.extents), time.monotonic() - t0, chunk_size(req),
                 tuner.history[0][0] if tuner.history else tuner.depth, tuner.depth, len(tuner.history),
                 behind.issued)


@dataclass(eq=False)
class _Slot:
    buf: bytearray
    index: int = 0
    ext: Extent | None = None
    src_lba: int = 0
    dst_lba: int = 0
    blocks: int = 0
    writing: bool = False
    pending: Any = None
    session: AsyncSession | None = None
    retries: int = 0


class _AsyncCopy:
    """Zero-copy pipeline over libiscsi sessions, serviced from the calling thread."""

    def __init__(self, req: BlockCopy, sessions: dict[int, AsyncSession], share: FairShare, tuner: DepthTuner,
                 buffers: BufferPool, behind: WriteBehind | None = None):
        self.req, self.sessions, self.share = req, sessions, share
        self.behind = behind or WriteBehind(0)
        self.chunk = chunk_size(req)
        self.tuner = tuner
        self.buffers = buffers
        self.free: list[bytearray] = []  # this copy's buffers between two chunks
        self.busy: list[_Slot] = []
        self.failure: BlockCopyFailed | None = None
        self.abort: BaseException | None = None  # what req.check returned
        self.copied = 0

    def run(self) -> int:
        pieces = chunks(self.req.extents, self.chunk)
        more = True
        while more or self.busy or self.behind.pending:
            if self.failure is None and self.abort is None:
                while more and len(self.busy) < min(self.tuner.depth, self.share.cap()):
                    self.abort = self.req.check() if self.req.check is not None else None
                    if self.abort is not None:
                        more = False
                        break
                    piece = next(pieces, None)
                    if piece is None:
                        more = False
                        break
                    self._start(*piece)
            else:
                more = False
            waiting = {id(s.session): s.session for s in self.busy}
            waiting.update({id(s): s for s in self.behind.sessions()})
            if waiting:
                service(list(waiting.values()))
                for slot in [s for s in self.busy if s.pending.done]:
                    self._advance(slot)
                self.behind.reap()
        for buf in self.free:  # every command has ended: nothing points into them any more
            self.buffers.give(buf)
        self.free = []
        if self.failure is not None:
            raise self.failure
        if self.abort is not None:
            raise self.abort
        return self.copied

    def _start(self, index: int, ext: Extent, src_lba: int, dst_lba: int, blocks: int) -> None:
        nbytes = blocks * ext.src.block_size
        buf = self.free.pop() if self.free else self.buffers.take(self.chunk)
        slot = _Slot(buf, index, ext, src_lba, dst_lba, blocks)
        self.busy.append(slot)
        self._submit(slot, memoryview(buf)[:nbytes])

    def _submit(self, slot: _Slot, view: memoryview) -> None:
        ext = slot.ext
        try:
            if slot.writing:
                slot.session = self.sessions[id(ext.dst)]
                slot.pending = slot.session.write_from(slot.dst_lba, slot.blocks, view)
            else:
                slot.session = self.sessions[id(ext.src)]
                slot.pending = slot.session.read_into(slot.src_lba, slot.blocks, view)
        except Exception as e:  # noqa: BLE001 - out of range, session lost: the copy fails here
            self._fail(slot, e)
            self.busy.remove(slot)
            self.free.append(slot.buf)

    def _advance(self, slot: _Slot) -> None:
        nbytes = slot.blocks * slot.ext.src.block_size
        what = (f"{'WRITE' if slot.writing else 'READ'}(16) of {slot.blocks} blocks at LBA "
                f"{slot.dst_lba if slot.writing else slot.src_lba}")
        outcome = slot.session.outcome(slot.pending, what)
        view = memoryview(slot.buf)[:nbytes]
        if outcome == RETRY and slot.retries < UNIT_ATTENTION_RETRIES and self.failure is None:
            slot.retries += 1
            self._submit(slot, view)
            return
        if outcome is not None:
            self._fail(slot, outcome if outcome != RETRY else RuntimeError(f"{what}: UNIT ATTENTION persists"))
        elif not slot.writing and self.failure is None:
            slot.writing, slot.retries = True, 0
            self._submit(slot, view)
            return
        elif slot.writing:
            self.copied += nbytes
            self.req.written(slot.index, nbytes)
            self.tuner.completed(nbytes)
            if self.failure is None:
                self.behind.wrote(slot.session, nbytes)
        self.busy.remove(slot)
        self.free.append(slot.buf)

    def _fail(self, slot: _Slot, error: Any) -> None:
        if self.failure is None or slot.index < self.failure.index:
            self.failure = BlockCopyFailed(slot.index, "destination" if slot.writing else "source", error)


def _threaded_copy(req: BlockCopy, share: FairShare, pool: ThreadPoolExecutor | None, tuner: DepthTuner) -> int:
    """The same pipeline for LUNs without zero-copy sessions: each slot reads then writes on a pool thread."""
    if pool is None:
        raise ValueError("LUNs without zero-copy sessions need the driver's thread pool")
    chunk = chunk_size(req)

    def one(index: int, ext: Extent, src_lba: int, dst_lba: int, blocks: int) -> tuple[int, int]:
        try:
            data = ext.src.read(src_lba, blocks)
        except Exception as e:  # noqa: BLE001
            raise BlockCopyFailed(index, "source", e) from None
        try:
            ext.dst.write(dst_lba, data)
        except Exception as e:  # noqa: BLE001
            raise BlockCopyFailed(index, "destination", e) from None
        return index, len(data)

    copied = 0
    failure: BlockCopyFailed | None = None
    abort: BaseException | None = None
    running: set[Future] = set()
    pieces = chunks(req.extents, chunk)
    more = True
    while more or running:
        while failure is None and abort is None and more and len(running) < min(tuner.depth, share.cap()):
            abort = req.check() if req.check is not None else None
            if abort is not None:
                break
            piece = next(pieces, None)
            if piece is None:
                more = False
                break
            running.add(pool.submit(one, *piece))
        if failure is not None or abort is not None:
            more = False
        if not running:
            break
        done, running = wait(running, return_when=FIRST_COMPLETED)
        for fut in done:
            try:
                index, n = fut.result()
            except BlockCopyFailed as e:
                if failure is None or e.index < failure.index:
                    failure = e
                continue
            copied += n
            req.written(index, n)
            tuner.completed(n)
    if failure is not None:
        raise failure
    if abort is not None:
        raise abort
    return copied


def supports_zero_copy(lun: BlockLun) -> bool:
    """Whether ``lun`` offers a zero-copy session (for logs and tests)."""
    with lun.lease_async() as s:
        return s is not None
