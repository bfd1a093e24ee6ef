"""A synthetic image-backup job for capacity runs: server-free, then LAN-free, then LAN.

This is a compact stand-in for the orchestrator's job (``orchestrator.job``)
used where thousands of jobs must run at once with O(1) memory each: it plans
with a :class:`UniformCopyPlan` instead of real parameter lists, but goes
through the same fluid operations, sees the same failures and resumes the same
way -- after the last batch known to be on the pool, and over the next path in
failover order when a path keeps failing.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Generator

import simpy

from orchestrator.ops import LanFreeWrite, LanSend, Piece
from simulator.copy_plan import UniformCopyPlan
from simulator.fluid import copy, transfer
from simulator.san import SimSAN

log = logging.getLogger(__name__)

MiB = 1 << 20
GiB = 1 << 30


class _Drives(simpy.Store):
    """The pool's store: a :class:`_Queued` block takes drives in its place as that many gets would."""

    def _do_get(self, event):  # type: ignore[no-untyped-def]
        if isinstance(event, _Queued):
            if self.items:
                event.give(self.items.pop(0))
            return None
        return super()._do_get(event)


class _Queued:
    """``count`` jobs that asked for a drive at the same moment, in order: one entry of the store's get
    queue (it never triggers itself) until the last of them has a drive."""

    triggered = False

    def __init__(self, pool: DrivePool, count: int, start: Callable[[int, str], Any]):
        self.pool, self.count, self.start, self.given = pool, count, start, 0

    def give(self, drive: str) -> None:
        k = self.given
        self.given += 1
        if self.given == self.count:
            self.pool.store.get_queue.remove(self)
        ev = self.pool.san.env.event()  # processed as the k-th job's own get would be
        ev.callbacks.append(lambda e: self.pool._got(e.value, lambda d: self.start(k, d)))
        ev.succeed(drive)


class DrivePool:
    """Tape drives as mount points: one session per drive; failed drives are set aside and rechecked."""

    def __init__(self, san: SimSAN, drives: list[str], recheck_s: float = 600.0):
        self.san = san
        self.store = _Drives(san.env)
        self.recheck_s = recheck_s
        for d in drives:
            san.drive(d)
            self.store.put(d)

    def acquire(self) -> Generator[simpy.Event, object, str]:
        while True:
            drive = yield self.store.get()
            if not self.san.drive(drive).failed:
                return drive
            self.san.env.process(self._recheck(drive))

    def admit(self, start: Callable[[str], Any]) -> None:
        """Queue for a drive now, as :meth:`acquire` would; ``start(drive)`` is called once one is ours.

        A job waiting this way is one pending event, not a suspended process.  Order and timing are
        those of :meth:`acquire` (a process started on the drive runs at once, ahead of anything else
        at that instant, as the resumed process would)."""
        self.store.get().callbacks.append(lambda ev: self._got(ev.value, start))

    def admit_many(self, count: int, start: Callable[[int, str], Any]) -> None:
        """``count`` jobs queue for a drive now, in order, as ``count`` :meth:`admit` calls would;
        ``start(k, drive)`` is called once the k-th has one.  However many there are, they wait as one
        entry of the queue: 10,000 jobs queued for 16 drives cost what one does."""
        if count <= 0:
            return
        block = _Queued(self, count, start)
        self.store.get_queue.append(block)
        while self.store.items and block.given < count:  # as each of the count gets would on creation
            self.store._trigger_get(None)

    def _got(self, drive: str, start: Callable[[str], Any]) -> None:
        if self.san.drive(drive).failed:
            self.san.env.process(self._recheck(drive))
            self.admit(start)  # to the back of the queue, as acquire's loop does
        else:
            start(drive)

    def _recheck(self, drive: str):
        yield self.san.env.timeout(self.recheck_s)
        self.store.put(drive)

    def release(self, drive: str) -> None:
        self.store.put(drive)


@dataclass
class BackupOutcome:
    job: str
    ok: bool
    size: float
    start: float
    end: float = 0.0
    path: str = "server-free"  # path that finished (or was last tried)
    attempts: int = 0
    failures: list[str] = field(default_factory=list)


def image_backup(san: SimSAN, job: str, disk: str, size: int, pool: DrivePool, movers: list[str], *,
                 batch_bytes: int = 80 * MiB, segment_bytes: int = MiB, extents: int = 1,
                 server_free_tries: int = 3, other_tries: int = 2, retry_delay_s: float = 60.0,
                 piece_bytes: int = GiB, sink: Callable[[BackupOutcome], Any] | None = None,
                 drive: str | None = None, queued_s: float | None = None
                 ) -> Generator[simpy.Event, object, BackupOutcome]:
    """Back up ``size`` bytes of ``disk``; returns a :class:`BackupOutcome`, also handed to ``sink``
    when given (e.g. :class:`simulator.outcome_stats.OutcomeStats`), so a caller need not keep the process.

    ``drive``: already acquired for this job (:meth:`DrivePool.admit`), which queued at ``queued_s``."""
    env = san.env
    out = BackupOutcome(job, False, size, env.now if queued_s is None else queued_s)
    san.register_job(job, size)
    client = san.owners[disk]
    pos = 0  # image bytes known to be on the pool
    if drive is None:
        drive = yield from pool.acquire()
    if san.cal.tape_mount_s:
        yield env.timeout(san.cal.tape_mount_s)
    try:
        start = sum(map(ord, job)) % max(len(movers), 1)  # spread jobs over movers, deterministically
        for attempt in range(server_free_tries):
            k = (start + attempt) % max(len(movers), 1)  # a different mover on each attempt
            mover = next((m for m in movers[k:] + movers[:k]
                          if san.route_is_up(disk, m) and san.route_is_up(m, drive)), None)
            if mover is None:
                out.failures.append(f"no live server-free path {disk} -> mover -> {drive}")
                break
            out.attempts += 1
            remaining = size - pos
            extents_left = max(1, round(extents * remaining / size))
            lay = UniformCopyPlan(remaining, batch_bytes, batch_bytes, segment_bytes, extents_left)
            res = yield env.process(copy(san, mover, disk, drive, lay, job=job))
            if res.ok:
                out.ok, out.path = True, "server-free"
                return out
            pos += res.batches_done * batch_bytes
            out.failures.append(res.failure.describe())
            if san.drive(drive).failed:
                pool.release(drive)
                drive = yield from pool.acquire()
            yield env.timeout(retry_delay_s)
        for kind in ("lan-free", "lan"):
            out.path = kind
            for _ in range(other_tries):
                out.attempts += 1
                pieces = tuple(Piece(o, o, min(piece_bytes, size - o)) for o in range(pos, size, piece_bytes))
                op = (LanFreeWrite(disk, drive, 0, pieces) if kind == "lan-free"
                      else LanSend(san.server or "", disk, drive, 0, pieces))
                res = yield env.process(transfer(san, op, client=client, job=job))
                pos += sum(p.length for p in pieces[:res.pieces_done])
                if res.ok:
                    out.ok = True
                    return out
                out.failures.append(res.failure.describe())
                if san.drive(drive).failed:
                    pool.release(drive)
                    drive = yield from pool.acquire()
                yield env.timeout(retry_delay_s)
        return out
    finally:
        out.end = env.now
        pool.release(drive)
        san.timeline.event(env.now, "job-end", job, ok=out.ok, path=out.path, attempts=out.attempts)
        san.end_job(job, out.start, env.now)
        if sink is not None:
            sink(out)
