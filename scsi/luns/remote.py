"""A block LUN reached through pyscsi: an ``iscsi://`` URL, ``/dev/sg*``, or an in-process handler.

Reads and writes travel as READ(16)/WRITE(16); the identity comes from the
device itself (standard INQUIRY for the device type, READ CAPACITY(16) for the
geometry, VPD 83h for the designators an E4h descriptor is matched against).
Several sessions may be opened so that the engine's outstanding requests
really overlap (one libiscsi context serves one request at a time here).
A CHECK CONDITION becomes :class:`LunError` carrying the device's own sense,
except a UNIT ATTENTION (sense key 6h: power on/reset 29h, REPORTED LUNS DATA
HAS CHANGED 3Fh/0Eh, ...), which only reports an event and did not execute the
command: as initiators do, the command is sent again, a bounded number of
times, so a target that queued an attention on every session (tgtd after an
LU was added or removed) does not abort the next copy.
"""
from __future__ import annotations

import logging
import queue
import threading
from contextlib import contextmanager
from typing import Any, Callable, Iterator

from pyscsi.pyscsi.scsi import SCSI
from pyscsi.pyscsi.scsi_cdb_inquiry import Inquiry
from pyscsi.pyscsi.scsi_cdb_read16 import Read16
from pyscsi.pyscsi.scsi_cdb_testunitready import TestUnitReady
from pyscsi.pyscsi.scsi_cdb_write16 import Write16
from pyscsi.pyscsi.scsi_enum_command import sbc

from scsi.designators import choose_lu_designator, parse_vpd83, read_capacity, read_vpd83
from scsi.devices import DeviceCheckCondition, open_device
from scsi.luns.base import BlockLun, Designator, LunError
from scsi.luns.remote_async import AsyncSession, SynchronizeCache10, lun_error
from scsi.vpd import BLOCK_LIMITS

log = logging.getLogger(__name__)

UNIT_ATTENTION = 0x6
# a target may queue several attentions per session (reset, then LUN inventory change, then
# capacity change ...); each retry consumes one, so a few retries clear any realistic backlog
UNIT_ATTENTION_RETRIES = 5


def retry_unit_attention(run: Callable[[], Any], what: str = "command",
                         retries: int = UNIT_ATTENTION_RETRIES) -> Any:
    """``run()`` again after each UNIT ATTENTION, at most ``retries`` times; other errors propagate.

    A UNIT ATTENTION reports an event (reset, LUN inventory or capacity
    change) and means the command was not executed, so sending it again is
    what every initiator does.  The last CHECK CONDITION propagates when the
    attentions do not stop.
    """
    for attempt in range(retries + 1):
        try:
            return run()
        except DeviceCheckCondition as e:
            if e.sense_key != UNIT_ATTENTION or attempt == retries:
                raise
            log.info("%s got UNIT ATTENTION %02Xh/%02Xh; sending it again", what, e.asc or 0, e.ascq or 0)
    raise AssertionError("unreachable")


class UnitAttentionRetry:
    """A pyscsi device wrapper whose ``execute`` resends a command after UNIT ATTENTION (bounded)."""

    def __init__(self, device: Any, name: str = ""):
        self.device = device
        self.name = name or repr(device)

    def execute(self, cmd: Any) -> Any:
        return retry_unit_attention(lambda: self.device.execute(cmd), f"device {self.name}")

    def __getattr__(self, attr: str) -> Any:  # close(), timeouts ... of the wrapped device
        return getattr(self.device, attr)


