"""Orchestrator jobs driven in simulated time: failover on a simulated fault, bytes restorable."""
import random

import pytest

from orchestrator.catalogue import Catalogue
from orchestrator.drivers.memory import MemoryDriver
from orchestrator.job import (BackupSpec, DeviceSpec, PathPlan, RestoreSpec, backup_job, object_spec,
                              restore_job)
from orchestrator.ops import MoverLimits, PathKind
from simulator.calibration import Calibration
from simulator.driver import SimDriver, TimingBackend
from scsi.copymgr.config import CopyLimits
from simulator.faults import FaultInjector, FaultSpec
from simulator.san import SimSAN

MIB = 1 << 20
VOL = 24 * MIB
EXTENTS = [(0, 3 * MIB), (4 * MIB, 6 * MIB), (13 * MIB, 9 * MIB)]
IMAGE = 18 * MIB
LIMITS = MoverLimits(max_target_count=2, max_segment_count=3, max_descriptor_list_length=1024,
                     max_segment_length=MIB, data_segment_granularity=9)
DISK = DeviceSpec(name="disk0", designator="60014051111111111111111111111111")
DEST = DeviceSpec(name="disk1", designator="60014053333333333333333333333333")


def _san():
    san = SimSAN(Calibration(disk_positioning_ms=0, mover_command_ms=0, disk_mb_s=10.0))
    for name in ("ARR", "DM1-L", "N1-L", "SRV-L"):
        san.add_link(name, 200e6)
    san.add_host("N1", nic_gbit=1.0)
    san.add_host("SRV", nic_gbit=1.0, server=True)
    san.add_lan()
    for d in ("disk0", "disk1", "pool0"):
        san.add_disk(d, owner="N1" if d != "pool0" else None)
    san.add_mover("DM1")
    san.add_agent("SA", "N1", serves=["N1"])
    san.add_route("disk0", "DM1", [("ARR", True), ("DM1-L", False)])
    san.add_route("DM1", "pool0", [("DM1-L", True), ("ARR", False)])
    san.add_route("disk0", "N1", [("ARR", True), ("N1-L", False)])
    san.add_route("disk1", "N1", [("ARR", True), ("N1-L", False)])
    san.add_route("N1", "pool0", [("N1-L", True), ("ARR", False)])
    return san


def _memory():
    cat = Catalogue(":memory:")
    cat.add_pool_volume("POOL1", "VOL1", "pool0", 32 * MIB)
    disk = bytearray(random.Random(3).randbytes(VOL))
    return MemoryDriver({"disk0": disk, "disk1": bytearray(VOL), "pool0": bytearray(32 * MIB)}, cat,
                        {"DM1": LIMITS})


def _spec():
    return BackupSpec(node="N1", filespace="E:", source=DISK, volume_size=VOL, file_system="ntfs",
                      extents=EXTENTS, paths=PathPlan(start=PathKind.SERVER_FREE, movers=["DM1"], lan_free=True,
                                                      lan=True, server="srv:1500",
                                                      pool_designators={"pool0": "6001405" + "2" * 25},
                                                      batch_mb=10, max_lan_piece=2 * MIB))


def test_backup_takes_simulated_time_and_fails_over_on_a_simulated_fault():
    san, mem = _san(), _memory()
    # 10 MB/s source: the DM1 cable goes down 1.2 s in (12 MB moved): inside batch 1 (10 MiB batches)
    FaultInjector(san, [FaultSpec(kind="link_down", target="DM1-L", at_s=1.2)]).arm()
    proc = SimDriver(san, mem.execute).process(backup_job(_spec()), name="N1:E:", client="N1")
    san.run()
    report = proc.value
    assert report.ok, report.summary()
    (f,) = report.failovers
    assert (f.from_path, f.to_path) == ("server-free", "lan-free") and "COPY" in f.reason
    # batch 0 (10 MiB) and segment 0 of batch 1's first list (COPY ABORTED says segment 1) are on the pool
    assert report.bytes_by_path["server-free"] == 11 * MIB
    assert san.env.now > IMAGE / 10e6  # the whole image was read from the 10 MB/s LUN, and verified
    # byte for byte: restore from the memory backend and compare the used extents
    chain = mem.catalogue.restore_chain("N1", "E:")
    rs = RestoreSpec(node="N1", filespace="E:", chain=[object_spec(o) for o in chain], destination=DEST,
                     destination_size=VOL, paths=PathPlan(start=PathKind.LAN_FREE, lan_free=True,
                                                          server="srv:1500"))
    t0 = san.env.now
    rproc = SimDriver(san, mem.execute).process(restore_job(rs), name="restore", client="N1")
    san.run()
    assert rproc.value.ok, rproc.value.summary()
    assert san.env.now - t0 == pytest.approx(IMAGE / 10e6, rel=0.01)  # LAN-free read back at the LUN rate
    used = lambda dev: b"".join(bytes(dev[o:o + n]) for o, n in EXTENTS)  # noqa: E731
    assert used(mem.devices["disk1"]) == used(mem.devices["disk0"])


