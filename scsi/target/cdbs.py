"""CDB layouts the LUN emulation decodes (SPC-4 / SBC-3), each declared once."""
from __future__ import annotations

from scsi.layout import Field, Layout, bits, flag
from scsi.xcopy.cdb import EXTENDED_COPY_OPCODE as EXTENDED_COPY  # noqa: F401 - declared once, with its CDB
from scsi.xcopy.cdb import RECEIVE_COPY_RESULTS_OPCODE as RECEIVE_COPY_RESULTS  # noqa: F401

TEST_UNIT_READY = 0x00
REQUEST_SENSE = 0x03
READ_6 = 0x08
WRITE_6 = 0x0A
INQUIRY = 0x12
RESERVE_6 = 0x16
RELEASE_6 = 0x17
PREVENT_ALLOW = 0x1E
MODE_SENSE_6 = 0x1A
READ_CAPACITY_10 = 0x25
READ_10 = 0x28
WRITE_10 = 0x2A
WRITE_VERIFY_10 = 0x2E
VERIFY_10 = 0x2F
PRE_FETCH_10 = 0x34
SYNCHRONIZE_CACHE_10 = 0x35
WRITE_SAME_10 = 0x41
UNMAP = 0x42
MODE_SENSE_10 = 0x5A
PERSISTENT_RESERVE_IN = 0x5E
PERSISTENT_RESERVE_OUT = 0x5F
READ_16 = 0x88
COMPARE_AND_WRITE = 0x89
WRITE_16 = 0x8A
ORWRITE_16 = 0x8B
WRITE_VERIFY_16 = 0x8E
VERIFY_16 = 0x8F
PRE_FETCH_16 = 0x90
SYNCHRONIZE_CACHE_16 = 0x91
WRITE_SAME_16 = 0x93
SERVICE_ACTION_IN_16 = 0x9E
REPORT_LUNS = 0xA0
MAINTENANCE_IN = 0xA3
READ_12 = 0xA8
WRITE_12 = 0xAA
WRITE_VERIFY_12 = 0xAE
VERIFY_12 = 0xAF

SA_READ_CAPACITY_16 = 0x10
SA_GET_LBA_STATUS = 0x12
SA_REPORT_SUPPORTED_OPCODES = 0x0C

CDB_LENGTH = {0: 6, 1: 10, 2: 10, 4: 16, 5: 12}  # by opcode group (byte 0 bits 7-5)


def cdb_length(opcode: int) -> int | None:
    return CDB_LENGTH.get(opcode >> 5)


INQUIRY_CDB = Layout("INQUIRY", 6, [
    Field("opcode", 0), bits("obsolete", 1, 1, 1), flag("evpd", 1, 0), bits("reserved1", 1, 2, 6),
    Field("page_code", 2), Field("allocation_length", 3, size=2), Field("control", 5),
])

REQUEST_SENSE_CDB = Layout("REQUEST SENSE", 6, [
    Field("opcode", 0), flag("desc", 1, 0), Field("allocation_length", 4), Field("control", 5),
])

# READ(6)/WRITE(6) (SBC-3): a 21-bit LBA, and a TRANSFER LENGTH of 0 means 256 blocks.
READ_WRITE_6 = Layout("READ/WRITE(6)", 6, [
    Field("opcode", 0), bits("lba_hi", 1, 0, 5), Field("lba_lo", 2, size=2), Field("transfer_length", 4),
    Field("control", 5),
])

READ_WRITE_10 = Layout("READ/WRITE(10)", 10, [
    Field("opcode", 0), bits("protect", 1, 5, 3), flag("dpo", 1, 4), flag("fua", 1, 3),
    flag("rarc", 1, 2), flag("fua_nv", 1, 1), Field("lba", 2, size=4), bits("group", 6, 0, 5),
    Field("transfer_length", 7, size=2), Field("control", 9),
])

READ_WRITE_16 = Layout("READ/WRITE(16)", 16, [
    Field("opcode", 0), bits("protect", 1, 5, 3), flag("dpo", 1, 4), flag("fua", 1, 3),
    flag("rarc", 1, 2), flag("fua_nv", 1, 1), flag("dld2", 1, 0), Field("lba", 2, size=8),
    Field("transfer_length", 10, size=4), bits("group", 14, 0, 5), Field("control", 15),
])

