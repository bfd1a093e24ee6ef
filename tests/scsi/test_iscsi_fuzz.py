"""Fuzzing: thousands of mutated PDUs and CDBs; the target never dies and other sessions go on."""
from __future__ import annotations

import asyncio
import struct
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from scsi.iscsi.harness import ThreadedTarget
from scsi.iscsi.initiator import Initiator
from scsi.iscsi.pdu import NO_TAG, Op, encode_lun, make
from scsi.luns.memory import MemoryBlockLun
from scsi.result import Nexus, Status
from scsi.sense import Sense
from scsi.target.blockdev import BlockLunDevice
from scsi.target.build import build_target
from scsi.target.config import parse_config
from scsi.target.scsitarget import ScsiTarget
from scsi.iscsi.textkeys import encode_pairs

TARGET = "iqn.2026-11.org.serverfree:dm-fuzz"
READ_CAP = bytes([0x25]) + bytes(9)
RESETS = ("tmf.lun_reset", "tmf.target_warm_reset", "tmf.target_cold_reset")  # the target's counters


def fuzz(n: int) -> settings:
    return settings(max_examples=n, deadline=None, database=None, suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def target(tmp_path_factory):
    d = tmp_path_factory.mktemp("fuzz")
    with open(d / "f.img", "wb") as f:
        f.truncate(1 << 20)
    built = build_target(parse_config({"target": TARGET, "luns": [{"id": 0, "path": str(d / "f.img")}]}))
    t = ThreadedTarget([built.node]).start()
    t.witness = t.run(_login(t))  # a session that must keep working throughout
    yield t
    t.run(t.witness.close())
    t.stop()
    built.close()


async def _login(t) -> Initiator:
    ini = Initiator("127.0.0.1", t.port, name="iqn.2026-11.org.serverfree:fuzz")
    await ini.connect()
    await ini.login(TARGET)
    return ini


def _templates(ini: Initiator) -> list[bytes]:
    """Valid PDUs of every initiator opcode, as the starting points for mutation."""
    sn = dict(cmdsn=ini.cmdsn, expstatsn=ini.expstatsn)
    return [
        make(Op.SCSI_CMD, final=1, read=1, lun=encode_lun(0), itt=0x100, edtl=512, cdb=bytes([0x28, 0, 0, 0, 0, 1, 0, 0, 1, 0]).ljust(16, b"\0"), **sn).encode(),
        make(Op.SCSI_CMD, b"\xab" * 512, final=1, write=1, lun=encode_lun(0), itt=0x101, edtl=1024, cdb=bytes([0x2A, 0, 0, 0, 0, 2, 0, 0, 2, 0]).ljust(16, b"\0"), **sn).encode(),
        make(Op.DATA_OUT, b"\xcd" * 512, final=1, itt=0x101, ttt=1, buffer_offset=512, datasn=0).encode(),
        make(Op.NOP_OUT, b"hello", immediate=1, final=1, itt=0x102, ttt=NO_TAG, **sn).encode(),
        make(Op.TEXT_REQ, encode_pairs([("SendTargets", "All")]), immediate=1, final=1, itt=0x103, ttt=NO_TAG, **sn).encode(),
        make(Op.TMF_REQ, immediate=1, final=1, function=1, lun=encode_lun(0), itt=0x104, rtt=0x101, **sn).encode(),
        make(Op.LOGIN_REQ, b"InitiatorName=x\0", immediate=1, transit=1, csg=1, nsg=3, itt=0x105, **sn).encode(),
        make(Op.SNACK, itt=0x106).encode(),
    ]


mutation = st.tuples(
    st.integers(0, 7),  # template
    st.lists(st.tuples(st.integers(0, 600), st.integers(0, 255)), max_size=6),  # byte overwrites
    st.one_of(st.none(), st.integers(0, 600)),  # truncate to
    st.binary(max_size=64),  # appended garbage
)


def _mutate(templates: list[bytes], m) -> bytes:
    index, writes, cut, tail = m
    data = bytearray(templates[index])
    for pos, value in writes:
        if pos < len(data):
            data[pos] = value
    if cut is not None:
        data = data[:cut]
    return bytes(data) + tail


async def _drain(ini: Initiator) -> None:
    try:
        while await asyncio.wait_for(ini.reader.read(1 << 16), 0.002):
            pass
    except asyncio.TimeoutError:
        pass


async def _throw(t, batch) -> None:
    """Log in, send a batch of mutated PDUs, read what comes back, hang up, and wait until the target is done.

    A fresh session per batch: a truncated PDU leaves the stream mid-header.  The target reads what
    was sent even after the hang-up, and a command may still be in its handler then; only once the
    session's connection and I_T nexus are gone is everything the batch did visible to the witness.
    """
    ini = await _login(t)
    templates = _templates(ini)
    try:
        for m in batch:
            await ini.send(_mutate(templates, m))
        await _drain(ini)
    except (ConnectionError, OSError):
        pass  # the target may drop a connection after a fatal protocol error
    finally:
        await ini.close()
    deadline = asyncio.get_running_loop().time() + 30
    while t.server.ending or any(c.login.isid != t.witness.isid for c in t.server.connections):
        assert asyncio.get_running_loop().time() < deadline, "the target never finished with a fuzzing session"
        await asyncio.sleep(0.001)


def _witness_reads_capacity(t, resets_before: Counter) -> None:
    """READ CAPACITY on the witness session, which must go on as a real initiator's would.

    A batch can hold a well-formed reset: a stray byte before an unmodified Data-Out header makes a
    Task Management Function Request whose function is the Data-Out opcode, 5 (LOGICAL UNIT RESET).
    After one the target (counting it) owes the witness exactly one UNIT ATTENTION 29h/03h (SAM-5
    5.14), after a TARGET COLD RESET a closed connection (RFC 7143 11.5.1); the witness then retries
    or logs in again, as an initiator does.  Anything else fails the test.
    """
    resets = {k: t.server.counters[k] - resets_before[k] for k in RESETS}
    if resets["tmf.target_cold_reset"]:
        assert t.run(t.witness.reader.read()) == b"", "a cold reset must end the witness's session"
        t.run(t.witness.close())
        t.witness = t.run(_login(t))
    r = t.run(t.witness.command(READ_CAP, read_len=8))
    if r.status == Status.CHECK_CONDITION and (resets["tmf.lun_reset"] or resets["tmf.target_warm_reset"]):
        s = Sense.decode(r.sense)
        assert (int(s.key), s.asc, s.ascq) == (0x6, 0x29, 0x03), s
        r = t.run(t.witness.command(READ_CAP, read_len=8))
    assert r.status == 0 and r.data == struct.pack(">II", 2047, 512), (r, resets)


@fuzz(250)
@given(batch=st.lists(mutation, min_size=1, max_size=12))
def test_mutated_pdus_never_kill_the_target(target, batch):
    resets_before = Counter({k: target.server.counters[k] for k in RESETS})
    target.run(_throw(target, batch))
    _witness_reads_capacity(target, resets_before)  # the other session goes on


@fuzz(300)
@given(header=st.binary(min_size=48, max_size=48), data=st.binary(max_size=300))
def test_garbage_before_login_is_refused_cleanly(target, header, data):
    async def go():
        reader, writer = await asyncio.open_connection("127.0.0.1", target.port)
        writer.write(header + data)
        writer.write_eof()  # nothing more comes: a target waiting for an announced data segment must give up
        try:
            reply = await asyncio.wait_for(reader.read(4096), 10)
        except ConnectionError:
            reply = b""
        writer.close()
        return reply
    reply = target.run(go())
    # A closed connection, or a Login Response carrying a failure status.
    assert reply == b"" or (reply[0] & 0x3F == 0x23 and reply[36] != 0), reply[:48]
    witness = target.run(target.witness.command(READ_CAP, read_len=8))
    assert witness.status == 0


def test_witness_session_and_new_logins_survive_the_fuzzing(target):
    # Runs after the fuzz tests in file order; also meaningful on its own.
    async def go():
        r = await target.witness.command(READ_CAP, read_len=8)
        fresh = await _login(target)
        r2 = await fresh.command(READ_CAP, read_len=8)
        await fresh.close()
        return r, r2
    r, r2 = target.run(go())
    assert r.status == 0 and struct.unpack(">II", r.data) == (2047, 512)
    assert r2.status == 0 and r2.data == r.data


# -- CDB and parameter-list fuzzing straight into the command handler ------------------------------
_target_handler = ScsiTarget("iqn.2026-11.org.serverfree:cdbfuzz",
                             {0: BlockLunDevice(MemoryBlockLun("m", num_blocks=256))})
OPCODES = [0x00, 0x03, 0x12, 0x1A, 0x25, 0x28, 0x2A, 0x35, 0x42, 0x5A, 0x5E, 0x83, 0x84, 0x88, 0x8A,
           0x91, 0x9E, 0xA0, 0xA3]


cdb_case = st.tuples(st.one_of(st.sampled_from(OPCODES), st.integers(0, 255)), st.binary(max_size=31),
                     st.binary(max_size=2048), st.integers(0, 3), st.integers(0, 70000))


@fuzz(150)
@given(cases=st.lists(cdb_case, min_size=10, max_size=30))
def test_mutated_cdbs_fail_cleanly(cases):
    for op, rest, data_out, lun, alloc in cases:
        r = _target_handler.execute(Nexus("iqn.2026-11.org.serverfree:f", lun=lun), bytes([op]) + rest,
                                    data_out, alloc)
        assert r.status in (Status.GOOD, Status.CHECK_CONDITION)
        if r.status == Status.CHECK_CONDITION:
            s = Sense.decode(r.sense)  # well-formed sense, every time
            assert int(s.key) in (0x2, 0x3, 0x5, 0x7)
        else:
            assert r.sense == b""


# -- EXTENDED COPY parameter lists, mutated from a valid one, through the target into the copy manager ---
@pytest.fixture(scope="module")
def xcopy_target():
    from scsi.copymgr import CopyManager
    from scsi.xcopy.cscd import IdentificationCscd
    from scsi.xcopy.param_list import ParameterList
    from scsi.xcopy.segments import BlockToBlock

    luns = {n: MemoryBlockLun(f"x{n}", num_blocks=256, serial=f"XSER{n}") for n in range(2)}
    cm = CopyManager({lun.name: lun for lun in luns.values()})
    handler = ScsiTarget("iqn.2026-11.org.serverfree:xfuzz", {
        n: BlockLunDevice(lun, copy_manager=cm, accepts_xcopy=True) for n, lun in luns.items()})
    plist = ParameterList(
        header={"list_id": 1},
        cscds=tuple(IdentificationCscd(designator=luns[n].naa.hex(), block_length=512) for n in (0, 1)),
        segments=(BlockToBlock(src=0, dst=1, block_count=8, src_lba=0, dst_lba=16),)).encode()
    yield handler, plist
    cm.close()


@fuzz(120)
@given(edits=st.lists(st.lists(st.tuples(st.integers(0, 120), st.integers(0, 255)), max_size=4),
                      min_size=5, max_size=15),
       cut=st.one_of(st.none(), st.integers(0, 120)))
def test_mutated_parameter_lists_fail_cleanly(xcopy_target, edits, cut):
    handler, plist = xcopy_target
    nexus = Nexus("iqn.2026-11.org.serverfree:xf", lun=0)
    for writes in edits:
        data = bytearray(plist)
        for pos, value in writes:
            if pos < len(data):
                data[pos] = value
        if cut is not None:
            data = data[:cut]
        cdb = bytes([0x83, 0]) + bytes(8) + len(data).to_bytes(4, "big") + b"\0\0"
        r = handler.execute(nexus, cdb, bytes(data), 0)
        assert r.status in (Status.GOOD, Status.CHECK_CONDITION)
        if r.status == Status.CHECK_CONDITION:
            s = Sense.decode(r.sense)
            assert int(s.key) in (0x5, 0xA)  # ILLEGAL REQUEST (bad list) or COPY ABORTED (failed segment)
