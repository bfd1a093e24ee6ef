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
number in COMMAND-SPECIFIC INFORMATION, reference 6.3).
"""
from __future__ import annotations

import logging
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from scsi.copymgr.errors import CopyAborted
from scsi.result import Nexus, ScsiResult, Status
from scsi.sense import SenseKey, copy_aborted, sense_for

log = logging.getLogger(__name__)

Action = Literal["copy-aborted", "check", "busy", "task-set-full", "drop", "stall"]
CommandKind = Literal["xcopy", "rcr-op", "rcr", "io", "any"]
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


class FaultError(ValueError):
    """A fault rule that cannot be understood; the message names the rule and the part."""


class FaultRule(BaseModel):
    """One rule; ``text`` is how it was written (for logs and errors)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    action: Action
    sense: tuple[int, int, int] | None = None  # key, ASC, ASCQ
    seconds: float = Field(0.0, ge=0, le=3600)
    command: CommandKind = "xcopy"
    list: int | None = Field(None, ge=1)
    segment: int | None = Field(None, ge=0, le=0xFFFF)
    bytes: int | None = Field(None, ge=0)
    times: int = Field(1, ge=1)
    text: str = ""

    @model_validator(mode="after")
    def _consistent(self) -> "FaultRule":
        if self.action in ("busy", "task-set-full", "stall") and self.seconds <= 0:
            raise ValueError(f"{self.action} needs a duration, e.g. {self.action}=5s")
        if self.action in ("copy-aborted", "check") and self.sense is None:
            raise ValueError(f"{self.action} needs a sense code, e.g. copy-aborted=0D/02 or check=02/04/01")
        if self.action in ("busy", "task-set-full") and (self.segment is not None or self.bytes is not None):
            raise ValueError(f"{self.action} answers commands: trigger it with list= or command=, "
                             "not segment= or bytes=")
        if (self.segment is not None or self.bytes is not None) and self.command != "xcopy":
            raise ValueError("segment= and bytes= strike inside an EXTENDED COPY: they need command=xcopy")
        if self.action == "check" and (self.segment is not None or self.bytes is not None):
            raise ValueError("a copy that fails mid-way answers COPY ABORTED: use copy-aborted=ASC/ASCQ "
                             "with segment= or bytes=")
        return self

    @property
    def in_copy(self) -> bool:
        """Strikes between the I/O batches of a running copy (not instead of a command)."""
        return self.segment is not None or self.bytes is not None

    def label(self) -> str:
        return self.text or self.model_dump_json(exclude_defaults=True)


def _number(text: str, what: str, rule: str) -> int:
    m = re.fullmatch(r"(\d+)\s*([kKmMgG]?)(i?[bB])?", text.strip())
    if not m:
        raise FaultError(f"fault {rule!r}: {what} {text!r} is not a number (suffixes k, M, G allowed)")
    return int(m.group(1)) * _UNITS[m.group(2).lower()]


def _seconds(text: str, rule: str) -> float:
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(ms|s)?", text.strip())
    if not m:
        raise FaultError(f"fault {rule!r}: duration {text!r} is not like 5s, 0.5s or 300ms")
    return float(m.group(1)) / (1000 if m.group(2) == "ms" else 1)


def _hex_codes(text: str, count: int, rule: str) -> list[int]:
    parts = [p.strip().removesuffix("h").removesuffix("H") for p in re.split(r"[/,:]", text)]
    try:
        values = [int(p, 16) for p in parts]
    except ValueError:
        values = []
    if len(values) != count or not all(0 <= v <= 0xFF for v in values):
        shape = "ASC/ASCQ such as 0D/02" if count == 2 else "KEY/ASC/ASCQ such as 02/04/01"
        raise FaultError(f"fault {rule!r}: {text!r} is not {shape} (hex)")
    return values


def parse_fault(text: str) -> FaultRule:
    """``ACTION[=ARG][@COND,...]`` -> FaultRule; FaultError naming the part that is wrong."""
    rule = text.strip()
    head, _, conds = rule.partition("@")
    action, _, arg = head.partition("=")
    action = action.strip().lower()
    values: dict[str, Any] = {"action": action, "text": rule}
    if action == "copy-aborted":
        asc, ascq = _hex_codes(arg, 2, rule)
        values["sense"] = (int(SenseKey.COPY_ABORTED), asc, ascq)
    elif action == "check":
        values["sense"] = tuple(_hex_codes(arg, 3, rule))
    elif action in ("busy", "task-set-full", "stall"):
        values["seconds"] = _seconds(arg, rule) if arg else 0.0
    elif action == "drop":
        if arg:
            raise FaultError(f"fault {rule!r}: drop takes no value (use drop@bytes=B)")
    else:
        raise FaultError(f"fault {rule!r}: unknown action {action!r} (copy-aborted, check, busy, "
                         "task-set-full, drop, stall)")
    for cond in filter(None, (c.strip() for c in conds.split(","))):
        key, eq, value = cond.partition("=")
        key = key.strip().lower()
        if not eq:
            raise FaultError(f"fault {rule!r}: condition {cond!r} is not KEY=VALUE")
        if key in ("list", "segment", "times"):
            values[key] = _number(value, key, rule)
        elif key == "bytes":
            values["bytes"] = _number(value, key, rule)
        elif key == "command":
            values["command"] = value.strip().lower()
        else:
            raise FaultError(f"fault {rule!r}: unknown condition {key!r} (list, segment, bytes, command, times)")
    try:
        return FaultRule(**values)
    except ValueError as e:  # pydantic: keep the first message, on one line
        errors = getattr(e, "errors", None)
        msg = errors()[0]["msg"] if callable(errors) else str(e)
        loc = errors()[0].get("loc", ()) if callable(errors) else ()
        where = f" ({'.'.join(str(x) for x in loc)})" if loc else ""
        raise FaultError(f"fault {rule!r}{where}: {msg.removeprefix('Value error, ')}") from None


def rule_from_config(item: Any) -> FaultRule:
    """A config ``faults:`` entry: the rule string, or a mapping of FaultRule fields."""
    if isinstance(item, FaultRule):
        return item
    if isinstance(item, str):
        return parse_fault(item)
    if isinstance(item, dict):
        return FaultRule(**item)
    raise FaultError(f"fault {item!r}: give a rule string such as 'drop@bytes=4M'")


def command_kind(cdb: bytes) -> str:
    if not cdb:
        return "io"
    if cdb[0] == 0x83:
        return "xcopy"
    if cdb[0] == 0x84:
        return "rcr-op" if cdb[1] & 0x1F == 0x03 else "rcr"
    return "io"


def _matches(rule: FaultRule, kind: str) -> bool:
    if rule.command == "any":
        return True
    if rule.command == "rcr":
        return kind in ("rcr", "rcr-op")
    return rule.command == kind


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
                if rule.in_copy or not _matches(rule, kind):
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
