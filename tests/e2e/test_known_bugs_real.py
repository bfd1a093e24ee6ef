"""Minimal reproductions, on the real lab, of defects found in other parts (strict xfail: they flip when fixed).

Each test states what a storage engineer would expect; the xfail reason names
the file and the behaviour that breaks it.
"""
from __future__ import annotations

import pytest

from orchestrator.ops import PathKind


@pytest.mark.xfail(strict=True, reason="scsi/luns/remote.py RemoteLun.read/write turn the UNIT ATTENTION "
                   "(3Fh/0Eh REPORTED LUNS DATA HAS CHANGED) that tgtd queues on every session after an LU "
                   "is added or removed into LunError instead of retrying the command once, so the mover "
                   "aborts the next copy (COPY TARGET DEVICE NOT REACHABLE) and the job leaves server-free")
def test_mover_survives_a_unit_attention_from_tgtd(sanlab, client):
    assert client.backup(PathKind.SERVER_FREE).report.path_used == "server-free"  # mover sessions are up
    sanlab.remove_pool()
    sanlab.restore_pool()  # same backing file, same LUN number, same designator
    rep = client.backup(PathKind.SERVER_FREE).report
    assert rep.outcome == "completed", rep.message
    assert rep.path_used == "server-free" and not rep.failovers, [f.reason for f in rep.failovers]


@pytest.mark.xfail(strict=True, reason="orchestrator/drivers/real.py _LanSend opens the source LUN and the "
                   "LanClient in one try block and reports any failure as 'cannot reach the backup server', "
                   "so a source LUN that is NOT READY is blamed on a healthy backup server (the same in "
                   "_LanFreeWrite, which names the pool device for a source failure)")
def test_source_not_ready_is_not_blamed_on_the_backup_server(sanlab, client):
    extents, _ = client.extents()
    sanlab.set_source_online(False)
    try:
        rep = client.backup(PathKind.LAN, lan_free=False, extents=extents).report
    finally:
        sanlab.set_source_online(True)
    assert rep.outcome == "failed"
    assert "client" in rep.message and "cannot reach the backup server" not in rep.message, rep.message


@pytest.mark.xfail(strict=True, reason="orchestrator/job_backup.py verifies through the backup server only "
                   "when the plan has no LAN-free path (decided from paths.lan_free, not from what happened); when the LAN-free "
                   "path failed during the job and the LAN moved every byte, VerifyPool still reads the pool LUN "
                   "the client just lost, and the completed backup is abandoned")
def test_lan_failover_after_pool_lun_loss_verifies_through_the_server(sanlab, client):
    sanlab.remove_pool()
    try:
        rep = client.backup(PathKind.LAN_FREE).report
    finally:
        sanlab.restore_pool()
        sanlab.start_mover()  # its pool sessions hold unit attentions (see the first test)
    assert [f.to_path for f in rep.failovers] == ["lan"]
    assert rep.outcome == "completed", rep.message
