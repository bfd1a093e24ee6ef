"""Turn a validated :class:`TargetConfig` into LUN objects, a SCSI target and an iSCSI node.

Everything that can fail (opening files) happens here, before the server
listens.  The copy manager, when given, is shared by the LUNs that accept
EXTENDED COPY; it is built by the caller from :func:`open_luns` and
:func:`acl_function` so it sees the same LUNs and the same access rules.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable

from scsi.iscsi.chap import ChapSecrets
from scsi.iscsi.node import TargetNode
from scsi.luns.base import BlockLun
from scsi.luns.file import FileBlockLun
from scsi.result import CommandHandler
from scsi.target.blockdev import BlockLunDevice
from scsi.target.config import ChapConfig, TargetConfig
from scsi.target.scsitarget import ScsiTarget

log = logging.getLogger(__name__)


@dataclass
class BuiltTarget:
    config: TargetConfig
    luns: dict[int, BlockLun]
    devices: dict[int, BlockLunDevice]
    scsi: ScsiTarget
    node: TargetNode

    def close(self) -> None:
        for device in self.devices.values():
            device.close()
        for lun in self.luns.values():
            lun.close()


def open_luns(cfg: TargetConfig) -> dict[int, BlockLun]:
    luns: dict[int, BlockLun] = {}
    try:
        for lc in cfg.luns:
            luns[lc.id] = FileBlockLun(f"lun{lc.id}", lc.path, block_size=lc.block_size, serial=lc.serial,
                                       read_only=lc.read_only)
    except Exception:
        for lun in luns.values():
            lun.close()
        raise
    return luns


def acl_function(cfg: TargetConfig) -> Callable[[str], frozenset[int] | None]:
    """initiator -> LUN numbers it may reach (None: all); an initiator with no entry reaches none."""
    def allowed(initiator: str) -> frozenset[int] | None:
        entry = cfg.acl_entry(initiator)
        if entry is None:
            return frozenset()
        return None if entry.luns == "all" else frozenset(entry.luns)
    return allowed


def _secrets(c: ChapConfig | None) -> ChapSecrets | None:
    if c is None:
        return None
    return ChapSecrets(c.username, c.secret, c.mutual_username, c.mutual_secret)


def build_target(cfg: TargetConfig, *, luns: dict[int, BlockLun] | None = None,
                 copy_manager: CommandHandler | None = None) -> BuiltTarget:
    luns = luns if luns is not None else open_luns(cfg)
    by_id = {lc.id: lc for lc in cfg.luns}
    devices = {n: BlockLunDevice(lun, copy_manager=copy_manager, accepts_xcopy=by_id[n].accepts_xcopy)
               for n, lun in luns.items()}
    acl = acl_function(cfg)
    scsi = ScsiTarget(cfg.target, devices, acl)

    def allows(initiator: str) -> bool:
        return cfg.acl_entry(initiator) is not None

    def chap_for(initiator: str) -> ChapSecrets | None:
        entry = cfg.acl_entry(initiator)
        return _secrets(entry.chap if entry is not None and entry.chap is not None else cfg.chap)

    node = TargetNode(name=cfg.target, handler=scsi, allows=allows, chap_for=chap_for, alias=cfg.alias,
                      lun_exists=lambda n: n in devices)
    return BuiltTarget(cfg, luns, devices, scsi, node)
