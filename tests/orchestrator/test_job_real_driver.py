"""The real driver end to end in-process: pyscsi InProcessDevices, the copy manager engine, the LAN server.

Every byte goes through the same code as production: parameter lists encoded
by the planner, decoded and executed by scsi.copymgr, READ/WRITE(16) through
pyscsi into the target's block LUN emulation, a TCP stream to the LAN server.
"""
from __future__ import annotations

import random

import pytest

from orchestrator.catalogue import Catalogue
from orchestrator.drivers.real import RealDriver
from orchestrator.job import (BackupSpec, DeviceSpec, PathPlan, RestoreSpec, backup_job, object_spec,
                              restore_job, run_job)
from orchestrator.lan.local_pool import LocalPool
from orchestrator.ops import PathKind, TakeSnapshot
from scsi.copymgr import CopyLimits, CopyManager
from scsi.devices import InProcessDevice
from scsi.luns.base import LunError
from scsi.luns.file import FileBlockLun
from scsi.luns.memory import MemoryBlockLun
from scsi.target.blockdev import BlockLunDevice

KIB, MIB = 1024, 1 << 20
VOL_SIZE = 6 * MIB
EXTENTS = [(0, 512 * KIB), (MIB, 2 * MIB), (4 * MIB, 4 * KIB), (5 * MIB, MIB)]
IMAGE = sum(n for _, n in EXTENTS)


class FlakyPool(FileBlockLun):
    """A pool LUN that fails one write once ``budget`` bytes have been written."""

    budget: int | None = None

    def write(self, lba: int, data: bytes) -> None:
        if self.budget is not None:
            if len(data) > self.budget:
                self.budget = None
                raise LunError(f"LUN {self.name}: drive not ready", key=0x2, asc=0x04, ascq=0x00)
            self.budget -= len(data)
        super().write(lba, data)


