"""SCSI command emulation for one block LUN (SBC-3 subset that libiscsi and qemu issue).

:class:`BlockLunDevice` implements :class:`scsi.result.CommandHandler` over a
:class:`scsi.luns.base.BlockLun`.  It is synchronous and thread-safe for
concurrent calls (the LUN uses pread/pwrite), so the iSCSI layer runs it in a
thread pool and never blocks its event loop on file I/O.  EXTENDED COPY and
RECEIVE COPY RESULTS go to the copy manager when the LUN accepts them.
"""
from __future__ import annotations

import logging
import threading
from collections import Counter

from scsi.luns.base import BlockLun, LunError
from scsi.result import CommandHandler, Nexus, ScsiResult, Status
from scsi.target import block_extras, block_rmw, cdbs, common_commands, errors, inquiry, modes, opcodes, reservations
from scsi.target.provisioning import MAX_UNMAP_BLOCKS, MAX_UNMAP_DESCRIPTORS, Provisioning
from scsi.target.cdbs import (INQUIRY_CDB, READ_CAPACITY_16_CDB, READ_WRITE_6, READ_WRITE_10, READ_WRITE_12,
                              READ_WRITE_16, SYNC_CACHE_10, SYNC_CACHE_16)
from scsi.target.opcodes import Command
from scsi.target.reserve6 import Reserve6
from scsi.target.scsitarget import lun_entry
from scsi.target.errors import CheckCondition
from scsi.target.unit_attention import UnitAttentions
from scsi.layout import Field, Layout, bits, flag

log = logging.getLogger(__name__)

READ_CAPACITY_10_DATA = Layout("READ CAPACITY(10) data", 8, [
    Field("last_lba", 0, size=4), Field("block_length", 4, size=4),
])
READ_CAPACITY_16_DATA = Layout("READ CAPACITY(16) data", 32, [
    Field("last_lba", 0, size=8), Field("block_length", 8, size=4), bits("p_type", 12, 1, 3),
    flag("prot_en", 12, 0), bits("p_i_exponent", 13, 4, 4), bits("lbppbe", 13, 0, 4),
    flag("lbpme", 14, 7), flag("lbprz", 14, 6), bits("lowest_aligned_hi", 14, 0, 6),
    Field("lowest_aligned_lo", 15),
])

DEFAULT_MAX_TRANSFER = 16 * 1024 * 1024  # bytes per READ/WRITE command
RW_LAYOUTS = {cdbs.READ_6: READ_WRITE_6, cdbs.WRITE_6: READ_WRITE_6, cdbs.READ_10: READ_WRITE_10, cdbs.WRITE_10: READ_WRITE_10, cdbs.READ_12: READ_WRITE_12,
              cdbs.WRITE_12: READ_WRITE_12, cdbs.READ_16: READ_WRITE_16, cdbs.WRITE_16: READ_WRITE_16}


