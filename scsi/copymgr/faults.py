"""Deterministic fault injection in the data mover: what a failing SAN looks like, on demand.

A fault is a rule ``ACTION[=ARG][@COND,...]`` (``datamover serve --fault``, or
the config's ``faults:`` list)::

    copy-aborted=0D/02@list=2,segment=3   list 2 stops before segment 3: COPY ABORTED 0Dh/02h
    check=02/04/01@command=rcr-op         OPERATING PARAMETERS answered NOT READY 04h/01h
    busy=5s@list=1                        BUSY (08h) to every EXTENDED COPY for 5 s from list 1
    task-set-full=5s@command=any          TASK SET FULL (28h) to every command for 5 s
    drop@bytes=4M                         close every iSCSI connection once 4 MiB have moved
    stall=60s@list=1,segment=2            hang (no answer to anything) for 60 s at segment 2

Triggers are positions, never wall-clock time, so a run repeats exactly:
``list=N`` is the N-th EXTENDED COPY this mover received (1-based),
``segment=S`` the copy's segment number as sense data reports it (0-based: the
fault strikes after segments 0..S-1 are done), ``bytes=B`` the bytes this mover
has written since it started (all copies).  ``command=`` says which commands a
rule answers instead of executing: ``xcopy`` (83h, the default), ``rcr-op``
(84h service action 03h), ``rcr`` (any 84h), ``io`` (everything else), ``any``.
``times=K`` lets a rule fire K times (default once).

Every fault that fires is logged (``fault injected: ...``, WARNING) and kept
in :attr:`FaultPlan.fired`, so a test can check that what it asked for
happened.  Sense layouts follow SPC-4 (COPY ABORTED: key Ah, the segment
number in COMMAND-SPECIFIC INFORMATION, SPC-4 r36f 5.17.7.4).
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable

from scsi.copymgr.errors import CopyAborted
from scsi.copymgr.fault_rules import (FaultError, FaultRule, command_kind, matches, parse_fault,
                                      rule_from_config)
from scsi.copymgr.io import BlockCopy, BlockCopyFailed, Extent, IoResult
from scsi.result import Nexus, ScsiResult, Status
from scsi.sense import SenseKey, copy_aborted, sense_for

log = logging.getLogger(__name__)

__all__ = ["FaultError", "FaultInjector", "FaultPlan", "FaultRule", "Fired", "command_kind", "parse_fault",
           "rule_from_config"]


@dataclass
class Fired:
    """One fault that happened: the rule, what was done, and where in the run."""

    rule: str
    what: str
    list: int
    bytes: int
    at: float = field(default_factory=time.monotonic)


class FaultPlan:
    """The rules of one mover and the position counters they are judged against."""

    def __init__(self, rules: list[FaultRule], *, on_drop: Callable[[], int] | None = None):
        self.rules = list(rules)
        self.on_drop = on_drop  # closes every iSCSI connection; returns how many
        self.fired: list[Fired] = []
        self._left = {i: r.times for i, r in enumerate(self.rules)}
        self._windows: dict[int, float] = {}  # rule index -> monotonic end of a BUSY/TASK SET FULL window
        self._stalled_until = 0.0
        self._lists = 0
        self._bytes_done = 0
        self._lock = threading.Lock()
        self._local = threading.local()

    def __bool__(self) -> bool:
        return bool(self.rules)

    # -- bookkeeping -----------------------------------------------------------------------
    @property
    def lists(self) -> int:
        return self._lists

    def current_list(self) -> int:
        """The ordinal of the EXTENDED COPY this thread is executing (0 outside one)."""
        return getattr(self._local, "list", 0)

    def _fire(self, index: int, what: str, nbytes: int | None = None) -> None:
        rule = self.rules[index]
        self._left[index] -= 1
        f = Fired(rule.label(), what, self.current_list() or self._lists,
                  self._bytes_done if nbytes is None else nbytes)
        self.fired.append(f)
        log.warning("fault injected: %s -> %s (list %d, %d bytes moved)", f.rule, what, f.list, f.bytes)

    def _wait_stall(self) -> None:
        delay = self._stalled_until - time.monotonic()
        if delay > 0:
            time.sleep(delay)

    def _stall(self, index: int, nbytes: int | None = None) -> None:
        with self._lock:
            self._stalled_until = max(self._stalled_until, time.monotonic() + self.rules[index].seconds)
            self._fire(index, f"stalled {self.rules[index].seconds:g} s", nbytes)

    def _drop(self, index: int, nbytes: int | None = None) -> None:
        with self._lock:
            self._fire(index, "dropping every connection", nbytes)
        count = self.on_drop() if self.on_drop is not None else 0
        log.warning("fault injected: %d iSCSI connection(s) closed", count)

    # -- before a command (the target's handler) -------------------------------------------
    def before_command(self, cdb: bytes) -> tuple[ScsiResult | None, bool]:
        """(an answer instead of executing, whether to drop the connections) for one command."""
        self._wait_stall()
        kind = command_kind(cdb)
        with self._lock:
            if kind == "xcopy":
                self._lists += 1
                self._local.list = self._lists
            now = time.monotonic()
            for i, rule in enumerate(self.rules):
                if rule.in_copy or not matches(rule, kind):
                    continue
                if rule.list is not None and self._lists < rule.list:
                    continue
                if rule.list is not None and kind == "xcopy" and self._lists != rule.list \
                        and rule.action not in ("busy", "task-set-full"):
                    continue
                if rule.action in ("busy", "task-set-full"):
                    end = self._windows.get(i)
                    if end is None and self._left[i] > 0:
                        end = self._windows[i] = now + rule.seconds
                        self._fire(i, f"{rule.action} for {rule.seconds:g} s")
                    if end is not None and now < end:
                        status = Status.BUSY if rule.action == "busy" else Status.TASK_SET_FULL
                        if kind == "xcopy":
                            self._lists -= 1  # not accepted: the next one is the same list again
                        return ScsiResult(status=status), False
                    continue
                if self._left[i] <= 0:
                    continue
                if rule.action in ("copy-aborted", "check"):
                    key, asc, ascq = rule.sense or (0, 0, 0)
                    sense = copy_aborted(asc, ascq) if key == SenseKey.COPY_ABORTED else sense_for(key, asc, ascq)
                    self._fire(i, f"CHECK CONDITION {key:X}h/{asc:02X}h/{ascq:02X}h instead of {kind}")
                    return ScsiResult(status=Status.CHECK_CONDITION, sense=sense.encode()), False
                if rule.action == "drop":
                    self._fire(i, f"dropping every connection instead of answering {kind}")
                    return None, True
                if rule.action == "stall":
                    self._stalled_until = max(self._stalled_until, now + rule.seconds)
                    self._fire(i, f"stalled {rule.seconds:g} s before {kind}")
        self._wait_stall()
        return None, False

    def after_command(self) -> None:
        self._local.list = 0

    # -- between the I/O batches of a copy (CopyManager.drive) -----------------------------
    def watch(self, progress: Any) -> "CopyWatch":
        return CopyWatch(self, progress, self.current_list())


class CopyWatch:
    """Judges the in-copy rules against one running copy's progress before each I/O batch."""

    def __init__(self, plan: FaultPlan, progress: Any, list_number: int):
        self.plan, self.progress, self.list_number = plan, progress, list_number

    def before_batch(self) -> Exception | None:
        """A CopyAborted to throw into the copy, or None to carry on (may block while stalled)."""
        plan = self.plan
        plan._wait_stall()
        segments, nbytes = self.progress.snapshot()
        total = plan._bytes_done + nbytes
        for i, rule in enumerate(plan.rules):
            if not rule.in_copy or plan._left[i] <= 0:
                continue
            if rule.list is not None and rule.list != self.list_number:
                continue
            if rule.segment is not None and segments < rule.segment:
                continue
            if rule.bytes is not None and total < rule.bytes:
                continue
            if rule.action == "stall":
                plan._stall(i, total)
                plan._wait_stall()
                continue
            if rule.action == "drop":
                plan._drop(i, total)
                return CopyAborted.make((0x0D, 0x01), "connection dropped by fault injection", segment=segments)
            _, asc, ascq = rule.sense or (0, 0, 0)
            with plan._lock:
                plan._fire(i, f"COPY ABORTED {asc:02X}h/{ascq:02X}h at segment {segments}", total)
            return CopyAborted.make((asc, ascq), f"injected fault {rule.label()}", segment=segments)
        return None

    # -- inside one pipelined BlockCopy (a run of plain 02h segments handed to the driver whole) --
    def run_batch(self, run: Callable[[list], list], batch: list) -> list:
        """``run(batch)``, with a lone BlockCopy cut where an in-copy rule strikes inside it."""
        if len(batch) != 1 or not isinstance(batch[0], BlockCopy):
            return run(batch)
        req: BlockCopy = batch[0]
        shift = 0  # index of req.extents[0] in the original request
        while True:
            cut = self._cut(req)
            if cut is None:
                return self._shifted(run([req]), shift)
            index, blocks, rule_index = cut
            head = list(req.extents[:index]) + ([_part(req.extents[index], 0, blocks)] if blocks else [])
            if head:
                done = run([BlockCopy(tuple(head), req.chunk, req.depth, req.written)])
                if not done[0].ok:
                    return self._shifted(done, shift)
            rule = self.plan.rules[rule_index]
            segments, nbytes = self.progress.snapshot()
            total = self.plan._bytes_done + nbytes
            if rule.action == "stall":
                self.plan._stall(rule_index, total)
                self.plan._wait_stall()
                rest = list(req.extents[index:])
                if blocks:
                    rest[0] = _part(rest[0], blocks, None)
                if not rest:
                    return [IoResult(value=0)]
                req = BlockCopy(tuple(rest), req.chunk, req.depth, _offset(req.written, index))
                shift += index
                continue
            if rule.action == "drop":
                self.plan._drop(rule_index, total)
                err = CopyAborted.make((0x0D, 0x01), "connection dropped by fault injection", segment=segments)
            else:
                _, asc, ascq = rule.sense or (0, 0, 0)
                with self.plan._lock:
                    self.plan._fire(rule_index, f"COPY ABORTED {asc:02X}h/{ascq:02X}h at segment {segments}", total)
                err = CopyAborted.make((asc, ascq), f"injected fault {rule.label()}", segment=segments)
            return [IoResult(error=BlockCopyFailed(shift + index, "source", err))]

    def _cut(self, req: BlockCopy) -> tuple[int, int, int] | None:
        """(extent index, whole blocks of it to copy first, rule index) of the first rule striking inside."""
        plan = self.plan
        segments, nbytes = self.progress.snapshot()
        base = plan._bytes_done + nbytes
        sizes = [e.blocks * e.src.block_size for e in req.extents]
        best: tuple[int, int, int, int] | None = None  # (byte position in req, index, blocks, rule)
        for i, rule in enumerate(plan.rules):
            if not rule.in_copy or plan._left[i] <= 0:
                continue
            if rule.list is not None and rule.list != self.list_number:
                continue
            # both given: the later of the two positions
            want = max(sum(sizes[:max(0, rule.segment - segments)]) if rule.segment is not None else 0,
                       rule.bytes - base if rule.bytes is not None else 0)
            if want <= 0 or want >= sum(sizes):
                continue  # already due (before_batch fires it) or beyond this request
            pos = 0
            for k, size in enumerate(sizes):
                if want < pos + size:
                    blocks = (want - pos) // req.extents[k].src.block_size
                    at = (pos + blocks * req.extents[k].src.block_size, k, blocks, i)
                    if best is None or at[0] < best[0]:
                        best = at
                    break
                pos += size
        return None if best is None else best[1:]

    @staticmethod
    def _shifted(results: list, shift: int) -> list:
        if shift and results and isinstance(results[0].error, BlockCopyFailed):
            e = results[0].error
            return [IoResult(error=BlockCopyFailed(e.index + shift, e.role, e.error))]
        return results

    def done(self) -> None:
        _, nbytes = self.progress.snapshot()
        with self.plan._lock:
            self.plan._bytes_done += nbytes


