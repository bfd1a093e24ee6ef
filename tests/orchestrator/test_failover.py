"""Failover server-free -> LAN-free -> LAN with injected SAN errors; resumption without loss or doubling."""
from __future__ import annotations

import random

from hypothesis import HealthCheck, given, settings, strategies as st

from orchestrator.catalogue import Catalogue
from orchestrator.drivers.memory import Fault, MemoryDriver
from orchestrator.job import (BackupSpec, DeviceSpec, PathPlan, RestoreSpec, backup_job, object_spec,
                              restore_job, run_job)
from orchestrator.ops import CopyBatches, LanFreeWrite, LanSend, MoverLimits, PathKind

KIB, MIB = 1024, 1 << 20
VOL_SIZE = 24 * MIB
EXTENTS = [(0, 3 * MIB), (4 * MIB, 6 * MIB), (12 * MIB, 64 * KIB), (13 * MIB, 9 * MIB)]
IMAGE = sum(n for _, n in EXTENTS)
DISK = DeviceSpec(name="disk0", designator="60014051111111111111111111111111")
DEST = DeviceSpec(name="disk1", designator="60014053333333333333333333333333")
POOL_DESIG = {"pool0": "60014052222222222222222222222222"}
LIMITS = MoverLimits(max_target_count=2, max_segment_count=3, max_descriptor_list_length=1024,
                     max_segment_length=MIB, data_segment_granularity=9)


DISK_BYTES = random.Random(7).randbytes(VOL_SIZE)


def make_world(tmp_path, faults=(), movers=("DM1",)):
    cat = Catalogue(":memory:")
    cat.add_pool_volume("POOL1", "VOL1", "pool0", 32 * MIB)
    return MemoryDriver({"disk0": bytearray(DISK_BYTES), "disk1": bytearray(VOL_SIZE),
                         "pool0": bytearray(32 * MIB)}, cat, {m: LIMITS for m in movers}, list(faults))


def paths(movers=("DM1",), **kw):
    base = dict(start=PathKind.SERVER_FREE, movers=list(movers), lan_free=True, lan=True, server="srv:1500",
                pool_designators=POOL_DESIG, batch_mb=10, max_lan_piece=2 * MIB)
    base.update(kw)
    return PathPlan(**base)


def spec(**kw):
    base = dict(node="N1", filespace="E:", source=DISK, volume_size=VOL_SIZE, file_system="ntfs",
                extents=EXTENTS, paths=paths())
    base.update(kw)
    return BackupSpec(**base)


def used(dev):
    return b"".join(bytes(dev[o:o + n]) for o, n in EXTENTS)


def restore(drv, **kw):
    chain = drv.catalogue.restore_chain("N1", "E:")
    rs = RestoreSpec(node="N1", filespace="E:", chain=[object_spec(o) for o in chain], destination=DEST,
                     destination_size=VOL_SIZE, paths=kw.pop("paths", paths()), **kw)
    return run_job(restore_job(rs), drv.execute)


def spy_run(drv, job):
    ops = []

    def ex(op):
        ops.append(op)
        return drv.execute(op)

    return run_job(job, ex), ops


def test_copy_aborted_mid_batch_fails_over_to_lan_free_after_last_good_segment(tmp_path):
    # 15 MiB into the copy: batch 1 (10..20 MiB), inside a 1 MiB segment
    drv = make_world(tmp_path, [Fault("copy", after_bytes=15 * MIB + 100 * KIB, kind="sense")])
    report, ops = spy_run(drv, backup_job(spec(compression=True)))
    assert report.ok, report.summary()
    (f,) = report.failovers
    assert (f.from_path, f.to_path, f.mover) == ("server-free", "lan-free", "DM1")
    assert "COPY" in f.reason
    # segments are 1 MiB: everything before the failing segment is known on the pool
    assert f.image_offset == 15 * MIB
    assert report.bytes_by_path == {"server-free": 15 * MIB, "lan-free": IMAGE - 15 * MIB}
    lanfree = [o for o in ops if isinstance(o, LanFreeWrite)]
    assert lanfree[0].pieces[0].image_offset == 15 * MIB
    # data after a server-free failover is not compressed, even with compression yes
    assert not any(o.compress for o in lanfree) and not report.compressed
    (obj,) = drv.catalogue.query(with_pieces=True)
    assert obj.path_used == "server-free+lan-free" and not obj.compressed
    pool = drv.devices["pool0"]
    assert bytes(pool[obj.pool_offset:obj.pool_offset + IMAGE]) == used(drv.devices["disk0"])
    r = restore(drv)
    assert r.ok and used(drv.devices["disk1"]) == used(drv.devices["disk0"])


def test_timeout_resumes_from_the_last_whole_list(tmp_path):
    drv = make_world(tmp_path, [Fault("copy", after_bytes=4 * MIB + 1536 * KIB, kind="timeout")])
    report, ops = spy_run(drv, backup_job(spec()))
    assert report.ok
    (f,) = report.failovers
    # lists hold 3 x 1 MiB segments: after a timeout only list boundaries are trusted
    assert f.image_offset == 3 * MIB and "timeout" in f.reason
    assert report.bytes_by_path["server-free"] + report.bytes_by_path["lan-free"] == IMAGE
    r = restore(drv)
    assert r.ok and used(drv.devices["disk1"]) == used(drv.devices["disk0"])


