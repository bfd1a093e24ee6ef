"""pyscsi device for Linux SCSI generic nodes (``/dev/sg*``) through SG_IO.

pyscsi 2.1's own ``SCSIDevice`` needs the ``sgio`` C extension (cython-sgio,
source-only on PyPI, so a compiler at install time) and never raises its
CheckCondition (the exception is built but not raised), so the sense would be
lost.  This backend issues the SG_IO ioctl itself with ctypes; ``sg_io_hdr`` is
a native C structure with pointers, so it is declared as a ctypes Structure
(checked against ``<scsi/sg.h>`` by a test where a C compiler exists).
"""
from __future__ import annotations

import ctypes
import errno
import fcntl
import logging
import os
from typing import Any, Callable

from scsi.devices.base import PyscsiDevice
from scsi.devices.errors import DeviceConnectionError, DeviceError, DeviceTimeout
from scsi.result import ScsiResult, Status

log = logging.getLogger(__name__)

SG_IO = 0x2285
SG_INTERFACE_ID = ord("S")
SG_DXFER_NONE = -1
SG_DXFER_TO_DEV = -2
SG_DXFER_FROM_DEV = -3
SENSE_BUFFER_LEN = 252  # the largest sense SPC allows (8 + 244)

# host_status / driver_status values from the kernel (scsi.h, sg3_utils)
DID_OK, DID_NO_CONNECT, DID_BUS_BUSY, DID_TIME_OUT = 0x00, 0x01, 0x02, 0x03
DRIVER_TIMEOUT, DRIVER_SENSE = 0x06, 0x08
_HOST_NAMES = {0x01: "DID_NO_CONNECT", 0x02: "DID_BUS_BUSY", 0x03: "DID_TIME_OUT", 0x04: "DID_BAD_TARGET",
               0x05: "DID_ABORT", 0x06: "DID_PARITY", 0x07: "DID_ERROR", 0x08: "DID_RESET",
               0x09: "DID_BAD_INTR", 0x0E: "DID_TRANSPORT_DISRUPTED", 0x0F: "DID_TRANSPORT_FAILFAST"}


class SgIoHdr(ctypes.Structure):
    """``struct sg_io_hdr`` from <scsi/sg.h> (native layout and alignment)."""

    _fields_ = [
        ("interface_id", ctypes.c_int),
        ("dxfer_direction", ctypes.c_int),
        ("cmd_len", ctypes.c_ubyte),
        ("mx_sb_len", ctypes.c_ubyte),
        ("iovec_count", ctypes.c_ushort),
        ("dxfer_len", ctypes.c_uint),
        ("dxferp", ctypes.c_void_p),
        ("cmdp", ctypes.c_void_p),
        ("sbp", ctypes.c_void_p),
        ("timeout", ctypes.c_uint),
        ("flags", ctypes.c_uint),
        ("pack_id", ctypes.c_int),
        ("usr_ptr", ctypes.c_void_p),
        ("status", ctypes.c_ubyte),
        ("masked_status", ctypes.c_ubyte),
        ("msg_status", ctypes.c_ubyte),
        ("sb_len_wr", ctypes.c_ubyte),
        ("host_status", ctypes.c_ushort),
        ("driver_status", ctypes.c_ushort),
        ("resid", ctypes.c_int),
        ("duration", ctypes.c_uint),
        ("info", ctypes.c_uint),
    ]


IoctlFn = Callable[[int, int, Any], Any]


