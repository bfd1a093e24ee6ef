"""Write-behind flushes during a pipelined block copy (scsi/copymgr/writebehind.py), and the
libiscsi session wait with a timeout that lets a caller watch a long command without sleeping."""
from __future__ import annotations

import logging
import os

from pyscsi.pyscsi.scsi_cdb_testunitready import TestUnitReady as Tur
from pyscsi.pyscsi.scsi_enum_command import sbc

from scsi.copymgr.blockcopy import run_block_copy
from scsi.copymgr.pacing import FairShare
from scsi.copymgr.io import BlockCopy, Extent
from scsi.copymgr.writebehind import WriteBehind
from scsi.devices import LibiscsiDevice
from scsi.luns.base import LunError
from scsi.luns.remote import RemoteLun
from scsi.luns.remote_async import RETRY, AsyncSession


class FakePending:
    def __init__(self):
        self.done = False


class FakeSession:
    """A destination session whose flushes complete when the test says, with the outcome it says."""

    def __init__(self, name="pool"):
        self.lun = type("Lun", (), {"name": name})()
        self.sent: list[FakePending] = []
        self.answer = None

    def flush(self):
        p = FakePending()
        self.sent.append(p)
        return p

    def outcome(self, pending, what):
        return self.answer


def test_a_flush_goes_out_every_so_many_bytes_and_one_at_a_time_per_lun():
    behind, s = WriteBehind(every=4 << 20), FakeSession()
    for _ in range(3):
        behind.wrote(s, 1 << 20)
    assert s.sent == []  # 3 MiB gathered: not yet
    behind.wrote(s, 1 << 20)
    assert len(s.sent) == 1 and behind.sessions() == [s]
    for _ in range(8):
        behind.wrote(s, 1 << 20)  # 8 MiB more while the first is still in flight
    assert len(s.sent) == 1
    s.sent[0].done = True
    behind.reap()
    assert behind.pending == {}
    behind.wrote(s, 1 << 20)  # what gathered meanwhile goes out with the next write
    assert len(s.sent) == 2 and behind.issued == 2


def test_a_unit_attention_is_not_a_refusal_but_illegal_request_stops_the_flushes():
    behind, s = WriteBehind(every=1 << 20), FakeSession()
    behind.wrote(s, 1 << 20)
    s.answer, s.sent[-1].done = RETRY, True
    behind.reap()
    behind.wrote(s, 1 << 20)
    assert len(s.sent) == 2  # asked again
    s.answer = LunError("SYNCHRONIZE CACHE not supported", key=0x5, asc=0x20, ascq=0x00)
    s.sent[-1].done = True
    behind.reap()
    for _ in range(4):
        behind.wrote(s, 1 << 20)
    assert len(s.sent) == 2 and behind.pending == {}


def test_zero_means_only_the_closing_flush():
    behind, s = WriteBehind(every=0), FakeSession()
    behind.wrote(s, 1 << 30)
    assert s.sent == [] and behind.issued == 0


def test_a_copy_to_tgtd_flushes_behind_itself_and_every_flush_is_answered_good(tgtd, monkeypatch, caplog):
    target = tgtd.new_target("writebehind", {1: "16M", 2: "16M"})
    data = os.urandom(16 << 20)
    with open(target.luns[1], "r+b") as f:
        f.write(data)
    src = RemoteLun("client", target.url(1), sessions=1)
    dst = RemoteLun("pool", target.url(2), sessions=1)
    sent = []
    real_flush = AsyncSession.flush

    def spy(self):
        pending = real_flush(self)
        sent.append((self, pending))
        return pending
    monkeypatch.setattr(AsyncSession, "flush", spy)
    try:
        req = BlockCopy((Extent(src, 0, dst, 0, len(data) // 512),), 256 * 1024, 8, lambda i, n: None)
        with caplog.at_level(logging.INFO, logger="scsi.copymgr.blockcopy"):
            assert run_block_copy(req, FairShare(16), pool=None, flush_every=4 << 20) == len(data)
        assert 2 <= len(sent) <= 4, len(sent)  # 16 MiB at one flush per 4 MiB, one in flight at a time
        assert all(s.lun is dst for s, _ in sent)  # only the destination is flushed
        assert all(p.done and s.outcome(p, "flush") is None for s, p in sent)  # each ended GOOD before the copy
        assert f"{len(sent)} write-behind flushes" in caplog.text
        with open(target.luns[2], "rb") as f:
            assert f.read() == data
    finally:
        src.close()
        dst.close()
        target.delete()


def test_wait_with_a_timeout_returns_false_until_the_command_is_done(tgtd):
    target = tgtd.new_target("waittimeout", {1: "1M"})
    dev = LibiscsiDevice(target.url(1))
    try:
        pending = dev.submit(Tur(sbc.TEST_UNIT_READY))
        assert dev.wait(pending, timeout=0) is False and not pending.done  # nothing serviced yet
        assert dev.wait(pending, timeout=10) is True and pending.done and pending.result.status == 0
    finally:
        dev.close()
        target.delete()
