"""EXTENDED COPY / RECEIVE COPY RESULTS as pyscsi commands, run through pyscsi's SCSI object
against a small in-process fake device (tgtd-based tests live with the device backends)."""
import pytest
from hypothesis import given, settings, strategies as st
from pyscsi.pyscsi.scsi import SCSI
from pyscsi.pyscsi.scsi_enum_command import sbc, spc
from pyscsi.pyscsi.scsi_sense import SCSICheckCondition

from scsi.commands import (ExtendedCopy, ReceiveCopyResults, copy_status, extended_copy, failed_segment_details,
                           operating_parameters, receive_copy_results, receive_data)
from scsi.commands import sense_from_exception
from scsi.sense import SenseKey, copy_aborted
from scsi.xcopy import (CopyManagerStatus, CopyStatus, FailedSegmentDetails, OperatingParameters, ParameterList,
                        ParameterListError, RcrServiceAction, ReceiveData, ResultDecodeError)

# Reference 1.5 parameter list (hand-written, see test_xcopy_vectors) and its CDB.
QEMU_LIO = bytes.fromhex(
    "01100040000000000000001c00000000"
    "e4000000010300106001405a112233445566778899aabbcc0000000000000200"
    "e4000000010300106001405b0102030405060708090a0b0c0000000000000200"
    "0200001800000001000000800000000000000000" "0000000000001000")
XCOPY_CDB = bytes.fromhex("83000000000000000000" "0000006c0000")

# Reference 4.4: LIO's OPERATING PARAMETERS answer, 45 bytes.
LIO_OP_PARAMS = bytes.fromhex(
    "0000002a" "01000000" "0002" "0001" "00000400" "10000000" "00000000" "00000000" "00000000"
    "0000" "0001" "01" "09" "09" "09" "000000" "02" "02e4")
# Reference 4.2: completed, 3 segments, 64 KiB written.
COPY_STATUS_BYTES = bytes.fromhex("00000008" "01" "0003" "01" "00000040")
# Reference 4.5: CHECK CONDITION (02h) with an 18-byte COPY ABORTED 0Dh/02h sense, segment 1.
FSD_SENSE = bytes.fromhex("70000a000000000a000000010d0200000000")
# AVAILABLE DATA = n - 3 = 56 + 18.
FAILED_DETAILS = bytes.fromhex("0000004a") + bytes(52) + bytes.fromhex("02000012") + FSD_SENSE
HELD = bytes.fromhex("00000005") + b"hello"


class FakeCopyManagerDevice:
    """A pyscsi device object: execute(cmd) fills cmd.datain or raises CheckCondition, like SG_IO would."""

    def __init__(self):
        self.opcodes = spc
        self.devicetype = None
        self.cdbs: list[bytes] = []
        self.lists: list[bytes] = []

    def execute(self, cmd):
        cdb = bytes(cmd.cdb)
        self.cdbs.append(cdb)
        if cdb[0] == 0x12:
            answer = (bytes([0, 0, 6, 2, 91, 8, 0, 2]) + b"SERVFREE" + b"copy manager    " + b"0001").ljust(96, b"\0")
        elif cdb[0] == 0x83:
            assert cdb[1] == 0 and len(cmd.dataout) == int.from_bytes(cdb[10:14], "big")
            self.lists.append(bytes(cmd.dataout))
            try:
                ParameterList.decode(bytes(cmd.dataout))
            except ParameterListError as err:
                raise SCSICheckCondition(err.to_sense().encode()) from None
            return
        elif cdb[0] == 0x84:
            sa, list_id = cdb[1] & 0x1F, cdb[2]
            answer = {0: COPY_STATUS_BYTES, 1: HELD, 3: LIO_OP_PARAMS, 4: FAILED_DETAILS}[sa]
            if sa != 3 and list_id != 1:
                raise SCSICheckCondition(bytes.fromhex("700005000000000a00000000240000c00002"))
        else:
            raise AssertionError(f"unexpected CDB {cdb.hex()}")
        alloc = int.from_bytes(cdb[3:5] if cdb[0] == 0x12 else cdb[10:14], "big")
        out = answer[:alloc]
        cmd.datain[:len(out)] = out

    def close(self):
        pass


