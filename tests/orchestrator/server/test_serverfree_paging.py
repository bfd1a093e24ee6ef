"""Server-free through the server of a fragmented volume: an extent map of more than 10,000 extents is paged
(wire.py) and the restore is byte-identical."""
from __future__ import annotations

import json

import numpy as np

from orchestrator.cli import main
from orchestrator.volume.used_extents import UsedExtents
from tests.fixtures.backup_server import actlog
from tests.orchestrator.server.test_serverfree import MIB, make_lab

RUN, STRIDE = 512, 1024   # a used run of 512 bytes every KiB: 12,288 extents on 12 MiB


def fragmented_lab(tmp_path, monkeypatch, mib: int):
    """The lab with a raw volume of ``mib`` MiB whose used extents (a synthetic layout) are 512-byte runs a KiB
    apart, the gaps zero, as a volume's free blocks would be."""
    lab = make_lab(tmp_path, raw_mib=mib)
    tmp, srv, built, _ = next(lab)
    vol = bytearray((tmp / "vol.img").read_bytes())
    runs = np.array([[o, RUN] for o in range(0, len(vol), STRIDE)], dtype=np.int64)
    for o in range(RUN, len(vol), STRIDE):
        vol[o:o + STRIDE - RUN] = bytes(STRIDE - RUN)
    (tmp / "vol.img").write_bytes(vol)
    monkeypatch.setattr(UsedExtents, "extents", lambda self, gap: runs.copy())
    return lab, tmp, srv, built, bytes(vol), len(runs)


def test_server_free_backup_and_restore_of_12288_extents(tmp_path, capsys, monkeypatch):
    lab, tmp, srv, built, vol, n = fragmented_lab(tmp_path, monkeypatch, 12)
    try:
        assert n == 12 * MIB // STRIDE > 10_000
        opts = ["--options", str(tmp / "dsm.opt"), "--site", str(tmp / "site.yaml"), "--json"]
        assert main(["backup", "image", "E:", *opts]) == 0, capsys.readouterr()
        report = json.loads(capsys.readouterr().out)
        assert report["outcome"] == "completed" and report["path_used"] == "server-free", report
        assert main(["restore", "image", "E:", "disk1", *opts]) == 0, capsys.readouterr()
        report = json.loads(capsys.readouterr().out)
        assert report["path_used"] == "server-free", report
        assert (tmp / "dest.img").read_bytes() == vol
        assert "server-free backup of NODEA:E: completed" in actlog(srv)
    finally:
        next(lab, None)


def test_lan_backup_and_restore_of_24576_extents_through_the_server(tmp_path, capsys, monkeypatch):
    lab, tmp, srv, built, vol, n = fragmented_lab(tmp_path, monkeypatch, 24)
    try:
        assert n == 24 * MIB // STRIDE > 20_000
        opts = ["--options", str(tmp / "dsm.opt"), "--site", str(tmp / "site.yaml"), "--json",
                "-enableserverfree=no"]
        assert main(["backup", "image", "E:", *opts]) == 0, capsys.readouterr()
        report = json.loads(capsys.readouterr().out)
        assert report["outcome"] == "completed" and report["path_used"] == "lan", report
        assert main(["restore", "image", "E:", "disk1", *opts]) == 0, capsys.readouterr()
        report = json.loads(capsys.readouterr().out)
        assert report["path_used"] == "lan", report
        assert (tmp / "dest.img").read_bytes() == vol
        assert "committed (" in actlog(srv)
    finally:
        next(lab, None)
