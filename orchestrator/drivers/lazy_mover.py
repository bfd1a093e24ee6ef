"""A data mover opened on its first command, which retries a busy mover before the job fails it over.

Split from site.py: the site file says which movers exist; this is how the
client talks to one (login on first use, the status line while waiting, and
BUSY / TASK SET FULL retried within the mover's command timeout).
"""
from __future__ import annotations

import sys
import time
from typing import Any

#: SCSI statuses that mean "not now, try again" (SAM-5 5.3.1): BUSY 08h, TASK SET FULL 28h
BUSY_STATUSES = {0x08: "BUSY", 0x28: "TASK SET FULL"}
BUSY_FIRST_PAUSE, BUSY_MAX_PAUSE = 0.25, 2.0  # seconds between retries of a busy mover (doubling)


def busy_at_login(exc: BaseException) -> str | None:
    """BUSY or TASK SET FULL when a login failed on that status (libiscsi says so only in its text)."""
    text = str(exc).rstrip(". ").upper()
    return next((name for name in BUSY_STATUSES.values() if text.endswith(name)), None)


class LazyMover:
    """A data mover's pyscsi device, opened on its first command with the site's command timeout.

    A mover that is down, refuses the connection or never answers the login
    raises DeviceConnectionError/DeviceTimeout from that command, which the
    job treats as the mover failing (next mover, then LAN-free), instead of
    stopping the job before it starts.
    """

    def __init__(self, name: str, url: str, timeout: float):
        self.name, self.url, self.timeout = name, url, timeout
        self._device: Any = None

    @property
    def opcodes(self) -> Any:
        return getattr(self._device, "opcodes", None)

    def device(self) -> Any:
        if self._device is None:
            from scsi.devices import open_device
            from scsi.devices.errors import DeviceError

            try:
                self._device = open_device(self.url, timeout=self.timeout) if self.url.startswith("iscsi://") \
                    else open_device(self.url)
                if hasattr(self._device, "on_wait"):
                    self._device.on_wait = self._waiting
            except DeviceError:
                raise
            except (OSError, ValueError) as exc:
                from scsi.devices.errors import DeviceConnectionError

                raise DeviceConnectionError(f"data mover {self.name} ({self.url}): {exc}") from None
        return self._device

    def _waiting(self, waited: float, timeout: float) -> None:
        """The status line while a mover keeps the job waiting (before the timeout fails it over)."""
        print(f"serverfree: waiting on data mover {self.name}: {waited:.0f} s of {timeout:g} s", file=sys.stderr,
              flush=True)

    def execute(self, cmd: Any, *args: Any, **kw: Any) -> Any:
        """One command; BUSY / TASK SET FULL (SAM-5 5.3: not executed, so safe to resend) are retried with a
        doubling pause for up to the mover's command timeout in all, then raised (the job fails over).

        A mover busy when the session opens counts too: libiscsi's login ends with TEST UNIT READY, and a
        BUSY answer to it fails the login with the status named in the error's text (nothing to resend but
        the login)."""
        from scsi.devices.errors import DeviceConnectionError, DeviceStatusError

        deadline, pause = time.monotonic() + self.timeout, BUSY_FIRST_PAUSE
        while True:
            try:
                return self.device().execute(cmd, *args, **kw)
            except DeviceStatusError as exc:
                status, failure = BUSY_STATUSES.get(exc.status), exc
                if status is None:
                    raise
            except DeviceConnectionError as exc:
                status, failure = busy_at_login(exc) if self._device is None else None, exc
                if status is None:
                    raise
            left = deadline - time.monotonic()
            if left <= 0:
                print(f"serverfree: data mover {self.name} still answers {status} after {self.timeout:g} s: "
                      "failing over", file=sys.stderr, flush=True)
                raise failure
            pause = min(pause, left)
            print(f"serverfree: data mover {self.name} answered {status}: retrying in {pause:.2g} s "
                  f"({self.timeout - left:.1f} s of {self.timeout:g} s)", file=sys.stderr, flush=True)
            time.sleep(pause)
            pause = min(pause * 2, BUSY_MAX_PAUSE)

    def close(self) -> None:
        if self._device is not None:
            self._device.close()
            self._device = None
