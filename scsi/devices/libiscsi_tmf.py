"""What an initiator does about a command that timed out: ABORT TASK, then LOGICAL UNIT RESET.

SAM-5 7.2 / RFC 7143 11.5: the task is aborted on the target so it cannot
complete later behind the initiator's back (a late EXTENDED COPY would write
the pool after the job had moved on); a target that does not answer the ABORT
TASK gets a LOGICAL UNIT RESET; one that answers neither is given up (the
session is dropped, the caller fails over).  Each step waits ``wait`` seconds
at most, so a hung mover costs its command timeout plus at most two waits.
"""
from __future__ import annotations

import logging
import select
import time
from dataclasses import dataclass
from typing import Any

from scsi.devices import libiscsi_ffi as L

log = logging.getLogger(__name__)

#: iSCSI Task Management Function Response codes (RFC 7143 11.6.1)
TMF_RESPONSES = {0: "function complete", 1: "task does not exist", 2: "LUN does not exist",
                 3: "task still allegiant", 4: "task allegiance reassignment not supported",
                 5: "function not supported", 6: "function authorization failed", 255: "function rejected"}

L.ffi.cdef("""
int iscsi_task_mgmt_abort_task_async(struct iscsi_context *iscsi, struct scsi_task *task,
                                     iscsi_command_cb cb, void *private_data);
int iscsi_task_mgmt_lun_reset_async(struct iscsi_context *iscsi, uint32_t lun,
                                    iscsi_command_cb cb, void *private_data);
""")


@dataclass(eq=False)
class TmfOutcome:
    done: bool = False
    status: int | None = None
    response: int | None = None

    @property
    def completed(self) -> bool:
        """The target carried the function out (or the task was already gone)."""
        return self.done and self.status == L.SCSI_STATUS_GOOD and self.response in (0, 1)

    def describe(self) -> str:
        if not self.done:
            return "no answer"
        if self.status != L.SCSI_STATUS_GOOD:
            return f"failed (libiscsi status {self.status:#x})"
        return TMF_RESPONSES.get(self.response or 0, f"response {self.response}")


#: handles libiscsi still holds: a TMF PDU may be called back long after we stopped waiting for it
#: (cancelled by the LUN RESET that followed, or when the context is destroyed)
_LIVE: dict[int, Any] = {}


@L.ffi.callback("void(struct iscsi_context *, int, void *, void *)")
def _on_tmf(iscsi, status, command_data, private_data):  # noqa: ANN001 - C callback
    outcome: TmfOutcome = L.ffi.from_handle(private_data)
    _LIVE.pop(id(outcome), None)
    try:
        outcome.status = status
        if status == L.SCSI_STATUS_GOOD and command_data != L.ffi.NULL:
            outcome.response = int(L.ffi.cast("uint32_t *", command_data)[0])
        outcome.done = True
    except BaseException:  # noqa: BLE001 - must not escape into C
        outcome.done = True


def _drive(lib: Any, ctx: Any, outcome: TmfOutcome, wait: float) -> None:
    """Service the session until the TMF answer arrives or ``wait`` seconds pass."""
    poller = select.poll()
    deadline = time.monotonic() + wait
    registered = -1
    while not outcome.done and time.monotonic() < deadline:
        fd, events = lib.iscsi_get_fd(ctx), lib.iscsi_which_events(ctx)
        revents = 0
        if fd >= 0 and events:
            if fd != registered:
                poller.register(fd, events)
                registered = fd
            else:
                poller.modify(fd, events)
            ready = poller.poll(int(min(0.1, max(0.0, deadline - time.monotonic())) * 1000) + 1)
            revents = ready[0][1] if ready else 0
        else:
            time.sleep(0.01)
        if lib.iscsi_service(ctx, revents) < 0:
            return


def _function(lib: Any, ctx: Any, start: Any, wait: float) -> TmfOutcome:
    outcome = TmfOutcome()
    handle = L.ffi.new_handle(outcome)
    if start(handle) != 0:
        outcome.done, outcome.status = True, L.SCSI_STATUS_ERROR
        return outcome
    _LIVE[id(outcome)] = handle
    _drive(lib, ctx, outcome, wait)
    return outcome


def abort_then_reset(lib: Any, ctx: Any, task: Any, lun: int, wait: float, what: str) -> tuple[bool, str]:
    """ABORT TASK for ``task``; if that is not carried out, LOGICAL UNIT RESET of ``lun``.

    Returns (the target is still usable, what happened, for the error message).
    """
    abort = _function(lib, ctx, lambda h: lib.iscsi_task_mgmt_abort_task_async(ctx, task, _on_tmf, h), wait)
    aborted = abort.describe()  # as it stands now: the reset below may cancel the ABORT TASK PDU
    if abort.completed:
        log.warning("%s: command timed out; ABORT TASK: %s", what, aborted)
        return True, f"ABORT TASK: {aborted}"
    reset = _function(lib, ctx, lambda h: lib.iscsi_task_mgmt_lun_reset_async(ctx, lun, _on_tmf, h), wait)
    text = f"ABORT TASK: {aborted}; LOGICAL UNIT RESET: {reset.describe()}"
    log.warning("%s: command timed out; %s", what, text)
    return reset.completed, text
