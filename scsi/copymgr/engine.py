"""The sans-I/O copy engine: executes a prepared parameter list segment by segment.

``CopyEngine.run()`` is a generator: it yields batches of I/O requests and is
resumed with their results (``driver.run_batch``), so threads, asyncio or a
simpy model can carry it.  It keeps :class:`Progress` current after every
batch (segments processed, bytes written to destinations) for COPY STATUS,
pipelines chunks (``depth`` chunks of ``chunk`` bytes in flight, reads of the
next chunks next to writes of the previous ones) and applies the CAT/PAD
rules for inexact segments (SPC-4 r36f 5.17.7.2, the PAD and CAT bits):

* CAT=1: a residue that does not fill a destination unit is kept and put in
  front of the next segment's data;
* else destination PAD=1: the last destination block is filled with zeros;
* else source PAD=1: the residue is dropped;
* else COPY ABORTED 26h/0Ah UNEXPECTED INEXACT SEGMENT.

A variable-mode stream destination takes a short last record instead (its
records have no fixed size to be inexact against).
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Generator, Sequence

from scsi import asc as A
from scsi.copymgr.errors import CopyAborted, device_failure
from scsi.copymgr.io import (BlockCopy, BlockCopyFailed, BlockRead, BlockWrite, Extent, Flush, IoRequest, IoResult,
                            TestReady, WriteFilemarks)
from scsi.copymgr.resolve import Target
from scsi.copymgr.stages import (BlockSink, BlockSource, BytesSource, DiscardSink, Sink, Source,
                                 SourceError, StreamSink, StreamSource)
from scsi.xcopy import segments as S

log = logging.getLogger(__name__)

Batch = Generator[list[IoRequest], list[IoResult], None]


@dataclass
class Progress:
    """What COPY STATUS reports, updated while the copy runs."""

    segments_processed: int = 0
    bytes_written: int = 0
    held: bytearray = field(default_factory=bytearray)
    held_discarded: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add_bytes(self, n: int) -> None:
        with self.lock:
            self.bytes_written += n

    def finish_segment(self) -> None:
        with self.lock:
            self.segments_processed += 1

    def snapshot(self) -> tuple[int, int]:
        with self.lock:
            return self.segments_processed, self.bytes_written


@dataclass(frozen=True)
class Step:
    """One segment ready to run: its decoded descriptor, number, list offset and targets."""

    number: int
    offset: int
    segment: S.SegmentBase
    src: Target | None
    dst: Target | None


class CopyEngine:
    """Runs prepared steps; raise CopyAborted (progress stays exact) on the first failure."""

    def __init__(self, steps: Sequence[Step], progress: Progress, *, inline: bytes = b"",
                 chunk: int = 1 << 20, depth: int = 4, held_limit: int = 0, block_copy: bool = False,
                 merge_segments: bool = True):
        self.steps = steps
        self.progress = progress
        self.inline = inline
        self.chunk = chunk
        self.depth = max(1, depth)
        self.held_limit = held_limit
        self.residual = b""
        self.touched: dict[int, object] = {}
        self.block_copy = block_copy  # the driver pipelines runs of plain 02h segments itself
        self.merge_segments = merge_segments  # one BlockCopy per run of them (else one per segment)
        #: seconds spent in pipelined block copies and in the closing SYNCHRONIZE CACHE (for the mover's log)
        self.phases = {"block copy": 0.0, "flush": 0.0}

    # -- driver -------------------------------------------------------------------------
    def run(self) -> Batch:
        i = 0
        while i < len(self.steps):
            run = self._plain_run(i)
            if run:
                yield from self._block_copy(run)
                i += len(run)
                continue
            yield from self._segment(self.steps[i])
            self.progress.finish_segment()
            i += 1
        last = self.steps[-1] if self.steps else None
        if self.residual and last is not None:
            raise CopyAborted.make(A.UNEXPECTED_INEXACT_SEGMENT,
                                   f"segment {last.number}: {len(self.residual)} bytes left over (CAT=1) "
                                   "after the last segment", segment=last.number, field=1, bit=0, sd=True)
        flushes = [Flush(lun) for lun in self.touched.values()]
        if flushes:
            t0 = time.perf_counter()
            results = yield flushes
            self.phases["flush"] += time.perf_counter() - t0
            for req, res in zip(flushes, results):
                if not res.ok:
                    raise device_failure(res.error, segment=last.number if last else 0, role="destination")

    # -- runs of plain block-to-block segments, handed to the driver whole -------------------
    def _plain(self, step: Step) -> bool:
        """A 02h segment of whole blocks between equal block sizes: no residue, no hold, no PAD rule."""
        seg, src, dst = step.segment, step.src, step.dst
        return (seg.type_code == 0x02 and src is not None and dst is not None
                and src.block_size == dst.block_size and src.lun.is_block and dst.lun.is_block)

    def _plain_run(self, start: int) -> list[Step]:
        if not self.block_copy or self.residual:
            return []
        run: list[Step] = []
        for step in self.steps[start:]:
            if not self._plain(step):
                break
            run.append(step)
            if not self.merge_segments:
                break
        return run

    def _block_copy(self, run: list[Step]) -> Batch:
        """One BlockCopy for consecutive plain 02h segments; segments count as done in order as they land."""
        extents = tuple(Extent(s.src.lun, s.segment.src_lba, s.dst.lun, s.segment.dst_lba, s.segment.block_count)
                        for s in run)
        left = [e.blocks * e.src.block_size for e in extents]
        finished = 0
        for s in run:
            self.touched[id(s.dst.lun)] = s.dst.lun

        def written(index: int, nbytes: int) -> None:
            nonlocal finished
            self.progress.add_bytes(nbytes)
            left[index] -= nbytes
            while finished < len(left) and left[finished] == 0:
                finished += 1
                self.progress.finish_segment()

        written(0, 0)  # leading empty segments are done at once
        t0 = time.perf_counter()
        results = yield [BlockCopy(extents, self.chunk, self.depth, written)]
        self.phases["block copy"] += time.perf_counter() - t0
        res = results[0]
        if not res.ok:
            err = res.error
            if isinstance(err, BlockCopyFailed):
                raise device_failure(err.error, segment=run[err.index].number, role=err.role)
            raise device_failure(err, segment=run[finished].number if finished < len(run) else run[-1].number,
                                 role="source")

    def _segment(self, step: Step) -> Batch:
        seg = step.segment
        code = seg.type_code
        base = S.HELD_TWINS.get(code, code)
        if base == 0x07:
            if seg.tur:
                results = yield [TestReady(step.src.lun)]
                if not results[0].ok:
                    raise device_failure(results[0].error, segment=step.number, role="source")
            return
        if base == 0x10:
            self.touched[id(step.dst.lun)] = step.dst.lun
            results = yield [WriteFilemarks(step.dst.lun, seg.filemark_count)]
            if not results[0].ok:
                raise device_failure(results[0].error, segment=step.number, role="destination")
            return
        if base == 0x0A:
            yield from self._block_offset(step)
            return
        source, sink = self._stages(step, base)
        if step.dst is not None and base != 0x06:
            self.touched[id(step.dst.lun)] = step.dst.lun
        yield from self._pump(step, source, sink, hold=seg.holds_data)

    # -- stage selection ------------------------------------------------------------------
    def _stages(self, step: Step, base: int) -> tuple[Source, Sink]:
        seg, src, dst = step.segment, step.src, step.dst
        carried = len(self.residual)
        if base == 0x02:
            sink = BlockSink(dst.lun, seg.dst_lba, seg.block_count if seg.dc else None)
            if seg.dc:
                need = max(0, seg.block_count * dst.block_size - carried)
                blocks = -(-need // src.block_size)
            else:
                blocks = seg.block_count
            return BlockSource(src.lun, seg.src_lba, blocks), sink
        if base == 0x00:
            return (BlockSource(src.lun, seg.lba, seg.block_count),
                    StreamSink(dst.lun, seg.stream_transfer_length, fixed=dst.fixed, block_size=dst.block_size))
        if base == 0x01:
            need = max(0, seg.block_count * dst.block_size - carried)
            return (StreamSource(src.lun, seg.stream_transfer_length, need, fixed=src.fixed,
                                 block_size=src.block_size),
                    BlockSink(dst.lun, seg.lba, seg.block_count))
        if base == 0x03:
            return (StreamSource(src.lun, seg.src_transfer_length, seg.byte_count, fixed=src.fixed,
                                 block_size=src.block_size),
                    self._capped(StreamSink(dst.lun, seg.dst_transfer_length, fixed=dst.fixed,
                                            block_size=dst.block_size), seg.byte_count + carried))
        if base == 0x04:
            data = self.inline[seg.inline_offset:seg.inline_offset + seg.byte_count]
            return (BytesSource(data), StreamSink(dst.lun, seg.stream_transfer_length, fixed=dst.fixed,
                                                  block_size=dst.block_size))
        if base == 0x06:
            return (StreamSource(src.lun, seg.stream_transfer_length, seg.byte_count, fixed=src.fixed,
                                 block_size=src.block_size), self._capped(DiscardSink(), seg.byte_count + carried))
        raise AssertionError(f"segment type {base:02X}h reached the engine unprepared")

    @staticmethod
    def _capped(sink: Sink, capacity: int) -> Sink:
        sink.capacity = capacity
        return sink

    # -- the pipeline --------------------------------------------------------------------
    def _pump(self, step: Step, source: Source, sink: Sink, *, hold: bool) -> Batch:
        writes: list[tuple[IoRequest, int]] = []
        if self.residual:
            writes += sink.feed(self.residual, self.chunk)
            self.residual = b""
        if isinstance(source, BytesSource):
            writes += sink.feed(source.take(), self.chunk)
        while True:
            reads = [] if source.done else source.next_reads(self.chunk, self.depth)
            if not reads and not writes:
                if not source.done:
                    raise AssertionError("source neither done nor reading")
                break
            batch = reads + [w for w, _ in writes]
            results = yield batch
            self._account(step, writes, results[len(reads):])
            writes = []
            try:
                data = source.absorb(reads, results[:len(reads)])
            except SourceError as e:
                if hold:
                    self._hold(e.data)
                raise device_failure(e.error, segment=step.number, role="source") from None
            if hold:
                self._hold(data)
            writes = sink.feed(data, self.chunk)
        writes += self._tail(step, sink)
        if writes:
            results = yield [w for w, _ in writes]
            self._account(step, writes, results)

    def _account(self, step: Step, writes: list[tuple[IoRequest, int]], results: list[IoResult]) -> None:
        failed: BaseException | None = None
        for (_, counted), res in zip(writes, results):
            if res.ok:
                self.progress.add_bytes(counted)
            elif failed is None:
                failed = res.error
        if failed is not None:
            raise device_failure(failed, segment=step.number, role="destination")

    def _tail(self, step: Step, sink: Sink) -> list[tuple[IoRequest, int]]:
        """Apply the CAT/PAD rules to bytes the sink could not place in whole units."""
        left = bytes(sink.buffer)
        sink.buffer.clear()
        if not left:
            return []
        seg = step.segment
        src_pad = bool(step.src and step.src.pad)
        dst_pad = bool(step.dst and step.dst.pad)
        if seg.cat:
            self.residual = left
            return []
        if isinstance(sink, DiscardSink):
            return []
        if sink.full:
            if src_pad or dst_pad:
                return []
            raise CopyAborted.make(A.COPY_TARGET_DEVICE_DATA_OVERRUN,
                                   f"segment {step.number}: the source delivered {len(left)} bytes more "
                                   "than the destination takes", segment=step.number)
        if isinstance(sink, StreamSink) and sink.variable:
            return sink.emit_tail(left)
        if dst_pad:
            return sink.emit_tail(left + bytes(sink.unit - len(left)))
        if src_pad:
            return []
        raise CopyAborted.make(A.UNEXPECTED_INEXACT_SEGMENT,
                               f"segment {step.number}: {len(left)} bytes do not fill a {sink.unit}-byte "
                               "destination unit and neither CAT nor PAD is set", segment=step.number,
                               field=1, bit=0, sd=True)

    def _hold(self, data: bytes) -> None:
        if self.held_limit <= 0 or not data:
            if data:
                self.progress.held_discarded = True
            return
        held = self.progress.held
        held += data
        if len(held) > self.held_limit:
            del held[:len(held) - self.held_limit]
            self.progress.held_discarded = True

    # -- 0Ah: byte-offset copy with read-modify-write at the edges ----------------------------
    def _block_offset(self, step: Step) -> Batch:
        seg, src, dst = step.segment, step.src, step.dst
        sbs, dbs = src.block_size, dst.block_size
        s0 = seg.src_lba * sbs + seg.src_byte_offset
        d0 = seg.dst_lba * dbs + seg.dst_byte_offset
        total = seg.byte_count
        self.touched[id(dst.lun)] = dst.lun
        pos = 0
        writes: list[tuple[IoRequest, int]] = []
        while pos < total or writes:
            plans = []
            reads: list[IoRequest] = []
            while pos < total and len(plans) < self.depth:
                end = min(total, pos + self.chunk)
                if end < total:  # end the chunk on a destination block boundary
                    end = max(pos + 1, end - (d0 + end) % dbs)
                n = end - pos
                sa, da = s0 + pos, d0 + pos
                sb, se = sa // sbs, -(-(sa + n) // sbs)
                db, de = da // dbs, -(-(da + n) // dbs)
                rd = [BlockRead(src.lun, sb, se - sb)]
                head = da % dbs != 0
                tail = (da + n) % dbs != 0
                if head:
                    rd.append(BlockRead(dst.lun, db, 1))
                if tail and (de - 1 != db or not head):
                    rd.append(BlockRead(dst.lun, de - 1, 1))
                plans.append((sa - sb * sbs, n, da - db * dbs, db, de, head, tail, len(rd)))
                reads += rd
                pos = end
            results = yield reads + [w for w, _ in writes]
            self._account(step, writes, results[len(reads):])
            writes = []
            i = 0
            for skip, n, dskip, db, de, head, tail, nreads in plans:
                group = results[i:i + nreads]
                i += nreads
                for r in group:
                    if not r.ok:
                        role = "source" if r is group[0] else "destination"
                        raise device_failure(r.error, segment=step.number, role=role)
                payload = group[0].value[skip:skip + n]
                buf = bytearray((de - db) * dbs)
                if head:
                    buf[:dbs] = group[1].value
                if tail:
                    buf[-dbs:] = group[-1].value if (de - 1 != db or not head) else buf[:dbs]
                buf[dskip:dskip + n] = payload
                writes.append((BlockWrite(dst.lun, db, bytes(buf)), n))
