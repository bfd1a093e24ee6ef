"""The mover config's ``remote:`` section: validation, ACL semantics, opening and checking devices.

Remote devices here are in-process block devices behind pyscsi (the same
RemoteLun code path as iSCSI, without a network); tgtd runs in
test_target_remote_iscsi.py.
"""
from __future__ import annotations

import pytest

from scsi.copymgr.client import Client, cscd_for_lun, sense_of
from scsi.devices import InProcessDevice
from scsi.luns import MemoryBlockLun
from scsi.result import Nexus
from scsi.target.blockdev import BlockLunDevice
from scsi.target.build import (
    build_target,
    make_copy_manager,
    open_luns,
    open_remote,
    open_remotes,
)
from scsi.target.config import parse_config
from scsi.xcopy import BlockToBlock, Header, ParameterList

URL_A = "iscsi://127.0.0.1:3260/iqn.2026-11.org.test:disks/1"
URL_B = "iscsi://127.0.0.1:3260/iqn.2026-11.org.test:disks/2"
NAA_A = bytes.fromhex("6001405a00000000000000000000000a")
NAA_B = bytes.fromhex("6001405b00000000000000000000000b")
ALLOWED = "iqn.2026-11.org.test:allowed"
MASKED = "iqn.2026-11.org.test:masked"


@pytest.fixture
def gateway(tmp_path):
    path = tmp_path / "gw.img"
    path.write_bytes(bytes(64 << 10))
    return str(path)


def _cfg(gateway: str, **extra):
    return parse_config({"target": "iqn.2026-11.org.test:dm", "luns": [{"id": 0, "path": gateway}], **extra})


@pytest.mark.parametrize("remote, acl, words", [
    ([{"name": "a", "url": "http://x/y"}], None, ["remote.0.url", "neither iscsi://"]),
    ([{"name": "a", "url": "iscsi://h/iqn.2026-11.x:y/lun1"}], None, ["remote.0.url", "'lun1' is not a number"]),
    ([{"name": "lun1", "url": URL_A}], None, ["remote.0.name", "reserved for served LUNs"]),
    ([{"name": "9a", "url": URL_A}], None, ["remote.0.name", "must start with a letter"]),
    ([{"name": "a", "url": URL_A}, {"name": "a", "url": URL_B}], None, ["remote.1: name a already used"]),
    ([{"name": "a", "url": URL_A}, {"name": "b", "url": URL_A}], None, ["remote.1 (b): url", "remote.0"]),
    ([{"name": "a", "url": URL_A, "designator": "6001zz"}], None, ["remote.0.designator", "not a hex digit"]),
    ([{"name": "a", "url": "/dev/sg3", "chap": {"username": "u", "secret": "abcdefghijkl"}}], None,
     ["remote.0", "iscsi:// URLs only"]),
    ([{"name": "a", "url": URL_A, "sessions": 0}], None, ["remote.0.sessions"]),
    ([{"name": "a", "url": URL_A, "colour": "red"}], None, ["remote.0.colour", "Extra inputs"]),
    ([{"name": "a", "url": URL_A}], [{"initiator": ALLOWED, "luns": [0], "remote": ["a", "tape9"]}],
     ["acl.0", ALLOWED, "tape9", "not in remote: (a)"]),
])
def test_bad_remote_config_names_what_and_where(gateway, remote, acl, words):
    extra = {"remote": remote} | ({"acl": acl} if acl is not None else {})
    with pytest.raises(ValueError) as info:
        _cfg(gateway, **extra)
    for w in words:
        assert w in str(info.value)


def test_a_secret_in_a_bad_url_is_not_echoed(gateway):
    with pytest.raises(ValueError) as info:
        _cfg(gateway, remote=[{"name": "a", "url": "iscsi://dm%topsecret99@h/iqn.2026-11.x:y/z"}])
    assert "topsecret99" not in str(info.value) and "remote.0.url" in str(info.value)


