"""Failover at any fault position on the real driver: pyscsi in-process devices, the real copy manager.

The memory-driver property (test_failover.py) checks the job's own accounting;
this one judges from outside the job.  The data mover is the project's copy
manager behind its fault injection (scsi/copymgr/faults.py), struck at a
drawn byte position with COPY ABORTED, a dropped connection or a hang (the
client sees DeviceConnectionError / DeviceTimeout); the pool is a block LUN
that counts every byte written to it.  After each backup:

* the pool's bytes at the object's pieces equal the source volume's used bytes
  (read from the source LUN, not taken from the report);
* a restore to a blank LUN gives the source's used bytes back;
* bytes written to the pool more than once are at most one parameter list
  (the resume rule: after a timeout or a lost connection only whole lists are
  trusted; after COPY ABORTED the failing segment is rewritten).

CI runs 25 examples; ``HYPOTHESIS_PROFILE=nightly`` runs 400.
"""
from __future__ import annotations

import os
import random

from hypothesis import HealthCheck, given, settings, strategies as st

from orchestrator.catalogue import Catalogue
from orchestrator.drivers.real import RealDriver
from orchestrator.job import (BackupSpec, DeviceSpec, PathPlan, RestoreSpec, backup_job, object_spec,
                              restore_job, run_job)
from orchestrator.ops import PathKind
from scsi.copymgr import CopyLimits, CopyManager
from scsi.copymgr.faults import FaultInjector, FaultPlan, parse_fault
from scsi.devices import DeviceConnectionError, DeviceTimeout, InProcessDevice
from scsi.luns.memory import MemoryBlockLun
from scsi.target.blockdev import BlockLunDevice

KIB, MIB = 1024, 1 << 20
VOL_SIZE = 8 * MIB
EXTENTS = [(0, MIB), (1536 * KIB, 2 * MIB), (4 * MIB, 64 * KIB), (5 * MIB, 3 * MIB)]
IMAGE = sum(n for _, n in EXTENTS)
SEGMENT = 512 * KIB  # the mover's max_segment_length
LIST_BYTES = 4 * SEGMENT  # max_segments per list
SOURCE = random.Random(11).randbytes(VOL_SIZE)
EXAMPLES = 400 if os.environ.get("HYPOTHESIS_PROFILE") == "nightly" else 25


class CountingLun(MemoryBlockLun):
    """A block LUN that counts how often each block was written."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.writes: dict[int, int] = {}

    def write(self, lba, data):
        for b in range(lba, lba + len(data) // self.block_size):
            self.writes[b] = self.writes.get(b, 0) + 1
        super().write(lba, data)


class MoverLink:
    """The client's connection to the in-process mover: after an injected drop or hang, it is gone."""

    def __init__(self, handler, plan: FaultPlan):
        self.device = InProcessDevice(handler)
        self.plan = plan
        self.broken: Exception | None = None
        plan.on_drop = self._drop

    def _drop(self) -> int:
        self.broken = DeviceConnectionError("connection to DM1 dropped (injected)")
        return 1

    def execute(self, cmd, *a, **kw):
        if self.broken is not None:
            raise self.broken
        try:
            return self.device.execute(cmd, *a, **kw)
        finally:
            if self.broken is None and any(f.what.startswith("stalled") for f in self.plan.fired):
                self.broken = DeviceTimeout("DM1: no answer within 15 s (injected hang)")
            if self.broken is not None:
                raise self.broken

    def __getattr__(self, name):
        return getattr(self.device, name)


def world(rule: str):
    luns = {"disk0": MemoryBlockLun("disk0", num_blocks=VOL_SIZE // 512, serial="disk0"),
            "disk1": MemoryBlockLun("disk1", num_blocks=VOL_SIZE // 512, serial="disk1"),
            "pool0": CountingLun("pool0", num_blocks=32 * MIB // 512, serial="pool0")}
    luns["disk0"].write(0, SOURCE)
    cm = CopyManager(luns, limits=CopyLimits(max_segments=4, max_segment_length=SEGMENT, chunk_bytes=128 * KIB))
    plan = FaultPlan([parse_fault(rule)])
    cm.faults = plan
    cat = Catalogue(":memory:")
    cat.add_pool_volume("POOL1", "VOL1", "pool0", 32 * MIB)
    mover = MoverLink(FaultInjector(plan, cm), plan)
    drv = RealDriver(cat, movers={"DM1": mover},
                     devices={n: InProcessDevice(BlockLunDevice(lun)) for n, lun in luns.items()})
    return drv, luns, cm, plan


def dev(lun) -> DeviceSpec:
    return DeviceSpec(name=lun.name, designator=lun.naa.hex(), block_size=lun.block_size)


def used(data: bytes) -> bytes:
    return b"".join(data[o:o + n] for o, n in EXTENTS)


RULES = {"sense": "copy-aborted=0D/02@bytes={at}", "lost-connection": "drop@bytes={at}",
         "timeout": "stall=0.001s@bytes={at}"}


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(1, IMAGE // 512 - 1).map(lambda n: n * 512), st.sampled_from(sorted(RULES)))
def test_any_fault_position_on_the_real_driver(at, kind):
    drv, luns, cm, plan = world(RULES[kind].format(at=at))
    try:
        paths = PathPlan(start=PathKind.SERVER_FREE, movers=["DM1"], lan_free=True, lan=False, server="",
                         pool_designators={"pool0": luns["pool0"].naa.hex()}, batch_mb=10, max_lan_piece=MIB)
        spec = BackupSpec(node="N1", filespace="E:", source=dev(luns["disk0"]), volume_size=VOL_SIZE,
                          file_system="ntfs", extents=EXTENTS, paths=paths)
        report = run_job(backup_job(spec), drv.execute)
        assert plan.fired, f"the fault {plan.rules[0].label()} never struck"
        assert report.ok, report.summary()
        assert report.failovers and report.failovers[0].from_path == "server-free", report.summary()
        (obj,) = drv.catalogue.query(with_pieces=True)
        pool = luns["pool0"]
        on_pool = b"".join(pool.read((obj.pool_offset + p.image_offset) // 512, p.length // 512)
                           for p in sorted(obj.pieces, key=lambda p: p.image_offset))
        assert on_pool == used(SOURCE), "the pool's bytes differ from the source volume's used bytes"
        twice = sum(512 for n in pool.writes.values() if n > 1)
        assert twice <= LIST_BYTES, f"{twice} bytes written to the pool more than once (a list is {LIST_BYTES})"
        plan.rules.clear()
        drv.movers["DM1"].broken = None
        rs = RestoreSpec(node="N1", filespace="E:", chain=[object_spec(obj)], destination=dev(luns["disk1"]),
                         destination_size=VOL_SIZE, paths=paths)
        r = run_job(restore_job(rs), drv.execute)
        assert r.ok, r.summary()
        assert used(luns["disk1"].read(0, VOL_SIZE // 512)) == used(SOURCE)
    finally:
        cm.close()
