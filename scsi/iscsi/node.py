"""What the iSCSI layer needs to know about one target node it serves.

The SCSI side (``scsi.target``) builds these; the iSCSI layer never looks at
LUNs itself, it only hands commands to ``handler`` with the I_T_L nexus.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from scsi.iscsi.chap import ChapSecrets
from scsi.result import CommandHandler


@dataclass
class TargetNode:
    """An iSCSI target name with its command handler, access check and CHAP secrets."""

    name: str
    handler: CommandHandler
    allows: Callable[[str], bool] = lambda initiator: True
    chap_for: Callable[[str], ChapSecrets | None] = lambda initiator: None
    alias: str = ""
    lun_exists: Callable[[int], bool] = field(default=lambda lun: True)
    # Called after the initiator's last session with this node logged out (I_T nexus gone).
    session_closed: Callable[[str], None] = field(default=lambda initiator: None)
