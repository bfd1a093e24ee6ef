"""Completion of libiscsi tasks: what one submitted command carries and how
libiscsi's callback records its end.

The callback runs inside ``iscsi_service`` (or context destroy / cancel), so it
only copies the outcome out of the ``scsi_task``; freeing the task and wording
errors happen afterwards in the device, outside the callback.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from scsi.devices import libiscsi_ffi as L
from scsi.result import ScsiResult, Status


@dataclass(eq=False)
class Pending:
    """One command submitted to libiscsi and not yet completed."""

    tag: int
    cmd: Any
    cdb: bytes
    deadline: float
    keep: list = field(default_factory=list)  # cffi objects libiscsi points into
    task: Any = None
    result: ScsiResult | None = None
    error: BaseException | None = None
    libiscsi_status: int | None = None  # set by the completion callback
    transport_error: str = ""
    sink: list | None = None  # the device's list of commands called back, so it reaps only those

    @property
    def done(self) -> bool:
        return self.result is not None or self.error is not None


@L.ffi.callback("void(struct iscsi_context *, int, void *, void *)")
def on_complete(iscsi, status, command_data, private_data):  # noqa: ANN001 - C callback
    """libiscsi calls this from iscsi_service (or destroy/cancel) for each task.

    It only records what happened; errors get their wording in ``_reap``, where
    the device (URL, session state) is known.
    """
    pending: Pending = L.ffi.from_handle(private_data)
    try:
        pending.libiscsi_status = status
        if pending.sink is not None:
            pending.sink.append(pending)
        task = pending.task
        if status == L.SCSI_STATUS_GOOD:
            size = task.datain.size
            data = bytes(L.ffi.buffer(task.datain.data, size)) if size > 0 and task.datain.data else b""
            pending.result = ScsiResult(Status.GOOD, data=data)
        elif status == L.SCSI_STATUS_CHECK_CONDITION:
            pending.result = ScsiResult(Status.CHECK_CONDITION, sense=raw_sense(task))
        elif 0 <= status <= 0xFF:
            pending.result = ScsiResult(status)
        elif status == L.SCSI_STATUS_ERROR:
            pending.transport_error = L.ffi.string(L.lib().iscsi_get_error(iscsi)).decode(errors="replace")
    except BaseException as exc:  # noqa: BLE001 - must not escape into C
        pending.error = exc


def raw_sense(task: Any) -> bytes:
    """Sense bytes from a CHECK CONDITION task.

    libiscsi leaves the iSCSI SCSI Response data segment in ``task->datain``:
    a 2-byte big-endian SenseLength, then the sense itself (RFC 7143 11.4.7.1-11.4.7.2).
    """
    size = task.datain.size
    if size < 2 or not task.datain.data:
        return b""
    buf = bytes(L.ffi.buffer(task.datain.data, size))
    length = int.from_bytes(buf[:2], "big")
    return buf[2:2 + length]
