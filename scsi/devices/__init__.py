"""pyscsi device backends: iSCSI (libiscsi), SG_IO and in-process.

Every backend works under ``pyscsi.pyscsi.scsi.SCSI(dev)`` with pyscsi's own
commands and ours, raises pyscsi's CheckCondition (as
:class:`DeviceCheckCondition`, raw sense in ``.sense``) and reports transport
trouble as :class:`DeviceConnectionError` / :class:`DeviceTimeout`.
"""
from __future__ import annotations

from typing import Any

from scsi.devices.base import PyscsiDevice, RawCommand
from scsi.devices.errors import (DeviceCheckCondition, DeviceConnectionError, DeviceError, DeviceLoginError,
                                 DeviceStatusError, DeviceTimeout)
from scsi.devices.inprocess import InProcessDevice
from scsi.devices.iscsi_url import ChapCredentials, IscsiUrl, parse_iscsi_url

__all__ = ["open_device", "PyscsiDevice", "RawCommand", "InProcessDevice", "LibiscsiDevice", "SgioDevice",
           "DeviceCheckCondition", "DeviceConnectionError", "DeviceError", "DeviceLoginError",
           "DeviceStatusError", "DeviceTimeout", "ChapCredentials", "IscsiUrl", "parse_iscsi_url"]


def __getattr__(name: str) -> Any:
    # the libiscsi and SG_IO backends are imported on first use only
    if name == "LibiscsiDevice":
        from scsi.devices.iscsi import LibiscsiDevice
        return LibiscsiDevice
    if name == "SgioDevice":
        from scsi.devices.sgio import SgioDevice
        return SgioDevice
    raise AttributeError(name)


def open_device(target: Any, **opts: Any) -> PyscsiDevice:
    """Open the right backend for ``target``.

    * ``"iscsi://host[:port]/iqn/lun"`` -> LibiscsiDevice (opts: initiator_iqn,
      chap, mutual_chap, timeout, header_digest);
    * ``"/dev/sgN"`` -> SgioDevice (opts: readwrite, timeout);
    * an object with ``execute(nexus, cdb, data_out, data_in_len)`` ->
      InProcessDevice (opts: nexus).
    """
    if isinstance(target, str):
        if target.startswith("iscsi://"):
            from scsi.devices.iscsi import LibiscsiDevice
            return LibiscsiDevice(target, **opts)
        if target.startswith("/dev/"):
            from scsi.devices.sgio import SgioDevice
            return SgioDevice(target, **opts)
        raise ValueError(f"cannot open device {target!r}: expected an iscsi:// URL or a /dev/sg* path")
    if callable(getattr(target, "execute", None)):
        return InProcessDevice(target, **opts)
    raise ValueError(f"cannot open device {target!r}: not a URL, a path or a command handler")