def test_second_mover_takes_over_before_leaving_server_free(tmp_path):
    drv = make_world(tmp_path, [Fault("copy", after_bytes=4 * MIB, kind="lost-connection", mover="DM1")],
                     movers=("DM1", "DM2"))
    report, ops = spy_run(drv, backup_job(spec(paths=paths(movers=("DM1", "DM2")))))
    assert report.ok and report.path_used == "server-free"
    assert report.movers_used == ["DM1", "DM2"]
    (f,) = report.failovers
    # a lost connection vouches only for whole lists: 3 x 1 MiB segments were done
    assert (f.from_path, f.to_path, f.mover, f.image_offset) == ("server-free", "server-free", "DM1", 3 * MIB)
    copies = [o for o in ops if isinstance(o, CopyBatches)]
    assert [c.mover for c in copies] == ["DM1", "DM2"]
    assert copies[1].batches[0].image_start == 3 * MIB
    assert bytes(drv.devices["pool0"][:IMAGE]) == used(drv.devices["disk0"])


def test_mover_without_operating_parameters_is_skipped(tmp_path):
    drv = make_world(tmp_path, [Fault("opparams", kind="timeout", mover="DM1")], movers=("DM1", "DM2"))
    report = run_job(backup_job(spec(paths=paths(movers=("DM1", "DM2")))), drv.execute)
    assert report.ok and report.movers_used == ["DM2"]
    assert "operating parameters unavailable" in report.failovers[0].reason


def test_server_free_then_lan_free_then_lan(tmp_path):
    drv = make_world(tmp_path, [Fault("copy", after_bytes=4 * MIB, kind="sense"),
                                Fault("lan-free", after_bytes=5 * MIB, kind="lost-connection")])
    report, ops = spy_run(drv, backup_job(spec(compression=True)))
    assert report.ok, report.summary()
    assert [(f.from_path, f.to_path) for f in report.failovers] == [("server-free", "lan-free"),
                                                                     ("lan-free", "lan")]
    # LAN-free pieces are at most 2 MiB: the rest of extent 1 (image 4..9 MiB) went as 2+2+1 MiB,
    # so the failure at its 5th MiB struck the first piece of extent 2 at image offset 9 MiB
    assert report.failovers[1].image_offset == 9 * MIB
    assert report.bytes_by_path == {"server-free": 4 * MIB, "lan-free": 5 * MIB, "lan": IMAGE - 9 * MIB}
    sends = [o for o in ops if isinstance(o, LanSend)]
    assert sends[0].pieces[0].image_offset == 9 * MIB and not sends[0].compress
    r = restore(drv)
    assert r.ok and used(drv.devices["disk1"]) == used(drv.devices["disk0"])


def test_every_path_failing_abandons_the_object(tmp_path):
    drv = make_world(tmp_path, [Fault("copy", after_bytes=MIB), Fault("lan-free", after_bytes=MIB),
                                Fault("lan", after_bytes=0, kind="lost-connection")])
    report = run_job(backup_job(spec()), drv.execute)
    assert not report.ok and "no other path is available" in report.message
    assert [f.to_path for f in report.failovers] == ["lan-free", "lan", "none"]
    assert drv.catalogue.query(inactive=True) == []
    assert list(drv.catalogue.states().values()) == ["abandoned"]


def test_no_lan_free_path_goes_straight_to_lan(tmp_path):
    drv = make_world(tmp_path, [Fault("copy", after_bytes=0)])
    report = run_job(backup_job(spec(paths=paths(lan_free=False))), drv.execute)
    assert report.ok and report.path_used == "lan"
    assert [(f.from_path, f.to_path) for f in report.failovers] == [("server-free", "lan")]


def test_restore_fails_over_and_stays_byte_identical(tmp_path):
    drv = make_world(tmp_path)
    assert run_job(backup_job(spec()), drv.execute).ok
    drv.faults.append(Fault("copy", after_bytes=IMAGE + 7 * MIB + 3 * KIB, kind="sense"))
    r = restore(drv)
    assert r.ok and r.path_used == "server-free+lan-free"
    assert r.failovers[0].image_offset == 7 * MIB
    assert used(drv.devices["disk1"]) == used(drv.devices["disk0"])


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.integers(0, IMAGE - 1), st.sampled_from(["sense", "timeout", "lost-connection"]),
       st.one_of(st.none(), st.integers(0, IMAGE - 1)), st.booleans())
def test_any_fault_position_loses_and_doubles_nothing(tmp_path, at, kind, lanfree_at, compression):
    faults = [Fault("copy", after_bytes=at, kind=kind)]
    if lanfree_at is not None:
        faults.append(Fault("lan-free", after_bytes=lanfree_at, kind="timeout"))
    drv = make_world(tmp_path, faults)
    report = run_job(backup_job(spec(compression=compression)), drv.execute)
    assert report.ok, report.summary()
    assert sum(report.bytes_by_path.values()) == IMAGE
    assert not report.compressed  # started server-free: never compressed
    offsets = [f.image_offset for f in report.failovers]
    assert offsets == sorted(offsets) and offsets[0] <= at
    (obj,) = drv.catalogue.query(with_pieces=True)
    assert [(p.image_offset, p.length) for p in obj.pieces] == \
        sorted((p.image_offset, p.length) for p in obj.pieces)
    assert sum(p.length for p in obj.pieces) == IMAGE
    drv.faults.clear()
    r = restore(drv)
    assert r.ok and used(drv.devices["disk1"]) == used(drv.devices["disk0"])