def build_header(cdb: bytes, dataout: bytes, datain_len: int, timeout_ms: int
                 ) -> tuple[SgIoHdr, list[Any]]:
    """An sg_io_hdr for one command, and the buffers it points into (keep them alive)."""
    if not 6 <= len(cdb) <= 16:
        raise ValueError(f"SG_IO: CDB of {len(cdb)} bytes (6..16 allowed)")
    if dataout and datain_len:
        raise ValueError("SG_IO: bidirectional commands are not supported")
    cdb_buf = ctypes.create_string_buffer(bytes(cdb), len(cdb))
    sense_buf = ctypes.create_string_buffer(SENSE_BUFFER_LEN)
    hdr = SgIoHdr(interface_id=SG_INTERFACE_ID, cmd_len=len(cdb), mx_sb_len=SENSE_BUFFER_LEN,
                  cmdp=ctypes.cast(cdb_buf, ctypes.c_void_p), sbp=ctypes.cast(sense_buf, ctypes.c_void_p),
                  timeout=max(1, timeout_ms))
    if dataout:
        data_buf = ctypes.create_string_buffer(bytes(dataout), len(dataout))
        hdr.dxfer_direction, hdr.dxfer_len = SG_DXFER_TO_DEV, len(dataout)
    elif datain_len:
        data_buf = ctypes.create_string_buffer(datain_len)
        hdr.dxfer_direction, hdr.dxfer_len = SG_DXFER_FROM_DEV, datain_len
    else:
        data_buf = ctypes.create_string_buffer(0)
        hdr.dxfer_direction = SG_DXFER_NONE
    hdr.dxferp = ctypes.cast(data_buf, ctypes.c_void_p) if hdr.dxfer_len else None
    return hdr, [cdb_buf, sense_buf, data_buf]


def interpret(hdr: SgIoHdr, sense_buf: Any, data_buf: Any, *, where: str = "SG_IO") -> ScsiResult:
    """Turn a completed sg_io_hdr into a ScsiResult or a transport exception."""
    if hdr.host_status == DID_TIME_OUT or (hdr.driver_status & 0x0F) == DRIVER_TIMEOUT:
        raise DeviceTimeout(f"{where}: command timed out after {hdr.timeout} ms")
    if hdr.host_status != DID_OK:
        name = _HOST_NAMES.get(hdr.host_status, f"host status {hdr.host_status:#x}")
        raise DeviceConnectionError(f"{where}: transport failed ({name})")
    sense = bytes(sense_buf.raw[:min(hdr.sb_len_wr, SENSE_BUFFER_LEN)])
    status = hdr.status
    if status == Status.CHECK_CONDITION or (hdr.driver_status & DRIVER_SENSE and sense):
        return ScsiResult(Status.CHECK_CONDITION, sense=sense)
    if hdr.driver_status & 0x0F not in (0, DRIVER_SENSE):
        raise DeviceError(f"{where}: driver status {hdr.driver_status:#x}")
    data = b""
    if hdr.dxfer_direction == SG_DXFER_FROM_DEV:
        got = max(0, hdr.dxfer_len - max(hdr.resid, 0))
        data = bytes(data_buf.raw[:got])
    return ScsiResult(status, data=data)


class SgioDevice(PyscsiDevice):
    """A pyscsi device for ``/dev/sg*`` (opened read-write unless ``readwrite=False``)."""

    def __init__(self, path: str, *, readwrite: bool = True, timeout: float = 30.0,
                 ioctl: IoctlFn = fcntl.ioctl) -> None:
        super().__init__()
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, not {timeout}")
        self.path = path
        self.timeout = float(timeout)
        self._ioctl = ioctl
        self._fd: int | None = None
        try:
            self._fd = os.open(path, os.O_RDWR if readwrite else os.O_RDONLY)
        except OSError as exc:
            raise DeviceConnectionError(f"cannot open SCSI generic device {path}: {exc.strerror}") from None

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    def __del__(self) -> None:
        try:
            self.close()
        except OSError:
            pass

    def run(self, cdb: bytes, dataout: bytes, datain_len: int) -> ScsiResult:
        if self._fd is None:
            raise DeviceError(f"{self.path}: device is closed")
        hdr, keep = build_header(cdb, dataout, datain_len, int(self.timeout * 1000))
        try:
            self._ioctl(self._fd, SG_IO, hdr)
        except OSError as exc:
            if exc.errno in (errno.ENOTTY, errno.EINVAL):
                raise DeviceError(f"{self.path}: not a SCSI generic device (SG_IO: {exc.strerror})") from None
            raise DeviceConnectionError(f"{self.path}: SG_IO failed: {exc.strerror}") from None
        if hdr.interface_id != SG_INTERFACE_ID:
            raise DeviceError(f"{self.path}: SG_IO returned a corrupt header")
        return interpret(hdr, keep[1], keep[2], where=self.path)

    def __repr__(self) -> str:
        return f"SgioDevice({self.path!r})"