def test_remote_devices_need_a_lun_that_accepts_extended_copy(tmp_path, gateway):
    with pytest.raises(ValueError, match="no LUN has accepts_xcopy"):
        parse_config({"target": "iqn.2026-11.org.test:dm", "luns": [{"id": 0, "path": gateway,
                                                                     "accepts_xcopy": False}],
                      "remote": [{"name": "a", "url": URL_A}]})


def test_acl_remote_defaults_follow_luns(gateway):
    cfg = _cfg(gateway, remote=[{"name": "a", "url": URL_A}, {"name": "b", "url": URL_B}],
               acl=[{"initiator": ALLOWED, "luns": "all"}, {"initiator": MASKED, "luns": [0]},
                    {"initiator": "iqn.2026-11.org.test:one", "luns": [0], "remote": ["b"]}])
    assert cfg.remote_for(ALLOWED) == ["a", "b"]
    assert cfg.remote_for(f"{ALLOWED},i,0x400001370000") == ["a", "b"]  # port name of a session
    assert cfg.remote_for(MASKED) == []
    assert cfg.remote_for("iqn.2026-11.org.test:one") == ["b"]
    assert cfg.remote_for("iqn.2026-11.org.test:stranger") == []  # no entry, no "*"
    assert cfg.remote[0].designator is None and cfg.remote[0].sessions == 2


def test_designator_notations_are_normalised(gateway):
    cfg = _cfg(gateway, remote=[{"name": "a", "url": URL_A, "designator": "naa.6001405A00000000000000000000000A"}])
    assert cfg.remote[0].designator == NAA_A.hex()


def _opener(backends: dict[str, MemoryBlockLun], calls: list[tuple[str, dict]]):
    def open_(url, **opts):
        calls.append((url, opts))
        return InProcessDevice(BlockLunDevice(backends[url]))
    return open_


@pytest.fixture
def backends():
    return {URL_A: MemoryBlockLun("disk-a", num_blocks=256, naa=NAA_A),
            URL_B: MemoryBlockLun("disk-b", num_blocks=256, naa=NAA_B)}


def test_open_remote_passes_chap_initiator_sessions_and_checks_the_designator(gateway, backends):
    cfg = _cfg(gateway, remote=[{"name": "a", "url": URL_A, "designator": NAA_A.hex(), "sessions": 3,
                                 "initiator": "iqn.2026-11.org.test:dm-init", "timeout": 7,
                                 "chap": {"username": "dm", "secret": "dmsecret1234",
                                          "mutual_username": "san", "mutual_secret": "sansecret1234"}}])
    calls: list = []
    lun = open_remote(cfg.remote[0], _opener(backends, calls))
    try:
        assert lun.name == "a" and lun.naa == NAA_A and lun.num_blocks == 256
        assert len(calls) == 3
        assert calls[0][1] == {"timeout": 7.0, "initiator_iqn": "iqn.2026-11.org.test:dm-init",
                               "chap": ("dm", "dmsecret1234"), "mutual_chap": ("san", "sansecret1234")}
    finally:
        lun.close()


def test_designator_mismatch_names_both_and_closes_what_was_opened(gateway, backends):
    cfg = _cfg(gateway, remote=[{"name": "a", "url": URL_A},
                                {"name": "b", "url": URL_B, "designator": NAA_A.hex()}])
    with pytest.raises(ValueError) as info:
        open_remotes(cfg, _opener(backends, []))
    msg = str(info.value)
    assert f"remote b ({URL_B})" in msg and f"expected NAA designator {NAA_A.hex()}" in msg and NAA_B.hex() in msg


def test_unreachable_device_is_a_value_error_naming_it(gateway):
    from scsi.devices import DeviceConnectionError

    def refuse(url, **opts):
        raise DeviceConnectionError("cannot reach portal 127.0.0.1:3260: Connection refused")

    cfg = _cfg(gateway, remote=[{"name": "pool", "url": URL_B}])
    with pytest.raises(ValueError, match=r"remote pool \(iscsi://127.0.0.1:3260/.*\): cannot be reached: .*refused"):
        open_remotes(cfg, refuse)


