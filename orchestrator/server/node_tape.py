"""A node session's tape side: the drive a LAN backup writes through, the drive a LAN restore reads from.

Both hold the drive for the session (:class:`orchestrator.server.tape.Drives`):
a backup from its BEGIN to its COMMIT or ABANDON, a restore from its first GET
to the session's end.  Mixed into :class:`orchestrator.server.node_ops.NodeOps`.
"""
from __future__ import annotations

from typing import Any

from orchestrator.server import tape
from orchestrator.server.service import Refused


class TapeOps:
    server: Any
    session: Any
    node: str
    who: str
    _tape_reads: dict
    refuse: Any  # NodeOps.refuse

    def _tape_writer(self, pool: str, started: Any) -> Any:
        """Hold the object's drive for this session and stand at the end of data (LookupError/DriveBusy: why not)."""
        tp = tape.tape_pool(self.server.store, pool)
        drive = started.pool_device
        if drive not in tp.drives:
            raise LookupError(f"volume {started.pool_volume} sits in drive {drive}, which has no online PATH from "
                              "the server with DEVICE=")
        self.server.drives.acquire(drive, self.who)
        try:
            dev = tape.open_drive(drive, tp.drives[drive])
            try:
                return tape.TapeWriter.at_end_of_data(drive, started.pool_volume, dev)
            except BaseException:
                tape.close_drive(dev)
                raise
        except BaseException:
            self.server.drives.release(drive, self.who)
            raise

    def _tape_get(self, rec: Any, image_offset: int, length: int) -> bytes:
        """A tape object's bytes: the drive is held by this session from its first read to its end."""
        from orchestrator.plan.tape_position import TapeLocation

        drive = TapeLocation.decode(rec.tape_location, f"object {rec.id}").drive or rec.pool_device
        if drive not in self._tape_reads:
            try:
                tp = tape.tape_pool(self.server.store, rec.pool)
                if tp is None or drive not in tp.drives:
                    raise LookupError(f"drive {drive} of object {rec.id} has no online PATH from the server")
                self.server.drives.acquire(drive, self.who)
                try:
                    self._tape_reads[drive] = (tape.open_drive(drive, tp.drives[drive]), [-1])
                except BaseException:
                    self.server.drives.release(drive, self.who)
                    raise
            except (LookupError, OSError) as exc:
                raise Refused("ANR8447E", f"Session {self.session.id} node {self.node}: {exc}.", str(exc)) from None
        dev, at = self._tape_reads[drive]
        try:
            return tape.read_range(dev, drive, rec, image_offset, length, at)
        except ValueError as exc:
            raise self.refuse(f"GET of object {rec.id}: {exc}", "ANR0440W") from None
