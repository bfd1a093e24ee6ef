"""Image incrementals on the real lab: full image, files change, incremental, restore -incremental -deletefiles.

The restored LUN must hold the volume as it was at the last backup: changed
files with their new bytes, the new file, the deleted file gone -- judged by
ntfs-3g's tools, not by the project.
"""
from __future__ import annotations

import random

from orchestrator.ops import PathKind
from tests.fixtures.sanlab_client import FILESPACE, NODE
from tests.fixtures.sanlab_volume import delete_files, judge, write_files


def test_incremental_then_restore_incremental_deletefiles(sanlab, client):
    vol = sanlab.volume
    full = client.backup(PathKind.SERVER_FREE)
    assert full.report.outcome == "completed" and full.report.path_used == "server-free", full.report.message
    at_full = dict(vol.files)

    rng = random.Random(11)
    names = sorted(n for n, d in vol.files.items() if len(d) > 100_000)
    changed, gone = names[0], names[1]
    write_files(vol, {changed: rng.randbytes(len(vol.files[changed])), "added-later.bin": rng.randbytes(300_000)})
    delete_files(vol, [gone])
    at_incr = dict(vol.files)
    assert at_incr != at_full

    incr = client.backup(PathKind.SERVER_FREE, mode="incremental")
    rep = incr.report
    assert rep.outcome == "completed", rep.message
    assert 0 < rep.image_size < full.report.image_size / 2  # only the changed chunks moved
    chain = client.catalogue.restore_chain(NODE, FILESPACE, incremental=True)
    assert [o.mode for o in chain] == ["selective", "incremental"]

    sanlab.blank_restore_lun()
    r = client.restore(PathKind.SERVER_FREE, incremental=True, deletefiles=True)
    assert r.report.outcome == "completed", r.report.message
    assert any("-deletefiles ignored" in w for w in r.report.warnings)  # the seed: the client ignores it
    assert judge(sanlab.restore_img, at_incr) == []

    sanlab.blank_restore_lun()  # the full image alone gives the volume as it was then
    r = client.restore(PathKind.LAN_FREE)
    assert r.report.outcome == "completed", r.report.message
    assert judge(sanlab.restore_img, at_full) == []
