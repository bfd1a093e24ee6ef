"""Online image backup: a copy-on-write snapshot with a bounded cache and the fsidle rules."""
from __future__ import annotations

import random

import pytest

from orchestrator.catalogue import Catalogue
from orchestrator.drivers.real import RealDriver
from orchestrator.drivers.snapshot import CowSnapshots
from orchestrator.job import BackupSpec, DeviceSpec, PathPlan, backup_job, run_job
from orchestrator.ops import LanFreeWrite, PathKind, TakeSnapshot
from scsi.luns.memory import MemoryBlockLun

KIB, MIB = 1024, 1 << 20
EXTENTS = [(0, 256 * KIB), (MIB, 512 * KIB)]


@pytest.fixture
def world(tmp_path):
    disk = MemoryBlockLun("disk0", num_blocks=4 * MIB // 512, serial="d0")
    disk.write(0, random.Random(5).randbytes(4 * MIB))
    pool = MemoryBlockLun("pool0", num_blocks=8 * MIB // 512, serial="p0")
    devices: dict = {}
    snaps = CowSnapshots.wrap({"disk0": disk, "pool0": pool}, devices, sleep=lambda s: None)
    cat = Catalogue(tmp_path / "c.db")
    cat.add_pool_volume("P", "V", "pool0", 8 * MIB)
    drv = RealDriver(cat, {}, devices, snapshots=snaps)
    yield drv, snaps, disk, pool
    cat.close()


def spec(**kw):
    base = dict(node="N", filespace="G:", source=DeviceSpec(name="disk0"), volume_size=4 * MIB, extents=EXTENTS,
                image_type="snapshot", paths=PathPlan(start=PathKind.LAN_FREE, lan_free=True, lan=False))
    base.update(kw)
    return BackupSpec(**base)


def writing_during_the_copy(drv, snaps, data_at):
    """Execute ops, and when the data starts moving let an application overwrite the volume."""
    def run(op):
        if isinstance(op, LanFreeWrite):
            for offset, data in data_at:
                snaps.volumes["disk0"].write(offset // 512, data)
        return drv.execute(op)
    return run


def test_snapshot_freezes_the_image_while_the_application_writes(world):
    drv, snaps, disk, pool = world
    before = disk.read(0, 4 * MIB // 512)
    report = run_job(backup_job(spec()), writing_during_the_copy(drv, snaps, [(MIB, b"\xEE" * 64 * KIB)]))
    assert report.ok, report.summary()
    (obj,) = drv.catalogue.query()
    image = pool.read(obj.pool_offset // 512, obj.image_size // 512)
    assert image == before[:256 * KIB] + before[MIB:MIB + 512 * KIB]  # the frozen data, not the new
    assert disk.read(MIB // 512, 1) == b"\xEE" * 512  # the application's write reached the volume
    assert "snap:disk0" not in drv.devices  # released


def test_snapshot_cache_exhaustion_discards_the_image(world):
    drv, snaps, disk, pool = world
    report = run_job(backup_job(spec(snapshot_cache_size=1)),  # 1 % of 4 MiB = 40 KiB of cache
                     writing_during_the_copy(drv, snaps, [(0, b"\x11" * 256 * KIB)]))
    assert not report.ok and "snapshot cache exhausted" in report.message
    assert drv.catalogue.query(inactive=True) == []


def test_fsidle_wait_and_retries(world):
    drv, snaps, disk, pool = world
    cow = snaps.volumes["disk0"]
    now = [100.0]
    cow.clock = lambda: now[0]
    cow.write(0, bytes(512))  # written "just now"
    waits = []
    snaps.sleep = lambda s: (waits.append(s), now.__setitem__(0, now[0] + 0.4))
    r = snaps(TakeSnapshot("G:", "disk0", 100, "", 2, 1.0))
    assert not r.ok and "not idle for 1.0 s after 2 retries" in r.reason and waits == [1.0, 1.0]
    r = snaps(TakeSnapshot("G:", "disk0", 100, "", 3, 1.0))  # the third wait makes it idle
    assert r.ok and r.snapshot == "snap:disk0"



def test_client_snapshot_without_lan_free_or_lan_fails_up_front_naming_the_fix(world):
    """A client-side snapshot rules out server-free; with no other path the job says so before moving data."""
    drv, snaps, disk, pool = world
    paths = PathPlan(start=PathKind.SERVER_FREE, movers=["DM1"], lan_free=False, lan=False)
    report = run_job(backup_job(spec(paths=paths)), drv.execute)
    assert not report.ok
    text = report.summary()
    assert "a data mover cannot read it" in text and "-imagetype=static" in text, text
    assert drv.catalogue.query() == []
    assert "snap:disk0" not in drv.devices  # the snapshot was released on the way out
