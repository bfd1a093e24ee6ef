"""RemoteLun sends a command again after UNIT ATTENTION (a bounded number of times), as initiators do."""
from __future__ import annotations

import pytest

from scsi.luns import LunError, MemoryBlockLun
from scsi.luns.remote import UNIT_ATTENTION_RETRIES, RemoteLun
from scsi.result import Nexus, ScsiResult, Status
from scsi.target.blockdev import BlockLunDevice

READ16, WRITE16, SYNC10, TUR = 0x88, 0x8A, 0x35, 0x00


def _ua(asc: int, ascq: int) -> bytes:
    """Fixed-format sense, key UNIT ATTENTION."""
    s = bytearray(18)
    s[0], s[2], s[7], s[12], s[13] = 0x70, 0x06, 10, asc, ascq
    return bytes(s)


class PendingAttentions:
    """A block device that answers the next I/O commands with queued UNIT ATTENTIONs (as tgtd does)."""

    def __init__(self, inner: BlockLunDevice):
        self.inner = inner
        self.queued: list[bytes] = []
        self.executed: list[int] = []

    def execute(self, nexus: Nexus, cdb: bytes, data_out: bytes, data_in_len: int) -> ScsiResult:
        if cdb[0] in (READ16, WRITE16, SYNC10, TUR) and self.queued:
            return ScsiResult(Status.CHECK_CONDITION, b"", self.queued.pop(0))
        self.executed.append(cdb[0])
        return self.inner.execute(nexus, cdb, data_out, data_in_len)


@pytest.fixture
def lun():
    backing = MemoryBlockLun("backing", num_blocks=64, serial="ua-backing")
    dev = PendingAttentions(BlockLunDevice(backing))
    remote = RemoteLun("r", dev)
    yield remote, dev, backing
    remote.close()


def test_read_after_reported_luns_data_has_changed_is_retried(lun):
    remote, dev, backing = lun
    backing.write(3, b"\x5a" * 512)
    dev.queued = [_ua(0x3F, 0x0E), _ua(0x29, 0x00)]
    assert remote.read(3, 1) == b"\x5a" * 512
    assert dev.queued == [] and dev.executed.count(READ16) == 1


def test_write_flush_and_test_unit_ready_are_retried(lun):
    remote, dev, backing = lun
    dev.queued = [_ua(0x29, 0x02)]
    remote.write(5, b"\xa5" * 1024)
    assert backing.read(5, 2) == b"\xa5" * 1024
    dev.queued = [_ua(0x3F, 0x0E)]
    remote.flush()
    dev.queued = [_ua(0x2A, 0x09)]
    remote.test_unit_ready()
    assert dev.queued == []


def test_endless_unit_attentions_give_up_with_the_sense(lun):
    remote, dev, _ = lun
    dev.queued = [_ua(0x3F, 0x0E)] * (UNIT_ATTENTION_RETRIES + 5)
    with pytest.raises(LunError) as err:
        remote.read(0, 1)
    assert (err.value.key, err.value.asc, err.value.ascq) == (0x6, 0x3F, 0x0E)
    assert "UNIT ATTENTION" in str(err.value)
    assert len(dev.queued) == 4  # first try + the bounded retries consumed, no more


def test_other_check_conditions_are_not_retried(lun):
    remote, dev, _ = lun
    not_ready = bytearray(_ua(0x04, 0x02))
    not_ready[2] = 0x02
    dev.queued = [bytes(not_ready), _ua(0x29, 0x00)]
    with pytest.raises(LunError) as err:
        remote.read(0, 1)
    assert err.value.key == 0x2 and len(dev.queued) == 1