READ_WRITE_12 = Layout("READ/WRITE(12)", 12, [
    Field("opcode", 0), bits("protect", 1, 5, 3), flag("dpo", 1, 4), flag("fua", 1, 3),
    flag("rarc", 1, 2), flag("fua_nv", 1, 1), Field("lba", 2, size=4),
    Field("transfer_length", 6, size=4), flag("restricted", 10, 7), bits("group", 10, 0, 5),
    Field("control", 11),
])

# VERIFY (SBC-3): BYTCHK 0 = medium check only, 1 = compare the data-out with the
# blocks, 3 = compare one data-out block with every block (2 is reserved).
VERIFY_10_CDB = Layout("VERIFY(10)", 10, [
    Field("opcode", 0), bits("protect", 1, 5, 3), flag("dpo", 1, 4), bits("bytchk", 1, 1, 2),
    Field("lba", 2, size=4), bits("group", 6, 0, 5), Field("transfer_length", 7, size=2),
    Field("control", 9),
])
VERIFY_12_CDB = Layout("VERIFY(12)", 12, [
    Field("opcode", 0), bits("protect", 1, 5, 3), flag("dpo", 1, 4), bits("bytchk", 1, 1, 2),
    Field("lba", 2, size=4), Field("transfer_length", 6, size=4), flag("restricted", 10, 7),
    bits("group", 10, 0, 5), Field("control", 11),
])
VERIFY_16_CDB = Layout("VERIFY(16)", 16, [
    Field("opcode", 0), bits("protect", 1, 5, 3), flag("dpo", 1, 4), bits("bytchk", 1, 1, 2),
    Field("lba", 2, size=8), Field("transfer_length", 10, size=4), flag("restricted", 14, 7),
    bits("group", 14, 0, 5), Field("control", 15),
])

# WRITE SAME (SBC-3): one data-out block (none with NDOB) written to, or with UNMAP
# deallocated from, "transfer_length" blocks (0: up to the last LBA).
WRITE_SAME_10_CDB = Layout("WRITE SAME(10)", 10, [
    Field("opcode", 0), bits("protect", 1, 5, 3), flag("anchor", 1, 4), flag("unmap", 1, 3),
    flag("pbdata", 1, 2), flag("lbdata", 1, 1), Field("lba", 2, size=4), bits("group", 6, 0, 5),
    Field("transfer_length", 7, size=2), Field("control", 9),
])
WRITE_SAME_16_CDB = Layout("WRITE SAME(16)", 16, [
    Field("opcode", 0), bits("protect", 1, 5, 3), flag("anchor", 1, 4), flag("unmap", 1, 3),
    flag("pbdata", 1, 2), flag("lbdata", 1, 1), flag("ndob", 1, 0), Field("lba", 2, size=8),
    Field("transfer_length", 10, size=4), bits("group", 14, 0, 5), Field("control", 15),
])

# WRITE AND VERIFY (SBC-3): WRPROTECT, and BYTCHK (0: verify the medium, 1: compare
# with the data-out just written); SBC-4 widened BYTCHK to bits 2-1, 10b/11b are reserved here.
WRITE_VERIFY_10_CDB = Layout("WRITE AND VERIFY(10)", 10, [
    Field("opcode", 0), bits("protect", 1, 5, 3), flag("dpo", 1, 4), bits("bytchk", 1, 1, 2),
    Field("lba", 2, size=4), bits("group", 6, 0, 5), Field("transfer_length", 7, size=2), Field("control", 9),
])
WRITE_VERIFY_12_CDB = Layout("WRITE AND VERIFY(12)", 12, [
    Field("opcode", 0), bits("protect", 1, 5, 3), flag("dpo", 1, 4), bits("bytchk", 1, 1, 2),
    Field("lba", 2, size=4), Field("transfer_length", 6, size=4), bits("group", 10, 0, 5), Field("control", 11),
])
WRITE_VERIFY_16_CDB = Layout("WRITE AND VERIFY(16)", 16, [
    Field("opcode", 0), bits("protect", 1, 5, 3), flag("dpo", 1, 4), bits("bytchk", 1, 1, 2),
    Field("lba", 2, size=8), Field("transfer_length", 10, size=4), bits("group", 14, 0, 5), Field("control", 15),
])

# ORWRITE(16) (SBC-3): the data-out is ORed into the blocks, atomically.
ORWRITE_16_CDB = Layout("ORWRITE(16)", 16, [
    Field("opcode", 0), bits("protect", 1, 5, 3), flag("dpo", 1, 4), flag("fua", 1, 3), flag("fua_nv", 1, 1),
    Field("lba", 2, size=8), Field("transfer_length", 10, size=4), bits("group", 14, 0, 5), Field("control", 15),
])

