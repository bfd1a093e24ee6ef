"""Write-behind cache flushes during a pipelined block copy.

A copy ends with SYNCHRONIZE CACHE on each destination (SBC-3) so its
data is on the medium when EXTENDED COPY returns GOOD.  A target with a
write-back cache (tgtd over a file: its page cache) then writes everything
the copy left dirty in one go -- 0.4 s per GiB on the benchmark machine, all
of it after the last byte moved.  :class:`WriteBehind` asks each destination
to flush in the background every ``every`` bytes written to it while the
copy goes on, so that writing-out overlaps the transfer and the closing flush
finds only the tail.  At most one of these flushes is in flight per
destination; they never replace the closing flush (their outcome is only
logged: a failure here is reported by the flush that ends the copy), and a
destination that refuses SYNCHRONIZE CACHE (ILLEGAL REQUEST) is not asked again.
"""
from __future__ import annotations

import logging
from typing import Any

from scsi.luns.base import LunError

log = logging.getLogger(__name__)

FLUSH_BEHIND_BYTES = 64 << 20
ILLEGAL_REQUEST = 0x5


class WriteBehind:
    """Background SYNCHRONIZE CACHE on each destination session every ``every`` bytes written (0: never)."""

    def __init__(self, every: int = FLUSH_BEHIND_BYTES):
        self.every = every
        self._unflushed: dict[int, int] = {}  # id(LUN) -> bytes written since its last flush was sent
        self.pending: dict[int, tuple[Any, Any]] = {}  # id(LUN) -> (session, pending command)
        self._refused: set[int] = set()
        self.issued = 0

    def wrote(self, session: Any, nbytes: int) -> None:
        """``nbytes`` landed on ``session``'s LUN; start a flush there when enough has gathered."""
        if self.every <= 0:
            return
        key = id(session.lun)
        gathered = self._unflushed.get(key, 0) + nbytes
        if gathered >= self.every and key not in self.pending and key not in self._refused:
            try:
                self.pending[key] = (session, session.flush())
            except Exception as e:  # noqa: BLE001 - session lost: the copy's own commands report it
                log.debug("write-behind flush on LUN %s not sent: %s", session.lun.name, e)
                self._refused.add(key)
                return
            self.issued += 1
            gathered = 0
        self._unflushed[key] = gathered

    def sessions(self) -> list[Any]:
        """Sessions with a flush in flight (they must be serviced too)."""
        return [session for session, _ in self.pending.values()]

    def reap(self) -> None:
        """Forget the flushes that completed; stop asking a LUN that refuses the command."""
        for key, (session, pending) in list(self.pending.items()):
            if not pending.done:
                continue
            del self.pending[key]
            outcome = session.outcome(pending, "write-behind SYNCHRONIZE CACHE(10)")
            if outcome is None or isinstance(outcome, str):  # GOOD, or a UNIT ATTENTION: next time
                continue
            if isinstance(outcome, LunError) and outcome.key == ILLEGAL_REQUEST:
                self._refused.add(key)
            log.info("write-behind flush on LUN %s: %s", session.lun.name, outcome)