@pytest.fixture
def dev():
    return FakeCopyManagerDevice()


def test_extended_copy_cdb_and_data_out(dev):
    scsi = SCSI(dev)
    cmd = ExtendedCopy(spc.EXTENDED_COPY, QEMU_LIO)
    assert bytes(cmd.cdb) == XCOPY_CDB
    scsi.execute(cmd)
    assert dev.lists == [QEMU_LIO] and dev.cdbs[-1] == XCOPY_CDB
    assert ExtendedCopy.unmarshall_cdb(cmd.cdb)["parameter_list_length"] == 108
    assert cmd.param_list.segments[0].block_count == 128


def test_extended_copy_from_model_with_sbc_opcode(dev):
    scsi = SCSI(dev)
    assert dev.opcodes is sbc  # pyscsi switched to the disk opcode table after INQUIRY
    cmd = extended_copy(scsi, ParameterList.decode(QEMU_LIO))
    assert bytes(cmd.cdb) == XCOPY_CDB and dev.lists == [QEMU_LIO]


def test_bad_list_comes_back_as_check_condition_with_field_pointer(dev):
    scsi = SCSI(dev)
    with pytest.raises(SCSICheckCondition) as exc:
        extended_copy(scsi, QEMU_LIO[:-4])
    sense = sense_from_exception(exc.value)
    assert sense.key == SenseKey.ILLEGAL_REQUEST and sense.asc_ascq == (0x1A, 0x00)


def test_operating_parameters_lio_values(dev):
    op = operating_parameters(SCSI(dev))
    assert isinstance(op, OperatingParameters)
    assert (op.snlid, op.max_cscd_count, op.max_segment_count, op.max_descriptor_list_length) == (True, 2, 1, 1024)
    assert (op.max_segment_length, op.max_inline_data_length, op.held_data_limit) == (268435456, 0, 0)
    assert (op.total_concurrent_copies, op.max_concurrent_copies, op.data_segment_granularity) == (1, 1, 9)
    assert op.implemented_descriptors == (0x02, 0xE4) and op.supports(0xE4) and not op.supports(0xE0)
    assert op.encode() == LIO_OP_PARAMS
    assert dev.cdbs[-1] == bytes.fromhex("84030000000000000000000004000000")


def test_copy_status(dev):
    st = copy_status(SCSI(dev), 1)
    assert st == CopyStatus(status=CopyManagerStatus.COMPLETED, segments_processed=3, transfer_count=64,
                            transfer_count_units=1)
    assert st.bytes_transferred == 65536 and st.encode() == COPY_STATUS_BYTES
    assert dev.cdbs[-1] == bytes.fromhex("84000100000000000000" "0000000c" "0000")


def test_failed_segment_details_decodes_sense(dev):
    fsd = failed_segment_details(SCSI(dev), 1)
    assert fsd.command_status == 0x02
    assert fsd.sense.key == SenseKey.COPY_ABORTED and fsd.sense.segment == 1
    assert fsd.encode() == FAILED_DETAILS
    built = FailedSegmentDetails(command_status=2, sense_data=copy_aborted(0x0D, 0x02, segment=1).encode())
    assert built.encode() == FAILED_DETAILS
    assert FailedSegmentDetails.decode(bytes(4)) == FailedSegmentDetails() and FailedSegmentDetails().sense is None


def test_receive_data(dev):
    assert receive_data(SCSI(dev), 1) == ReceiveData(data=b"hello".hex())
    cut = receive_copy_results(SCSI(dev), RcrServiceAction.RECEIVE_DATA, 1, alloc_len=6)
    assert cut.data == b"he".hex() and cut.available == 5


