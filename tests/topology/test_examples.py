"""Every shipped example topology gives exactly the documented verdict and reason."""
import pytest

from topology.load import load_topology
from topology.verify import verify

DM = "21:00:00:e0:8b:05:05:04"
ARR = "20:00:00:a0:b8:00:00:01"
DRV = "50:05:07:63:00:00:00:01"
CL = "10:00:00:00:c9:00:00:01"
LUN = "600a0b800000000000000000000000a5:5"

CASES = [
    ("mistake-disk-not-zoned.yaml", "lan-free", "not-zoned",
     f"array ARR1 port {ARR} is not zoned with data mover DM1 port {DM}: they share no zone of the active zone set",
     ["DM1", DM, "ARR1", ARR]),
    ("mistake-lun-not-masked.yaml", "lan-free", "not-masked",
     f"LUN {LUN} is not masked to data mover DM1 port {DM}", ["ARR1:5", "ARR1", "DM1", DM]),
    ("mistake-pool-not-nonblock.yaml", "lan-free", "pool-not-nonblock",
     "management class SF1 sends volume CLIENT1:H: to storage pool SFPOOL, whose data format is NATIVE, "
     "not NONBLOCK", ["SF1", "SFPOOL"]),
    ("mistake-mover-offline.yaml", "lan-free", "component-down", "data mover DM1 is offline", ["DM1"]),
    ("mistake-wwpn-typo.yaml", "lan-free", "not-zoned",
     f"array ARR1 port {ARR} is not zoned with data mover DM1 port {DM}: they share no zone of the active zone "
     f"set (zone Z_DM1 lists 21:00:00:e0:8b:05:05:40, which matches no port: a WWPN typo?)",
     ["DM1", DM, "ARR1", ARR]),
    ("mistake-failed-isl.yaml", None, "not-connected",
     f"no physical path from data mover DM1 port {DM} to drive DRV1 port {DRV}: ISL ISL1 is offline",
     ["DM1", DM, "DRV1", DRV, "ISL1"]),
    ("mistake-fat32.yaml", "lan-free", "filesystem",
     "volume CLIENT1:H: has file system FAT32; server-free image backup takes only NTFS or raw volumes",
     ["CLIENT1:H:"]),
]


@pytest.mark.parametrize("name, path, rule, message, objects", CASES, ids=[c[0] for c in CASES])
def test_classic_mistake_verdict_and_reason(topologies, name, path, rule, message, objects):
    report = verify(load_topology(topologies / name))
    (v,) = report.volumes
    assert v.server_free is False
    assert v.path == path
    assert v.reason.rule == rule
    assert v.reason.message == message
    assert v.reason.objects == objects
    assert not report.all_server_free


def test_failed_isl_also_explains_why_lan_free_and_lan_are_missing(topologies):
    """Behind the failed ISL the drive is out of reach of the client (LAN-free) and of the server, which
    would write it on the LAN path: no path at all."""
    v = verify(load_topology(topologies / "mistake-failed-isl.yaml")).volumes[0]
    assert v.lan_free is False and v.lan is False and v.path is None
    assert v.reasons["lan-free"].message == (
        f"no physical path from client CLIENT1 port {CL} to drive DRV1 port {DRV}: ISL ISL1 is offline")
    assert v.reasons["lan"].message.startswith("no physical path from server TSMSRV port ")
    assert v.reasons["lan"].message.endswith(f"to drive DRV1 port {DRV}: ISL ISL1 is offline")


def test_wwpn_typo_is_warned_at_load(topologies):
    topo = load_topology(topologies / "mistake-wwpn-typo.yaml")
    assert topo.warnings == ["zone Z_DM1 member 21:00:00:e0:8b:05:05:40 matches no port (a WWPN typo?)"]


def test_small_fabric_is_server_free_through_dm1_to_drv1(topologies):
    report = verify(load_topology(topologies / "small.yaml"))
    (v,) = report.volumes
    assert (v.server_free, v.lan_free, v.lan, v.path) == (True, True, True, "server-free")
    assert v.components == [LUN, "DM1", "DRV1"]
    assert v.reasons == {}
    assert v.route.array_port == ARR and v.route.mover_in == DM and v.route.device_port == DRV
    assert v.disjoint_paths == 1
    assert {"SW1", "DM1", DM, ARR, DRV} <= set(v.single_points_of_failure)
    assert report.all_server_free


def test_dual_fabric_has_two_disjoint_paths_and_no_single_point(topologies):
    (v,) = verify(load_topology(topologies / "dual-fabric.yaml")).volumes
    assert v.path == "server-free" and v.components == [LUN, "DM1", "DRV1"]
    assert v.disjoint_paths == 2
    assert v.single_points_of_failure == []