@pytest.fixture
def san(tmp_path):
    pool_file = tmp_path / "pool.img"
    pool_file.write_bytes(bytes(32 * MIB))
    disk = MemoryBlockLun("disk0", num_blocks=VOL_SIZE // 512, serial="disk0-serial")
    disk.write(0, random.Random(3).randbytes(VOL_SIZE))
    dest = MemoryBlockLun("disk1", num_blocks=VOL_SIZE // 512, serial="disk1-serial")
    pool = FlakyPool("pool0", pool_file, serial="pool0-serial")
    luns = {"disk0": disk, "disk1": dest, "pool0": pool}
    cm = CopyManager(luns, limits=CopyLimits(max_segments=8, max_segment_length=MIB, chunk_bytes=256 * KIB))
    cat = Catalogue(tmp_path / "cat.db")
    cat.add_pool_volume("POOL1", "VOL1", "pool0", 32 * MIB)
    server = LocalPool({"VOL1": pool_file})
    drv = RealDriver(cat, movers={"DM1": InProcessDevice(cm)},
                     devices={n: InProcessDevice(BlockLunDevice(l)) for n, l in luns.items()})
    yield drv, luns, cm, server
    server.close()
    cm_close = getattr(cm, "close", None)
    if cm_close:
        cm_close()
    pool.close()
    cat.close()


def dev(lun) -> DeviceSpec:
    return DeviceSpec(name=lun.name, designator=lun.naa.hex(), block_size=lun.block_size)


def plan(luns, server, start=PathKind.SERVER_FREE, movers=("DM1",)):
    return PathPlan(start=start, movers=list(movers), lan_free=True, lan=True, server=server.address,
                    pool_designators={"pool0": luns["pool0"].naa.hex()}, batch_mb=10, max_lan_piece=MIB)


def used(lun) -> bytes:
    return b"".join(lun.read(o // 512, n // 512) for o, n in EXTENTS)


def backup(drv, luns, server, **kw):
    kw.setdefault("paths", plan(luns, server))
    spec = BackupSpec(node="N1", filespace="F:", source=dev(luns["disk0"]), volume_size=VOL_SIZE,
                      file_system="ntfs", extents=EXTENTS, **kw)
    return run_job(backup_job(spec), drv.execute)


def restore(drv, luns, server, **kw):
    chain = drv.catalogue.restore_chain("N1", "F:")
    kw.setdefault("paths", plan(luns, server))
    spec = RestoreSpec(node="N1", filespace="F:", chain=[object_spec(o) for o in chain],
                       destination=dev(luns["disk1"]), destination_size=VOL_SIZE, **kw)
    return run_job(restore_job(spec), drv.execute)


def test_server_free_through_the_copy_manager_and_back(san):
    drv, luns, cm, server = san
    report = backup(drv, luns, server)
    assert report.ok, report.summary()
    assert report.path_used == "server-free"
    assert cm.counters["completed"] >= 1 and cm.counters["failed"] == 0
    (obj,) = drv.catalogue.query()
    pool = luns["pool0"]
    assert pool.read(obj.pool_offset // 512, IMAGE // 512) == used(luns["disk0"])
    r = restore(drv, luns, server)
    assert r.ok and r.path_used == "server-free"
    assert used(luns["disk1"]) == used(luns["disk0"])


def test_copy_aborted_from_the_mover_fails_over_to_lan_free(san):
    drv, luns, cm, server = san
    luns["pool0"].budget = 2 * MIB + 256 * KIB  # the pool LUN fails inside the copy
    report = backup(drv, luns, server, compression=True)
    assert report.ok, report.summary()
    (f,) = report.failovers
    assert (f.from_path, f.to_path) == ("server-free", "lan-free")
    assert "COPY ABORTED" in f.reason  # the mover's own sense, decoded
    assert 0 < f.image_offset <= 2 * MIB + 256 * KIB
    assert sum(report.bytes_by_path.values()) == IMAGE and not report.compressed
    assert cm.counters["failed"] == 1
    r = restore(drv, luns, server)
    assert r.ok and used(luns["disk1"]) == used(luns["disk0"])


def test_lan_path_with_compression_through_the_backup_server(san):
    drv, luns, cm, server = san
    luns["disk0"].write(0, bytes(512 * KIB))  # compressible first extent
    report = backup(drv, luns, server, compression=True,
                    paths=plan(luns, server, PathKind.LAN, movers=()).model_copy(update={"lan_free": False}))
    assert report.ok and report.path_used == "lan" and report.compressed, report.summary()
    assert cm.counters["copies"] == 0
    r = restore(drv, luns, server, paths=plan(luns, server, PathKind.LAN, movers=()))
    assert r.ok and r.path_used == "lan"
    assert used(luns["disk1"]) == used(luns["disk0"])


def test_unknown_mover_then_lan_server_down(san):
    drv, luns, cm, server = san
    paths = plan(luns, server, movers=("DM9", "DM1"))
    report = backup(drv, luns, server, paths=paths)
    assert report.ok and report.movers_used == ["DM1"]
    assert "DM9" in report.failovers[0].reason or report.failovers[0].mover == "DM9"
    server.close()
    bad = PathPlan(start=PathKind.LAN, lan=True, server=server.address)
    failed = backup(drv, luns, server, paths=bad)
    assert not failed.ok and "cannot reach the backup server" in failed.message


def test_snapshot_without_provider_falls_back_to_an_offline_image(san):
    drv, luns, cm, server = san
    report = backup(drv, luns, server, image_type="snapshot")
    assert report.ok and report.path_used == "server-free"  # the volume itself, read by the mover
    assert any("offline (static) image instead" in w for w in report.warnings)
    r = drv._TakeSnapshot(TakeSnapshot("F:", "disk0", 100, "", 0, 0))
    assert not r.ok and not r.available


def test_failures_are_classified_for_failover():
    from orchestrator.drivers.real import failure_from
    from scsi.devices.errors import DeviceCheckCondition, DeviceConnectionError, DeviceStatusError, DeviceTimeout

    sense = bytes.fromhex("70000A000000000A000000000D0200000000")
    f = failure_from(DeviceCheckCondition(sense), "EXTENDED COPY failed", "DM1")
    assert f.kind == "sense" and f.sense == sense and "COPY ABORTED" in f.describe()
    assert failure_from(DeviceTimeout("no answer"), "x").kind == "timeout"
    assert failure_from(DeviceConnectionError("gone"), "x").kind == "lost-connection"
    assert failure_from(ConnectionResetError(), "x").kind == "lost-connection"
    assert failure_from(DeviceStatusError(0x08), "x").kind == "error"


def test_site_file_errors_name_file_and_key(tmp_path):
    from orchestrator.drivers.site import load_site

    bad = tmp_path / "site.yaml"
    bad.write_text("devices: {d: a.img}\npool: {volumes: [{name: V, device: d, capacity: 12x}]}\nvolumes: {}\n")
    with pytest.raises(ValueError, match=r"site.yaml: pool.volumes.0.capacity: .*'12x' is not a size"):
        load_site(bad)
    bad.write_text("devices: {d: a.img}\npool: {volumes: [{name: V, device: nope, capacity: 1m}]}\nvolumes: {}\n")
    with pytest.raises(ValueError, match="device 'nope' is used but not listed under devices"):
        load_site(bad)
    bad.write_text("devices: [\n")
    with pytest.raises(ValueError, match="not valid YAML"):
        load_site(bad)
    good = tmp_path / "ok.yaml"
    good.write_text("devices: {d: a.img}\npool: {volumes: [{name: V, device: d, capacity: 1m}]}\n"
                    "volumes: {'E:': {device: d, offset: 1m}}\n")
    site = load_site(good)
    assert site.volume("e:\\").offset == 1 << 20 and site.path("a.img") == str(tmp_path / "a.img")
    with pytest.raises(LookupError, match="volume 'F:' is not in the site file"):
        site.volume("F:")


def test_pool_capacity_larger_than_its_device_is_refused(tmp_path):
    """At load time for an image file; when first opened for a remote LUN (its size known only then)."""
    from types import SimpleNamespace

    from orchestrator.cli.backup_cmd import pool_designators
    from orchestrator.drivers.site import load_site

    with open(tmp_path / "a.img", "wb") as f:
        f.truncate(1 << 20)
    site_file = tmp_path / "site.yaml"
    site_file.write_text("devices: {d: a.img}\npool: {volumes: [{name: V, device: d, capacity: 2m}]}\nvolumes: {}\n")
    with pytest.raises(ValueError, match=r"^.*site.yaml: pool.volumes\[0\].capacity: 2097152 bytes is larger than "
                                         r"device d \(1048576 bytes\)$"):
        load_site(site_file)
    site_file.write_text("devices: {d: a.img}\npool: {volumes: [{name: V, device: d, capacity: 1m}]}\nvolumes: {}\n")
    assert load_site(site_file).pool.volumes[0].capacity == 1 << 20  # exactly the device: accepted
    remote = tmp_path / "remote.yaml"
    remote.write_text("devices: {d: 'iscsi://127.0.0.1:9/iqn.2026-01.x:y/0'}\n"
                      "pool: {volumes: [{name: V, device: d, capacity: 2m}]}\nvolumes: {}\n")
    site = load_site(remote)  # a URL's size is not known before it is opened
    lun = SimpleNamespace(size=1 << 20, designator=lambda: "6001")
    driver = SimpleNamespace(io=lambda name: lun)
    with pytest.raises(ValueError, match=r"remote.yaml: pool.volumes\[0\].capacity: 2097152 bytes is larger"):
        pool_designators(str(remote), site, None, driver)
    lun.size = 2 << 20
    assert pool_designators(str(remote), site, None, driver) == {"d": "6001"}


def test_bad_source_block_fails_every_path_and_leaves_no_object(san):
    """A medium error on the client disk is not a path problem: every path meets it, the job fails cleanly."""
    drv, luns, cm, server = san
    disk = luns["disk0"]
    real_read = disk.read

    def bad_read(lba, count):
        if lba <= (MIB + 4096) // 512 < lba + count:
            raise LunError("LUN disk0: unrecovered read error", key=0x3, asc=0x11, ascq=0x00)
        return real_read(lba, count)

    disk.read = bad_read
    report = backup(drv, luns, server)
    assert not report.ok
    assert [f.to_path for f in report.failovers] == ["lan-free", "lan", "none"]
    assert "COPY ABORTED" in report.failovers[0].reason
    assert drv.catalogue.query(inactive=True) == []
    assert list(drv.catalogue.states().values()) == ["abandoned"]


def test_pre_and_post_snapshot_commands_run_in_a_shell(san, tmp_path):
    drv, luns, cm, server = san
    marker = tmp_path / "quiesced"
    from orchestrator.ops import RunCommand

    r = drv.execute(RunCommand(f"echo quiesce > {marker}; echo done", "pre"))
    assert r.returncode == 0 and "done" in r.output and marker.read_text().strip() == "quiesce"
    assert drv.execute(RunCommand("exit 3", "post")).returncode == 3
    report = backup(drv, luns, server, presnapshotcmd="exit 4")
    assert not report.ok and "presnapshotcmd exited with 4" in report.message
    assert drv.catalogue.query(inactive=True) == [] and cm.counters["copies"] == 0
