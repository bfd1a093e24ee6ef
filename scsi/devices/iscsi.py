"""pyscsi device for iSCSI targets, on libiscsi through cffi.

One :class:`LibiscsiDevice` is one iSCSI session to one LUN.  Every command,
including the synchronous :meth:`LibiscsiDevice.execute` that pyscsi calls, goes
through libiscsi's asynchronous API driven by our own poll loop, so timeouts,
lost connections and several outstanding commands are handled in one place.

Memory: each command's ``scsi_task`` is freed with ``scsi_free_scsi_task``
once libiscsi has called back for it (never earlier: libiscsi still holds it);
destroying the context calls back every task still in flight as CANCELLED, so
nothing is left behind.
"""
from __future__ import annotations

import itertools
import logging
import select
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any, Iterable, Iterator

from scsi.devices import libiscsi_ffi as L
from scsi.devices.base import PyscsiDevice, RawCommand, apply_result, command_buffers
from scsi.devices.errors import DeviceConnectionError, DeviceError, DeviceTimeout
from scsi.devices.iscsi_login import DIGESTS, chap_account, login
from scsi.devices.iscsi_url import ChapCredentials, IscsiUrl, parse_iscsi_url
from scsi.devices.libiscsi_completion import Pending, on_complete
from scsi.result import ScsiResult

log = logging.getLogger(__name__)

DEFAULT_INITIATOR = "iqn.2026-11.org.serverfree:initiator"
@dataclass
class CommandOutcome:
    """How one command of :meth:`LibiscsiDevice.execute_many` ended."""

    cmd: Any
    datain_len: int = 0
    error: BaseException | None = None  # DeviceCheckCondition, DeviceError, ...

    @property
    def ok(self) -> bool:
        return self.error is None


