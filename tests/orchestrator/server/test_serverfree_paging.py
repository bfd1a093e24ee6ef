"""Server-free through the server of a fragmented volume: an extent map of more than 10,000 extents is paged
(wire.py) and the restore is byte-identical."""
from __future__ import annotations

import json

import numpy as np
import pytest

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


@pytest.mark.parametrize("mib, more_than, options, path, logged", [
    (12, 10_000, [], "server-free", "server-free backup of NODEA:E: completed"),  # 12,288 extents
    (24, 20_000, ["-enableserverfree=no"], "lan", "committed ("),                  # 24,576 extents
], ids=["server-free-12288-extents", "lan-24576-extents"])
def test_backup_and_restore_of_a_fragmented_volume_through_the_server(tmp_path, capsys, monkeypatch, mib, more_than,
                                                                     options, path, logged):
    lab, tmp, srv, built, vol, n = fragmented_lab(tmp_path, monkeypatch, mib)
    try:
        assert n == mib * MIB // STRIDE > more_than
        opts = ["--options", str(tmp / "dsm.opt"), "--site", str(tmp / "site.yaml"), "--json", *options]
        assert main(["backup", "image", "E:", *opts]) == 0, capsys.readouterr()
        report = json.loads(capsys.readouterr().out)
        assert report["outcome"] == "completed" and report["path_used"] == path, report
        assert main(["restore", "image", "E:", "disk1", *opts]) == 0, capsys.readouterr()
        report = json.loads(capsys.readouterr().out)
        assert report["path_used"] == path, report
        assert (tmp / "dest.img").read_bytes() == vol
        assert logged in actlog(srv)
    finally:
        next(lab, None)
