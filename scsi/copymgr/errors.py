"""How the copy manager fails: ILLEGAL REQUEST for bad lists, COPY ABORTED for copies.

Two exceptions carry a ready :class:`scsi.sense.Sense`; the command layer
turns either into CHECK CONDITION.  :func:`device_failure` maps an error a
LUN raised mid-copy to the COPY ABORTED ASC/ASCQ and forwards the device's own
status and sense inside the copy manager's sense (SPC-4 r36f 5.17.7.4).
"""
from __future__ import annotations

import logging

from scsi import asc as A
from scsi.luns.base import LunError
from scsi.sense import Sense, SenseKey, copy_aborted, illegal_request

log = logging.getLogger(__name__)


class CopyError(Exception):
    """A command that ends in CHECK CONDITION with ``sense``."""

    def __init__(self, sense: Sense, message: str = ""):
        super().__init__(message or str(sense))
        self.sense = sense


class IllegalRequest(CopyError):
    """Found while parsing: nothing was moved."""

    @classmethod
    def make(cls, asc_ascq: tuple[int, int], message: str, *, field: int | None = None,
             bit: int | None = None, in_cdb: bool = False) -> "IllegalRequest":
        return cls(illegal_request(*asc_ascq, field=field, bit=bit, in_cdb=in_cdb), message)


class CopyAborted(CopyError):
    """Found while processing segment ``segment``; progress up to it stands."""

    def __init__(self, sense: Sense, message: str = "", segment: int | None = None):
        super().__init__(sense, message)
        self.segment = segment

    @classmethod
    def make(cls, asc_ascq: tuple[int, int], message: str, *, segment: int | None,
             field: int | None = None, bit: int | None = None, sd: bool | None = None,
             source: tuple[int, bytes] | None = None,
             destination: tuple[int, bytes] | None = None) -> "CopyAborted":
        try:
            sense = copy_aborted(*asc_ascq, segment=segment, field=field, bit=bit, sd=sd,
                                 source=source, destination=destination)
        except ValueError:  # forwarded sense too large for 252 bytes: keep our own part
            sense = copy_aborted(*asc_ascq, segment=segment, field=field, bit=bit, sd=sd)
        return cls(sense, message, segment)


_REACHABILITY_KEYS = {SenseKey.NOT_READY, SenseKey.ILLEGAL_REQUEST, SenseKey.UNIT_ATTENTION,
                      SenseKey.ABORTED_COMMAND}


def device_failure(err: BaseException, *, segment: int, role: str) -> CopyAborted:
    """COPY ABORTED for a LUN error in ``role`` ("source"/"destination") during ``segment``.

    Addressing problems (not ready, LBA out of range, lost session) answer
    0Dh/02h COPY TARGET DEVICE NOT REACHABLE as LIO does and libiscsi expects;
    hard device errors answer 0Dh/01h THIRD PARTY DEVICE FAILURE; a stream
    that runs into a filemark or end of data answers 0Dh/04h DATA UNDERRUN and
    a record longer than asked for 0Dh/05h DATA OVERRUN.  The device's own
    status and sense ride along.
    """
    if isinstance(err, CopyError):
        return err if isinstance(err, CopyAborted) else CopyAborted(err.sense, str(err), segment)
    forwarded: tuple[int, bytes] | None = None
    if isinstance(err, LunError):
        forwarded = (err.status, err.sense)
        if err.filemark or (err.key == SenseKey.BLANK_CHECK) or (err.eom and role == "source"):
            code = A.COPY_TARGET_DEVICE_DATA_UNDERRUN
        elif err.ili:
            code = A.COPY_TARGET_DEVICE_DATA_OVERRUN
        elif err.key in _REACHABILITY_KEYS:
            code = A.COPY_TARGET_DEVICE_NOT_REACHABLE
        else:
            code = A.THIRD_PARTY_DEVICE_FAILURE
        message = f"segment {segment}: copy {role} {err.message}"
    elif isinstance(err, (OSError, TimeoutError, ConnectionError)):
        code = A.COPY_TARGET_DEVICE_NOT_REACHABLE
        message = f"segment {segment}: copy {role} unreachable: {err}"
    else:
        code = A.THIRD_PARTY_TEMPORARY_INITIATOR_ERROR
        message = f"segment {segment}: copy {role} failed: {type(err).__name__}: {err}"
    log.warning("%s", message)
    kw = {"source": forwarded} if role == "source" else {"destination": forwarded}
    # The segment pointer (SD=1, byte 0) names the segment even when it is number 0.
    return CopyAborted.make(code, message, segment=segment, field=0, sd=True, **(kw if forwarded else {}))
