"""Unit attention conditions of one logical unit, kept per I_T nexus (SAM-5 5.14).

A LOGICAL UNIT RESET establishes POWER ON, RESET, OR BUS DEVICE RESET OCCURRED /
BUS DEVICE RESET FUNCTION OCCURRED (29h/03h) for every other I_T nexus that has
used the LUN; the next command on such a nexus ends in CHECK CONDITION with it
(INQUIRY, REPORT LUNS and REQUEST SENSE excepted: REQUEST SENSE returns and clears it).
"""
from __future__ import annotations

import threading

from scsi.result import Nexus, ScsiResult, Status
from scsi.sense import SenseKey, sense_for
from scsi.target import cdbs

LUN_RESET_ASC = (0x29, 0x03)  # BUS DEVICE RESET FUNCTION OCCURRED
PASS_THROUGH = frozenset({cdbs.INQUIRY, cdbs.REPORT_LUNS})


class UnitAttentions:
    """Pending unit attention sense per I_T nexus; thread-safe."""

    def __init__(self) -> None:
        self._known: set[tuple[str, str]] = set()
        self._pending: dict[tuple[str, str], list[bytes]] = {}
        self._lock = threading.Lock()

    def lun_reset(self, by: Nexus | None) -> int:
        """Queue 29h/03h for every nexus seen except ``by``; returns how many got one."""
        sense = sense_for(SenseKey.UNIT_ATTENTION, *LUN_RESET_ASC).encode()
        with self._lock:
            others = [it for it in self._known if by is None or it != by.it]
            for it in others:
                queue = self._pending.setdefault(it, [])
                if sense not in queue:
                    queue.append(sense)
            return len(others)

    def establish(self, its: list[tuple[str, str]], asc: int, ascq: int) -> None:
        """Queue UNIT ATTENTION ``asc``/``ascq`` for each I_T nexus in ``its`` (e.g. 2Ah/03h RESERVATIONS PREEMPTED)."""
        sense = sense_for(SenseKey.UNIT_ATTENTION, asc, ascq).encode()
        with self._lock:
            for it in its:
                self._known.add(it)
                queue = self._pending.setdefault(it, [])
                if sense not in queue:
                    queue.append(sense)

    def check(self, nexus: Nexus, cdb: bytes) -> ScsiResult | None:
        """The answer a pending unit attention forces on this command, or None to run it normally."""
        it = nexus.it
        with self._lock:
            self._known.add(it)
            queue = self._pending.get(it)
            if not queue or not cdb or cdb[0] in PASS_THROUGH:
                return None
            sense = queue.pop(0)
            if not queue:
                del self._pending[it]
        if cdb[0] == cdbs.REQUEST_SENSE:
            return ScsiResult(data=sense[:cdb[4]] if len(cdb) >= 6 else sense)
        return ScsiResult(status=Status.CHECK_CONDITION, sense=sense)

    def forget(self, initiator: str) -> None:
        """The initiator's I_T nexus is gone: drop what was pending for it."""
        with self._lock:
            for it in [it for it in self._known if it[0] == initiator]:
                self._known.discard(it)
                self._pending.pop(it, None)
