"""LUNs the copy manager engine copies between (block, tape, remote, in-memory)."""
from scsi.luns.base import (BLOCK_PDTS, STREAM_PDTS, BlockLun, Designator, Lun, LunError, Pdt,
                            SpaceCode, StreamLun)
from scsi.luns.file import FileBlockLun
from scsi.luns.identity import naa6_from_serial
from scsi.luns.memory import BytearrayLun, MemoryBlockLun
from scsi.luns.tape import TapeLun
from scsi.luns.tape_format import TapeFormatError

__all__ = ["BLOCK_PDTS", "STREAM_PDTS", "BlockLun", "BytearrayLun", "Designator", "FileBlockLun", "Lun", "LunError",
           "MemoryBlockLun", "Pdt", "SpaceCode", "StreamLun", "TapeFormatError", "TapeLun",
           "naa6_from_serial"]