def test_many_jobs_at_once_with_the_timing_backend():
    san = _san()
    driver = SimDriver(san, TimingBackend("pool0").execute)
    procs = [driver.process(backup_job(_spec().model_copy(update={"filespace": f"V{i}:"})), name=f"J{i}",
                            client="N1") for i in range(5)]
    san.run()
    assert all(p.value.ok and p.value.path_used == "server-free" for p in procs)
    # five 18 MiB images share the 10 MB/s LUN: ~ 5 * 18 MiB / 10 MB/s (+ verify reads on the pool LUN)
    assert san.env.now == pytest.approx(2 * 5 * IMAGE / 10e6, rel=0.01)


def _exact(san, mem):
    from simulator.exact import BytearrayLun, ExactMover

    luns = {"disk0": BytearrayLun("disk0", mem.devices["disk0"], naa=bytes.fromhex(DISK.designator)),
            "pool0": BytearrayLun("pool0", mem.devices["pool0"], naa=bytes.fromhex("6001405" + "2" * 25))}
    # 1 MiB chunks: the timings below (overlap, the segment a fault lands in) are worked out for them
    return {"DM1": ExactMover(san, "DM1", luns, limits=CopyLimits(chunk_bytes=1 << 20))}


def test_exact_mode_runs_the_copy_manager_engine_in_simulated_time():
    san, mem = _san(), _memory()
    proc = SimDriver(san, mem.execute, exact=_exact(san, mem)).process(backup_job(_spec()), name="J", client="N1")
    san.run()
    report = proc.value
    assert report.ok and report.path_used == "server-free", report.summary()
    assert [f.label for f in san.timeline.flows.values()].count("exact:DM1") > 6  # one flow per engine I/O
    # the engine reads a chunk, then writes it: between fully overlapped (read + verify) and fully
    # serial (read, write, verify) on the two 10 MB/s LUNs
    assert 2 * IMAGE / 10e6 < san.env.now < 3 * IMAGE / 10e6
    pool = mem.devices["pool0"]
    assert bytes(pool[:IMAGE]) == b"".join(bytes(mem.devices["disk0"][o:o + n]) for o, n in EXTENTS)


def test_exact_mode_fault_gives_the_engines_copy_aborted_and_the_job_fails_over():
    san, mem = _san(), _memory()
    FaultInjector(san, [FaultSpec(kind="link_down", target="DM1-L", at_s=1.5)]).arm()
    proc = SimDriver(san, mem.execute, exact=_exact(san, mem)).process(backup_job(_spec()), name="J", client="N1")
    san.run()
    report = proc.value
    assert report.ok, report.summary()
    (f,) = report.failovers
    # the engine's own answer to a lost path: COPY ABORTED, copy target device not reachable
    assert "COPY ABORTED: COPY TARGET DEVICE NOT REACHABLE (0Dh/02h)" in f.reason and f.to_path == "lan-free"
    # batch 0 is one list of three segments (3, 6 and 1 MiB); at 1.5 s the engine was in segment 1,
    # so COPY ABORTED names segment 1 and only segment 0 counts as on the pool
    assert report.bytes_by_path["server-free"] == 3 * MIB
    used = b"".join(bytes(mem.devices["disk0"][o:o + n]) for o, n in EXTENTS)
    assert bytes(mem.devices["pool0"][:IMAGE]) == used


def test_exact_mover_forwards_the_failing_lun_sense(run_proc):
    from orchestrator.plan.disk import CscdRef, plan_batches, default_encoder
    from orchestrator.ops import pieces_from_extents
    from scsi.copymgr.cdb import extended_copy_cdb
    from scsi.result import Nexus
    from scsi.sense import Sense, SenseKey

    san, mem = _san(), _memory()
    mover = _exact(san, mem)["DM1"]
    batches = plan_batches(pieces_from_extents(EXTENTS), direction="backup",
                           src=CscdRef("disk0", DISK.designator), dst=CscdRef("pool0", "6001405" + "2" * 25),
                           src_base=0, dst_base=0, limits=LIMITS, batch_bytes=10 * MIB, encoder=default_encoder())
    plist = batches[0].lists[1]
    FaultInjector(san, [FaultSpec(kind="lun_not_ready", target="pool0", at_s=0.2)]).arm()
    res = run_proc(san, mover.extended_copy(Nexus("iqn.sim:h", "DM1"), extended_copy_cdb(len(plist.data)),
                                            plist.data, job="J"))
    sense = Sense.decode(res.sense)
    assert sense.key == SenseKey.COPY_ABORTED and sense.segment is not None
    status, fwd = sense.forwarded()["destination"]
    assert fwd.key == SenseKey.NOT_READY and fwd.asc == 0x04


def test_inprocess_pyscsi_device_reaches_the_simulated_mover():
    from scsi.devices.inprocess import InProcessDevice
    from scsi.copymgr.cdb import SA_OPERATING_PARAMETERS, receive_copy_results_cdb
    from scsi.result import Nexus

    san, mem = _san(), _memory()
    mover = _exact(san, mem)["DM1"]
    dev = InProcessDevice(mover, Nexus("iqn.sim:host"))
    res = dev.run(receive_copy_results_cdb(SA_OPERATING_PARAMETERS), b"", 1024)
    assert res.ok and len(res.data) > 40
