"""Local mode's LAN path is the site file's lan_pool (tcpserveraddress no longer names an open LAN data
process); domain.image drives `backup image` with no VOLUME (minus exclude.image), as dsmc does."""
from __future__ import annotations

import json
import shutil
import textwrap

import pytest

from orchestrator.cli import main

MIB = 1 << 20


@pytest.fixture
def lab(tmp_path):
    from orchestrator.volume.samples import bundled_ntfs_image

    vol = bundled_ntfs_image(tmp_path / "e.img")
    shutil.copyfile(vol, tmp_path / "f.img")
    size = vol.stat().st_size
    cap = 6 * size + 8 * MIB
    (tmp_path / "pool.img").write_bytes(bytes(cap))
    body = textwrap.dedent(f"""
        lan_pool: {{volumes: {{VOL1: pool.img}}}}
        verified_without_topology: true
        lan_free: false
        devices: {{disk0: e.img, disk1: f.img, pool0: pool.img}}
        movers: {{DM1: inprocess}}
        pool: {{name: POOL1, volumes: [{{name: VOL1, device: pool0, capacity: {cap}}}]}}
        volumes: {{"E:": {{device: disk0}}, "F:": {{device: disk1}}}}
    """)
    (tmp_path / "site.yaml").write_text(body)
    (tmp_path / "dsm.opt").write_text(textwrap.dedent(f"""
        nodename NODE1
        imagetype static
        catalog {tmp_path / 'cat.db'}
    """))
    yield tmp_path


def backup(lab, *args):
    return main(["backup", "image", *args, "--site", str(lab / "site.yaml"), "--options", str(lab / "dsm.opt")])


def test_the_lan_path_of_local_mode_is_the_lan_pool(lab, capsys):
    assert backup(lab, "E:", "-enableserverfree=no", "--json") == 0
    report = json.loads(capsys.readouterr().out)
    assert report["outcome"] == "completed" and report["path_used"] == "lan"
    assert main(["restore", "image", "E:", "disk1", "--site", str(lab / "site.yaml"),
                 "--options", str(lab / "dsm.opt"), "-enableserverfree=no"]) == 0
    assert "completed" in capsys.readouterr().out
    assert (lab / "e.img").read_bytes() == (lab / "f.img").read_bytes()


def test_tcpserveraddress_names_no_lan_path_in_local_mode(lab, capsys):
    site = (lab / "site.yaml").read_text().replace("lan_pool: {volumes: {VOL1: pool.img}}\n", "")
    (lab / "site.yaml").write_text(site)
    with open(lab / "dsm.opt", "a") as f:
        f.write("tcpserveraddress 127.0.0.1\ntcpport 1500\n")
    assert backup(lab, "E:", "-enableserverfree=no") == 2
    err = capsys.readouterr().err
    assert "LAN: no LAN path is configured (local mode: lan_pool in the site file" in err


def test_no_volume_backs_up_every_domain_volume_but_excluded_ones(lab, capsys):
    with open(lab / "dsm.opt", "a") as f:
        f.write("domain.image E: F:,G:\nexclude.image G:\nenableserverfree yes\n")
    assert backup(lab) == 0
    captured = capsys.readouterr()
    assert "backup NODE1:E: completed" in captured.out and "backup NODE1:F: completed" in captured.out
    assert "G:" not in captured.out
    assert "skipped G: (excluded by exclude.image at" in captured.err


def test_no_volume_and_no_domain_is_a_clear_error(lab, capsys):
    assert backup(lab) == 2
    assert "no VOLUME given and domain.image names no volume" in capsys.readouterr().err


def test_a_bad_domain_volume_does_not_stop_the_others(lab, capsys):
    with open(lab / "dsm.opt", "a") as f:
        f.write("domain.image X: E:\nenableserverfree yes\n")
    assert backup(lab, "--json") == 2
    captured = capsys.readouterr()
    assert "serverfree: error: backup of X: not started: volume 'X:' is not in the site file" in captured.err
    (report,) = json.loads(captured.out)
    assert report["outcome"] == "completed" and report["filespace"] == "E:"
