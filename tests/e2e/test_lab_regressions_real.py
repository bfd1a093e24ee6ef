"""Regression tests for defects the lab found in other parts (all fixed since).

* the mover aborted the next copy after tgtd queued a UNIT ATTENTION (LU added
  or removed) instead of retrying the command (scsi/luns/remote.py); the
  client's own devices did the same (orchestrator/drivers/real.py BlockIO);
* a source LUN that was NOT READY was reported as "cannot reach the backup
  server" (orchestrator/drivers/real.py);
* after the LAN-free path failed, verification still read the pool LUN the
  client had just lost, abandoning a backup the LAN had completed
  (orchestrator/job/backup.py).
"""
from __future__ import annotations

from orchestrator.ops import PathKind
from tests.fixtures.sanlab import RESTORE_LUN


def test_mover_survives_a_unit_attention_from_tgtd(sanlab, client):
    assert client.backup(PathKind.SERVER_FREE).report.path_used == "server-free"  # mover sessions are up
    sanlab.remove_pool()
    sanlab.restore_pool()  # same backing file, same LUN number, same designator
    rep = client.backup(PathKind.SERVER_FREE).report
    assert rep.outcome == "completed", rep.message
    assert rep.path_used == "server-free" and not rep.failovers, [f.reason for f in rep.failovers]


def test_source_not_ready_is_not_blamed_on_the_backup_server(sanlab, client):
    extents, _ = client.extents()
    sanlab.set_source_online(False)
    try:
        rep = client.backup(PathKind.LAN, lan_free=False, extents=extents).report
    finally:
        sanlab.set_source_online(True)
    assert rep.outcome == "failed"
    assert "client" in rep.message and "cannot reach the backup server" not in rep.message, rep.message


def test_lan_failover_after_pool_lun_loss_verifies_through_the_server(sanlab, client):
    sanlab.remove_pool()
    try:
        rep = client.backup(PathKind.LAN_FREE).report
    finally:
        sanlab.restore_pool()
    assert [f.to_path for f in rep.failovers] == ["lan"]
    assert rep.outcome == "completed", rep.message


def test_client_survives_a_unit_attention_from_tgtd(sanlab, client):
    extents, _ = client.extents()
    driver = client.driver()  # the client's sessions are open now
    sanlab.replug(RESTORE_LUN)  # an LU the job does not even use changes
    rep = client.backup(PathKind.LAN_FREE, extents=extents, driver=driver).report
    assert rep.outcome == "completed", rep.message
    assert rep.path_used == "lan-free" and not rep.failovers, [f.reason for f in rep.failovers]
