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
from scsi.luns.base import Lun
from scsi.luns.file import FileBlockLun
from scsi.luns.tape import TapeLun
from scsi.result import CommandHandler
from scsi.target.blockdev import BlockLunDevice
from scsi.target.config import ChapConfig, TargetConfig
from scsi.target.scsitarget import ScsiTarget
from scsi.target.tapedev import TapeLunDevice

log = logging.getLogger(__name__)


@dataclass
class BuiltTarget:
    config: TargetConfig
    luns: dict[int, Lun]
    devices: dict[int, BlockLunDevice | TapeLunDevice]
    scsi: ScsiTarget
    node: TargetNode
    copy_manager: CommandHandler | None = None

    def counters(self) -> dict[str, int]:
        """Target, per-LUN and copy manager counters, flat (for logs and status output)."""
        out: dict[str, int] = dict(self.scsi.counters)
        for n, device in self.devices.items():
            out.update({f"lun{n}.{k}": v for k, v in device.counters.items()})
        cm = getattr(self.copy_manager, "counters", None)
        if isinstance(cm, dict):
            out.update({f"xcopy.{k}": v for k, v in cm.items()})
        return out

    def close(self) -> None:
        close_cm = getattr(self.copy_manager, "close", None)
        if close_cm is not None:
            close_cm()
        for device in self.devices.values():
            device.close()
        for lun in self.luns.values():
            lun.close()


def make_copy_manager(cfg: TargetConfig, luns: dict[int, Lun]) -> CommandHandler | None:
    """The EXTENDED COPY engine over these LUNs with the same ACL, or None if none accepts XCOPY."""
    if not any(lc.accepts_xcopy for lc in cfg.luns):
        return None
    from scsi.copymgr import CopyManager

    return CopyManager.for_target(cfg, luns, acl_function(cfg))


def open_luns(cfg: TargetConfig) -> dict[int, Lun]:
    luns: dict[int, Lun] = {}
    try:
        for lc in cfg.luns:
            if lc.kind == "tape":
                luns[lc.id] = TapeLun(f"lun{lc.id}", lc.path, create=lc.create, serial=lc.serial,
                                      read_only=lc.read_only)
            else:
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


def build_target(cfg: TargetConfig, *, luns: dict[int, Lun] | None = None,
                 copy_manager: CommandHandler | None = None, with_copy_manager: bool = False) -> BuiltTarget:
    """LUN devices, SCSI target and iSCSI node for ``cfg``.

    ``with_copy_manager`` builds the EXTENDED COPY engine over the same LUNs
    (unless one is passed in ``copy_manager``).
    """
    luns = luns if luns is not None else open_luns(cfg)
    if copy_manager is None and with_copy_manager:
        copy_manager = make_copy_manager(cfg, luns)
    by_id = {lc.id: lc for lc in cfg.luns}
    devices: dict[int, BlockLunDevice | TapeLunDevice] = {}
    for n, lun in luns.items():
        kind = TapeLunDevice if lun.is_stream else BlockLunDevice
        devices[n] = kind(lun, copy_manager=copy_manager, accepts_xcopy=by_id[n].accepts_xcopy)
    acl = acl_function(cfg)
    scsi = ScsiTarget(cfg.target, devices, acl)

    def allows(initiator: str) -> bool:
        return cfg.acl_entry(initiator) is not None

    def chap_for(initiator: str) -> ChapSecrets | None:
        entry = cfg.acl_entry(initiator)
        return _secrets(entry.chap if entry is not None and entry.chap is not None else cfg.chap)

    def session_closed(initiator: str) -> None:
        forget = getattr(copy_manager, "forget_nexus", None)
        if forget is not None:
            forget((initiator, cfg.target))

    node = TargetNode(name=cfg.target, handler=scsi, allows=allows, chap_for=chap_for, alias=cfg.alias,
                      lun_exists=lambda n: n in devices, session_closed=session_closed)
    return BuiltTarget(cfg, luns, devices, scsi, node, copy_manager)
