"""Service several libiscsi sessions from one thread with one poll(2) over all their sockets.

A pipelined copy keeps commands in flight on a source and a destination
session at once; waiting on each session in turn would leave one idle while
the other is waited on.  One poll over every socket wakes for whichever is
ready first.  The poll itself runs without the GIL, and so does
``iscsi_service`` (cffi releases it around C calls).
"""
from __future__ import annotations

import select
import time
from typing import Sequence

from scsi.devices.iscsi import LibiscsiDevice


def service_sessions(devices: Sequence[LibiscsiDevice], max_wait_ms: int = 1000) -> None:
    """Wait (at most ``max_wait_ms``) until one of the sessions can make progress, then service each ready one.

    Commands past their deadline are expired here too, so a silent target
    ends in a timeout error rather than a hang.
    """
    poller = select.poll()
    by_fd: dict[int, LibiscsiDevice] = {}
    wait_ms = max_wait_ms
    for dev in devices:
        fd, events, dev_wait = dev.poll_request()
        wait_ms = min(wait_ms, dev_wait)
        if fd >= 0 and events:
            poller.register(fd, events)
            by_fd[fd] = dev
    if not by_fd:  # nothing to wait on (a command just expired, or libiscsi asks to come back later)
        if wait_ms:
            time.sleep(min(wait_ms, 100) / 1000)
        return
    ready = poller.poll(wait_ms)
    for fd, revents in ready:
        by_fd[fd].service(revents)
