"""SSC basics for a sequential-access LUN (an emulated tape from scsi.luns.tape).

Enough for backup software and the copy manager's stream segments: READ(6)/
WRITE(6) in fixed or variable mode, WRITE FILEMARKS, SPACE, REWIND, LOCATE(10),
READ POSITION (short and long form), READ BLOCK LIMITS, LOAD/UNLOAD, MODE SENSE/SELECT(6)
for the block length, plus the common INQUIRY/VPD/TUR/REQUEST SENSE/REPORT
SUPPORTED OPERATION CODES.  Tape errors (filemark, end of data, ILI) come back
as CHECK CONDITION with the LUN's own sense and whatever data was read.
"""
from __future__ import annotations

import logging
import threading
from collections import Counter

from scsi.layout import Field, Layout, bits, flag
from scsi.luns.base import LunError, StreamLun
from scsi.result import CommandHandler, Nexus, ScsiResult, Status
from scsi.target import cdbs, common_commands, errors, inquiry, modes, opcodes
from scsi.target.cdbs import INQUIRY_CDB
from scsi.target.errors import CheckCondition
from scsi.target.opcodes import Command

log = logging.getLogger(__name__)

REWIND, READ_BLOCK_LIMITS, READ_6, WRITE_6 = 0x01, 0x05, 0x08, 0x0A
WRITE_FILEMARKS_6, SPACE_6, MODE_SELECT_6, LOAD_UNLOAD = 0x10, 0x11, 0x15, 0x1B
LOCATE_10, READ_POSITION = 0x2B, 0x34

RW6 = Layout("READ/WRITE(6) (SSC)", 6, [
    Field("opcode", 0), flag("sili", 1, 1), flag("fixed", 1, 0), Field("transfer_length", 2, size=3),
    Field("control", 5),
])
WRITE_FILEMARKS_CDB = Layout("WRITE FILEMARKS(6)", 6, [
    Field("opcode", 0), flag("wsmk", 1, 1), flag("immed", 1, 0), Field("count", 2, size=3), Field("control", 5),
])
SPACE_CDB = Layout("SPACE(6)", 6, [
    Field("opcode", 0), bits("code", 1, 0, 4), Field("count", 2, size=3), Field("control", 5),
])
LOCATE_CDB = Layout("LOCATE(10)", 10, [
    Field("opcode", 0), flag("bt", 1, 2), flag("cp", 1, 1), flag("immed", 1, 0),
    Field("block_address", 3, size=4), Field("partition", 8), Field("control", 9),
])
READ_POSITION_CDB = Layout("READ POSITION", 10, [
    Field("opcode", 0), bits("service_action", 1, 0, 5), Field("allocation_length", 7, size=2),
    Field("control", 9),
])
READ_POSITION_SHORT = Layout("READ POSITION short form", 20, [
    flag("bop", 0, 7), flag("eop", 0, 6), flag("bpu", 0, 2), Field("partition", 1),
    Field("first_block", 4, size=4), Field("last_block", 8, size=4), Field("blocks_in_buffer", 13, size=3),
    Field("bytes_in_buffer", 16, size=4),
])
READ_POSITION_LONG = Layout("READ POSITION long form", 32, [
    flag("bop", 0, 7), flag("eop", 0, 6), flag("lonu", 0, 2, doc="logical object number unknown"),
    flag("mpu", 0, 1, doc="mark position (file and set numbers) unknown"),
    Field("partition", 4, size=4), Field("logical_object", 8, size=8),
    Field("file_number", 16, size=8, doc="logical file identifier: filemarks before the position"),
    Field("set_number", 24, size=8, doc="logical set identifier: setmarks before the position"),
])
RP_SHORT_BLOCK_ID, RP_SHORT_VENDOR, RP_LONG_FORM = 0x00, 0x01, 0x06
BLOCK_LIMITS_DATA = Layout("READ BLOCK LIMITS data", 6, [
    bits("granularity", 0, 0, 5), Field("max_block_length", 1, size=3), Field("min_block_length", 4, size=2),
])
MODE_SELECT_6_CDB = Layout("MODE SELECT(6)", 6, [
    Field("opcode", 0), flag("pf", 1, 4), flag("sp", 1, 0), Field("parameter_list_length", 4), Field("control", 5),
])
MAX_BLOCK = 0xFFFFFF

