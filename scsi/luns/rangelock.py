"""Block-range locks of one LUN: what makes COMPARE AND WRITE and ORWRITE atomic (SBC-3).

Every write to a LUN — from any session, WRITE/WRITE SAME/UNMAP or the copy
manager's own writes — holds its block range *shared*; a read-modify-write
command holds its range *exclusive*.  Shared holders never wait for each other
(SCSI does not order overlapping writes of different commands), so the only
cost to ordinary I/O is one short critical section; an exclusive holder waits
for overlapping writes in flight and keeps new ones out until it is done.  A
waiting exclusive request blocks new overlapping shared ones, so a stream of
writes cannot starve VMware's ATS (COMPARE AND WRITE used as a lock), and
overlapping exclusive requests are served first come, first served, so hosts
spinning on an ATS lock cannot starve the host that wants to release it.
"""
from __future__ import annotations

import itertools
import threading
from contextlib import contextmanager
from typing import Iterator


class RangeLock:
    """Shared/exclusive locks over half-open block ranges ``[lba, lba + count)``."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._held: list[tuple[int, int, bool]] = []  # (start, end, exclusive)
        self._waiting_exclusive: dict[int, tuple[int, int]] = {}  # ticket -> range, in arrival order
        self._tickets = itertools.count()

    @staticmethod
    def _overlap(a0: int, a1: int, b0: int, b1: int) -> bool:
        return a0 < b1 and b0 < a1

    def _blocked(self, start: int, end: int, exclusive: bool, ticket: int | None) -> bool:
        for h0, h1, hx in self._held:
            if (exclusive or hx) and self._overlap(start, end, h0, h1):
                return True
        return any(self._overlap(start, end, w0, w1)
                   for t, (w0, w1) in self._waiting_exclusive.items() if ticket is None or t < ticket)

    @contextmanager
    def hold(self, lba: int, count: int, *, exclusive: bool = False) -> Iterator[None]:
        """Hold ``count`` blocks from ``lba`` (at least one block) for the ``with`` body."""
        entry = (lba, lba + max(count, 1), exclusive)
        with self._cond:
            ticket = next(self._tickets) if exclusive else None
            if ticket is not None:
                self._waiting_exclusive[ticket] = entry[:2]
            try:
                while self._blocked(*entry, ticket):
                    self._cond.wait()
            finally:
                if ticket is not None:
                    del self._waiting_exclusive[ticket]
                    self._cond.notify_all()
            self._held.append(entry)
        try:
            yield
        finally:
            with self._cond:
                self._held.remove(entry)
                self._cond.notify_all()