# COMPARE AND WRITE (SBC-3): 2 x NUMBER OF LOGICAL BLOCKS of data-out, the verify half then the write half.
COMPARE_AND_WRITE_CDB = Layout("COMPARE AND WRITE", 16, [
    Field("opcode", 0), bits("protect", 1, 5, 3), flag("dpo", 1, 4), flag("fua", 1, 3), flag("fua_nv", 1, 1),
    Field("lba", 2, size=8), Field("transfer_length", 13), bits("group", 14, 0, 5), Field("control", 15),
])

# PRE-FETCH (SBC-3): GOOD or CONDITION MET; nothing is cached ahead here.
PRE_FETCH_10_CDB = Layout("PRE-FETCH(10)", 10, [
    Field("opcode", 0), flag("immed", 1, 1), Field("lba", 2, size=4), bits("group", 6, 0, 5),
    Field("transfer_length", 7, size=2), Field("control", 9),
])
PRE_FETCH_16_CDB = Layout("PRE-FETCH(16)", 16, [
    Field("opcode", 0), flag("immed", 1, 1), Field("lba", 2, size=8), Field("transfer_length", 10, size=4),
    bits("group", 14, 0, 5), Field("control", 15),
])

# PREVENT ALLOW MEDIUM REMOVAL (SBC-3); RESERVE(6)/RELEASE(6) (SPC-2 7.21, 7.16).
PREVENT_ALLOW_CDB = Layout("PREVENT ALLOW MEDIUM REMOVAL", 6, [
    Field("opcode", 0), bits("prevent", 4, 0, 2), Field("control", 5),
])
RESERVE_RELEASE_6_CDB = Layout("RESERVE(6)/RELEASE(6)", 6, [
    Field("opcode", 0), flag("third_party", 1, 4), bits("third_party_id", 1, 1, 3), flag("extent", 1, 0),
    Field("reservation_id", 2), Field("control", 5),
])

SYNC_CACHE_10 = Layout("SYNCHRONIZE CACHE(10)", 10, [
    Field("opcode", 0), flag("immed", 1, 1), Field("lba", 2, size=4), bits("group", 6, 0, 5),
    Field("blocks", 7, size=2), Field("control", 9),
])

SYNC_CACHE_16 = Layout("SYNCHRONIZE CACHE(16)", 16, [
    Field("opcode", 0), flag("immed", 1, 1), Field("lba", 2, size=8), Field("blocks", 10, size=4),
    bits("group", 14, 0, 5), Field("control", 15),
])

READ_CAPACITY_10_CDB = Layout("READ CAPACITY(10)", 10, [
    Field("opcode", 0), Field("lba", 2, size=4), flag("pmi", 8, 0), Field("control", 9),
])

READ_CAPACITY_16_CDB = Layout("READ CAPACITY(16)", 16, [
    Field("opcode", 0), bits("service_action", 1, 0, 5), Field("lba", 2, size=8),
    Field("allocation_length", 10, size=4), flag("pmi", 14, 0), Field("control", 15),
])

MODE_SENSE_6_CDB = Layout("MODE SENSE(6)", 6, [
    Field("opcode", 0), flag("dbd", 1, 3), bits("pc", 2, 6, 2), bits("page_code", 2, 0, 6),
    Field("subpage_code", 3), Field("allocation_length", 4), Field("control", 5),
])

MODE_SENSE_10_CDB = Layout("MODE SENSE(10)", 10, [
    Field("opcode", 0), flag("llbaa", 1, 4), flag("dbd", 1, 3), bits("pc", 2, 6, 2),
    bits("page_code", 2, 0, 6), Field("subpage_code", 3), Field("allocation_length", 7, size=2),
    Field("control", 9),
])

REPORT_LUNS_CDB = Layout("REPORT LUNS", 12, [
    Field("opcode", 0), Field("select_report", 2), Field("allocation_length", 6, size=4),
    Field("control", 11),
])

RSOC_CDB = Layout("REPORT SUPPORTED OPERATION CODES", 12, [
    Field("opcode", 0), bits("service_action", 1, 0, 5), flag("rctd", 2, 7), bits("options", 2, 0, 3),
    Field("requested_opcode", 3), Field("requested_sa", 4, size=2),
    Field("allocation_length", 6, size=4), Field("control", 11),
])