def test_unknown_list_id_is_check_condition(dev):
    with pytest.raises(SCSICheckCondition) as exc:
        copy_status(SCSI(dev), 9)
    s = sense_from_exception(exc.value)
    assert s.asc_ascq == (0x24, 0x00) and s.sks.in_cdb and s.sks.byte == 2


def test_truncated_answers(dev):
    scsi = SCSI(dev)
    short = receive_copy_results(scsi, RcrServiceAction.OPERATING_PARAMETERS, alloc_len=44)
    assert short.max_cscd_count == 2 and short.implemented_descriptors == ()
    with pytest.raises(ResultDecodeError, match="needs 44 bytes, only 12"):
        receive_copy_results(scsi, RcrServiceAction.OPERATING_PARAMETERS, alloc_len=12)


def test_bad_arguments():
    with pytest.raises(ValueError, match="service action 02h"):
        ReceiveCopyResults(None, 2)
    with pytest.raises(ValueError, match="needs operation code 83h"):
        ExtendedCopy(spc.INQUIRY, b"")
    with pytest.raises(ResultDecodeError, match="AVAILABLE DATA is 4"):
        CopyStatus.decode(bytes.fromhex("00000004") + bytes(8))
    with pytest.raises(ResultDecodeError, match="unknown status 05h"):
        CopyStatus.decode(bytes.fromhex("00000008050000000000000a"))


def test_transfer_count_units():
    st = CopyStatus.for_bytes(5 << 35)  # 160 GiB: too many bytes for 32 bits, fits in KiB
    assert st.transfer_count_units == 1 and st.bytes_transferred == 5 << 35
    assert CopyStatus.for_bytes(5 << 40).transfer_count_units == 2
    assert CopyStatus.decode(st.encode()) == st
    assert CopyStatus.for_bytes(1000).transfer_count_units == 0


def test_sense_from_exception_prefers_raw_bytes():
    class WithRaw(Exception):
        raw_sense = bytes.fromhex("720a0d0200000000")  # descriptor format: pyscsi cannot unpack it

    s = sense_from_exception(WithRaw())
    assert s.descriptor_format and s.key == SenseKey.COPY_ABORTED and s.asc_ascq == (0x0D, 0x02)
    assert sense_from_exception(ValueError("no sense")) is None


u = lambda bits: st.integers(0, 2 ** bits - 1)  # noqa: E731


@given(st.builds(OperatingParameters, snlid=st.booleans(), max_cscd_count=u(16), max_segment_count=u(16),
                 max_descriptor_list_length=u(32), max_segment_length=u(32), max_inline_data_length=u(32),
                 held_data_limit=u(32), max_stream_device_transfer_size=u(32), total_concurrent_copies=u(16),
                 max_concurrent_copies=u(8), data_segment_granularity=u(8), inline_data_granularity=u(8),
                 held_data_granularity=u(8),
                 implemented_descriptors=st.sets(u(8), max_size=20).map(lambda s: tuple(sorted(s)))),
       st.builds(CopyStatus, status=st.sampled_from(CopyManagerStatus), hdd=st.booleans(),
                 segments_processed=u(16), transfer_count=u(32), transfer_count_units=st.integers(0, 6)),
       st.binary(max_size=64))
@settings(max_examples=60, deadline=None)
def test_result_round_trips(op, status, held):
    assert OperatingParameters.decode(op.encode()) == op
    assert CopyStatus.decode(status.encode()) == status
    sense = copy_aborted(0x0D, 0x01, segment=2).encode()
    fsd = FailedSegmentDetails(command_status=2, sense_data=sense)
    assert FailedSegmentDetails.decode(fsd.encode()) == fsd
    assert ReceiveData.decode(ReceiveData(data=held.hex()).encode()) == ReceiveData(data=held.hex())
