"""Seeded fuzzing of the data mover: mutated iSCSI PDUs and mutated EXTENDED COPY parameter lists.

Starts ``serverfree datamover serve`` as a child process (stopped by PID) with two 4 MiB LUNs:

* LUN 0 holds a known pattern, written before the fuzzing and masked away from the fuzzing
  initiator by the ACL, so nothing the fuzzer sends may ever change it — not a mutated LUN
  field, not an EXTENDED COPY naming its designator (COPY TARGET DEVICE NOT REACHABLE);
* LUN 1 is the fuzzing initiator's scratch LUN.

Then it throws ``--pdus`` mutated PDUs (every initiator opcode, in fresh sessions of ``--batch``
PDUs, some sessions with CRC32C digests, digests sometimes recomputed over the mutation and
sometimes not) and ``--lists`` mutated parameter lists (``--window`` EXTENDED COPYs in flight
per session).  Afterwards a fresh session must read LUN 0 back identical, and the target must
still serve: TEST UNIT READY, a write and read on LUN 1 and a good EXTENDED COPY.  Prints the
seed, the counts, CPU seconds and the load average; exit status 0 only when all held.

    python tests/fuzz/fuzz_target.py                      # nightly: 100,000 PDUs, 1,000,000 lists
    python tests/fuzz/fuzz_target.py --seed 7 --pdus 2000 --lists 5000
"""
from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import random
import resource
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from scsi.iscsi.initiator import Initiator, InitiatorError  # noqa: E402
from scsi.iscsi.pdu import BHS_LEN, NO_TAG, Op, digest, encode_lun, make  # noqa: E402
from scsi.iscsi.textkeys import encode_pairs  # noqa: E402
from scsi.sense import Sense  # noqa: E402
from scsi.xcopy import BlockOffsetToBlockOffset, BlockToBlock, Header, ParameterList, VerifyCscd  # noqa: E402
from scsi.xcopy.cscd import IdentificationCscd  # noqa: E402

IQN = "iqn.2026-12.org.serverfree:fuzz"
FUZZER = "iqn.2026-12.org.serverfree:fuzzer"
CHECKER = "iqn.2026-12.org.serverfree:checker"
LUN_BYTES = 4 << 20
BLOCKS = LUN_BYTES // 512
NAA = {0: "6001405f0a5e000000000000000000a0", 1: "6001405f0a5e000000000000000000a1"}


@dataclass
class Tally:
    counts: Counter = field(default_factory=Counter)

    def __getitem__(self, k: str) -> int:
        return self.counts[k]

    def add(self, k: str, n: int = 1) -> None:
        self.counts[k] += n


# -- the target --------------------------------------------------------------------------------
def start_target(workdir: Path) -> tuple[subprocess.Popen, int, Path]:
    for n in (0, 1):
        with open(workdir / f"lun{n}.img", "wb") as f:
            f.truncate(LUN_BYTES)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (workdir / "mover.yaml").write_text(
        f"portal: 127.0.0.1:{port}\ntarget: {IQN}\n"
        f"luns:\n  - {{id: 0, path: lun0.img, naa: {NAA[0]}, serial: FUZZPATTERN0}}\n"
        f"  - {{id: 1, path: lun1.img, naa: {NAA[1]}, serial: FUZZSCRATCH1}}\n"
        f"acl:\n  - {{initiator: {FUZZER}, luns: [1]}}\n  - {{initiator: {CHECKER}, luns: all}}\n"
        "limits: {max_segments: 16, max_cscds: 8}\n")
    serve = Path(sys.executable).with_name("serverfree")
    cmd = [str(serve)] if serve.exists() else [sys.executable, "-c",
                                               "import sys; from orchestrator.cli import main; sys.exit(main())"]
    log = open(workdir / "serve.log", "wb")
    proc = subprocess.Popen([*cmd, "datamover", "serve", "--config", str(workdir / "mover.yaml")],
                            stdout=log, stderr=subprocess.STDOUT, cwd=workdir)
    deadline = time.monotonic() + 60
    while b"serving" not in (workdir / "serve.log").read_bytes():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the target did not start: {(workdir / 'serve.log').read_text()[-2000:]}")
        time.sleep(0.05)
    return proc, port, workdir / "serve.log"


