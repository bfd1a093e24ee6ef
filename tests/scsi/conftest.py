"""Fixtures for the target's in-process tests: a file-backed block LUN and its device.

A test module sets ``BLOCKS`` (default 2048) and ``SERIAL`` to size and name the LUN.
"""
from __future__ import annotations

import pytest

from scsi.luns.file import FileBlockLun
from scsi.luns.memory import MemoryBlockLun
from scsi.target.blockdev import BlockLunDevice


@pytest.fixture
def lun(request, tmp_path):
    blocks = getattr(request.module, "BLOCKS", 2048)
    path = tmp_path / "disk.img"
    with open(path, "wb") as f:
        f.truncate(blocks * 512)
    lun = FileBlockLun("lun0", path, serial=getattr(request.module, "SERIAL", "SERIAL0001"))
    yield lun
    lun.close()


@pytest.fixture
def dev(lun):
    d = BlockLunDevice(lun)
    yield d
    d.close()


@pytest.fixture
def mem_dev():
    """A 64-block LUN in memory."""
    d = BlockLunDevice(MemoryBlockLun("m", num_blocks=64))
    yield d
    d.close()
