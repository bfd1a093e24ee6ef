"""Individual rules, each broken on purpose in a copy of the small fabric."""
import copy

import pytest
import yaml

from topology.load import topology_from_data
from topology.verify import verify

DM = "21:00:00:e0:8b:05:05:04"
ARR = "20:00:00:a0:b8:00:00:01"


@pytest.fixture
def small(topologies):
    return yaml.safe_load((topologies / "small.yaml").read_text())


def first(doc, failed=()):
    return verify(topology_from_data(copy.deepcopy(doc)), failed).volumes[0]


def add_disk_pool(doc, mask_to_mover=True):
    doc["arrays"][0]["luns"].append({"number": 6, "naa": "600a0b800000000000000000000000a6", "size": "50GiB"})
    if mask_to_mover:
        doc["arrays"][0]["masking"][1]["luns"].append(6)
    doc["devclasses"].append({"name": "DISKCLASS", "devtype": "DISK"})
    doc["stgpools"].append({"name": "DISKPOOL", "devclass": "DISKCLASS", "dataformat": "NONBLOCK",
                            "disk_luns": ["ARR1:6"]})
    doc["mgmtclasses"][0]["destination"] = "DISKPOOL"


def test_disk_pool_lun_is_a_server_free_target(small):
    add_disk_pool(small)
    v = first(small)
    assert v.path == "server-free" and v.components[1:] == ["DM1", "ARR1:6"]


def test_disk_pool_lun_must_be_masked_to_the_mover(small):
    add_disk_pool(small, mask_to_mover=False)
    v = first(small)
    assert v.reason.rule == "not-masked"
    assert v.reason.message == f"LUN 600a0b800000000000000000000000a6:6 is not masked to data mover DM1 port {DM}"


def test_no_storage_agent_means_no_lan_free(small):
    small["storage_agents"] = []
    v = first(small, ["DM1"])
    assert v.path == "lan"
    assert v.reasons["lan-free"].message == "no storage agent serves client CLIENT1"


def test_failed_lan_leaves_only_san_paths(small):
    v = first(small, ["LAN"])
    assert v.path == "server-free" and v.reasons["lan"].message == "LAN LAN is failed"


def test_inactive_zone_is_named(small):
    small["zonesets"].append({"name": "ZS_OLD", "zones": ["Z_DM1"]})
    small["zonesets"][0]["zones"].remove("Z_DM1")
    v = first(small)
    assert v.reason.message.endswith("(zone Z_DM1 holds both but is not in an active zone set)")


def test_masking_through_the_wrong_array_port(small):
    small["arrays"][0]["ports"].append({"wwpn": "20:00:00:a0:b8:00:00:09"})
    small["arrays"][0]["masking"][1]["target_ports"] = ["20:00:00:a0:b8:00:00:09"]
    v = first(small)
    assert v.reason.message == (f"LUN 600a0b800000000000000000000000a5:5 is not masked to data mover DM1 port {DM} "
                                f"through array port {ARR} (only through 20:00:00:a0:b8:00:00:09)")


def test_raw_volume_is_eligible_and_fat_is_not(small):
    small["volumes"][0]["filesystem"] = "raw"
    assert first(small).server_free
    small["volumes"][0]["filesystem"] = "FAT"
    assert first(small).reason.rule == "filesystem"


def test_mover_order_picks_the_first_working_mover(topologies):
    doc = yaml.safe_load((topologies / "dual-fabric.yaml").read_text())
    doc["datamover_order"] = ["DM2", "DM1"]
    assert first(doc).components[1:] == ["DM2", "DRV2"]


def test_furthest_mover_failure_is_reported(topologies):
    doc = yaml.safe_load((topologies / "dual-fabric.yaml").read_text())
    doc["datamovers"][0]["online"] = False  # DM1 offline: it gets nowhere
    doc["zones"][1]["members"].remove("50:05:07:63:00:00:00:02")  # DM2 reads the disk but cannot reach DRV2
    v = first(doc)
    assert v.reason.rule == "not-zoned" and "data mover DM2" in v.reason.message
