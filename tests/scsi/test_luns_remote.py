"""RemoteLun: a block LUN reached through pyscsi (in-process handler and a real tgtd over iSCSI)."""
from __future__ import annotations

import os

import pytest

from scsi.copymgr import CopyLimits, CopyManager
from scsi.copymgr.client import Client, cscd_for_lun
from scsi.luns import LunError, MemoryBlockLun
from scsi.luns.remote import RemoteLun
from scsi.sense import Sense, SenseKey
from scsi.target.blockdev import BlockLunDevice
from scsi.xcopy import BlockToBlock, Header, ParameterList


@pytest.fixture
def remote():
    backing = MemoryBlockLun("backing", num_blocks=512, serial="remote-backing")
    lun = RemoteLun("r", BlockLunDevice(backing), sessions=2)
    yield lun, backing
    lun.close()


def test_identity_comes_from_the_device(remote):
    lun, backing = remote
    assert (lun.block_size, lun.num_blocks, int(lun.pdt)) == (512, 512, 0)
    assert lun.naa == backing.naa  # read from VPD 83h, so E4h descriptors match it
    assert lun.designators()[0].type == 3


def test_read_write_and_device_sense(remote):
    lun, backing = remote
    data = os.urandom(4 * 512)
    lun.write(10, data)
    assert backing.read(10, 4) == data and lun.read(10, 4) == data
    lun.check_range = lambda *a: None  # let the device itself refuse the LBA
    with pytest.raises(LunError) as ei:
        lun.read(511, 2)
    s = Sense.decode(ei.value.sense)  # the device's own bytes, untouched
    assert (s.key, s.asc) == (SenseKey.ILLEGAL_REQUEST, 0x21)
    lun.test_unit_ready()
    lun.flush()  # SYNCHRONIZE CACHE(10) accepted by the device


def test_closed_remote_lun_is_not_ready(remote):
    lun, _ = remote
    lun.close()
    with pytest.raises(LunError) as ei:
        lun.read(0, 1)
    assert ei.value.key == SenseKey.NOT_READY


def test_copy_manager_copies_from_a_remote_lun(remote):
    lun, backing = remote
    data = os.urandom(64 * 512)
    backing.write(0, data)
    local = MemoryBlockLun("local", num_blocks=512)
    m = CopyManager({"r": lun, "local": local}, limits=CopyLimits(chunk_bytes=8192, io_depth=4))
    pl = ParameterList(header=Header(list_id=1), cscds=(cscd_for_lun(lun), cscd_for_lun(local)),
                       segments=(BlockToBlock(src=0, dst=1, block_count=64, src_lba=0, dst_lba=100),))
    assert Client(m).xcopy(pl).ok and local.read(100, 64) == data
    m.close()


def test_tgtd_to_tgtd_copy_through_the_engine(tgtd):
    """Client disk and pool LUN on tgtd, both reached over iSCSI; the mover copies between them."""
    target = tgtd.new_target("copymgr-remote", {1: "8M", 2: "8M"})
    data = os.urandom(4 << 20)
    with open(target.luns[1], "r+b") as f:
        f.write(data)
    src = RemoteLun("client", target.url(1), sessions=2)
    dst = RemoteLun("pool", target.url(2), sessions=2)
    try:
        assert src.naa != dst.naa
        m = CopyManager({"client": src, "pool": dst})
        n = len(data) // 512
        segs = tuple(BlockToBlock(src=0, dst=1, block_count=min(4096, n - i), src_lba=i, dst_lba=i)
                     for i in range(0, n, 4096))
        pl = ParameterList(header=Header(list_id=1), cscds=(cscd_for_lun(src), cscd_for_lun(dst)), segments=segs)
        c = Client(m)
        assert c.xcopy(pl).ok
        assert c.copy_status(1).bytes_transferred == len(data)
        m.close()
    finally:
        src.close()
        dst.close()
    with open(target.luns[2], "rb") as f:
        assert f.read(len(data)) == data
    target.delete()