class LibiscsiDevice(PyscsiDevice):
    """A pyscsi device for ``iscsi://host[:port]/target-iqn/lun``.

    ``chap`` is the initiator's CHAP account (one-way CHAP); ``mutual_chap``
    adds the account the target must prove (bidirectional CHAP).  ``timeout``
    (seconds) bounds login and each command.
    """

    WAIT_NOTE = 5.0  # seconds between on_wait calls while a command is unanswered

    def __init__(self, url: str, *, initiator_iqn: str = DEFAULT_INITIATOR,
                 chap: ChapCredentials | tuple[str, str] | None = None,
                 mutual_chap: ChapCredentials | tuple[str, str] | None = None,
                 timeout: float = 30.0, header_digest: str = "none,crc32c") -> None:
        super().__init__()
        self._ctx = L.ffi.NULL
        self._sock: socket.socket | None = None  # libiscsi's socket, for TCP_CORK only (libiscsi owns the fd)
        self._lock = threading.RLock()
        self.url: IscsiUrl = parse_iscsi_url(url)
        self.initiator_iqn = initiator_iqn
        self.chap = chap_account(chap) or self.url.chap
        self.mutual_chap = chap_account(mutual_chap)
        if self.mutual_chap is not None and self.chap is None:
            raise ValueError("mutual CHAP needs the initiator's own CHAP account too (chap=...)")
        if header_digest not in DIGESTS:
            raise ValueError(f"header_digest must be one of {sorted(DIGESTS)}, not {header_digest!r}")
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, not {timeout}")
        self.timeout = float(timeout)
        #: seconds to wait for ABORT TASK, then for LOGICAL UNIT RESET, after a command timed out (0: neither)
        self.tmf_wait = min(5.0, max(0.5, self.timeout / 4))
        self._lib = L.lib()
        self._inflight: dict[int, Pending] = {}
        self._called_back: list[Pending] = []  # filled by the completion callback during iscsi_service
        self._tags = itertools.count(1)
        self._poller = select.poll()
        self._polled_fd = -1
        self._broken: str | None = None
        self.max_inflight = 0  # most commands seen in flight at once (for tests and tuning)
        #: called (seconds waited, timeout) every WAIT_NOTE s while the oldest command is unanswered
        self.on_wait: Any = None
        self._wait_step = 0
        self._connect(header_digest)

    # -- session ----------------------------------------------------------------------
    def _error_text(self) -> str:
        if self._ctx == L.ffi.NULL:
            return "no context"
        return L.ffi.string(self._lib.iscsi_get_error(self._ctx)).decode(errors="replace")

    def _connect(self, header_digest: str) -> None:
        self._ctx = login(self._lib, self.url, self.initiator_iqn, self.chap, self.mutual_chap, header_digest,
                          self.timeout)
        # Commands: our own deadline fires first (then ABORT TASK / LUN RESET), libiscsi's only as a backstop.
        self._lib.iscsi_set_timeout(self._ctx, int(self.timeout + 2 * self.tmf_wait + 2.999))
        log.info("logged in to %s as %s", self.url.display(), self.initiator_iqn)
        self._sock = socket.socket(fileno=self._lib.iscsi_get_fd(self._ctx))

    def _destroy(self) -> None:
        if self._sock is not None:
            self._sock.detach()  # the fd is libiscsi's: it closes it
            self._sock = None
        if self._ctx != L.ffi.NULL:
            ctx, self._ctx = self._ctx, L.ffi.NULL
            # destroy calls back every task still in flight with CANCELLED
            self._lib.iscsi_destroy_context(ctx)
            self._reap()

    def close(self) -> None:
        """Log out (best effort) and free the session; idempotent."""
        with self._lock:
            if self._ctx == L.ffi.NULL:
                return
            if self._broken is None and self._lib.iscsi_is_logged_in(self._ctx):
                if self._lib.iscsi_logout_sync(self._ctx) != 0:
                    log.debug("logout from %s failed: %s", self.url.display(), self._error_text())
            self._destroy()

    def __del__(self) -> None:
        if getattr(self, "_ctx", None) is None:
            return  # __init__ failed before a context existed
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass

    @property
    def connected(self) -> bool:
        return self._ctx != L.ffi.NULL and self._broken is None

    # -- submit / poll -----------------------------------------------------------------
    def submit(self, cmd: Any) -> Pending:
        """Queue one pyscsi command; complete it with :meth:`wait`."""
        cdb, dataout, datain_len = command_buffers(cmd)
        with self._lock:
            self._check_usable()
            if dataout and datain_len:
                raise ValueError(f"{cmd!r}: bidirectional commands are not supported")
            if dataout:
                direction, xfer = L.SCSI_XFER_WRITE, len(dataout)
            elif datain_len:
                direction, xfer = L.SCSI_XFER_READ, datain_len
            else:
                direction, xfer = L.SCSI_XFER_NONE, 0
            cdb_buf = L.ffi.new("unsigned char[]", cdb)
            task = self._lib.scsi_create_task(len(cdb), cdb_buf, direction, xfer)
            if task == L.ffi.NULL:
                raise MemoryError("scsi_create_task failed")
            pending = Pending(next(self._tags), cmd, cdb, time.monotonic() + self.timeout)
            pending.task = task
            pending.sink = self._called_back
            handle = L.ffi.new_handle(pending)
            data_ptr = L.ffi.NULL
            pending.keep += [cdb_buf, handle]
            if dataout:
                out = L.ffi.new("unsigned char[]", dataout)
                data_ptr = L.ffi.new("struct iscsi_data *", {"size": len(dataout), "data": out})
                pending.keep += [out, data_ptr]
            self._inflight[pending.tag] = pending
            self.max_inflight = max(self.max_inflight, len(self._inflight))
            rc = self._lib.iscsi_scsi_command_async(self._ctx, self.url.lun, task, on_complete,
                                                   data_ptr, handle)
            if rc != 0:
                del self._inflight[pending.tag]
                self._lib.scsi_free_scsi_task(task)
                pending.task = None
                raise DeviceConnectionError(f"{self.url.display()}: cannot queue command: {self._error_text()}")
            return pending

    def wait(self, pendings: Iterable[Pending] | Pending, *, any_one: bool = False,
             timeout: float | None = None) -> bool:
        """Drive the session until the given commands (or ``any_one`` of them) completed.

        With ``timeout`` (seconds) it returns after at most that long, True only
        if they completed: a caller that watches a long command (EXTENDED COPY)
        keeps its session serviced -- its PDUs sent, its status read the moment
        it arrives -- instead of sleeping between polls.
        """
        items = [pendings] if isinstance(pendings, Pending) else list(pendings)
        end = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while True:
                done = [p for p in items if p.done]
                if (any_one and done) or len(done) == len(items):
                    return True
                left_ms = None
                if end is not None:
                    left_ms = int((end - time.monotonic()) * 1000)
                    if left_ms <= 0:
                        return False
                self._service_once(left_ms)

    def _check_usable(self) -> None:
        if self._ctx == L.ffi.NULL:
            raise DeviceConnectionError(f"{self.url.display()}: device is closed")
        if self._broken is not None:
            raise DeviceConnectionError(f"{self.url.display()}: session lost earlier: {self._broken}")

    def _service_once(self, most_ms: int | None = None) -> None:
        fd, events, wait_ms = self.poll_request()
        if most_ms is not None:
            wait_ms = max(0, min(wait_ms, most_ms))
        if fd < 0 or events == 0:  # libiscsi asks us to come back later
            if wait_ms:
                time.sleep(min(wait_ms, 100) / 1000)
            revents = 0
        else:
            if fd != self._polled_fd:
                if self._polled_fd >= 0:
                    try:
                        self._poller.unregister(self._polled_fd)
                    except KeyError:
                        pass
                self._polled_fd = fd
            self._poller.register(fd, events)
            # A freshly queued PDU can usually be written at once: look without blocking
            # first, so a command costs one blocking poll (for its answer), not two.
            ready = self._poller.poll(0 if events & select.POLLOUT else wait_ms)
            if not ready and events & select.POLLOUT:
                ready = self._poller.poll(wait_ms)
            revents = ready[0][1] if ready else 0
        self.service(revents)

    def poll_request(self) -> tuple[int, int, int]:
        """(socket fd, poll events libiscsi waits for, longest wait in ms) -- for one poll over many sessions.

        Commands past their deadline are cancelled first (then the wait is 0).
        """
        with self._lock:
            if self._ctx == L.ffi.NULL:
                raise DeviceConnectionError(f"{self.url.display()}: device is closed")
            now = time.monotonic()
            # one timeout per session and a dict in submission order: the oldest command expires first
            oldest = next(iter(self._inflight.values()), None)
            first_deadline = now + 1.0 if oldest is None else oldest.deadline
            if oldest is not None and self.on_wait is not None:
                self._note_wait(now - (oldest.deadline - self.timeout))
            if first_deadline <= now:
                self._expire(now)
                return -1, 0, 0
            wait_ms = int(min(first_deadline - now, 1.0) * 1000) + 1
            return self._lib.iscsi_get_fd(self._ctx), self._lib.iscsi_which_events(self._ctx), wait_ms

    def _note_wait(self, waited: float) -> None:
        """Tell ``on_wait(seconds waited, timeout)`` every WAIT_NOTE seconds while a command is unanswered."""
        step = int(waited // self.WAIT_NOTE)
        if step >= 1 and step != self._wait_step:
            self._wait_step = step
            try:
                self.on_wait(step * self.WAIT_NOTE, self.timeout)
            except Exception:  # noqa: BLE001 - a status line must not break the session
                log.debug("on_wait hook failed", exc_info=True)
        elif step == 0:
            self._wait_step = 0

    def service(self, revents: int) -> None:
        """Let libiscsi read/write what ``revents`` allows and call back the commands that ended.

        libiscsi sets TCP_NODELAY and sends each PDU's 48-byte header and its
        data in separate calls, so a write pass of N Data-Out PDUs (8 KiB each
        against tgtd's MaxRecvDataSegmentLength) became 2N packets, each with
        its own trip through both TCP stacks.  The socket is corked for the
        pass and uncorked after it, which sends what the pass wrote at once in
        full segments: about 15 % less CPU per GiB in the mover; nothing is
        held back past the pass.
        """
        with self._lock:
            lib, ctx = self._lib, self._ctx
            if ctx == L.ffi.NULL:
                raise DeviceConnectionError(f"{self.url.display()}: device is closed")
            corked = bool(revents & select.POLLOUT) and self._cork(1)
            try:
                rc = lib.iscsi_service(ctx, revents)
            finally:
                if corked:
                    self._cork(0)
            called_back = self._called_back[:]
            self._called_back.clear()
            # With auto-reconnect off, libiscsi answers a dropped connection by
            # cancelling the tasks in flight (we cancel only in _expire / close).
            dropped = any(p.libiscsi_status == L.SCSI_STATUS_CANCELLED for p in called_back)
            if rc < 0 or dropped:
                detail = self._error_text().strip() if rc < 0 else ""
                self._fail_session("the target closed the connection or it broke"
                                   + (f" (libiscsi: {detail})" if detail else ""))
            self._reap(called_back)

    def _cork(self, on: int) -> bool:
        """TCP_CORK on libiscsi's socket around one write pass (see :meth:`service`); False if it cannot be set."""
        try:
            self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, on)  # type: ignore[union-attr]
            return True
        except (OSError, AttributeError):
            return False

    # -- zero-copy block I/O ------------------------------------------------------------
    def submit_block_io(self, write: bool, lba: int, blocks: int, block_size: int, buf: Any) -> Pending:
        """READ(16) into / WRITE(16) from ``buf`` without a copy in Python (SBC-3).

        libiscsi reads the Data-In PDUs straight into ``buf`` and sends Data-Out
        straight from it (``iscsi_read16_iov_task`` / ``iscsi_write16_iov_task``
        with one iovec over the buffer), so ``buf`` (a writable buffer of
        ``blocks * block_size`` bytes) must stay alive and untouched until the
        command completed.  Complete it by servicing the session
        (:meth:`wait`, or :meth:`poll_request` + :meth:`service`).
        """
        nbytes = blocks * block_size
        view = L.ffi.from_buffer(buf)
        if len(view) < nbytes:
            raise ValueError(f"buffer of {len(view)} bytes for {nbytes} bytes of I/O")
        with self._lock:
            self._check_usable()
            opcode = 0x8A if write else 0x88
            pending = Pending(next(self._tags), None, bytes([opcode]), time.monotonic() + self.timeout)
            pending.sink = self._called_back
            iov = L.ffi.new("struct scsi_iovec *", {"iov_base": view, "iov_len": nbytes})
            handle = L.ffi.new_handle(pending)
            pending.keep += [view, iov, handle, buf]
            self._inflight[pending.tag] = pending
            self.max_inflight = max(self.max_inflight, len(self._inflight))
            if write:
                task = self._lib.iscsi_write16_iov_task(self._ctx, self.url.lun, lba, L.ffi.NULL, nbytes,
                                                        block_size, 0, 0, 0, 0, 0, on_complete, handle, iov, 1)
            else:
                task = self._lib.iscsi_read16_iov_task(self._ctx, self.url.lun, lba, nbytes, block_size,
                                                       0, 0, 0, 0, 0, on_complete, handle, iov, 1)
            if task == L.ffi.NULL:
                del self._inflight[pending.tag]
                raise DeviceConnectionError(f"{self.url.display()}: cannot queue "
                                            f"{'WRITE' if write else 'READ'}(16): {self._error_text()}")
            pending.task = task
            return pending

    def _expire(self, now: float) -> None:
        """Abort commands past their deadline on the target, then cancel them here (freed on their callback).

        The first one gets ABORT TASK, then LOGICAL UNIT RESET if that is not
        carried out (scsi/devices/libiscsi_tmf.py); a target that answers
        neither is given up: the session is failed.
        """
        from scsi.devices.libiscsi_tmf import abort_then_reset

        usable, tmf = True, None
        for p in list(self._inflight.values()):
            if p.deadline <= now and not p.done:
                if tmf is None and self._broken is None and self.tmf_wait > 0:
                    usable, tmf = abort_then_reset(self._lib, self._ctx, p.task, self.url.lun, self.tmf_wait,
                                                   f"{self.url.display()} opcode {p.cdb[0]:02X}h")
                    p.transport_error = tmf
                self._lib.iscsi_scsi_cancel_task(self._ctx, p.task)
                p.libiscsi_status = L.SCSI_STATUS_TIMEOUT
        if not usable:
            self._fail_session(f"the target answered neither ({tmf})")
        self._reap()

    def _fail_session(self, reason: str) -> None:
        log.warning("session to %s lost: %s", self.url.display(), reason)
        self._broken = reason.strip()
        self._lib.iscsi_scsi_cancel_all_tasks(self._ctx)
        self._reap()

    def _reap(self, called_back: list[Pending] | None = None) -> None:
        """Free the tasks libiscsi has called back for (outside the callback): ``called_back``, else all."""
        if called_back is None:
            candidates = list(self._inflight.values())
            self._called_back.clear()
        else:
            candidates = called_back
        for p in candidates:
            if p.libiscsi_status is None and not p.done:
                continue
            if self._inflight.pop(p.tag, None) is None:
                continue
            if p.task is not None:
                self._lib.scsi_free_scsi_task(p.task)
                p.task = None
            p.keep.clear()
            if not p.done:
                p.error = self._transport_error(p)

    def _transport_error(self, p: Pending) -> DeviceError:
        what = f"{self.url.display()}: opcode {p.cdb[0]:02X}h"
        if p.libiscsi_status == L.SCSI_STATUS_TIMEOUT:
            then = f" ({p.transport_error})" if p.transport_error else ""
            return DeviceTimeout(f"{what}: no answer within {self.timeout:g} s{then}")
        if self._broken is not None:
            return DeviceConnectionError(f"{what}: connection lost: {self._broken}")
        if p.libiscsi_status == L.SCSI_STATUS_CANCELLED:
            return DeviceConnectionError(f"{what}: cancelled (session closed)")
        if p.libiscsi_status == L.SCSI_STATUS_ERROR:
            return DeviceConnectionError(f"{what}: transport error: {p.transport_error or 'unknown'}")
        return DeviceError(f"{what}: libiscsi returned unknown status {p.libiscsi_status:#x}")

    # -- pyscsi interface ---------------------------------------------------------------
    def run(self, cdb: bytes, dataout: bytes, datain_len: int) -> ScsiResult:
        """One command from raw bytes; CHECK CONDITION comes back in the result, not raised."""
        p = self.submit(RawCommand(cdb, dataout, datain_len))
        self.wait(p)
        if p.error is not None:
            raise p.error
        assert p.result is not None
        return p.result

    def _finish(self, p: Pending) -> int:
        if p.error is not None:
            raise p.error
        assert p.result is not None
        return apply_result(p.cmd, p.result)

    def execute(self, cmd: Any) -> int:
        """Execute one pyscsi command and wait for it (what ``SCSI(dev)`` calls)."""
        p = self.submit(cmd)
        self.wait(p)
        return self._finish(p)

    def execute_many(self, cmds: Iterable[Any], max_outstanding: int = 16) -> list[CommandOutcome]:
        """Run commands with up to ``max_outstanding`` in flight on this session.

        Returns one :class:`CommandOutcome` per command, in order; a failing
        command does not stop the others (unless the session itself is lost).
        """
        if max_outstanding < 1:
            raise ValueError(f"max_outstanding must be >= 1, not {max_outstanding}")
        outcomes: list[CommandOutcome] = []
        window: list[tuple[int, Pending]] = []
        source: Iterator[Any] = iter(cmds)
        exhausted = False
        index = 0
        while True:
            while not exhausted and len(window) < max_outstanding:
                try:
                    cmd = next(source)
                except StopIteration:
                    exhausted = True
                    break
                outcomes.append(CommandOutcome(cmd))
                try:
                    window.append((index, self.submit(cmd)))
                except (DeviceError, ConnectionError) as exc:
                    outcomes[index].error = exc
                index += 1
            if not window:
                return outcomes
            self.wait([p for _, p in window], any_one=True)
            still = []
            for i, p in window:
                if p.done:
                    try:
                        outcomes[i].datain_len = self._finish(p)
                    except Exception as exc:  # noqa: BLE001 - reported per command
                        outcomes[i].error = exc
                else:
                    still.append((i, p))
            window = still

    def __repr__(self) -> str:
        return f"LibiscsiDevice({self.url.display()!r})"
