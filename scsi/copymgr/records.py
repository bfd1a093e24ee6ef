"""Copy results kept per I_T nexus and list identifier (SPC-4 r36f 6.4.3.2, LIST ID USAGE;
the LID1 RECEIVE COPY commands 6.21-6.23, 6.25).

LIST ID USAGE 00b keeps status, failure details and held data; 10b keeps
status and failure details but not held data; 11b keeps nothing (and needs
list id 0).  A list id that is still running on the same I_T nexus cannot be
reused (00h/16h OPERATION IN PROGRESS); a finished one is replaced.  FAILED
SEGMENT DETAILS and held data are handed out once and then discarded.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from scsi.copymgr.answers import COMPLETED_ERROR, COMPLETED_OK, IN_PROGRESS
from scsi.copymgr.engine import Progress

ItNexus = tuple[str, str]


@dataclass
class CopyRecord:
    list_id: int
    usage: int
    segments: int
    progress: Progress = field(default_factory=Progress)
    state: int = IN_PROGRESS
    status: int | None = None  # SCSI status the EXTENDED COPY ended with
    sense: bytes = b""
    details_taken: bool = False
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None

    @property
    def running(self) -> bool:
        return self.state == IN_PROGRESS

    def finish(self, ok: bool, sense: bytes = b"") -> None:
        self.state = COMPLETED_OK if ok else COMPLETED_ERROR
        self.status = 0x00 if ok else 0x02
        self.sense = sense
        self.finished = time.monotonic()
        if self.usage != 0b00 and self.progress.held:
            self.progress.held.clear()
            self.progress.held_discarded = True


class Busy(Exception):
    """Too many copies in flight (the command gets BUSY status)."""


class DuplicateListId(Exception):
    """The list id is still running on this I_T nexus."""


class RecordStore:
    """Thread-safe table of copy records with the concurrency limits applied."""

    def __init__(self, total_limit: int, per_nexus_limit: int):
        self.total_limit = total_limit
        self.per_nexus_limit = per_nexus_limit
        self._lock = threading.Lock()
        self._kept: dict[ItNexus, dict[int, CopyRecord]] = {}
        self._running: dict[ItNexus, list[CopyRecord]] = {}

    def start(self, it: ItNexus, list_id: int, usage: int, segments: int) -> CopyRecord:
        with self._lock:
            mine = self._running.get(it, [])
            if usage != 0b11 and any(r.list_id == list_id and r.usage != 0b11 for r in mine):
                raise DuplicateListId(list_id)
            total = sum(len(v) for v in self._running.values())
            if total >= self.total_limit or len(mine) >= self.per_nexus_limit:
                raise Busy(f"{total} copies running ({len(mine)} on this nexus)")
            rec = CopyRecord(list_id, usage, segments)
            self._running.setdefault(it, []).append(rec)
            if usage != 0b11:
                self._kept.setdefault(it, {})[list_id] = rec
            return rec

    def done(self, it: ItNexus, rec: CopyRecord) -> None:
        with self._lock:
            running = self._running.get(it, [])
            if rec in running:
                running.remove(rec)
            if not running:
                self._running.pop(it, None)

    def get(self, it: ItNexus, list_id: int) -> CopyRecord | None:
        with self._lock:
            return self._kept.get(it, {}).get(list_id)

    def forget(self, it: ItNexus) -> None:
        """Drop what an I_T nexus left behind (call at logout)."""
        with self._lock:
            self._kept.pop(it, None)

    def running_count(self) -> int:
        with self._lock:
            return sum(len(v) for v in self._running.values())