class FaultInjector:
    """A CommandHandler in front of the target's own: answers or drops commands as the plan says."""

    def __init__(self, plan: FaultPlan, inner: Any):
        self.plan, self.inner = plan, inner

    def execute(self, nexus: Nexus, cdb: bytes, data_out: bytes, data_in_len: int) -> ScsiResult:
        answer, drop = self.plan.before_command(bytes(cdb[:2]))
        try:
            if drop:
                if self.plan.on_drop is not None:
                    self.plan.on_drop()
                return ScsiResult(status=Status.TASK_ABORTED)
            if answer is not None:
                return answer
            return self.inner.execute(nexus, cdb, data_out, data_in_len)
        finally:
            self.plan.after_command()

    def __getattr__(self, name: str) -> Any:  # lun_reset, data_out_length, ... of the wrapped handler
        return getattr(self.inner, name)


def _part(e: Extent, skip: int, blocks: int | None) -> Extent:
    """``blocks`` blocks of ``e`` after its first ``skip`` (None: all the rest)."""
    n = e.blocks - skip if blocks is None else blocks
    return replace(e, src_lba=e.src_lba + skip, dst_lba=e.dst_lba + skip, blocks=n)


def _offset(written: Callable[[int, int], None], shift: int) -> Callable[[int, int], None]:
    return written if not shift else (lambda index, nbytes: written(index + shift, nbytes))
