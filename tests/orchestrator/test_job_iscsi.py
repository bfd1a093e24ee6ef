"""The real driver over iSCSI: libiscsi sessions to the project's own target on 127.0.0.1.

The data mover is the target's copy manager, reached through the pool LUN;
disks are read and written with READ/WRITE(16) over libiscsi; the LAN server
runs beside it.  `serverfree backup image` and `restore image` run unchanged.
"""
from __future__ import annotations

import json
import textwrap

import pytest

from orchestrator.cli import main

MIB = 1 << 20
TARGET = "iqn.2026-11.test.serverfree:job"


@pytest.fixture
def iscsi_site(tmp_path):
    try:
        from scsi.devices.iscsi import LibiscsiDevice  # noqa: F401 - needs libiscsi's shared library
    except (ImportError, OSError) as exc:
        pytest.skip(f"libiscsi is not available: {exc}")
    from scsi.iscsi.harness import ThreadedTarget
    from scsi.target.build import build_target
    from scsi.target.config import parse_config

    from orchestrator.volume.samples import bundled_ntfs_image

    vol = bundled_ntfs_image(tmp_path / "vol.img")
    size = vol.stat().st_size
    (tmp_path / "dest.img").write_bytes(bytes(size))
    pool_size = 4 * size + 8 * MIB
    (tmp_path / "pool.img").write_bytes(bytes(pool_size))
    built = build_target(parse_config({"target": TARGET, "luns": [
        {"id": 0, "path": str(vol), "serial": "vol0"}, {"id": 1, "path": str(tmp_path / "pool.img"),
                                                        "serial": "pool0"},
        {"id": 2, "path": str(tmp_path / "dest.img"), "serial": "dest0"}]}), with_copy_manager=True)
    target = ThreadedTarget([built.node]).start()
    url = lambda lun: target.url(TARGET, lun)  # noqa: E731
    (tmp_path / "site.yaml").write_text(textwrap.dedent(f"""
        lan_pool: {{volumes: {{VOL1: pool.img}}}}
        verified_without_topology: true
        devices: {{disk0: "{url(0)}", pool0: "{url(1)}", disk1: "{url(2)}"}}
        movers: {{DM1: "{url(1)}"}}
        pool: {{name: POOL1, volumes: [{{name: VOL1, device: pool0, capacity: {pool_size}}}]}}
        volumes: {{"E:": {{device: disk0}}}}
    """))
    (tmp_path / "dsm.opt").write_text("nodename NODE1\nenableserverfree yes\nenablelanfree yes\n"
                                      f"imagetype static\ncatalog {tmp_path / 'cat.db'}\n")
    yield tmp_path, built
    target.stop()
    built.close()


def test_server_free_backup_and_restore_over_iscsi(iscsi_site, capsys):
    tmp, built = iscsi_site
    opts = ["--options", str(tmp / "dsm.opt"), "--site", str(tmp / "site.yaml"), "--json"]
    assert main(["backup", "image", "E:", *opts]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["outcome"] == "completed" and report["path_used"] == "server-free", report
    assert built.counters().get("xcopy.completed", 0) >= 1
    assert main(["restore", "image", "E:", "disk1", *opts]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["path_used"] == "server-free"
    assert (tmp / "dest.img").read_bytes() == (tmp / "vol.img").read_bytes()


def test_lan_free_over_iscsi_when_server_free_is_off(iscsi_site, capsys):
    tmp, built = iscsi_site
    opts = ["--options", str(tmp / "dsm.opt"), "--site", str(tmp / "site.yaml"), "--json"]
    assert main(["backup", "image", "E:", *opts, "-enableserverfree=no", "-compression=yes"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["path_used"] == "lan-free" and report["compressed"]
    assert main(["restore", "image", "E:", "disk1", *opts, "-enableserverfree=no"]) == 0
    assert json.loads(capsys.readouterr().out)["path_used"] == "lan-free"
    assert (tmp / "dest.img").read_bytes() == (tmp / "vol.img").read_bytes()
