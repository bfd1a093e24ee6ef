"""Reads of a volume's pieces coalesced: one READ for a run of nearby pieces, not one READ a piece.

A fragmented volume (NTFS volumes with tens of thousands of small used
extents are common) costs one SCSI round trip per extent when every piece is
read alone.  :class:`CoalescedReads` looks ahead in the op's pieces (a second
pass over the same stream, never a list) and, when a piece is asked for,
reads one span covering it and the following pieces whose gaps are small,
then hands each piece its bytes as a ``memoryview`` slice of that span.

Bounds (the price of fewer commands):

* a span joins pieces only across gaps of at most ``max_gap`` (64 KiB), so
  the bytes read that no piece asked for are at most ``max_gap`` per joined
  piece, and none at all between pieces further apart (those get their own
  READ, as before);
* a span is at most ``max_span`` bytes (1 MiB less two blocks, so that it is
  one READ(16) of at most ``IO_CHUNK`` after rounding to whole blocks); a
  single request longer than that is read alone, as before;
* at most one span is held at a time.

Correctness never depends on the look-ahead: a request outside the held span
(pieces out of volume order, a caller that skips or repeats pieces) is read
as a new span starting at that request.  A span whose READ fails with sense
data (a medium error, a refused LBA) is read again piece by piece, so the
error reaches the caller at the piece that holds the bad block; other
failures (timeout, lost connection) are raised at the piece being asked for.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable, Iterator

from orchestrator.drivers.real_devices import IO_CHUNK

MAX_GAP = 64 << 10     # largest unasked gap read to join two pieces into one READ
MAX_SPAN = IO_CHUNK    # largest span read at once (less block rounding: see span_limit)


def span_limit(block_size: int, max_span: int = MAX_SPAN) -> int:
    """The longest byte span that stays one READ of ``max_span`` bytes once widened to whole blocks."""
    return max(block_size, max_span - 2 * block_size)


class CoalescedReads:
    """``read(offset, length)`` for requests that follow ``ranges`` (``(offset, length)`` pairs, a lazy stream).

    ``read_span(offset, length)`` is the device read; it returns the bytes (any buffer).
    """

    def __init__(self, read_span: Callable[[int, int], Any], ranges: Iterable[tuple[int, int]],
                 max_gap: int = MAX_GAP, max_span: int = MAX_SPAN):
        if max_gap < 0 or max_span <= 0:
            raise ValueError(f"max_gap {max_gap} and max_span {max_span} must be >= 0 and > 0")
        self.read_span, self.max_gap, self.max_span = read_span, max_gap, max_span
        self._ahead: Iterator[tuple[int, int]] = iter(ranges)
        self._peeked: tuple[int, int] | None = None
        self._start = self._end = 0
        self._buf = memoryview(b"")
        self._failed = (0, 0)  # a span whose READ failed with sense data: its pieces are read one by one
        self.spans = 0  # device reads issued (for tests and reports)

    def read(self, offset: int, length: int) -> memoryview:
        if self._start <= offset and offset + length <= self._end:
            at = offset - self._start
            return self._buf[at:at + length]
        if length > self.max_span or (self._failed[0] <= offset and offset + length <= self._failed[1]):
            return self._alone(offset, length)
        end = self._plan(offset, offset + length)
        if end == offset + length:
            return self._alone(offset, length)
        self.spans += 1
        try:
            data = memoryview(self.read_span(offset, end - offset))
        except Exception as exc:
            if not getattr(exc, "sense", None):
                raise
            self._failed = (offset, end)
            return self._alone(offset, length)
        self._start, self._end, self._buf = offset, offset + len(data), data
        return data[:length]

    def _alone(self, offset: int, length: int) -> memoryview:
        self.spans += 1
        return memoryview(self.read_span(offset, length))

    def _plan(self, start: int, end: int) -> int:
        """The end of the span from ``start``: the request, then the next ranges while they stay close."""
        while True:
            if self._peeked is None:
                self._peeked = next(self._ahead, None)
                if self._peeked is None:
                    return end
            qs, n = self._peeked
            qe = qs + n
            if qe <= start:  # behind the request: already served, or out of order and read alone when asked
                self._peeked = None
                continue
            if qs - end > self.max_gap or max(end, qe) - start > self.max_span:
                return end
            end = max(end, qe)
            self._peeked = None


def volume_reader(src: Any, base: int, pieces: Iterable[Any], by_image: bool = False,
                  max_gap: int = MAX_GAP) -> Callable[[Any], memoryview]:
    """``read(piece)``: the piece's bytes on ``src`` at ``base`` plus its volume offset (its length), coalesced.

    With ``by_image`` the piece's stored bytes at ``base`` plus its image offset (pool reads).  ``read`` may
    also be asked for a part of a piece (``chunk_digests`` reads pieces in steps): anything works, what
    follows ``pieces`` in order is fast.
    """
    block = int(getattr(src, "block_size", 512) or 512)
    span_read = getattr(src, "read_view", None) or src.read
    if by_image:
        ranges = ((base + p.image_offset, p.stored) for p in pieces)
        reads = CoalescedReads(span_read, ranges, max_gap, span_limit(block))
        return lambda p: reads.read(base + p.image_offset, p.stored)
    ranges = ((base + p.volume_offset, p.length) for p in pieces)
    reads = CoalescedReads(span_read, ranges, max_gap, span_limit(block))
    return lambda p: reads.read(base + p.volume_offset, p.length)
