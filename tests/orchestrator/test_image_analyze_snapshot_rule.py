"""`image analyze` applies backup image's rule: imagetype snapshot on a file device is not server-free."""
from __future__ import annotations

import json
from pathlib import Path

from orchestrator.cli import main
from orchestrator.cli.image_cmd import client_snapshot_reason


def analyze(capsys, *argv: str) -> str:
    assert main(["image", "analyze", *argv]) == 0
    return capsys.readouterr().out


def test_default_snapshot_on_a_file_is_not_server_free_and_says_how(bundled_image: Path, tmp_path, capsys):
    opt = tmp_path / "dsm.opt"
    opt.write_text("enableserverfree yes\n")
    out = analyze(capsys, str(bundled_image), "--options", str(opt))
    assert "server-free eligible: no" in out
    assert "imagetype snapshot" in out and "-imagetype=static" in out
    report = json.loads(analyze(capsys, str(bundled_image), "--options", str(opt), "--json"))
    assert report["eligibility"]["serverfree"] is False
    assert any("a data mover cannot read" in r for r in report["eligibility"]["reasons"])


def test_static_image_on_a_file_is_server_free(bundled_image: Path, tmp_path, capsys):
    opt = tmp_path / "dsm.opt"
    opt.write_text("enableserverfree yes\n")
    out = analyze(capsys, str(bundled_image), "--options", str(opt), "-imagetype=static")
    assert "server-free eligible: yes" in out and "imagetype snapshot" not in out


def test_devices_without_a_snapshot_facility_are_not_affected():
    assert client_snapshot_reason("iscsi://127.0.0.1:3260/iqn.2026-01.x:y/0", "snapshot") is None
    assert client_snapshot_reason("/dev/sg3", "snapshot") is None
    assert client_snapshot_reason("/srv/e.img", "dynamic") is None
    assert client_snapshot_reason("/srv/e.img", "snapshot")
