"""The data mover's YAML config and `serverfree datamover serve` argument handling."""
from __future__ import annotations

import argparse
import socket

import pytest

from orchestrator.cli import datamover_cmd
from scsi.target.build import build_target
from scsi.target.config import load_config, parse_config


def _img(tmp_path, name="a.img", size=1 << 20):
    p = tmp_path / name
    p.write_bytes(b"\0" * size)
    return p


def _write(tmp_path, text: str):
    p = tmp_path / "mover.yaml"
    p.write_text(text)
    return p


def test_good_config_with_acl_and_chap(tmp_path):
    _img(tmp_path, "a.img")
    _img(tmp_path, "b.img")
    cfg = load_config(_write(tmp_path, """
portal: 127.0.0.1:3999
target: iqn.2026-11.org.serverfree:dm1
chap: {username: alice, secret: alicesecret12}
luns:
  - {id: 0, path: a.img, serial: CLIENT01}
  - {id: 1, path: b.img, accepts_xcopy: false}
acl:
  - {initiator: "iqn.2026-11.org.serverfree:client", luns: [0]}
  - {initiator: "*", luns: all, chap: {username: bob, secret: bobsecret1234, mutual_username: dm, mutual_secret: dmsecret12345}}
"""))
    assert cfg.host_port == ("127.0.0.1", 3999)
    assert cfg.luns[0].path == tmp_path / "a.img"
    built = build_target(cfg)
    try:
        scsi = built.scsi
        assert scsi.visible_luns("iqn.2026-11.org.serverfree:client") == [0]
        assert scsi.visible_luns("iqn.2026-11.org.other:x") == [0, 1]
        assert built.node.chap_for("iqn.2026-11.org.serverfree:client").username == "alice"
        assert built.node.chap_for("iqn.2026-11.org.other:x").mutual
        assert built.devices[0].identity.serial == "CLIENT01"
    finally:
        built.close()


def test_no_matching_acl_entry_means_no_login(tmp_path):
    _img(tmp_path)
    cfg = parse_config({"target": "iqn.2026-11.org.serverfree:dm1",
                        "luns": [{"id": 0, "path": str(tmp_path / "a.img")}],
                        "acl": [{"initiator": "iqn.2026-11.org.serverfree:only", "luns": [0]}]})
    built = build_target(cfg)
    try:
        assert not built.node.allows("iqn.2026-11.org.serverfree:other")
        assert built.node.allows("iqn.2026-11.org.serverfree:only")
    finally:
        built.close()


@pytest.mark.parametrize("body, message", [
    ("target: iqn.2026-11.org.x:t\nluns: [{id: 0, path: missing.img}]", "missing.img: No such file"),
    ("target: not-an-iqn\nluns: [{id: 0, path: a.img}]", "is not an iSCSI name"),
    ("target: iqn.2026-11.org.x:t\nluns: [{id: 0, path: a.img}, {id: 0, path: a.img}]", "configured more than once"),
    ("target: iqn.2026-11.org.x:t\nluns: [{id: 0, path: a.img}]\nacl: [{initiator: '*', luns: [5]}]", "LUN(s) [5]"),
    ("target: iqn.2026-11.org.x:t\nportal: localhost\nluns: [{id: 0, path: a.img}]", "HOST:PORT"),
    ("target: iqn.2026-11.org.x:t\nluns: [{id: 0, path: a.img, block_size: 1000}]", "power of two"),
    ("target: iqn.2026-11.org.x:t\nluns: [{id: 0, path: a.img, colour: red}]", "luns.0.colour"),
    ("target: iqn.2026-11.org.x:t\nchap: {username: a, secret: s, mutual_username: b}\nluns: [{id: 0, path: a.img}]",
     "mutual_secret"),
    ("target: [unclosed", "not valid YAML"),
    ("- just\n- a list", "expected a mapping"),
])
def test_bad_config_names_what_and_where(tmp_path, body, message):
    _img(tmp_path)
    with pytest.raises(ValueError) as e:
        load_config(_write(tmp_path, body))
    assert message in str(e.value) and "mover.yaml" in str(e.value)


def _args(*argv):
    p = argparse.ArgumentParser()
    datamover_cmd.register(p.add_subparsers())
    return p.parse_args(["datamover", "serve", *argv])


def test_quick_mode_numbers_luns_in_order_with_open_acl(tmp_path):
    a, b = _img(tmp_path, "a.img"), _img(tmp_path, "b.img")
    cfg = datamover_cmd.config_from_args(_args("--portal", "127.0.0.1:3261", "--iqn",
                                               "iqn.2026-11.org.serverfree:quick", "--lun", str(a), "--lun", str(b)))
    assert [(l.id, l.path) for l in cfg.luns] == [(0, a), (1, b)]
    assert cfg.acl[0].initiator == "*" and cfg.acl[0].luns == "all"


def test_quick_mode_errors_before_listening(tmp_path):
    with pytest.raises(ValueError, match="--iqn"):
        datamover_cmd.config_from_args(_args("--lun", "x.img"))
    with pytest.raises(ValueError, match="luns.0: .*nope"):
        datamover_cmd.config_from_args(_args("--iqn", "iqn.2026-11.org.x:t", "--lun", str(tmp_path / "nope")))
    with pytest.raises(ValueError, match="cannot be combined"):
        datamover_cmd.config_from_args(_args("--config", "c.yaml", "--iqn", "iqn.2026-11.org.x:t"))


def test_run_serve_bad_lun_fails_without_listening(tmp_path):
    # Pick a port, then make sure nothing listens on it after the failed start.
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    with pytest.raises(ValueError):
        datamover_cmd.run_serve(_args("--portal", f"127.0.0.1:{port}", "--iqn", "iqn.2026-11.org.x:t",
                                      "--lun", str(tmp_path / "missing.img")))
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