def _signed24(v: int) -> int:
    return v - (1 << 24) if v & 0x800000 else v


class TapeLunDevice:
    """One tape LUN as an SSC device; ``block_size`` 0 is variable-block mode."""

    def __init__(self, lun: StreamLun, *, copy_manager: CommandHandler | None = None,
                 accepts_xcopy: bool = False, vendor: str = "SRVFREE", product: str = "DATAMOVER TAPE"):
        self.lun = lun
        self.copy_manager = copy_manager if accepts_xcopy else None
        self.block_size = 0
        self.identity = inquiry.Identity(
            pdt=int(lun.pdt), vendor=vendor, product=product, serial=lun.serial, removable=True,
            designators=tuple((d.code_set, d.association, d.type, d.value) for d in lun.designators()),
            tpc=self.copy_manager is not None)
        # One table: dispatch and REPORT SUPPORTED OPERATION CODES both come from it.
        commands = [c for c in self._COMMANDS if c.needs in ("", "xcopy" if self.copy_manager else "")]
        self.handlers = {c.opcode: c.run for c in commands}
        self.table = tuple(c.info for c in commands)
        self.counters: Counter[str] = Counter()
        self._lock = threading.Lock()  # a tape has one position: commands run one at a time

    def close(self) -> None:
        pass

    def execute(self, nexus: Nexus, cdb: bytes, data_out: bytes, data_in_len: int) -> ScsiResult:
        if not cdb:
            return errors.invalid_byte(0, message="empty CDB").result()
        op = cdb[0]
        try:
            common_commands.check_cdb(cdb)
            if op in (cdbs.EXTENDED_COPY, cdbs.RECEIVE_COPY_RESULTS) and self.copy_manager is not None:
                return self.copy_manager.execute(nexus, cdb, data_out, data_in_len)
            handler = self.handlers.get(op)
            if handler is None:
                raise errors.invalid_opcode(op)
            with self._lock:
                return handler(self, cdb, data_out)
        except CheckCondition as e:
            return e.result()
        except LunError as e:
            log.info("tape %s: %s", self.lun.name, e.message)
            return ScsiResult(status=e.status or Status.CHECK_CONDITION, data=e.partial, sense=e.sense)

    # -- common commands ------------------------------------------------------------------
    def _tur(self, cdb: bytes, data_out: bytes) -> ScsiResult:
        return common_commands.test_unit_ready(self.lun)

    def _request_sense(self, cdb: bytes, data_out: bytes) -> ScsiResult:
        return common_commands.request_sense(cdb)

    def _inquiry(self, cdb: bytes, data_out: bytes) -> ScsiResult:
        return common_commands.inquiry_response(cdb, self.identity, self._vpd)

    def _vpd(self, page_code: int) -> bytes:
        """The VPD pages a tape offers: serial, identification and the copy manager's 8Fh."""
        pdt = self.identity.pdt
        pages = {0x80: inquiry.unit_serial(self.identity), 0x83: inquiry.device_identification(self.identity)}
        vpd_8f = getattr(self.copy_manager, "vpd_8f", None)
        if vpd_8f is not None:
            pages[0x8F] = vpd_8f(pdt)
        pages[0x00] = inquiry.supported_pages(pdt, [0x00, *pages])
        if page_code not in pages:
            raise errors.invalid_field(INQUIRY_CDB, "page_code")
        return pages[page_code]

    def _maintenance_in(self, cdb: bytes, data_out: bytes) -> ScsiResult:
        c = cdbs.RSOC_CDB.decode(cdb[:12], strict=False)
        if c["service_action"] != cdbs.SA_REPORT_SUPPORTED_OPCODES:
            raise errors.invalid_field(cdbs.RSOC_CDB, "service_action")
        return ScsiResult(data=opcodes.report_supported_opcodes(cdb, self.table)[:c["allocation_length"]])

    def _mode_sense(self, cdb: bytes, data_out: bytes) -> ScsiResult:
        ten = cdb[0] == cdbs.MODE_SENSE_10
        data = modes.mode_sense(cdb, ten=ten, num_blocks=0, block_size=self.block_size,
                                read_only=self.lun.read_only, pages=(0x0A,))
        alloc = int.from_bytes(cdb[7:9], "big") if ten else cdb[4]
        return ScsiResult(data=data[:alloc])

    def _mode_select(self, cdb: bytes, data_out: bytes) -> ScsiResult:
        c = MODE_SELECT_6_CDB.decode(cdb[:6], strict=False)
        if c["sp"]:
            raise errors.invalid_field(MODE_SELECT_6_CDB, "sp", "saving pages is not supported")
        params = data_out[:c["parameter_list_length"]]
        if len(params) < 4:
            if params:
                raise errors.param_list_length_error()
            return ScsiResult()
        bdl = params[3]
        if bdl not in (0, 8) or len(params) != 4 + bdl:
            raise errors.CheckCondition(_param_error(3), "only a block descriptor may be selected")
        if bdl:
            self.block_size = int.from_bytes(params[9:12], "big")
        return ScsiResult()

    # -- tape motion and I/O ------------------------------------------------------------------
    def _rewind(self, cdb: bytes, data_out: bytes) -> ScsiResult:
        self.lun.rewind()
        return ScsiResult()

    def _load_unload(self, cdb: bytes, data_out: bytes) -> ScsiResult:
        self.lun.flush()
        self.lun.rewind()
        return ScsiResult()

    def _read_block_limits(self, cdb: bytes, data_out: bytes) -> ScsiResult:
        return ScsiResult(data=BLOCK_LIMITS_DATA.encode(max_block_length=MAX_BLOCK, min_block_length=1))

    def _fixed_mode(self, layout: Layout, c: dict) -> bool:
        if c["fixed"] and self.block_size == 0:
            raise errors.invalid_field(layout, "fixed", "FIXED set while in variable-block mode")
        return bool(c["fixed"])

    def _read(self, cdb: bytes, data_out: bytes) -> ScsiResult:
        c = RW6.decode(cdb[:6], strict=False)
        fixed = self._fixed_mode(RW6, c)
        if c["sili"] and fixed:
            raise errors.invalid_field(RW6, "sili", "SILI with FIXED")
        if c["transfer_length"] == 0:
            return ScsiResult()
        data = self.lun.read(c["transfer_length"], fixed=fixed, block_size=self.block_size)
        self.counters["read_bytes"] += len(data)
        return ScsiResult(data=data)

    def _write(self, cdb: bytes, data_out: bytes) -> ScsiResult:
        c = RW6.decode(cdb[:6], strict=False)
        fixed = self._fixed_mode(RW6, c)
        n = c["transfer_length"]
        if n == 0:
            return ScsiResult()
        need = n * self.block_size if fixed else n
        if len(data_out) < need:
            raise errors.invalid_field(RW6, "transfer_length", f"{need} bytes announced, {len(data_out)} sent")
        if self.lun.read_only:
            raise errors.write_protected()
        self.lun.write(bytes(data_out[:need]), fixed=fixed, block_size=self.block_size)
        self.counters["write_bytes"] += need
        return ScsiResult()

    def _write_filemarks(self, cdb: bytes, data_out: bytes) -> ScsiResult:
        c = WRITE_FILEMARKS_CDB.decode(cdb[:6], strict=False)
        if c["wsmk"]:
            raise errors.invalid_field(WRITE_FILEMARKS_CDB, "wsmk", "setmarks are not supported")
        if self.lun.read_only:
            raise errors.write_protected()
        self.lun.write_filemarks(c["count"])
        if c["count"] == 0:
            self.lun.flush()  # zero filemarks: flush the buffer (SSC)
        return ScsiResult()

    def _space(self, cdb: bytes, data_out: bytes) -> ScsiResult:
        c = SPACE_CDB.decode(cdb[:6], strict=False)
        if c["code"] not in (0, 1, 3):
            raise errors.invalid_field(SPACE_CDB, "code", f"SPACE code {c['code']} is not supported")
        self.lun.space(c["code"], _signed24(c["count"]))
        return ScsiResult()

    def _locate(self, cdb: bytes, data_out: bytes) -> ScsiResult:
        c = LOCATE_CDB.decode(cdb[:10], strict=False)
        if c["cp"]:
            raise errors.invalid_field(LOCATE_CDB, "cp", "partitions are not supported")
        self.lun.locate(c["block_address"])
        return ScsiResult()

    def _read_position(self, cdb: bytes, data_out: bytes) -> ScsiResult:
        c = READ_POSITION_CDB.decode(cdb[:10], strict=False)
        sa = c["service_action"]
        if sa not in (RP_SHORT_BLOCK_ID, RP_SHORT_VENDOR, RP_LONG_FORM):
            raise errors.invalid_field(READ_POSITION_CDB, "service_action",
                                       f"READ POSITION service action {sa:#04x} is not supported "
                                       "(short form 00h/01h, long form 06h)")
        pos = self.lun.position()
        if sa != RP_LONG_FORM:
            return ScsiResult(data=READ_POSITION_SHORT.encode(bop=int(pos == 0), first_block=pos, last_block=pos))
        file_number = getattr(self.lun, "file_number", None)  # a StreamLun that cannot count filemarks says so
        files = file_number() if callable(file_number) else None
        return ScsiResult(data=READ_POSITION_LONG.encode(
            bop=int(pos == 0), mpu=int(files is None), logical_object=pos, file_number=files or 0))

    def _not_here(self, cdb: bytes, data_out: bytes) -> ScsiResult:
        """EXTENDED COPY / RECEIVE COPY RESULTS: execute() hands them to the copy manager first."""
        raise errors.invalid_opcode(cdb[0])

    _COMMANDS = (
        # opcode, service action, CDB usage data (SPC-4 r36f 6.35.3), handler, feature
        Command(cdbs.TEST_UNIT_READY, None, "00 00 00 00 00 00", _tur),
        Command(REWIND, None, "01 01 00 00 00 00", _rewind),
        Command(cdbs.REQUEST_SENSE, None, "03 01 00 00 FF 00", _request_sense),
        Command(READ_BLOCK_LIMITS, None, "05 00 00 00 00 00", _read_block_limits),
        Command(READ_6, None, "08 03 FF FF FF 00", _read),
        Command(WRITE_6, None, "0A 01 FF FF FF 00", _write),
        Command(WRITE_FILEMARKS_6, None, "10 01 FF FF FF 00", _write_filemarks),
        Command(SPACE_6, None, "11 0F FF FF FF 00", _space),
        Command(cdbs.INQUIRY, None, "12 01 FF FF FF 00", _inquiry),
        Command(MODE_SELECT_6, None, "15 11 00 00 FF 00", _mode_select),
        Command(cdbs.MODE_SENSE_6, None, "1A 08 FF FF FF 00", _mode_sense),
        Command(LOAD_UNLOAD, None, "1B 01 00 00 01 00", _load_unload),
        Command(LOCATE_10, None, "2B 01 00 FF FF FF FF 00 00 00", _locate),
        Command(READ_POSITION, None, "34 1F 00 00 00 00 00 00 00 00", _read_position),
        Command(cdbs.MODE_SENSE_10, None, "5A 08 FF FF 00 00 00 FF FF 00", _mode_sense),
        Command(cdbs.MAINTENANCE_IN, cdbs.SA_REPORT_SUPPORTED_OPCODES, "A3 1F 87 FF FF FF FF FF FF FF 00 00",
                _maintenance_in),
        *Command.all_of(opcodes.XCOPY_COMMANDS, _not_here, "xcopy"),
    )


def _param_error(byte: int) -> bytes:
    from scsi.sense import illegal_request
    return illegal_request(0x26, 0x00, field=byte, in_cdb=False).encode()
