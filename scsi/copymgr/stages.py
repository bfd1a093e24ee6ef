"""Where a segment's bytes come from and go to, as I/O requests.

A source hands out read requests and turns their results into bytes; a sink
takes bytes and hands out write requests.  Neither performs I/O: the engine
batches their requests (several chunks outstanding, reads of the next chunks
beside writes of the previous ones) and a driver executes them.
"""
from __future__ import annotations

from scsi.copymgr.io import BlockRead, BlockWrite, IoRequest, IoResult, StreamRead, StreamWrite
from scsi.luns.base import BlockLun, LunError, StreamLun


class SourceError(Exception):
    """A read failed; ``data`` holds what arrived before it (in order)."""

    def __init__(self, error: BaseException, data: bytes):
        super().__init__(str(error))
        self.error = error
        self.data = data


class Source:
    """Base: produce ``need`` bytes (``None`` = until told to stop)."""

    done: bool = False

    def next_reads(self, chunk: int, depth: int) -> list[IoRequest]:
        raise NotImplementedError

    def absorb(self, reqs: list[IoRequest], results: list[IoResult]) -> bytes:
        out = bytearray()
        for req, res in zip(reqs, results):
            if not res.ok:
                err = res.error
                partial = err.partial if isinstance(err, LunError) else b""
                raise SourceError(err, bytes(out) + partial)
            value = res.value
            out += b"".join(value) if isinstance(value, list) else value
        return bytes(out)


class BlockSource(Source):
    def __init__(self, lun: BlockLun, lba: int, blocks: int):
        self.lun, self.lba, self.left = lun, lba, blocks
        self.done = blocks == 0

    def next_reads(self, chunk: int, depth: int) -> list[IoRequest]:
        per = max(1, chunk // self.lun.block_size)
        reqs: list[IoRequest] = []
        while self.left and len(reqs) < depth:
            n = min(per, self.left)
            reqs.append(BlockRead(self.lun, self.lba, n))
            self.lba += n
            self.left -= n
        self.done = self.left == 0
        return reqs


class StreamSource(Source):
    """Reads of ``transfer_length`` bytes (variable) or blocks (fixed) until ``need`` bytes arrived."""

    def __init__(self, lun: StreamLun, transfer_length: int, need: int, *, fixed: bool, block_size: int):
        self.lun, self.tl, self.need = lun, transfer_length, need
        self.fixed, self.block_size = fixed, block_size
        self.got = 0
        self.asked = False
        self.done = need <= 0

    @property
    def bytes_per_read(self) -> int:
        return self.tl * self.block_size if self.fixed else self.tl

    def next_reads(self, chunk: int, depth: int) -> list[IoRequest]:
        if self.done or self.asked:  # one outstanding read request per stream
            return []
        per = self.bytes_per_read
        left = self.need - self.got
        reads = max(1, min(-(-left // per), max(1, chunk * depth // per)))
        self.asked = True
        return [StreamRead(self.lun, self.tl, reads, self.fixed, self.block_size)]

    def absorb(self, reqs: list[IoRequest], results: list[IoResult]) -> bytes:
        self.asked = False
        data = super().absorb(reqs, results)
        self.got += len(data)
        self.done = self.got >= self.need
        return data


class BytesSource(Source):
    """Data already at hand (inline data): no I/O."""

    def __init__(self, data: bytes):
        self.data = data
        self.done = False

    def next_reads(self, chunk: int, depth: int) -> list[IoRequest]:
        return []

    def take(self) -> bytes:
        self.done = True
        return self.data


class Sink:
    """Base: accept bytes, emit writes of whole units; ``capacity`` in bytes (None = unbounded)."""

    unit: int = 1
    capacity: int | None = None

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.accepted = 0  # bytes turned into writes

    @property
    def full(self) -> bool:
        return self.capacity is not None and self.accepted >= self.capacity

    def feed(self, data: bytes, chunk: int) -> list[tuple[IoRequest, int]]:
        if not self.buffer and len(data) % self.unit == 0 and (
                self.capacity is None or self.accepted + len(data) <= self.capacity):
            self.accepted += len(data)  # the common case: whole units, no copy
            return self.emit(data, chunk) if data else []
        self.buffer += data
        usable = len(self.buffer) - len(self.buffer) % self.unit
        if self.capacity is not None:
            usable = min(usable, self.capacity - self.accepted)
        if usable <= 0:
            return []
        take = bytes(self.buffer[:usable])
        del self.buffer[:usable]
        self.accepted += usable
        return self.emit(take, chunk)

    def emit(self, data: bytes, chunk: int) -> list[tuple[IoRequest, int]]:
        raise NotImplementedError

    def emit_tail(self, data: bytes) -> list[tuple[IoRequest, int]]:
        """Write a final partial unit (padded block, short record)."""
        self.accepted += len(data)
        return self.emit(data, len(data) or 1)


class BlockSink(Sink):
    def __init__(self, lun: BlockLun, lba: int, blocks: int | None):
        super().__init__()
        self.lun, self.lba = lun, lba
        self.unit = lun.block_size
        self.capacity = None if blocks is None else blocks * self.unit

    def emit(self, data: bytes, chunk: int) -> list[tuple[IoRequest, int]]:
        per = max(self.unit, chunk - chunk % self.unit)
        out: list[tuple[IoRequest, int]] = []
        for i in range(0, len(data), per):
            piece = data if len(data) <= per else data[i:i + per]
            out.append((BlockWrite(self.lun, self.lba, piece), len(piece)))
            self.lba += len(piece) // self.unit
        return out


class StreamSink(Sink):
    """Variable mode: records of ``transfer_length`` bytes; fixed mode: blocks of the stream block length."""

    def __init__(self, lun: StreamLun, transfer_length: int, *, fixed: bool, block_size: int):
        super().__init__()
        self.lun, self.fixed, self.block_size = lun, fixed, block_size
        self.unit = block_size if fixed else transfer_length
        self.tl = transfer_length

    @property
    def variable(self) -> bool:
        return not self.fixed

    def emit(self, data: bytes, chunk: int) -> list[tuple[IoRequest, int]]:
        if self.fixed:
            per_write = self.tl * self.block_size
            records = tuple(data[i:i + per_write] for i in range(0, len(data), per_write))
        else:
            records = tuple(data[i:i + self.unit] for i in range(0, len(data), self.unit))
        return [(StreamWrite(self.lun, records, self.fixed, self.block_size), len(data))] if records else []


class DiscardSink(Sink):
    def emit(self, data: bytes, chunk: int) -> list[tuple[IoRequest, int]]:
        return []
