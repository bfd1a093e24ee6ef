"""What a SCSI command came back with, shared by every device and target.

The in-process pyscsi device, the iSCSI target's command dispatch and the copy
manager all speak this one small vocabulary: a handler takes a CDB and the
data-out bytes and answers a :class:`ScsiResult`.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Protocol


class Status(IntEnum):
    GOOD = 0x00
    CHECK_CONDITION = 0x02
    CONDITION_MET = 0x04
    BUSY = 0x08
    RESERVATION_CONFLICT = 0x18
    TASK_SET_FULL = 0x28
    ACA_ACTIVE = 0x30
    TASK_ABORTED = 0x40


@dataclass(frozen=True)
class Nexus:
    """The I_T_L nexus a command arrived on (copy results are kept per I_T nexus)."""

    initiator: str  # initiator port name, e.g. an iSCSI IQN (+ ISID) or a WWPN
    target: str = ""
    lun: int = 0

    @property
    def it(self) -> tuple[str, str]:
        return (self.initiator, self.target)


@dataclass
class ScsiResult:
    status: int = Status.GOOD
    data: bytes = b""  # data-in
    sense: bytes = b""  # raw sense bytes when status is CHECK CONDITION

    @property
    def ok(self) -> bool:
        return self.status == Status.GOOD


class CommandHandler(Protocol):
    """Anything that can execute one SCSI command (a LUN, a copy manager, a simulated device)."""

    def execute(self, nexus: Nexus, cdb: bytes, data_out: bytes, data_in_len: int) -> ScsiResult: ...
