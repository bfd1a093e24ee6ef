"""A copy-on-write snapshot for volumes served in-process (imagetype snapshot).

While a job runs, writes to the volume go through :class:`CowVolume`, which
saves each block's old contents in a bounded cache (snapshotcachesize percent
of the volume) before overwriting it; the job reads the frozen image through
:class:`FrozenView`.  When the cache runs out, later writes still reach the
volume but the snapshot is marked *exhausted*: the job learns it at
ReleaseSnapshot and discards the image rather than keep an inconsistent one.
Before the snapshot is taken the volume must have been idle for
snapshotfsidlewait seconds, checked up to snapshotfsidleretries times.

It works where writers reach the volume through the project's own LUN objects
(the in-process site devices, the simulator, tests).  A host-side snapshot is
invisible to a data mover, so the snapshot has no designator and the job goes
LAN-free or LAN, saying why.
"""
from __future__ import annotations

import hashlib
import logging
import threading
import time
from typing import Any, Callable

from orchestrator.ops import ReleaseSnapshot, SnapshotReleased, SnapshotResult, TakeSnapshot
from scsi.luns.base import BlockLun, write_protected

log = logging.getLogger(__name__)


class CowVolume(BlockLun):
    """The origin LUN with copy-on-write protection of a snapshot."""

    def __init__(self, origin: BlockLun, cache_bytes: int, clock: Callable[[], float] = time.monotonic):
        super().__init__(origin.name, serial=origin.serial, naa=origin.naa)
        self.origin = origin
        self.cache_blocks = max(0, cache_bytes // origin.block_size)
        self.saved: dict[int, bytes] = {}
        self.exhausted = False
        self.frozen = False
        self.clock = clock
        self.last_write = float("-inf")
        self._lock = threading.Lock()

    @property
    def block_size(self) -> int:
        return self.origin.block_size

    @property
    def num_blocks(self) -> int:
        return self.origin.num_blocks

    @property
    def cache_used(self) -> int:
        return len(self.saved) * self.block_size

    def read(self, lba: int, count: int) -> bytes:
        return self.origin.read(lba, count)

    def write(self, lba: int, data: bytes) -> None:
        bs = self.block_size
        with self._lock:
            self.last_write = self.clock()
            if self.frozen and not self.exhausted:
                for b in range(lba, lba + len(data) // bs):
                    if b in self.saved:
                        continue
                    if len(self.saved) >= self.cache_blocks:
                        self.exhausted = True
                        log.warning("snapshot cache of %s exhausted at block %d (%d bytes)", self.name, b,
                                    self.cache_used)
                        break
                    self.saved[b] = self.origin.read(b, 1)
            self.origin.write(lba, data)

    def frozen_read(self, lba: int, count: int) -> bytes:
        with self._lock:
            if not self.saved:
                return self.origin.read(lba, count)
            out = bytearray(self.origin.read(lba, count))
            bs = self.block_size
            for b in range(lba, lba + count):
                old = self.saved.get(b)
                if old is not None:
                    out[(b - lba) * bs:(b - lba + 1) * bs] = old
            return bytes(out)

    def flush(self) -> None:
        self.origin.flush()


class FrozenView(BlockLun):
    """The snapshot as a read-only LUN (its own identity: it is not the origin)."""

    def __init__(self, cow: CowVolume):
        serial = f"{cow.serial}-snap"
        super().__init__(f"snap:{cow.name}", serial=serial,
                         naa=bytes([0x60]) + hashlib.sha256(serial.encode()).digest()[:15])
        self.cow = cow
        self.read_only = True

    @property
    def block_size(self) -> int:
        return self.cow.block_size

    @property
    def num_blocks(self) -> int:
        return self.cow.num_blocks

    def read(self, lba: int, count: int) -> bytes:
        self.check_range(lba, count)
        return self.cow.frozen_read(lba, count)

    def write(self, lba: int, data: bytes) -> None:
        raise write_protected(self.name)


class CowSnapshots:
    """Snapshot provider for :class:`~orchestrator.drivers.real.RealDriver` over in-process LUNs.

    ``volumes`` maps device names to their :class:`CowVolume` (writers must use
    those); ``devices`` is the driver's device table, where the frozen view is
    published as ``snap:NAME`` for the job's duration.
    """

    def __init__(self, volumes: dict[str, CowVolume], devices: dict[str, Any],
                 sleep: Callable[[float], None] = time.sleep):
        self.volumes = volumes
        self.devices = devices
        self.sleep = sleep

    @classmethod
    def wrap(cls, luns: dict[str, BlockLun], devices: dict[str, Any], **kw: Any) -> "CowSnapshots":
        """Put every in-process LUN behind a CowVolume and re-publish it under its own name."""
        from scsi.devices import InProcessDevice
        from scsi.target.blockdev import BlockLunDevice

        volumes = {}
        for name, lun in luns.items():
            cow = CowVolume(lun, 0)
            volumes[name] = cow
            devices[name] = InProcessDevice(BlockLunDevice(cow))
        return cls(volumes, devices, **kw)

    def __call__(self, op: TakeSnapshot) -> SnapshotResult:
        from scsi.devices import InProcessDevice
        from scsi.target.blockdev import BlockLunDevice

        cow = self.volumes.get(op.source)
        if cow is None:
            return SnapshotResult(False, reason=f"{op.source} is not a volume this client can snapshot",
                                  available=False)
        for attempt in range(op.fsidle_retries + 1):
            if cow.clock() - cow.last_write >= op.fsidle_wait_seconds:
                break
            if attempt < op.fsidle_retries:
                self.sleep(op.fsidle_wait_seconds)
        else:
            return SnapshotResult(False, reason=f"file system on {op.volume} was not idle for "
                                                f"{op.fsidle_wait_seconds} s after {op.fsidle_retries} retries "
                                                "(snapshotfsidlewait / snapshotfsidleretries)")
        size = cow.num_blocks * cow.block_size
        with cow._lock:
            cow.cache_blocks = size * op.cache_size_percent // 100 // cow.block_size
            cow.saved.clear()
            cow.exhausted = False
            cow.frozen = True
        view = FrozenView(cow)
        self.devices[view.name] = InProcessDevice(BlockLunDevice(view))
        log.info("snapshot %s taken, cache %d bytes", view.name, cow.cache_blocks * cow.block_size)
        return SnapshotResult(True, view.name)

    def release(self, op: ReleaseSnapshot) -> SnapshotReleased:
        self.devices.pop(op.snapshot, None)
        cow = self.volumes.get(op.snapshot.removeprefix("snap:"))
        if cow is None:
            return SnapshotReleased()
        with cow._lock:
            result = SnapshotReleased(cow.exhausted, cow.cache_used)
            cow.frozen = False
            cow.saved.clear()
        return result