class RemoteLun(BlockLun):
    """A block LUN on another SCSI target, reached through pyscsi device backends."""

    def __init__(self, name: str, target: Any, *, sessions: int = 1,
                 opener: Callable[..., Any] = open_device, **device_opts: Any):
        if sessions < 1:
            raise ValueError(f"LUN {name}: sessions must be at least 1")
        self._pool: queue.Queue = queue.Queue()
        self._all: list[Any] = []
        self._leases: dict[int, int] = {}  # id(device) -> pipelined copies using it
        self._lease_lock = threading.Lock()
        self.target = target
        try:
            for _ in range(sessions):
                dev = opener(target, **device_opts)
                self._all.append(dev)
                self._pool.put(SCSI(dev))
            probe = self._pool.get()
            try:
                pdt, designators, block_size, blocks = self._identify(probe)
                self._limits = self._block_limits(probe, block_size)
            finally:
                self._pool.put(probe)
        except DeviceCheckCondition as e:
            self.close()
            raise ValueError(f"LUN {name}: {target} refused identification: {e}") from e
        except Exception:
            self.close()
            raise
        if pdt != 0x00:
            self.close()
            raise ValueError(f"LUN {name}: {target} is device type {pdt:02X}h, only block devices (00h) "
                             "are supported remotely")
        self._designators = designators
        naa = next((d.value for d in designators if d.type == 3 and len(d.value) in (8, 16)), None)
        serial = next((d.value.hex() for d in designators), str(target))
        super().__init__(name, serial=serial, naa=naa)
        self._block_size, self._num_blocks = block_size, blocks

    @staticmethod
    def _identify(scsi: SCSI) -> tuple[int, list[Designator], int, int]:
        inq = Inquiry(sbc.INQUIRY, alloclen=96)
        scsi.execute(inq)
        pdt = inq.datain[0] & 0x1F
        records = parse_vpd83(read_vpd83(scsi))
        lu = [r for r in records if r.association == 0]
        if not lu:
            raise ValueError("VPD 83h lists no logical-unit designator")
        first = choose_lu_designator(lu)
        ordered = [first] + [r for r in lu if r is not first]
        designators = [Designator(r.code_set, r.association, r.designator_type, bytes.fromhex(r.designator))
                       for r in ordered]
        block_size, blocks = read_capacity(scsi)
        return pdt, designators, block_size, blocks

    @staticmethod
    def _block_limits(scsi: SCSI, block_size: int) -> tuple[int, int]:
        """(maximum, optimal) transfer bytes from Block Limits VPD B0h (SBC-3 r22 6.5.3); (0, 0) without the page."""
        try:
            inq = Inquiry(sbc.INQUIRY, evpd=1, page_code=0xB0, alloclen=BLOCK_LIMITS.size)
            scsi.execute(inq)
            page = bytes(inq.datain)
            if len(page) < 16 or page[1] != 0xB0:
                return 0, 0
            f = BLOCK_LIMITS.decode(page[:BLOCK_LIMITS.size].ljust(BLOCK_LIMITS.size, b"\0"))
        except (DeviceCheckCondition, ValueError) as e:  # page not supported: no limits reported
            log.debug("no Block Limits VPD: %s", e)
            return 0, 0
        return f["max_transfer_length"] * block_size, f["optimal_transfer_length"] * block_size

    def transfer_limits(self) -> tuple[int, int]:
        return self._limits

    @contextmanager
    def lease_async(self) -> Iterator[AsyncSession | None]:
        """The least-used session that can run pipelined zero-copy I/O (None when the backend cannot).

        Sessions are shared, not taken out of the pool: a libiscsi session
        carries many commands at once, and concurrent copies spread over the
        sessions by their lease counts.
        """
        capable = [d for d in self._all if callable(getattr(d, "submit_block_io", None))]
        if not capable:
            yield None
            return
        with self._lease_lock:
            dev = min(capable, key=lambda d: self._leases.get(id(d), 0))
            self._leases[id(dev)] = self._leases.get(id(dev), 0) + 1
        try:
            yield AsyncSession(self, dev)
        finally:
            with self._lease_lock:
                self._leases[id(dev)] -= 1

    def designators(self) -> list[Designator]:
        return list(self._designators)

    @property
    def block_size(self) -> int:
        return self._block_size

    @property
    def num_blocks(self) -> int:
        return self._num_blocks

    @contextmanager
    def _session(self) -> Iterator[SCSI]:
        if not self._all:
            raise LunError(f"LUN {self.name} is closed", key=0x2, asc=0x3A, ascq=0x00)
        scsi = self._pool.get()
        try:
            yield scsi
        finally:
            self._pool.put(scsi)

    def read(self, lba: int, count: int) -> bytes:
        self.check_range(lba, count)
        with self._session() as scsi:
            cmd = self._execute(scsi, lambda: Read16(sbc.READ_16, self._block_size, lba, count),
                                f"READ(16) of {count} blocks at LBA {lba}")
            return bytes(cmd.datain)

    def write(self, lba: int, data: bytes) -> None:
        if len(data) % self._block_size:
            raise ValueError(f"LUN {self.name}: {len(data)} bytes is not a whole number of blocks")
        count = len(data) // self._block_size
        self.check_range(lba, count)
        with self._session() as scsi:
            self._execute(scsi, lambda: Write16(sbc.WRITE_16, self._block_size, lba, count, bytes(data)),
                          f"WRITE(16) of {count} blocks at LBA {lba}")

    def flush(self) -> None:
        """SYNCHRONIZE CACHE so the copy is on the device's medium when the command ends."""
        with self._session() as scsi:
            try:
                self._execute(scsi, SynchronizeCache10, "SYNCHRONIZE CACHE(10)")
            except LunError as e:
                if e.key == 0x5 and e.asc == 0x20:  # not implemented: nothing to flush
                    return
                raise

    def test_unit_ready(self) -> None:
        with self._session() as scsi:
            self._execute(scsi, lambda: TestUnitReady(sbc.TEST_UNIT_READY), "TEST UNIT READY")

    def _execute(self, scsi: SCSI, build: Callable[[], Any], what: str) -> Any:
        """Run a freshly built command, sending it again after each UNIT ATTENTION (bounded)."""
        cmd = None

        def once() -> None:
            nonlocal cmd
            cmd = build()
            scsi.execute(cmd)
        try:
            retry_unit_attention(once, f"LUN {self.name}: {what}")
        except DeviceCheckCondition as e:
            if e.sense_key == UNIT_ATTENTION:
                what = f"{what} (still UNIT ATTENTION after {UNIT_ATTENTION_RETRIES} retries)"
            raise lun_error(self.name, what, e) from None
        return cmd

    def close(self) -> None:
        devs, self._all = self._all, []
        for dev in devs:
            try:
                dev.close()
            except Exception:  # closing must not mask the error that led here
                log.debug("closing %r failed", dev, exc_info=True)
