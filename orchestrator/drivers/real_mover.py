"""The real driver's data-mover operations: EXTENDED COPY lists, OPERATING PARAMETERS, COPY STATUS.

Data movers get EXTENDED COPY parameter lists (one command per list) and are
asked RECEIVE COPY RESULTS for their OPERATING PARAMETERS, and after a failure
for COPY STATUS and FAILED SEGMENT DETAILS, which tell the job how far the
failing list got.
"""
from __future__ import annotations

import logging
import time
from typing import Any, Mapping

from orchestrator.drivers.real_devices import failure_from
from orchestrator.ops import (CopyBatches, CopyResult, Failure, ListAccount, MoverLimits, OperatingParametersResult,
                              ReadOperatingParameters)
from scsi.commands import copy_status, extended_copy, failed_segment_details, operating_parameters
from scsi.luns.remote import retry_unit_attention
from scsi.sense import Sense
from scsi.xcopy.results import CopyManagerStatus

log = logging.getLogger(__name__)


class _Raw:
    """Just enough of pyscsi's ``SCSI`` for scsi.commands helpers, without its start-up INQUIRY."""

    def __init__(self, device: Any):
        self.device = device

    def execute(self, cmd: Any) -> None:
        retry_unit_attention(lambda: self.device.execute(cmd), "data mover")



class MoverOps:
    """RealDriver's data-mover operations (a mixin: ``movers`` maps mover names to pyscsi devices)."""

    movers: Mapping[str, Any]

    def _mover(self, name: str) -> _Raw:
        if name not in self.movers:
            raise LookupError(f"no data mover named {name!r} is configured")
        return _Raw(self.movers[name])

    def _ReadOperatingParameters(self, op: ReadOperatingParameters) -> OperatingParametersResult:
        try:
            return OperatingParametersResult(MoverLimits.from_operating_parameters(
                operating_parameters(self._mover(op.mover))))
        except Exception as exc:  # any device trouble: the job tries the next mover
            return OperatingParametersResult(failure=failure_from(exc, "RECEIVE COPY RESULTS (03h) failed",
                                                                  op.mover))

    def _CopyBatches(self, op: CopyBatches) -> CopyResult:
        t0 = time.monotonic()
        try:
            mover = self._mover(op.mover)
        except LookupError as exc:
            return CopyResult(0, Failure("lost-connection", str(exc), op.mover))
        acct: list[ListAccount] = []
        for bi, batch in enumerate(op.batches[op.first_batch:]):
            for li, plist in enumerate(batch.lists):
                data = plist.payload()
                if not data:
                    return CopyResult(bi, Failure("error", "parameter list was not encoded", op.mover), li, 0,
                                      accounting=tuple(acct))
                try:
                    extended_copy(mover, data)
                except Exception as exc:
                    failure = failure_from(exc, f"EXTENDED COPY list {plist.list_id} failed", op.mover)
                    done = None
                    if failure.kind == "sense":
                        done, details = self._progress(mover, plist.list_id, failure.sense)
                        if details:
                            failure = Failure("sense", failure.message, op.mover, details, failure.status)
                    return CopyResult(bi, failure, li, done, time.monotonic() - t0, tuple(acct))
                acct.append(self._account(mover, plist.list_id))
                progress = getattr(self, "on_progress", None)
                if progress is not None:
                    progress("server-free", plist.nbytes)
        return CopyResult(len(op.batches) - op.first_batch, elapsed=time.monotonic() - t0,
                          accounting=tuple(acct))

    @staticmethod
    def _account(mover: _Raw, list_id: int) -> ListAccount:
        """The mover's own COPY STATUS of a list that ended GOOD (what verifies server-free data)."""
        try:
            st = copy_status(mover, list_id)
        except Exception as exc:
            return ListAccount(list_id, False, 0, 0, problem=f"RECEIVE COPY RESULTS (00h) failed: {exc}")
        return ListAccount(list_id, st.status == CopyManagerStatus.COMPLETED, int(st.segments_processed),
                           st.bytes_transferred, 1 << (10 * int(st.transfer_count_units)))

    @staticmethod
    def _progress(mover: _Raw, list_id: int, sense: bytes) -> tuple[int | None, bytes]:
        """Segments known done in a failed list, and the FAILED SEGMENT DETAILS sense."""
        done: int | None = None
        details = b""
        try:
            # COPY ABORTED carries the failing segment's number in COMMAND-SPECIFIC bytes 2-3
            seg = Sense.decode(sense).segment  # None unless COPY ABORTED names a segment
            if seg is not None:
                done = seg
        except Exception:
            pass
        try:
            st = copy_status(mover, list_id)
            # SEGMENTS PROCESSED may count the failing one: trust one less, never more
            by_status = max(0, int(st.segments_processed) - 1)
            done = by_status if done is None else min(done, int(st.segments_processed))
        except Exception as exc:
            log.info("COPY STATUS for list %d unavailable: %s", list_id, exc)
        try:
            fsd = failed_segment_details(mover, list_id)
            details = bytes.fromhex(fsd.sense_data) if fsd.sense_data else b""
        except Exception as exc:
            log.info("FAILED SEGMENT DETAILS for list %d unavailable: %s", list_id, exc)
        return done, details
