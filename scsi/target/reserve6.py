"""SPC-2 RESERVE(6)/RELEASE(6) and PREVENT ALLOW MEDIUM REMOVAL state of one logical unit.

RESERVE(6) gives one I_T nexus the whole logical unit (SPC-2 7.21): every
other nexus then gets RESERVATION CONFLICT except for the few commands SPC-2
5.5.1 lets through (INQUIRY, REPORT LUNS, REQUEST SENSE, RELEASE, which is a
no-op for a non-holder, and REPORT SUPPORTED OPERATION CODES).  The holder may
reserve again.  The reservation ends with RELEASE from its holder, with the
loss of its I_T nexus (logout, dropped connection) and with a LOGICAL UNIT
RESET.  While persistent reservations are in use (a registration or a
persistent reservation), RESERVE(6)/RELEASE(6) end in RESERVATION CONFLICT
from every nexus, as SPC-2 has it: SPC-4 r36f 5.13.3 lets the persistent
reservation holder (or a registrant under a registrants-only or
all-registrants reservation) complete them with GOOD and no effect only in a
device server that sets CRH in REPORT CAPABILITIES, and ours reports CRH=0.
Extents and third-party reservations are refused.

PREVENT ALLOW MEDIUM REMOVAL is kept per nexus (SBC-3) although the medium
of these LUNs cannot be removed (RMB=0): the prevention is accepted, reported
nowhere and ends with the nexus, the reset or ALLOW.
"""
from __future__ import annotations

import logging
import threading

from scsi.result import Nexus
from scsi.target import cdbs, errors
from scsi.target.cdbs import PREVENT_ALLOW_CDB, RESERVE_RELEASE_6_CDB
from scsi.target.reservations import ReservationConflict

log = logging.getLogger(__name__)

IT = tuple[str, str]
# SPC-2 5.5.1: what a nexus may still send while another nexus holds the logical unit.
ALLOWED_TO_OTHERS = frozenset({cdbs.INQUIRY, cdbs.REPORT_LUNS, cdbs.REQUEST_SENSE, cdbs.RELEASE_6,
                               cdbs.MAINTENANCE_IN})


class Reserve6:
    """The SPC-2 reservation holder and the nexuses that prevent medium removal; thread-safe."""

    def __init__(self) -> None:
        self.holder: IT | None = None
        self.preventing: set[IT] = set()
        self._lock = threading.Lock()

    def check_access(self, nexus: Nexus, cdb: bytes) -> None:
        """Raise :class:`ReservationConflict` when another nexus holds the logical unit."""
        holder = self.holder
        if holder is None or holder == nexus.it or cdb[0] in ALLOWED_TO_OTHERS:
            return
        if cdb[0] == cdbs.PREVENT_ALLOW and len(cdb) >= 6 and not cdb[4] & 0x03:
            return  # ALLOW (PREVENT 00b) is let through
        raise ReservationConflict(f"opcode {cdb[0]:#04x} from {nexus.initiator}: "
                                  f"the LU is reserved (RESERVE(6)) by {holder[0]}")

    def reserve(self, nexus: Nexus, cdb: bytes, persistent_in_use: bool) -> None:
        self._decode(cdb)
        with self._lock:
            if persistent_in_use or (self.holder is not None and self.holder != nexus.it):
                raise ReservationConflict(f"RESERVE(6) from {nexus.initiator}: the LU is reserved")
            self.holder = nexus.it
        log.info("LU reserved (RESERVE(6)) by %s", nexus.initiator)

    def release(self, nexus: Nexus, cdb: bytes, persistent_in_use: bool) -> None:
        self._decode(cdb)
        if persistent_in_use:
            raise ReservationConflict(f"RELEASE(6) from {nexus.initiator} while persistent reservations are in use")
        with self._lock:
            if self.holder == nexus.it:  # from anyone else RELEASE is a no-op (SPC-2 7.16)
                self.holder = None
                log.info("LU released (RELEASE(6)) by %s", nexus.initiator)

    def prevent_allow(self, nexus: Nexus, cdb: bytes) -> None:
        c = PREVENT_ALLOW_CDB.decode(cdb[:6], strict=False)
        with self._lock:
            if c["prevent"] & 1:
                self.preventing.add(nexus.it)
            else:
                self.preventing.discard(nexus.it)

    def nexus_lost(self, initiator: str) -> None:
        """The I_T nexus of ``initiator`` (a port name) ended: its reservation and prevention end too."""
        with self._lock:
            if self.holder is not None and self.holder[0] == initiator:
                self.holder = None
            self.preventing = {it for it in self.preventing if it[0] != initiator}

    def reset(self) -> None:
        """LOGICAL UNIT RESET: the reservation and every prevention are cleared (SPC-2 5.5.3, SBC-3)."""
        with self._lock:
            self.holder = None
            self.preventing.clear()

    @staticmethod
    def _decode(cdb: bytes) -> None:
        c = RESERVE_RELEASE_6_CDB.decode(cdb[:6], strict=False)
        for name in ("third_party", "extent"):
            if c[name]:
                raise errors.invalid_field(RESERVE_RELEASE_6_CDB, name,
                                           f"{name.replace('_', ' ')} reservations are not supported")
