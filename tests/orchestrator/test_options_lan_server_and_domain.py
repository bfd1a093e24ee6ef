"""tcpserveraddress/tcpport name the LAN server when the site file does not; domain.image drives
`backup image` with no VOLUME (minus exclude.image), as dsmc does."""
from __future__ import annotations

import json
import shutil
import textwrap

import pytest

from orchestrator.cli import main
from orchestrator.lan.server import LanServer
from orchestrator.options import parse_options

MIB = 1 << 20


@pytest.fixture
def lab(tmp_path):
    from orchestrator.volume.samples import bundled_ntfs_image

    vol = bundled_ntfs_image(tmp_path / "e.img")
    shutil.copyfile(vol, tmp_path / "f.img")
    size = vol.stat().st_size
    cap = 6 * size + 8 * MIB
    (tmp_path / "pool.img").write_bytes(bytes(cap))
    server = LanServer({"VOL1": tmp_path / "pool.img"}).start()
    body = textwrap.dedent(f"""
        verified_without_topology: true
        lan_free: false
        devices: {{disk0: e.img, disk1: f.img, pool0: pool.img}}
        movers: {{DM1: inprocess}}
        pool: {{name: POOL1, volumes: [{{name: VOL1, device: pool0, capacity: {cap}}}]}}
        volumes: {{"E:": {{device: disk0}}, "F:": {{device: disk1}}}}
    """)
    (tmp_path / "site.yaml").write_text(body)  # no lan_server
    host, _, port = server.address.rpartition(":")
    (tmp_path / "dsm.opt").write_text(textwrap.dedent(f"""
        nodename NODE1
        imagetype static
        catalog {tmp_path / 'cat.db'}
        tcpserveraddress {host}
        tcpport {port}
    """))
    yield tmp_path
    server.close()


def backup(lab, *args):
    return main(["backup", "image", *args, "--site", str(lab / "site.yaml"), "--options", str(lab / "dsm.opt")])


def test_default_tcp_options_name_no_server():
    assert parse_options("").lan_server_address() == ""
    assert parse_options("tcpport 1600").lan_server_address() == "127.0.0.1:1600"
    assert parse_options("tcpserveraddress backup.example").lan_server_address() == "backup.example:1500"


def test_tcpserveraddress_and_tcpport_are_the_lan_server(lab, capsys):
    assert backup(lab, "E:", "-enableserverfree=no", "--json") == 0
    report = json.loads(capsys.readouterr().out)
    assert report["outcome"] == "completed" and report["path_used"] == "lan"
    assert main(["restore", "image", "E:", "disk1", "--site", str(lab / "site.yaml"),
                 "--options", str(lab / "dsm.opt"), "-enableserverfree=no"]) == 0
    assert "completed" in capsys.readouterr().out
    assert (lab / "e.img").read_bytes() == (lab / "f.img").read_bytes()


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