def test_copy_manager_reaches_remote_devices_only_for_initiators_the_acl_lists(gateway, backends):
    cfg = _cfg(gateway, remote=[{"name": "a", "url": URL_A}, {"name": "b", "url": URL_B}],
               acl=[{"initiator": ALLOWED, "luns": [0], "remote": ["a", "b"]},
                    {"initiator": MASKED, "luns": [0], "remote": ["a"]}])
    luns = open_luns(cfg)
    remotes = open_remotes(cfg, _opener(backends, []))
    built = build_target(cfg, luns=luns, with_copy_manager=True, remotes=remotes)
    try:
        m = built.copy_manager
        assert set(m.reachable(ALLOWED + ",i,0x1")) == {"lun0", "a", "b"}
        assert set(m.reachable(MASKED)) == {"lun0", "a"}
        payload = bytes(range(256)) * 64  # 32 blocks
        backends[URL_A].write(10, payload)
        pl = ParameterList(header=Header(list_id=3),
                           cscds=(cscd_for_lun(remotes["a"]), cscd_for_lun(remotes["b"])),
                           segments=(BlockToBlock(src=0, dst=1, block_count=32, src_lba=10, dst_lba=20),))
        refused = Client(m, Nexus(MASKED + ",i,0x2", cfg.target)).xcopy(pl)
        s = sense_of(refused)
        assert (int(s.key), s.asc, s.ascq) == (0x0A, 0x0D, 0x02)
        assert backends[URL_B].read(20, 32) == bytes(len(payload))
        done = Client(m, Nexus(ALLOWED + ",i,0x3", cfg.target)).xcopy(pl)
        assert done.ok, sense_of(done)
        assert backends[URL_B].read(20, 32) == payload
    finally:
        built.close()
    assert not remotes["a"]._all  # the built target closed the remote sessions


def test_copy_manager_uses_the_configured_limits(gateway):
    cfg = _cfg(gateway, limits={"chunk_bytes": 65536, "io_depth": 2})
    luns = open_luns(cfg)
    m = make_copy_manager(cfg, luns)
    try:
        assert (m.limits.chunk_bytes, m.limits.io_depth) == (65536, 2)
    finally:
        m.close()
        for lun in luns.values():
            lun.close()


def test_cli_quick_mode_reach_builds_remote_entries(gateway):
    import argparse

    from orchestrator.cli.datamover_cmd import config_from_args

    ns = argparse.Namespace(config=None, portal=None, iqn="iqn.2026-11.org.test:dm", lun=[gateway],
                            reach=[URL_A, "/dev/sg4"])
    cfg = config_from_args(ns)
    assert [(r.name, r.url) for r in cfg.remote] == [("remote0", URL_A), ("remote1", "/dev/sg4")]
    assert cfg.remote_for("iqn.2026-11.org.test:anyone") == ["remote0", "remote1"]
    with pytest.raises(ValueError, match="--reach"):
        config_from_args(argparse.Namespace(config="x.yaml", portal=None, iqn=None, lun=[], reach=[URL_A]))


def test_served_lun_naa_is_configurable_and_must_differ_from_remote_ones(gateway, backends):
    cfg = _cfg(gateway, remote=[{"name": "a", "url": URL_A}])
    cfg.luns[0].naa = NAA_A.hex()
    luns = open_luns(cfg)
    remotes = open_remotes(cfg, _opener(backends, []))
    try:
        assert luns[0].naa == NAA_A
        with pytest.raises(ValueError, match=f"lun0 and a both report NAA designator {NAA_A.hex()}"):
            make_copy_manager(cfg, luns, remotes)
    finally:
        for lun in [*luns.values(), *remotes.values()]:
            lun.close()
    with pytest.raises(ValueError, match="luns.0.naa"):
        parse_config({"target": "iqn.2026-11.org.test:dm", "luns": [{"id": 0, "path": gateway, "naa": "xyz"}]})
