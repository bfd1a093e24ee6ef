"""Image incrementals on the real lab through the backup server: full image, files change, incremental, restore.

`serverfree backup image E: -mode=incremental` sends the server the chunk
digests of its own scan; the server compares them with the chain's and the
mover copies only what changed.  `restore image -incremental -deletefiles`
(server-free, the server copying pool -> disk) must give the volume as it was at
the last backup: changed files with their new bytes, the new file, the deleted
file gone -- judged by ntfs-3g's tools, not by the project; the full image alone
(LAN-free) gives the volume as it was then.
"""
from __future__ import annotations

import json
import random

import pytest

from tests.fixtures.lab_server import LabServer
from tests.fixtures.sanlab_volume import delete_files, judge, write_files


@pytest.fixture(scope="module")
def server(sanlab, tmp_path_factory):
    srv = LabServer(sanlab, tmp_path_factory.mktemp("incr-server")).start()
    try:
        yield srv
    finally:
        srv.stop()


def _ok(res) -> dict:
    assert res.returncode == 0 and "Traceback" not in res.stderr, res.stdout[-1500:] + res.stderr[-1500:]
    return json.loads(res.stdout)


def test_incremental_then_restore_incremental_deletefiles(sanlab, server):
    vol = sanlab.volume
    full = _ok(server.backup())
    assert full["outcome"] == "completed" and full["path_used"] == "server-free", full
    at_full = dict(vol.files)

    rng = random.Random(11)
    names = sorted(n for n, d in vol.files.items() if len(d) > 100_000)
    changed, gone = names[0], names[1]
    write_files(vol, {changed: rng.randbytes(len(vol.files[changed])), "added-later.bin": rng.randbytes(300_000)})
    delete_files(vol, [gone])
    at_incr = dict(vol.files)
    assert at_incr != at_full

    incr = _ok(server.backup("-mode=incremental"))
    assert incr["outcome"] == "completed" and incr["path_used"] == "server-free", incr
    assert 0 < incr["image_size"] < full["image_size"] / 2  # only the changed chunks moved
    listed = server.query("-inactive")  # the node's own view, from the server
    assert sorted(o["mode"] for o in listed if o["state"] == "active") == ["incremental", "selective"], listed

    sanlab.blank_restore_lun()
    r = _ok(server.restore("-incremental", "-deletefiles"))
    assert r["outcome"] == "completed" and r["path_used"] == "server-free", r
    assert any("-deletefiles ignored" in w for w in r["warnings"]), r  # the seed: the client ignores it
    assert judge(sanlab.restore_img, at_incr) == []

    r = _ok(server.restore(serverfree=False))  # the full image alone gives the volume as it was then
    assert r["outcome"] == "completed" and r["path_used"] == "lan-free", r
    assert judge(sanlab.restore_img, at_full) == []
    log = server.actlog()
    assert log.count("server-free backup of LABNODE:E: completed") == 2, log[-2000:]
    assert "server-free restore of LABNODE:E: completed" in log, log[-2000:]
