"""Byte-exact parameter lists written by hand from the reference (never produced by the codec)."""
from pathlib import Path

import pytest

from scsi.xcopy import (BlockToBlock, BlockToStream, FcPortNameCscd, Header, IdentificationCscd, ParameterList,
                        WriteFilemarks, lu_identifier_for)
from scsi.xcopy.hexfield import hex_to_bytes

SAMPLES = Path(__file__).resolve().parents[2] / "scenarios" / "samples"

# Reference 1.5: the shape qemu sends and LIO accepts (E4h + E4h + 02h), 108 bytes.
QEMU_LIO = bytes.fromhex(
    "01 10 0040 00000000 0000001c 00000000"                      # list id 1, usage 10b, T=64, S=28, I=0
    "e4 00 0000 01 03 00 10 6001405a112233445566778899aabbcc 00000000 00 000200"  # CSCD 0, NAA 6h, 512
    "e4 00 0000 01 03 00 10 6001405b0102030405060708090a0b0c 00000000 00 000200"  # CSCD 1
    "02 00 0018 0000 0001 0000 0080 0000000000000000 0000000000001000"         # 128 blocks, LBA 0 -> 4096
    .replace(" ", ""))

# An FC-era tape data mover's list: E0h disk + E0h tape, 00h block->stream, 10h filemark, 116 bytes.
TAPE_MOVER = bytes.fromhex(
    "07 01 0040 00000000 00000024 00000000"                      # list id 7, priority 1, T=64, S=36
    "e0 00 0000 0005000000000000 50060b0000c26200 0000000000000000 00 000200"  # disk WWPN, LUN 5, 512
    "e0 01 0000 0000000000000000 210000e08b050504 0000000000000000 00 000000"  # tape PDT 1, variable
    "00 00 0014 0000 0001 00 010000 0000 0080 0000000000001000"               # 64 KiB writes, 128 blocks
    "10 00 0008 0000 0001 00 000001"                                          # 1 filemark on CSCD 1
    .replace(" ", ""))


def test_qemu_lio_vector_decodes_to_the_reference_fields():
    pl = ParameterList.decode(QEMU_LIO)
    assert pl.header == Header(list_id=1, list_id_usage=2) and pl.header.nrcr
    a, b = pl.cscds
    assert isinstance(a, IdentificationCscd) and a.designator == "6001405a112233445566778899aabbcc"
    assert (a.code_set, a.association, a.designator_type, a.block_length, a.pdt) == (1, 0, 3, 512, 0)
    assert b.designator.startswith("6001405b")
    (seg,) = pl.segments
    assert seg == BlockToBlock(src=0, dst=1, block_count=128, src_lba=0, dst_lba=4096)
    assert pl.encode() == QEMU_LIO


def test_qemu_lio_vector_built_from_models():
    pl = ParameterList(
        header=Header(list_id=1, list_id_usage=0b10),
        cscds=[IdentificationCscd(designator="60:01:40:5a:11:22:33:44:55:66:77:88:99:aa:bb:cc", block_length=512),
               IdentificationCscd(designator="6001405B0102030405060708090A0B0C", block_length=512)],
        segments=[BlockToBlock(src=0, dst=1, block_count=128, dst_lba=4096)])
    assert pl.encode() == QEMU_LIO


def test_tape_mover_vector():
    pl = ParameterList.decode(TAPE_MOVER)
    assert pl.header.list_id == 7 and pl.header.priority == 1
    disk, tape = pl.cscds
    assert isinstance(disk, FcPortNameCscd) and disk.n_port_name == "50060b0000c26200" and disk.lun == 5
    assert disk.is_block and disk.block_length == 512
    assert tape.is_stream and tape.n_port_name == "210000e08b050504" and tape.lun == 0 and not tape.fixed
    copy, mark = pl.segments
    assert copy == BlockToStream(src=0, dst=1, stream_transfer_length=65536, block_count=128, lba=4096)
    assert mark == WriteFilemarks(dst=1, filemark_count=1)
    assert [s.operation for s in pl.segments] == ["block->stream", "write filemarks"]
    built = ParameterList(
        header=Header(list_id=7, priority=1),
        cscds=[FcPortNameCscd(n_port_name="50:06:0b:00:00:c2:62:00", lu_identifier=lu_identifier_for(5),
                              block_length=512),
               FcPortNameCscd(n_port_name="21:00:00:e0:8b:05:05:04", pdt=1)],
        segments=[copy, mark])
    assert built.encode() == TAPE_MOVER


@pytest.mark.parametrize("name, vector", [("qemu_lio.hex", QEMU_LIO), ("tape_mover.hex", TAPE_MOVER)])
def test_bundled_samples_match_the_vectors(name, vector):
    assert hex_to_bytes((SAMPLES / name).read_text()) == vector


def test_offsets_locate_descriptors():
    cscd_at, seg_at, inline_at = ParameterList.decode(TAPE_MOVER).offsets()
    assert cscd_at == [16, 48] and seg_at == [80, 104] and inline_at == 116


def test_stream_fixed_and_pad_bits():
    raw = bytearray(TAPE_MOVER)
    raw[48 + 28] = 0x05  # tape CSCD: PAD (b2) + FIXED (b0)
    raw[48 + 29:48 + 32] = (0x8000).to_bytes(3, "big")
    tape = ParameterList.decode(bytes(raw)).cscds[1]
    assert tape.pad and tape.fixed and tape.block_length == 0x8000
    assert ParameterList.decode(bytes(raw)).encode() == bytes(raw)