class BlockLunDevice:
    """One block LUN as a SCSI device: INQUIRY/VPD, capacity, I/O, mode pages, opcodes."""

    def __init__(self, lun: BlockLun, *, copy_manager: CommandHandler | None = None,
                 accepts_xcopy: bool = False, vendor: str = "SRVFREE", product: str = "DATAMOVER LUN",
                 max_transfer_bytes: int = DEFAULT_MAX_TRANSFER, thin: bool = True):
        self.lun = lun
        self.copy_manager = copy_manager if accepts_xcopy else None
        self.max_transfer_blocks = max(1, max_transfer_bytes // lun.block_size)
        self.max_write_same_blocks = self.max_transfer_blocks  # explicit WRITE SAME counts (0 = to the end)
        self.identity = inquiry.Identity(
            pdt=int(lun.pdt), vendor=vendor, product=product, serial=lun.serial,
            designators=tuple((d.code_set, d.association, d.type, d.value) for d in lun.designators()),
            tpc=self.copy_manager is not None)
        self.thin = Provisioning.for_lun(lun) if thin else None
        # The one command table: dispatch and REPORT SUPPORTED OPERATION CODES both come from it.
        features = {"", "thin" if self.thin is not None else "thick", "xcopy" if self.copy_manager else ""}
        self.commands = {(c.opcode, c.service_action): c for c in self._COMMANDS if c.needs in features}
        self.service_action_opcodes = frozenset(op for op, sa in self.commands if sa is not None)
        self.table = tuple(c.info for c in self.commands.values())
        self.counters: Counter[str] = Counter()
        self.attentions = UnitAttentions()
        self.reservations = reservations.PersistentReservations(self.attentions)
        self.reserve6 = Reserve6()
        self._lock = threading.Lock()

    # -- dispatch -------------------------------------------------------------------
    def execute(self, nexus: Nexus, cdb: bytes, data_out: bytes, data_in_len: int) -> ScsiResult:
        if not cdb:
            return errors.invalid_byte(0, message="empty CDB").result()
        op = cdb[0]
        pending = self.attentions.check(nexus, cdb)
        if pending is not None:
            return pending
        try:
            common_commands.check_cdb(cdb)
            self.reserve6.check_access(nexus, cdb)
            self.reservations.check_access(nexus, cdb)
            command = self.commands.get((op, cdb[1] & 0x1F if op in self.service_action_opcodes else None))
            if command is None:
                if op in self.service_action_opcodes:
                    raise errors.invalid_byte(1, 4, f"opcode {op:#04x}: service action {cdb[1] & 0x1F:#04x} "
                                                    "is not supported")
                raise errors.invalid_opcode(op)
            result = command.run(self, nexus, cdb, data_out)
            return ScsiResult() if result is None else result
        except reservations.ReservationConflict as e:
            log.info("LUN %s: CDB %s -> RESERVATION CONFLICT: %s", self.lun.name, cdb[:16].hex(), e)
            return ScsiResult(status=Status.RESERVATION_CONFLICT)
        except CheckCondition as e:
            log.debug("LUN %s: CDB %s -> CHECK CONDITION: %s", self.lun.name, cdb[:16].hex(), e)
            return e.result()
        except LunError as e:
            log.warning("LUN %s: %s", self.lun.name, e.message)
            return ScsiResult(status=e.status or Status.CHECK_CONDITION, sense=e.sense)

    def data_out_length(self, cdb: bytes) -> int | None:
        """Bytes of data-out the CDB asks for: blocks for WRITE, the parameter list otherwise."""
        op = cdb[0] if cdb else -1
        if op in block_extras.VERIFY_LAYOUTS:
            return block_extras.verify_data_out_length(cdb, self.lun.block_size)
        if op in block_extras.WRITE_SAME_LAYOUTS:
            return block_extras.write_same_data_out_length(cdb, self.lun.block_size)
        if op in (cdbs.WRITE_6, cdbs.WRITE_10, cdbs.WRITE_12, cdbs.WRITE_16):
            layout = RW_LAYOUTS[op]
            if len(cdb) < layout.size:
                return None
            count = layout.decode(cdb[:layout.size], strict=False)["transfer_length"]
            return (count or (256 if op == cdbs.WRITE_6 else 0)) * self.lun.block_size
        rmw = block_rmw.data_out_length(cdb, self.lun.block_size)
        if rmw is not None:
            return rmw
        if op == cdbs.UNMAP and len(cdb) >= 10:
            return int.from_bytes(cdb[7:9], "big")
        if op == cdbs.PERSISTENT_RESERVE_OUT and len(cdb) >= 10:
            return int.from_bytes(cdb[5:9], "big")
        if op == cdbs.EXTENDED_COPY and len(cdb) >= 16:
            return int.from_bytes(cdb[10:14], "big")
        return None

    def lun_reset(self, by: Nexus | None = None) -> int:
        """LOGICAL UNIT RESET done (tasks aborted by the transport): unit attention 29h/03h for other nexuses."""
        count = self.attentions.lun_reset(by)
        self.reserve6.reset()
        log.info("LUN %s reset: unit attention queued for %d other I_T nexus(es)", self.lun.name, count)
        return count

    def _count(self, what: str, n: int = 1) -> None:
        with self._lock:
            self.counters[what] += n

    # -- simple commands --------------------------------------------------------------
    def _test_unit_ready(self, nexus: Nexus, cdb: bytes, data_out: bytes) -> ScsiResult:
        return common_commands.test_unit_ready(self.lun)

    def _request_sense(self, nexus: Nexus, cdb: bytes, data_out: bytes) -> ScsiResult:
        return common_commands.request_sense(cdb)

    def _inquiry(self, nexus: Nexus, cdb: bytes, data_out: bytes) -> ScsiResult:
        return common_commands.inquiry_response(cdb, self.identity, self.vpd)

    def vpd_pages(self) -> dict[int, bytes]:
        pdt = self.identity.pdt
        pages = {
            0x80: inquiry.unit_serial(self.identity),
            0x83: inquiry.device_identification(self.identity),
            0xB0: inquiry.block_limits(pdt, self.max_transfer_blocks,
                                       min(self.max_transfer_blocks, (1 << 20) // self.lun.block_size),
                                       unmap_blocks=MAX_UNMAP_BLOCKS if self.thin else 0,
                                       unmap_descriptors=MAX_UNMAP_DESCRIPTORS if self.thin else 0,
                                       max_write_same=self.max_write_same_blocks,
                                       max_compare_write=block_rmw.MAX_COMPARE_AND_WRITE_BLOCKS),
            0xB1: inquiry.block_characteristics(pdt),
        }
        if self.thin is not None:
            pages[0xB2] = self.thin.vpd_b2(pdt)
        vpd_8f = getattr(self.copy_manager, "vpd_8f", None)
        if vpd_8f is not None:
            try:
                page = vpd_8f(pdt)
            except TypeError:
                page = vpd_8f()
            pages[0x8F] = page if len(page) >= 4 and page[1] == 0x8F else inquiry.vpd_page(pdt, 0x8F, page)
        pages[0x00] = inquiry.supported_pages(pdt, [0x00, *pages])
        return pages

    def vpd(self, page_code: int) -> bytes:
        page = self.vpd_pages().get(page_code)
        if page is None:
            raise errors.invalid_field(INQUIRY_CDB, "page_code", f"VPD page {page_code:#04x} is not supported")
        return page

    def _read_capacity_10(self, nexus: Nexus, cdb: bytes, data_out: bytes) -> ScsiResult:
        last = min(self.lun.num_blocks - 1, 0xFFFFFFFF)
        return ScsiResult(data=READ_CAPACITY_10_DATA.encode(last_lba=last, block_length=self.lun.block_size))

    def _read_capacity_16(self, nexus: Nexus, cdb: bytes, data_out: bytes) -> ScsiResult:
        c = READ_CAPACITY_16_CDB.decode(cdb[:16], strict=False)
        thin = int(self.thin is not None)
        data = READ_CAPACITY_16_DATA.encode(last_lba=self.lun.num_blocks - 1, block_length=self.lun.block_size,
                                            lbpme=thin, lbprz=thin,
                                            lbppbe=self.thin.lbppbe if self.thin is not None else 0)
        return ScsiResult(data=data[:c["allocation_length"]])

    def _get_lba_status(self, nexus: Nexus, cdb: bytes, data_out: bytes) -> ScsiResult:
        return ScsiResult(data=self.thin.get_lba_status(cdb))

    def _report_supported_opcodes(self, nexus: Nexus, cdb: bytes, data_out: bytes) -> ScsiResult:
        c = cdbs.RSOC_CDB.decode(cdb[:12], strict=False)
        data = opcodes.report_supported_opcodes(cdb, self.table)
        return ScsiResult(data=data[:c["allocation_length"]])

    def _mode_sense(self, nexus: Nexus, cdb: bytes, data_out: bytes) -> ScsiResult:
        ten = cdb[0] == cdbs.MODE_SENSE_10
        data = modes.mode_sense(cdb, ten=ten, num_blocks=self.lun.num_blocks, block_size=self.lun.block_size,
                                read_only=self.lun.read_only)
        alloc = int.from_bytes(cdb[7:9], "big") if ten else cdb[4]
        return ScsiResult(data=data[:alloc])

    # -- I/O ----------------------------------------------------------------------------------
    def _rw_fields(self, cdb: bytes) -> tuple[Layout, dict]:
        layout = RW_LAYOUTS[cdb[0]]
        c = layout.decode(cdb[:layout.size], strict=False)
        if layout is READ_WRITE_6:  # 21-bit LBA; TRANSFER LENGTH 0 means 256 blocks (SBC-3 READ(6))
            c = {"lba": (c["lba_hi"] << 16) | c["lba_lo"], "transfer_length": c["transfer_length"] or 256,
                 "protect": 0, "fua": 0}
        if c["protect"]:
            raise errors.invalid_field(layout, "protect", "protection information is not supported")
        lba, count = c["lba"], c["transfer_length"]
        if lba + count > self.lun.num_blocks:
            raise errors.lba_out_of_range(lba, count, self.lun.num_blocks)
        if count > self.max_transfer_blocks:
            raise errors.invalid_field(layout, "transfer_length",
                                       f"{count} blocks exceed the {self.max_transfer_blocks}-block limit")
        return layout, c

    def _read(self, nexus: Nexus, cdb: bytes, data_out: bytes) -> ScsiResult:
        _, c = self._rw_fields(cdb)
        if c["transfer_length"] == 0:
            return ScsiResult()
        data = self.lun.read(c["lba"], c["transfer_length"])
        self._count("read_bytes", len(data))
        return ScsiResult(data=data)

    def _write(self, nexus: Nexus, cdb: bytes, data_out: bytes) -> ScsiResult:
        layout, c = self._rw_fields(cdb)
        if self.lun.read_only:
            raise errors.write_protected()
        count = c["transfer_length"]
        if count == 0:
            return ScsiResult()
        # A transport that delivered less than the CDB asks (iSCSI residual overflow) gets the
        # whole blocks it did send written, as SAM-5 lets a target end the transfer early.
        blocks = min(count, len(data_out) // self.lun.block_size)
        need = blocks * self.lun.block_size
        if blocks == 0:
            return ScsiResult()
        self.lun.write(c["lba"], bytes(data_out[:need]) if len(data_out) != need else data_out)
        if c["fua"]:
            self.lun.flush()
        self._count("write_bytes", need)
        return ScsiResult()

    def _synchronize_cache(self, nexus: Nexus, cdb: bytes, data_out: bytes) -> ScsiResult:
        layout = SYNC_CACHE_16 if cdb[0] == cdbs.SYNCHRONIZE_CACHE_16 else SYNC_CACHE_10
        c = layout.decode(cdb[:layout.size], strict=False)
        if c["lba"] + c["blocks"] > self.lun.num_blocks:
            raise errors.lba_out_of_range(c["lba"], c["blocks"], self.lun.num_blocks)
        self.lun.flush()
        return ScsiResult()

    def _unmap(self, nexus: Nexus, cdb: bytes, data_out: bytes) -> ScsiResult:
        if self.thin is None:
            raise errors.invalid_opcode(cdb[0])
        self.thin.unmap(cdb, data_out)
        return ScsiResult()

    def _write_same(self, nexus: Nexus, cdb: bytes, data_out: bytes) -> ScsiResult:
        block_extras.write_same(self, cdb, data_out)
        return ScsiResult()

    def _verify(self, nexus: Nexus, cdb: bytes, data_out: bytes) -> ScsiResult:
        block_extras.verify(self, cdb, data_out)
        return ScsiResult()

    def _write_and_verify(self, nexus: Nexus, cdb: bytes, data_out: bytes) -> None:
        block_rmw.write_and_verify(self, cdb, data_out)

    def _or_write(self, nexus: Nexus, cdb: bytes, data_out: bytes) -> None:
        block_rmw.or_write(self, cdb, data_out)

    def _compare_and_write(self, nexus: Nexus, cdb: bytes, data_out: bytes) -> None:
        block_rmw.compare_and_write(self, cdb, data_out)

    def _pre_fetch(self, nexus: Nexus, cdb: bytes, data_out: bytes) -> None:
        block_rmw.pre_fetch(self, cdb, data_out)

    def _report_luns(self, nexus: Nexus, cdb: bytes, data_out: bytes) -> ScsiResult:
        """Only when the device is reached without a :class:`ScsiTarget` (which answers for all LUNs)."""
        return ScsiResult(data=(8).to_bytes(4, "big") + bytes(4) + lun_entry(nexus.lun))

    def _persistent_reserve_in(self, nexus: Nexus, cdb: bytes, data_out: bytes) -> ScsiResult:
        return ScsiResult(data=self.reservations.persistent_reserve_in(cdb))

    def _persistent_reserve_out(self, nexus: Nexus, cdb: bytes, data_out: bytes) -> None:
        self.reservations.persistent_reserve_out(nexus, cdb, data_out)

    def _persistent_in_use(self) -> bool:
        return bool(self.reservations.keys) or self.reservations.reservation is not None

    def _reserve_6(self, nexus: Nexus, cdb: bytes, data_out: bytes) -> None:
        self.reserve6.reserve(nexus, cdb, self._persistent_in_use())

    def _release_6(self, nexus: Nexus, cdb: bytes, data_out: bytes) -> None:
        self.reserve6.release(nexus, cdb, self._persistent_in_use())

    def _prevent_allow(self, nexus: Nexus, cdb: bytes, data_out: bytes) -> None:
        self.reserve6.prevent_allow(nexus, cdb)

    def _copy_manager(self, nexus: Nexus, cdb: bytes, data_out: bytes) -> ScsiResult:
        self._count("xcopy" if cdb[0] == cdbs.EXTENDED_COPY else "receive_copy_results")
        # The copy manager trims to the CDB's allocation length; the transport then trims to its own
        # expected length (with a residual), so no data-in limit is passed here.
        return self.copy_manager.execute(nexus, cdb, data_out, 0xFFFFFFFF)

    def nexus_lost(self, initiator: str) -> None:
        """The I_T nexus of ``initiator`` (port name) ended: its unit attentions and RESERVE(6) go."""
        self.attentions.forget(initiator)
        self.reserve6.nexus_lost(initiator)

    def close(self) -> None:
        if self.thin is not None:
            self.thin.close()

    _COMMANDS = (
        # opcode, service action, CDB usage data (SPC-4 r36f 6.35.3; byte 0 is the opcode), handler, feature
        Command(cdbs.TEST_UNIT_READY, None, "00 00 00 00 00 00", _test_unit_ready),
        Command(cdbs.REQUEST_SENSE, None, "03 01 00 00 FF 00", _request_sense),
        Command(cdbs.READ_6, None, "08 1F FF FF FF 00", _read),
        Command(cdbs.WRITE_6, None, "0A 1F FF FF FF 00", _write),
        Command(cdbs.INQUIRY, None, "12 01 FF FF FF 00", _inquiry),
        Command(cdbs.RESERVE_6, None, "16 00 00 00 00 00", _reserve_6),
        Command(cdbs.RELEASE_6, None, "17 00 00 00 00 00", _release_6),
        Command(cdbs.MODE_SENSE_6, None, "1A 08 FF FF FF 00", _mode_sense),
        Command(cdbs.PREVENT_ALLOW, None, "1E 00 00 00 03 00", _prevent_allow),
        Command(cdbs.READ_CAPACITY_10, None, "25 00 00 00 00 00 00 00 00 00", _read_capacity_10),
        Command(cdbs.READ_10, None, "28 18 FF FF FF FF 1F FF FF 00", _read),
        Command(cdbs.WRITE_10, None, "2A 18 FF FF FF FF 1F FF FF 00", _write),
        Command(cdbs.WRITE_VERIFY_10, None, "2E 12 FF FF FF FF 1F FF FF 00", _write_and_verify),
        Command(cdbs.VERIFY_10, None, "2F 16 FF FF FF FF 1F FF FF 00", _verify),
        Command(cdbs.PRE_FETCH_10, None, "34 02 FF FF FF FF 1F FF FF 00", _pre_fetch),
        Command(cdbs.SYNCHRONIZE_CACHE_10, None, "35 02 FF FF FF FF 1F FF FF 00", _synchronize_cache),
        Command(cdbs.WRITE_SAME_10, None, "41 00 FF FF FF FF 1F FF FF 00", _write_same, "thick"),
        Command(cdbs.WRITE_SAME_10, None, "41 08 FF FF FF FF 1F FF FF 00", _write_same, "thin"),
        Command(cdbs.UNMAP, None, "42 00 00 00 00 00 1F FF FF 00", _unmap, "thin"),
        Command(cdbs.MODE_SENSE_10, None, "5A 18 FF FF 00 00 00 FF FF 00", _mode_sense),
        *Command.each(cdbs.PERSISTENT_RESERVE_IN, range(4), "5E 1F 00 00 00 00 00 FF FF 00", _persistent_reserve_in),
        *Command.each(cdbs.PERSISTENT_RESERVE_OUT, range(7), "5F 1F FF 00 00 FF FF FF FF 00", _persistent_reserve_out),
        *Command.all_of(opcodes.XCOPY_COMMANDS, _copy_manager, "xcopy"),
        Command(cdbs.READ_16, None, "88 18 FF FF FF FF FF FF FF FF FF FF FF FF 1F 00", _read),
        Command(cdbs.COMPARE_AND_WRITE, None, "89 18 FF FF FF FF FF FF FF FF 00 00 00 FF 1F 00",
                _compare_and_write),
        Command(cdbs.WRITE_16, None, "8A 18 FF FF FF FF FF FF FF FF FF FF FF FF 1F 00", _write),
        Command(cdbs.ORWRITE_16, None, "8B 18 FF FF FF FF FF FF FF FF FF FF FF FF 1F 00", _or_write),
        Command(cdbs.WRITE_VERIFY_16, None, "8E 12 FF FF FF FF FF FF FF FF FF FF FF FF 1F 00", _write_and_verify),
        Command(cdbs.VERIFY_16, None, "8F 16 FF FF FF FF FF FF FF FF FF FF FF FF 1F 00", _verify),
        Command(cdbs.PRE_FETCH_16, None, "90 02 FF FF FF FF FF FF FF FF FF FF FF FF 1F 00", _pre_fetch),
        Command(cdbs.SYNCHRONIZE_CACHE_16, None, "91 02 FF FF FF FF FF FF FF FF FF FF FF FF 1F 00",
                _synchronize_cache),
        Command(cdbs.WRITE_SAME_16, None, "93 01 FF FF FF FF FF FF FF FF FF FF FF FF 1F 00", _write_same, "thick"),
        Command(cdbs.WRITE_SAME_16, None, "93 09 FF FF FF FF FF FF FF FF FF FF FF FF 1F 00", _write_same, "thin"),
        Command(cdbs.SERVICE_ACTION_IN_16, cdbs.SA_READ_CAPACITY_16,
                "9E 1F 00 00 00 00 00 00 00 00 FF FF FF FF 00 00", _read_capacity_16),
        Command(cdbs.SERVICE_ACTION_IN_16, cdbs.SA_GET_LBA_STATUS,
                "9E 1F FF FF FF FF FF FF FF FF FF FF FF FF 00 00", _get_lba_status, "thin"),
        Command(cdbs.REPORT_LUNS, None, "A0 00 FF 00 00 00 FF FF FF FF 00 00", _report_luns),
        Command(cdbs.MAINTENANCE_IN, cdbs.SA_REPORT_SUPPORTED_OPCODES, "A3 1F 87 FF FF FF FF FF FF FF 00 00",
                _report_supported_opcodes),
        Command(cdbs.READ_12, None, "A8 18 FF FF FF FF FF FF FF FF 1F 00", _read),
        Command(cdbs.WRITE_12, None, "AA 18 FF FF FF FF FF FF FF FF 1F 00", _write),
        Command(cdbs.WRITE_VERIFY_12, None, "AE 12 FF FF FF FF FF FF FF FF 1F 00", _write_and_verify),
        Command(cdbs.VERIFY_12, None, "AF 16 FF FF FF FF FF FF FF FF 1F 00", _verify),
    )