def stop_target(proc: subprocess.Popen) -> resource.struct_rusage | None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        _, _, usage = os.wait4(proc.pid, 0)
        proc.returncode = 0
        return usage
    except ChildProcessError:
        return None


async def session(port: int, name: str, **ops: str) -> Initiator:
    ini = Initiator("127.0.0.1", port, name=name)
    await ini.connect()
    await ini.login(IQN, operational=ops)
    return ini


def rw16(op: int, lba: int, n: int) -> bytes:
    return bytes([op, 0]) + struct.pack(">QI", lba, n) + b"\0\0"


def xcopy_cdb(length: int) -> bytes:
    return bytes([0x83, 0]) + bytes(8) + struct.pack(">I", length) + b"\0\0"


def pattern() -> bytes:
    return b"".join(hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(LUN_BYTES // 32))


# -- mutated PDUs -------------------------------------------------------------------------------
def templates(ini: Initiator, rng: random.Random) -> list[bytes]:
    """Valid PDUs of every initiator opcode, against the scratch LUN, as starting points."""
    sn = dict(cmdsn=ini.cmdsn, expstatsn=ini.expstatsn)
    lun = encode_lun(1)
    cmd = lambda cdb, data=b"", **kw: make(Op.SCSI_CMD, data, final=1, lun=lun, itt=rng.randrange(1 << 16),  # noqa: E731
                                          cdb=cdb.ljust(16, b"\0"), **sn, **kw)
    small = ParameterList(header=Header(list_id=9, list_id_usage=2), cscds=(_cscd(1),),
                          segments=(BlockToBlock(src=0, dst=0, block_count=4, src_lba=0, dst_lba=64),)).encode()
    return [p.encode() for p in (
        cmd(rw16(0x88, 8, 2), read=1, edtl=1024),
        cmd(rw16(0x8A, 8, 2), b"\xab" * 1024, write=1, edtl=1024),
        cmd(rw16(0x8A, 16, 4), b"\xcd" * 512, write=1, edtl=2048),  # the rest as Data-Out
        cmd(bytes([0x89, 0]) + struct.pack(">Q", 4) + bytes([0, 0, 0, 1, 0, 0]), bytes(1024), write=1, edtl=1024),
        cmd(xcopy_cdb(len(small)), small, write=1, edtl=len(small)),
        cmd(bytes([0x84, 0, 9]) + bytes(7) + struct.pack(">I", 64) + b"\0\0", read=1, edtl=64),
        cmd(bytes([0x12, 0, 0, 0, 96, 0]), read=1, edtl=96),
        cmd(bytes([0xA0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0]), read=1, edtl=256),
        cmd(bytes([0x42, 0, 0, 0, 0, 0, 0, 0, 24, 0]), bytes([0, 22, 0, 16]) + bytes(4) + struct.pack(">QI", 0, 8)
            + bytes(4), write=1, edtl=24),
        cmd(bytes([0x5F, 0, 0, 0, 0, 0, 0, 0, 24, 0]), bytes(8) + (7).to_bytes(8, "big") + bytes(8), write=1, edtl=24),
        make(Op.DATA_OUT, b"\xee" * 512, final=1, lun=lun, itt=rng.randrange(1 << 16), ttt=NO_TAG, datasn=0,
             buffer_offset=512),
        make(Op.NOP_OUT, b"ping", immediate=1, final=1, itt=rng.randrange(1 << 16), ttt=NO_TAG, **sn),
        make(Op.TEXT_REQ, encode_pairs([("SendTargets", "All")]), immediate=1, final=1, itt=7, ttt=NO_TAG, **sn),
        make(Op.TMF_REQ, immediate=1, final=1, function=rng.choice((1, 2, 4, 5, 6, 7)), lun=lun, itt=8,
             rtt=rng.randrange(1 << 16), **sn),
        make(Op.LOGOUT_REQ, immediate=1, final=1, reason=rng.choice((0, 1, 2)), itt=9, cid=0, **sn),
        make(Op.LOGIN_REQ, b"InitiatorName=x\0", immediate=1, transit=1, csg=1, nsg=3, itt=10, **sn),
        make(Op.SNACK, itt=11),
    )]


def mutate(raw: bytes, rng: random.Random, *, keep_framing: bool) -> bytes:
    """Overwrite or flip a few bytes; unless ``keep_framing``, maybe also lie about lengths, cut or extend.

    Framing-preserving mutations leave TotalAHSLength and DataSegmentLength (bytes 4-7) and the size
    alone, so the session survives and the next PDU is parsed too; the stream-breaking ones end a batch.
    """
    data = bytearray(raw)
    for _ in range(rng.randint(1, 6)):
        pos = rng.randrange(len(data) + 8)
        if keep_framing and 4 <= pos <= 7:
            continue
        value = rng.choice((0, 0xFF, 0x80, 0x7F, 1, rng.randrange(256)))
        if pos < len(data):
            data[pos] = value if rng.random() < 0.7 else data[pos] ^ (1 << rng.randrange(8))
    if keep_framing:
        return bytes(data)
    roll = rng.random()
    if roll < 0.08:  # DataSegmentLength lies
        data[5:8] = rng.randrange(1 << 24).to_bytes(3, "big")
    elif roll < 0.14:  # TotalAHSLength lies
        data[4] = rng.randrange(256)
    elif roll < 0.28:
        data = data[:rng.randrange(len(data) + 1)]
    elif roll < 0.38:
        data += rng.randbytes(rng.randint(1, 64))
    return bytes(data)


def frame_with_digests(raw: bytes, header_digest: bool, data_digest: bool, rng: random.Random,
                       corrupt: bool = False) -> bytes:
    """Add CRC32C digests where the (mutated) PDU's own fields say the segments are; now and then wrong."""
    if len(raw) < BHS_LEN:
        return raw
    end = BHS_LEN + raw[4] * 4
    head, rest = raw[:end], raw[end:]
    out = head + (digest(head) if header_digest else b"")
    if data_digest and rest:
        out += rest + digest(rest)
    else:
        out += rest
    if corrupt and len(out) > BHS_LEN:  # a digest (or anything after the BHS) goes wrong
        i = rng.randrange(BHS_LEN, len(out))
        out = out[:i] + bytes([out[i] ^ 0x5A]) + out[i + 1:]
    return out


async def fuzz_pdus(port: int, total: int, batch: int, rng: random.Random, tally: Tally) -> None:
    sent = 0
    while sent < total:
        digests = rng.random() < 0.3
        ops = {"HeaderDigest": "CRC32C", "DataDigest": "CRC32C"} if digests else {}
        try:
            ini = await session(port, FUZZER, **ops)
        except (InitiatorError, ConnectionError, OSError, asyncio.TimeoutError) as e:
            tally.add("pdu.login_failures")
            raise RuntimeError(f"the fuzzing initiator could not log in after {sent} PDUs: {e}") from e
        tally.add("pdu.sessions")
        base = templates(ini, rng)
        # A Logout ends the session, so it (like the stream-breaking mutations) only ever ends a batch.
        middle = [raw for raw in base if raw[0] & 0x3F != Op.LOGOUT_REQ]
        try:
            count = min(batch, total - sent)
            for i in range(count):
                last = i == count - 1
                raw = mutate(rng.choice(base if last else middle), rng, keep_framing=not last or rng.random() < 0.5)
                if digests:
                    raw = frame_with_digests(raw, True, True, rng, corrupt=last and rng.random() < 0.3)
                await ini.send(raw)
                sent += 1
            tally.add("pdu.response_bytes", await drain(ini))
        except (ConnectionError, OSError):
            tally.add("pdu.sessions_closed_by_target")
        finally:
            await ini.close()
    tally.add("pdus", sent)


async def drain(ini: Initiator) -> int:
    got = 0
    try:
        while True:
            chunk = await asyncio.wait_for(ini.reader.read(1 << 16), 0.02)
            if not chunk:
                break
            got += len(chunk)
    except asyncio.TimeoutError:
        pass
    return got


# -- mutated EXTENDED COPY parameter lists ------------------------------------------------------------
def _cscd(lun: int) -> IdentificationCscd:
    return IdentificationCscd(designator=NAA[lun], pdt=0, block_length=512)


def seed_lists() -> list[bytes]:
    h = lambda n: Header(list_id=n & 0xFF, list_id_usage=2)  # noqa: E731
    return [p.encode() for p in (
        ParameterList(header=h(1), cscds=(_cscd(1),),
                      segments=(BlockToBlock(src=0, dst=0, block_count=8, src_lba=0, dst_lba=100),)),
        ParameterList(header=h(2), cscds=(_cscd(1), _cscd(1)),
                      segments=(BlockOffsetToBlockOffset(src=0, dst=1, byte_count=3000, src_lba=1, dst_lba=200,
                                                         src_byte_offset=5, dst_byte_offset=9),
                                VerifyCscd(src=1, tur=True),
                                BlockToBlock(src=1, dst=0, block_count=2, src_lba=3, dst_lba=300))),
        # names the masked pattern LUN: must always be refused (0Dh/02h), whatever the mutation keeps
        ParameterList(header=h(3), cscds=(_cscd(1), _cscd(0)),
                      segments=(BlockToBlock(src=0, dst=1, block_count=4, src_lba=0, dst_lba=0),)),
        ParameterList(header=h(4), cscds=(_cscd(0), _cscd(1)),
                      segments=(BlockToBlock(src=0, dst=1, block_count=4, src_lba=0, dst_lba=400),)),
    )]


def mutate_list(raw: bytes, rng: random.Random) -> bytes:
    data = bytearray(raw)
    for _ in range(rng.randint(1, 4)):
        # header and descriptor length fields first: that is where parsers go wrong
        pos = rng.choice((rng.randrange(16), rng.randrange(len(data))))
        data[pos] = rng.choice((0, 0xFF, 0x80, 1, rng.randrange(256), data[pos] ^ (1 << rng.randrange(8))))
    roll = rng.random()
    if roll < 0.1:
        data = data[:rng.randrange(len(data) + 1)]
    elif roll < 0.18:
        data += rng.randbytes(rng.randint(1, 96))
    return bytes(data)


async def fuzz_lists(port: int, total: int, window: int, rng: random.Random, tally: Tally) -> None:
    seeds = seed_lists()
    ini = await session(port, FUZZER)
    sent = 0
    try:
        while sent < total:
            inflight = {}
            for _ in range(min(window, total - sent)):
                data = mutate_list(rng.choice(seeds), rng)
                length = len(data) if rng.random() < 0.9 else rng.choice((0, 1, 15, 16, len(data) + 1, 1 << 20))
                pdu, itt = ini.scsi_pdu(xcopy_cdb(length), lun=1, write_data=data)
                if not data:  # an empty list: no Data-Out at all
                    pdu.fields["edtl"] = 0
                await ini.send(pdu)
                inflight[itt] = data
                sent += 1
            while inflight:
                p = await ini.recv(timeout=120)
                if p.opcode == Op.R2T and p["itt"] in inflight:
                    await ini.data_out(p["itt"], p["ttt"], inflight[p["itt"]], p["buffer_offset"],
                                       p["desired_length"])
                    continue
                if p.opcode == Op.REJECT:
                    tally.add("list.rejects")
                    continue
                if p.opcode != Op.SCSI_RSP or p["itt"] not in inflight:
                    continue
                del inflight[p["itt"]]
                classify(p, tally)
    finally:
        await ini.close()
    tally.add("lists", sent)


def classify(p, tally: Tally) -> None:
    status = p["status"]
    if status == 0:
        tally.add("list.good")
    elif status == 2:
        sense = Sense.decode(p.data[2:2 + int.from_bytes(p.data[:2], "big")])
        tally.add(f"list.check.{int(sense.key):x}/{sense.asc:02x}/{sense.ascq:02x}")
    else:
        tally.add(f"list.status.{status:#04x}")


# -- the verdict ---------------------------------------------------------------------------------
async def write_pattern(port: int, data: bytes) -> None:
    ini = await session(port, CHECKER)
    step = 256 * 1024
    for off in range(0, len(data), step):
        r = await ini.command(rw16(0x8A, off // 512, step // 512), lun=0, write_data=data[off:off + step])
        if r.status != 0:
            raise RuntimeError(f"writing the pattern failed at byte {off}: status {r.status}")
    await ini.logout()
    await ini.close()


async def verdict(port: int, data: bytes) -> dict[str, bool]:
    ini = await session(port, CHECKER)
    got = bytearray()
    step = 256 * 1024
    for off in range(0, len(data), step):
        r = await ini.command(rw16(0x88, off // 512, step // 512), lun=0, read_len=step)
        got += r.data if r.status == 0 else b""
    tur = await ini.command(bytes(6), lun=1)
    probe = os.urandom(4096)
    w = await ini.command(rw16(0x8A, 1000, 8), lun=1, write_data=probe)
    r = await ini.command(rw16(0x88, 1000, 8), lun=1, read_len=4096)
    good = ParameterList(header=Header(list_id=200, list_id_usage=2), cscds=(_cscd(1),),
                         segments=(BlockToBlock(src=0, dst=0, block_count=8, src_lba=1000, dst_lba=2000),)).encode()
    x = await ini.command(xcopy_cdb(len(good)), lun=1, write_data=good)
    c = await ini.command(rw16(0x88, 2000, 8), lun=1, read_len=4096)
    await ini.logout()
    await ini.close()
    return {"pattern LUN identical": bytes(got) == data, "TEST UNIT READY": tur.status == 0,
            "write and read back": w.status == 0 and r.data == probe,
            "EXTENDED COPY still works": x.status == 0 and c.data == probe}


@dataclass
class Outcome:
    ok: bool
    counts: Counter
    checks: dict[str, bool]


def run(pdus: int, lists: int, seed: int, *, batch: int = 50, window: int = 32, workdir: Path | None = None,
        out=sys.stdout) -> Outcome:
    own = workdir is None
    workdir = Path(workdir or tempfile.mkdtemp(prefix="serverfree-fuzz-"))
    print(f"fuzz: seed {seed}, {pdus} PDUs (batches of {batch}), {lists} EXTENDED COPY lists "
          f"(window {window}); workdir {workdir}", file=out, flush=True)
    proc, port, log = start_target(workdir)
    tally, data = Tally(), pattern()
    started, cpu0 = time.monotonic(), time.process_time()
    checks: dict[str, bool] = {}
    try:
        asyncio.run(write_pattern(port, data))
        rng = random.Random(seed)
        asyncio.run(fuzz_pdus(port, pdus, batch, rng, tally))
        t_pdus = time.monotonic() - started
        asyncio.run(fuzz_lists(port, lists, window, random.Random(seed + 1), tally))
        checks = asyncio.run(verdict(port, data))
        checks["target process alive"] = proc.poll() is None
    finally:
        usage = stop_target(proc)
    wall = time.monotonic() - started
    target_cpu = (usage.ru_utime + usage.ru_stime) if usage else float("nan")
    print(f"fuzz: sent {tally['pdus']} PDUs in {tally['pdu.sessions']} sessions "
          f"({tally['pdu.sessions_closed_by_target']} closed by the target) in {t_pdus:.1f} s; "
          f"{tally['lists']} lists in {wall - t_pdus:.1f} s", file=out)
    outcomes = {k[5:]: v for k, v in sorted(tally.counts.items()) if k.startswith("list.")}
    print(f"fuzz: list outcomes {outcomes}", file=out)
    print(f"fuzz: seed {seed}; wall {wall:.1f} s; CPU seconds: fuzzer {time.process_time() - cpu0:.1f}, "
          f"target {target_cpu:.1f}; load average {os.getloadavg()[0]:.2f}", file=out)
    for name, ok in checks.items():
        print(f"fuzz: {'ok  ' if ok else 'FAIL'} {name}", file=out)
    ok = bool(checks) and all(checks.values())
    if not ok:
        print(f"fuzz: target log: {log}", file=out)
    elif own:
        shutil.rmtree(workdir, ignore_errors=True)
    return Outcome(ok, tally.counts, checks)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pdus", type=int, default=100_000, help="mutated PDUs to send (default 100,000)")
    ap.add_argument("--lists", type=int, default=1_000_000, help="mutated EXTENDED COPY lists (default 1,000,000)")
    ap.add_argument("--seed", type=int, default=None, help="random seed (default: a fresh one, printed)")
    ap.add_argument("--batch", type=int, default=50, help="PDUs per fuzzing session")
    ap.add_argument("--window", type=int, default=32, help="EXTENDED COPYs in flight")
    ap.add_argument("--workdir", type=Path, default=None)
    a = ap.parse_args(argv)
    seed = a.seed if a.seed is not None else random.SystemRandom().randrange(1 << 32)
    return 0 if run(a.pdus, a.lists, seed, batch=a.batch, window=a.window, workdir=a.workdir).ok else 1


if __name__ == "__main__":
    sys.exit(main())
