"""Eligibility rules: where a job starts and the reasons it gives."""
from __future__ import annotations

import pytest

from orchestrator.eligibility import NoPathError, decide
from orchestrator.ops import PathKind
from topology.report import Problem, Route, VolumeVerdict


def verdict(sf=True, lf=True, lan=True):
    reasons = {}
    if not sf:
        reasons["server-free"] = Problem(rule="not-masked", message="LUN L1 is not masked to data mover DM1",
                                         objects=["L1", "DM1"])
    if not lf:
        reasons["lan-free"] = Problem(rule="no-agent", message="no storage agent on client C1")
    if not lan:
        reasons["lan"] = Problem(rule="lan-down", message="LAN is down")
    route = Route(array_port="a", mover_in="b", mover="DM1", mover_out="c", device_port="d", device="T1")
    return VolumeVerdict(volume="v", client="C1", mount="E:", filesystem="ntfs", lun="L1", server_free=sf,
                         lan_free=lf, lan=lan, path=None, route=route if sf else None, reasons=reasons)


def test_all_rules_met_starts_server_free_with_route_mover():
    e = decide(enableserverfree=True, file_system="NTFS", verdict=verdict())
    assert e.start == PathKind.SERVER_FREE and e.movers == ["DM1"] and e.reasons == []
    e = decide(enableserverfree=True, file_system="raw", verdict=verdict(), movers=["DM2", "DM1"])
    assert e.server_free and e.movers == ["DM2", "DM1"]


@pytest.mark.parametrize("kw, reason", [
    (dict(enableserverfree=False), "enableserverfree is no"),
    (dict(file_system="fat32"), "file system FAT32 is not supported server-free"),
    (dict(file_system="fat"), "NTFS and raw volumes only"),
    (dict(pool_nonblocked=False), "not NONBLOCK"),
    (dict(verdict=None), "no SAN topology"),
    (dict(verdict=verdict(sf=False)), "LUN L1 is not masked to data mover DM1"),
])
def test_each_broken_rule_demotes_to_lan_free_and_says_why(kw, reason):
    args = dict(enableserverfree=True, file_system="ntfs", verdict=verdict())
    args.update(kw)
    e = decide(**args)
    assert e.start == (PathKind.LAN if args["verdict"] is None else PathKind.LAN_FREE)
    assert any(reason in r for r in e.reasons), e.reasons


def test_encryption_does_not_block_server_free_but_is_noted():
    # the seed: TSM will not compress or encrypt data during server-free image backup
    e = decide(enableserverfree=True, file_system="ntfs", verdict=verdict(), encryption=True)
    assert e.server_free and e.notes == ["encryptkey is set, but server-free image data is never encrypted"]
    e = decide(enableserverfree=False, file_system="ntfs", verdict=verdict(), encryption=True)
    assert not e.server_free and e.notes == []


def test_lan_when_no_lan_free_and_no_path_at_all():
    e = decide(enableserverfree=True, file_system="ntfs", verdict=verdict(sf=False, lf=False))
    assert e.start == PathKind.LAN and "LAN-free: no storage agent on client C1" in e.reasons
    with pytest.raises(NoPathError, match="no path can move this volume: .*LAN is down"):
        decide(enableserverfree=True, file_system="ntfs", verdict=verdict(sf=False, lf=False, lan=False))


def test_site_topology_gives_verdict_and_movers(tmp_path):
    """The CLI's composition: a topology file verifies the path and lists the movers that serve it."""
    from pathlib import Path

    from orchestrator.cli.backup_cmd import topology_verdict
    from orchestrator.drivers.site import SiteConfig

    topo = Path(__file__).resolve().parents[2] / "scenarios" / "topologies"
    site = SiteConfig(topology=str(topo / "small.yaml"), devices={"d": "x.img"}, movers={"DM1": "inprocess"},
                      pool={"volumes": [{"name": "V", "device": "d", "capacity": "1m"}]},
                      volumes={"H:": {"device": "d", "topology_volume": "CLIENT1:H:"}})
    paths = topology_verdict(site, "H:", "CLIENT1:H:")
    assert paths.pool.name == "SFPOOL" and paths.pool.devices == ("DRV1",)
    e = decide(enableserverfree=True, file_system="ntfs", verdict=paths.verdict, movers=paths.movers)
    assert e.server_free and e.movers == ["DM1"]
    bad = site.model_copy(update={"topology": str(topo / "mistake-lun-not-masked.yaml")})
    paths = topology_verdict(bad, "H:", "CLIENT1:H:")
    e = decide(enableserverfree=True, file_system="ntfs", verdict=paths.verdict, movers=paths.movers)
    assert not e.server_free and any("mask" in r.lower() for r in e.reasons), e.reasons


def test_lan_free_needs_enablelanfree():
    e = decide(enableserverfree=False, file_system="ntfs", verdict=verdict(), enablelanfree=False)
    assert e.start == PathKind.LAN and not e.lan_free and "LAN-free: enablelanfree is no" in e.reasons
    e = decide(enableserverfree=True, file_system="ntfs", verdict=verdict(), enablelanfree=False)
    assert e.server_free and not e.lan_free  # a server-free failure then goes straight to the LAN
