"""SPC-4 persistent reservations (5.12) of one logical unit: PR IN, PR OUT and access control.

Registrations and the reservation are kept per I_T nexus (``Nexus.it``, whose
initiator part is ``iqn,i,0x<ISID>`` for iSCSI) in memory only (no APTPL: they
do not survive a restart, which REPORT CAPABILITIES says).  They survive I_T
nexus loss, as SPC-4 requires.  :meth:`PersistentReservations.check_access`
tells the dispatcher which commands a reservation forbids (RESERVATION CONFLICT);
unit attentions 2Ah/03h-05h go to the other registrants on PREEMPT, CLEAR, RELEASE.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from scsi.layout import Field, Layout, bits, flag
from scsi.result import Nexus
from scsi.sense import illegal_request
from scsi.target import cdbs, errors
from scsi.target.errors import CheckCondition
from scsi.target.unit_attention import UnitAttentions

log = logging.getLogger(__name__)

PERSISTENT_RESERVE_OUT = cdbs.PERSISTENT_RESERVE_OUT

PRIN_CDB = Layout("PERSISTENT RESERVE IN", 10, [
    Field("opcode", 0), bits("service_action", 1, 0, 5), Field("allocation_length", 7, size=2),
    Field("control", 9),
])
PROUT_CDB = Layout("PERSISTENT RESERVE OUT", 10, [
    Field("opcode", 0), bits("service_action", 1, 0, 5), bits("scope", 2, 4, 4), bits("type", 2, 0, 4),
    Field("parameter_list_length", 5, size=4), Field("control", 9),
])
PROUT_PARAMETERS = Layout("PR OUT parameter list", 24, [
    Field("reservation_key", 0, size=8), Field("service_action_reservation_key", 8, size=8),
    flag("spec_i_pt", 20, 3), flag("all_tg_pt", 20, 2), flag("aptpl", 20, 0),
])
PRIN_HEADER = Layout("PR IN header", 8, [
    Field("generation", 0, size=4), Field("additional_length", 4, size=4),
])
RESERVATION_DESCRIPTOR = Layout("PR IN READ RESERVATION descriptor", 16, [
    Field("reservation_key", 0, size=8), bits("scope", 13, 4, 4), bits("type", 13, 0, 4),
])
REPORT_CAPABILITIES = Layout("PR IN REPORT CAPABILITIES", 8, [
    Field("length", 0, size=2), flag("crh", 2, 4), flag("sip_c", 2, 3), flag("atp_c", 2, 2),
    flag("ptpl_c", 2, 0), flag("tmv", 3, 7), bits("allow_commands", 3, 4, 3), flag("ptpl_a", 3, 0),
    Field("type_mask", 4, size=2),
])
FULL_STATUS_DESCRIPTOR = Layout("PR IN READ FULL STATUS descriptor", 24, [
    Field("reservation_key", 0, size=8), flag("all_tg_pt", 12, 1), flag("r_holder", 12, 0),
    bits("scope", 13, 4, 4), bits("type", 13, 0, 4), Field("relative_target_port", 18, size=2),
    Field("additional_length", 20, size=4),
])
ISCSI_TRANSPORT_ID = Layout("iSCSI TransportID header", 4, [
    bits("format_code", 0, 6, 2), bits("protocol_identifier", 0, 0, 4), Field("additional_length", 2, size=2),
])

READ_KEYS, READ_RESERVATION, REPORT_CAPS, READ_FULL_STATUS = 0, 1, 2, 3
REGISTER, RESERVE, RELEASE, CLEAR, PREEMPT, PREEMPT_AND_ABORT, REGISTER_AND_IGNORE = range(7)

WRITE_EXCLUSIVE, EXCLUSIVE_ACCESS = 0x1, 0x3
WE_REGISTRANTS_ONLY, EA_REGISTRANTS_ONLY, WE_ALL_REGISTRANTS, EA_ALL_REGISTRANTS = 0x5, 0x6, 0x7, 0x8
TYPES = {WRITE_EXCLUSIVE, EXCLUSIVE_ACCESS, WE_REGISTRANTS_ONLY, EA_REGISTRANTS_ONLY,
         WE_ALL_REGISTRANTS, EA_ALL_REGISTRANTS}
REGISTRANTS_TYPES = {WE_REGISTRANTS_ONLY, EA_REGISTRANTS_ONLY, WE_ALL_REGISTRANTS, EA_ALL_REGISTRANTS}
ALL_REGISTRANTS_TYPES = {WE_ALL_REGISTRANTS, EA_ALL_REGISTRANTS}
WRITE_EXCLUSIVE_TYPES = {WRITE_EXCLUSIVE, WE_REGISTRANTS_ONLY, WE_ALL_REGISTRANTS}
# REPORT CAPABILITIES type mask: byte 4 WR_EX_AR(7) EX_AC_RO(6) WR_EX_RO(5) EX_AC(3) WR_EX(1); byte 5 EX_AC_AR(0)
TYPE_MASK = 0xEA01

RESERVATIONS_PREEMPTED = (0x2A, 0x03)
RESERVATIONS_RELEASED = (0x2A, 0x04)
REGISTRATIONS_PREEMPTED = (0x2A, 0x05)

# Commands every nexus may issue whatever the reservation (SPC-4 table 5.x "Allowed" for all types).
ALWAYS_ALLOWED = frozenset({cdbs.INQUIRY, cdbs.REPORT_LUNS, cdbs.REQUEST_SENSE, cdbs.TEST_UNIT_READY,
                            cdbs.READ_CAPACITY_10, cdbs.PERSISTENT_RESERVE_IN, cdbs.MAINTENANCE_IN,
                            PERSISTENT_RESERVE_OUT})
# Commands that only read the medium or state: allowed to non-holders under Write Exclusive types.
READ_LIKE = frozenset({cdbs.READ_6, cdbs.PRE_FETCH_10, cdbs.PRE_FETCH_16, cdbs.READ_10, cdbs.READ_12, cdbs.READ_16, cdbs.VERIFY_10, cdbs.VERIFY_12,
                       cdbs.VERIFY_16, cdbs.MODE_SENSE_6, cdbs.MODE_SENSE_10, cdbs.RECEIVE_COPY_RESULTS,
                       cdbs.SERVICE_ACTION_IN_16})

IT = tuple[str, str]


class ReservationConflict(Exception):
    """The command ends in RESERVATION CONFLICT status (no sense data)."""


@dataclass
class Reservation:
    holder: IT | None  # None: an all-registrants reservation (every registrant holds it)
    type: int


def _invalid_parameter(offset: int, message: str) -> CheckCondition:
    """INVALID FIELD IN PARAMETER LIST (26h/00h) pointing at byte ``offset`` of the parameter list."""
    return CheckCondition(illegal_request(0x26, 0x00, field=offset, bit=7, in_cdb=False).encode(), message)


def _transport_id(initiator: str) -> bytes:
    """iSCSI TransportID for ``iqn,i,0x<ISID>`` (format 01b with ISID) or a bare name (format 00b)."""
    name = initiator.encode() + b"\0"
    name += b"\0" * (-(len(name)) % 4)
    fmt = 1 if ",i,0x" in initiator else 0
    return ISCSI_TRANSPORT_ID.encode(format_code=fmt, protocol_identifier=5, additional_length=len(name)) + name


class PersistentReservations:
    """Registrations, the reservation and the PR generation of one LUN; thread-safe."""

    def __init__(self, attentions: UnitAttentions):
        self.attentions = attentions
        self.keys: dict[IT, int] = {}
        self.reservation: Reservation | None = None
        self.generation = 0
        self._lock = threading.Lock()

    # -- access control ---------------------------------------------------------------
    def _holds(self, it: IT) -> bool:
        r = self.reservation
        if r is None:
            return False
        if r.type in REGISTRANTS_TYPES:
            return it in self.keys
        return r.holder == it

    def check_access(self, nexus: Nexus, cdb: bytes) -> None:
        """Raise :class:`ReservationConflict` when the reservation forbids ``cdb`` on this I_T nexus."""
        op = cdb[0]
        if op in ALWAYS_ALLOWED:
            return
        with self._lock:
            r = self.reservation
            if r is None or self._holds(nexus.it):
                return
            if r.type in WRITE_EXCLUSIVE_TYPES and op in READ_LIKE:
                return
        raise ReservationConflict(f"opcode {op:#04x} from {nexus.initiator} conflicts with a type {r.type} reservation")

    # -- PERSISTENT RESERVE IN --------------------------------------------------------
    def persistent_reserve_in(self, cdb: bytes) -> bytes:
        c = PRIN_CDB.decode(cdb[:10], strict=False)
        sa = c["service_action"]
        with self._lock:
            if sa == READ_KEYS:
                body = b"".join(k.to_bytes(8, "big") for k in self.keys.values())
            elif sa == READ_RESERVATION:
                body = b""
                r = self.reservation
                if r is not None:
                    key = 0 if r.holder is None else self.keys.get(r.holder, 0)
                    body = RESERVATION_DESCRIPTOR.encode(reservation_key=key, scope=0, type=r.type)
            elif sa == REPORT_CAPS:
                data = REPORT_CAPABILITIES.encode(length=8, tmv=1, type_mask=TYPE_MASK)
                return data[:c["allocation_length"]]
            elif sa == READ_FULL_STATUS:
                body = b""
                for it, key in self.keys.items():
                    r = self.reservation
                    holder = r is not None and (r.holder is None or r.holder == it)
                    tid = _transport_id(it[0])
                    body += FULL_STATUS_DESCRIPTOR.encode(
                        reservation_key=key, r_holder=int(holder), scope=0, type=r.type if holder else 0,
                        relative_target_port=1, additional_length=len(tid)) + tid
            else:
                raise errors.invalid_field(PRIN_CDB, "service_action", f"PR IN service action {sa:#x}")
            data = PRIN_HEADER.encode(generation=self.generation, additional_length=len(body)) + body
        return data[:c["allocation_length"]]

    # -- PERSISTENT RESERVE OUT -------------------------------------------------------
    def persistent_reserve_out(self, nexus: Nexus, cdb: bytes, data_out: bytes) -> None:
        """Carry out one PR OUT command; raises CheckCondition or ReservationConflict."""
        c = PROUT_CDB.decode(cdb[:10], strict=False)
        sa = c["service_action"]
        if sa > REGISTER_AND_IGNORE:
            raise errors.invalid_field(PROUT_CDB, "service_action", f"PR OUT service action {sa:#x}")
        if c["parameter_list_length"] != PROUT_PARAMETERS.size or len(data_out) < PROUT_PARAMETERS.size:
            raise errors.param_list_length_error()
        p = PROUT_PARAMETERS.decode(data_out[:PROUT_PARAMETERS.size], strict=False)
        if p["spec_i_pt"]:
            raise _invalid_parameter(20, "SPEC_I_PT is not supported")
        if p["aptpl"]:
            raise _invalid_parameter(20, "APTPL is not supported (registrations are not persisted)")
        it, key, sa_key = nexus.it, p["reservation_key"], p["service_action_reservation_key"]
        if sa in (RESERVE, PREEMPT, PREEMPT_AND_ABORT):
            if c["scope"] != 0:
                raise errors.invalid_field(PROUT_CDB, "scope", f"PR scope {c['scope']} (only LU_SCOPE)")
            if c["type"] not in TYPES:
                raise errors.invalid_field(PROUT_CDB, "type", f"PR type {c['type']:#x}")
        with self._lock:
            if sa == REGISTER:
                self._register(it, key, sa_key, ignore=False)
            elif sa == REGISTER_AND_IGNORE:
                self._register(it, key, sa_key, ignore=True)
            else:
                if self.keys.get(it) != key or it not in self.keys:
                    raise ReservationConflict(f"{nexus.initiator}: key {key:#x} is not its registered key")
                if sa == RESERVE:
                    self._reserve(it, c["type"])
                elif sa == RELEASE:
                    self._release(it, c["type"])
                elif sa == CLEAR:
                    self._clear(it)
                else:
                    self._preempt(it, sa_key, c["type"])
        log.info("PR OUT sa %d from %s: keys=%d reservation=%s", sa, nexus.initiator, len(self.keys),
                 self.reservation)

    def _register(self, it: IT, key: int, sa_key: int, *, ignore: bool) -> None:
        current = self.keys.get(it)
        if not ignore and (current if current is not None else 0) != key:
            raise ReservationConflict(f"REGISTER with key {key:#x} but registered key is {current}")
        if sa_key == 0:
            if current is None:
                return
            del self.keys[it]
            self._after_unregister(it)
        else:
            self.keys[it] = sa_key
        self.generation += 1

    def _after_unregister(self, it: IT) -> None:
        """Release the reservation if ``it`` held it alone (or was the last all-registrants holder)."""
        r = self.reservation
        if r is None:
            return
        if r.holder is None and not self.keys:
            self.reservation = None
        elif r.holder == it:
            self.reservation = None
            if r.type in REGISTRANTS_TYPES:
                self.attentions.establish(list(self.keys), *RESERVATIONS_RELEASED)

    def _reserve(self, it: IT, type_: int) -> None:
        r = self.reservation
        if r is None:
            self.reservation = Reservation(None if type_ in ALL_REGISTRANTS_TYPES else it, type_)
        elif not (self._holds(it) and r.type == type_ and (r.holder is None or r.holder == it)):
            raise ReservationConflict(f"LUN already reserved (type {r.type})")

    def _release(self, it: IT, type_: int) -> None:
        r = self.reservation
        if r is None or not (r.holder is None or r.holder == it):
            return  # not the holder: nothing to release, GOOD
        if r.type != type_:
            raise CheckCondition(illegal_request(0x26, 0x04).encode(), "INVALID RELEASE OF PERSISTENT RESERVATION")
        self.reservation = None
        if r.type in REGISTRANTS_TYPES:
            self.attentions.establish([o for o in self.keys if o != it], *RESERVATIONS_RELEASED)

    def _clear(self, it: IT) -> None:
        others = [o for o in self.keys if o != it]
        self.keys.clear()
        self.reservation = None
        self.generation += 1
        self.attentions.establish(others, *RESERVATIONS_PREEMPTED)

    def _preempt(self, it: IT, sa_key: int, type_: int) -> None:
        r = self.reservation
        all_registrants = r is not None and r.holder is None
        takes_over = r is not None and (
            (all_registrants and sa_key == 0) or (not all_registrants and self.keys.get(r.holder) == sa_key))
        if sa_key == 0 and not takes_over:
            raise _invalid_parameter(8, "PREEMPT with SERVICE ACTION RESERVATION KEY 0")
        victims = [o for o, k in self.keys.items() if o != it and (k == sa_key or (all_registrants and sa_key == 0))]
        if not victims and not takes_over:
            raise ReservationConflict(f"no registration with key {sa_key:#x} to preempt")
        for o in victims:
            del self.keys[o]
        self.generation += 1
        self.attentions.establish(victims, *REGISTRATIONS_PREEMPTED)
        if takes_over:
            assert r is not None
            self.reservation = Reservation(None if type_ in ALL_REGISTRANTS_TYPES else it, type_)
            if r.type != type_:
                self.attentions.establish([o for o in self.keys if o != it], *RESERVATIONS_RELEASED)
