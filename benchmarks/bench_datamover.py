"""Benchmark: a tgtd-to-tgtd copy by `serverfree datamover serve` vs qemu-img convert, same LUNs.

A private tgtd on 127.0.0.1 serves a source and a destination LUN.  The
product's mover runs as its own process (``serverfree datamover serve
--config``) with both tgtd LUNs in its ``remote:`` section.  One EXTENDED
COPY list (02h segments naming the LUNs by their VPD 83h designators) is
sent over iSCSI to the mover's LUN 0, and its progress is polled with
RECEIVE COPY RESULTS (COPY STATUS) on the same session while the mover moves
the data tgtd -> mover -> tgtd.  In the same run ``qemu-img convert -n``
copies between the same two LUNs.  Destination contents are verified after
each copy.  The LAST line is ``datamover_vs_qemu_ratio=X`` (target >= 0.8).

    .venv/bin/python benchmarks/bench_datamover.py [--size 1G] [--sessions 8] [--depth 16] [--chunk 512K]
"""
from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402
from pyscsi.pyscsi.scsi import SCSI  # noqa: E402

from scsi.commands import ExtendedCopy, RcrServiceAction, ReceiveCopyResults  # noqa: E402
from scsi.designators import cscd_for_device  # noqa: E402
from scsi.devices import LibiscsiDevice  # noqa: E402
from scsi.sense import Sense  # noqa: E402
from scsi.xcopy import BlockToBlock, Header, ParameterList  # noqa: E402
from tests.fixtures.tgtd import Tgtd, parse_size, tgtd_missing_reason  # noqa: E402

MOVER_IQN = "iqn.2026-11.org.serverfree:bench-mover"
INITIATOR = "iqn.2026-11.org.serverfree:bench-client"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def digest(path: Path, size: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        left = size
        while left:
            block = f.read(min(left, 8 << 20))
            if not block:
                break
            h.update(block)
            left -= len(block)
    return h.hexdigest()


def fill(path: Path, size: int) -> None:
    chunk = os.urandom(4 << 20)
    with open(path, "r+b") as f:
        for off in range(0, size, len(chunk)):
            f.write(chunk[:min(len(chunk), size - off)])
        os.fsync(f.fileno())


def clear(path: Path, size: int) -> None:
    with open(path, "r+b") as f:
        f.truncate(0)
        f.truncate(size)


def start_mover(work: Path, src_url: str, dst_url: str, sessions: int, depth: int,
                chunk: int) -> tuple[subprocess.Popen, str, Path]:
    """`serverfree datamover serve --config` reaching both tgtd LUNs; returns (process, LUN 0 URL, log)."""
    gateway = work / "gateway.img"
    with open(gateway, "wb") as f:
        f.truncate(1 << 20)
    port = free_port()
    cfg = {"portal": f"127.0.0.1:{port}", "target": MOVER_IQN,
           "luns": [{"id": 0, "path": str(gateway), "serial": "BENCHGW1"}],
           "remote": [{"name": "client", "url": src_url, "sessions": sessions, "timeout": 600},
                      {"name": "pool", "url": dst_url, "sessions": sessions, "timeout": 600}],
           "acl": [{"initiator": "*", "luns": "all"}],
           "limits": {"chunk_bytes": chunk, "io_depth": depth, "io_workers": 2 * sessions + 2}}
    path = work / "mover.yaml"
    path.write_text(yaml.safe_dump(cfg))
    log_path = work / "mover.log"
    launcher = "import sys; from orchestrator.cli import main; sys.exit(main())"
    with open(log_path, "w") as log_file:
        proc = subprocess.Popen([sys.executable, "-c", launcher, "-v", "datamover", "serve", "--config", str(path)],
                                stdout=subprocess.PIPE, stderr=log_file, stdin=subprocess.DEVNULL, text=True)
    line = proc.stdout.readline()
    if "serving" not in line:
        stop(proc)
        raise SystemExit(f"the mover did not start: {line!r}\n{log_path.read_text()[-2000:]}")
    return proc, f"iscsi://127.0.0.1:{port}/{MOVER_IQN}/0", log_path


def stop(proc: subprocess.Popen) -> None:
    """Stop the mover by its PID (SIGTERM, then SIGKILL)."""
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def designator_cscd(url: str):
    dev = LibiscsiDevice(url, initiator_iqn=INITIATOR, timeout=60)
    try:
        return cscd_for_device(SCSI(dev))
    finally:
        dev.close()


def mover_copy(mover_url: str, src_url: str, dst_url: str, size: int, poll: float) -> tuple[float, int]:
    """Send one EXTENDED COPY over iSCSI to the mover and poll COPY STATUS on the same I_T nexus until it ends.

    Returns (seconds from sending the list to its GOOD status, number of progress polls answered).
    """
    src, dst = designator_cscd(src_url), designator_cscd(dst_url)
    blocks = size // src.block_length
    per = 65535 - 65535 % 2048  # 02h counts blocks in 16 bits
    segs = tuple(BlockToBlock(src=0, dst=1, block_count=min(per, blocks - i), src_lba=i, dst_lba=i)
                 for i in range(0, blocks, per))
    pl = ParameterList(header=Header(list_id=1), cscds=(src, dst), segments=segs)
    dev = LibiscsiDevice(mover_url, initiator_iqn=INITIATOR, timeout=1800)
    try:
        t0 = time.perf_counter()
        copy = dev.submit(ExtendedCopy(None, pl))
        polls, last = 0, -1
        while not copy.done:
            time.sleep(poll)
            status = dev.submit(ReceiveCopyResults(None, RcrServiceAction.COPY_STATUS, list_id=1))
            dev.wait(status)
            if copy.done:
                break
            if status.error is None and status.result is not None and status.result.ok:
                st = ReceiveCopyResults.unmarshall_datain(status.result.data, RcrServiceAction.COPY_STATUS)
                done = st.bytes_transferred << (10 * int(st.transfer_count_units))
                polls += 1
                if done * 10 // size != last:
                    last = done * 10 // size
                    print(f"  progress {done / (1 << 20):.0f} MiB ({st.segments_processed} segments)",
                          file=sys.stderr, flush=True)
                rate = done / max(time.perf_counter() - t0, 1e-6)
                if rate and (size - done) / rate < 2 * poll:
                    break  # nearly done: wait for the status itself so the timing is not rounded to a poll
        dev.wait(copy)
        elapsed = time.perf_counter() - t0
        if copy.error is not None:
            raise SystemExit(f"EXTENDED COPY failed: {copy.error}")
        if not copy.result.ok:
            raise SystemExit(f"EXTENDED COPY failed: {Sense.decode(copy.result.sense) if copy.result.sense else copy.result}")
        return elapsed, polls
    finally:
        dev.close()


def qemu_copy(src_url: str, dst_url: str) -> float:
    qemu = shutil.which("qemu-img")
    if qemu is None:
        raise SystemExit("qemu-img is not installed (apt-get install qemu-utils qemu-block-extra)")
    t0 = time.perf_counter()
    subprocess.run([qemu, "convert", "-n", "-f", "raw", "-O", "raw", src_url, dst_url], check=True)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="1G", help="bytes to copy (default 1G)")
    ap.add_argument("--sessions", type=int, default=8, help="iSCSI sessions per LUN for the mover")
    ap.add_argument("--depth", type=int, default=16, help="chunks in flight per copy")
    ap.add_argument("--chunk", default="512K", help="bytes per read/write request")
    ap.add_argument("--poll", type=float, default=0.5, help="seconds between COPY STATUS polls")
    args = ap.parse_args(argv)
    size = parse_size(args.size)
    reason = tgtd_missing_reason()
    if reason:
        raise SystemExit(reason)
    with tempfile.TemporaryDirectory(prefix="bench-datamover-") as tmp, Tgtd(Path(tmp)) as tgtd:
        target = tgtd.new_target("bench", {1: size, 2: size})
        src_path, dst_path = target.luns[1], target.luns[2]
        fill(src_path, size)
        want = digest(src_path, size)
        proc, mover_url, log_path = start_mover(Path(tmp), target.url(1), target.url(2), args.sessions,
                                                args.depth, parse_size(args.chunk))
        try:
            mover_s, polls = mover_copy(mover_url, target.url(1), target.url(2), size, args.poll)
        finally:
            stop(proc)
        if "EXTENDED COPY list id 1" not in log_path.read_text():
            raise SystemExit("the mover did not log the EXTENDED COPY")
        if digest(dst_path, size) != want:
            raise SystemExit("mover copy is not byte-identical")
        clear(dst_path, size)
        qemu_s = qemu_copy(target.url(1), target.url(2))
        if digest(dst_path, size) != want:
            raise SystemExit("qemu-img copy is not byte-identical")
    mib = size / (1 << 20)
    mover_rate, qemu_rate = mib / mover_s, mib / qemu_s
    print(f"size_mib={mib:.0f} sessions={args.sessions} depth={args.depth} chunk={args.chunk}")
    print(f"datamover_mib_s={mover_rate:.1f} ({mover_s:.2f} s, EXTENDED COPY over iSCSI, {polls} COPY STATUS polls)")
    print(f"qemu_img_convert_mib_s={qemu_rate:.1f} ({qemu_s:.2f} s)")
    print(f"datamover_vs_qemu_ratio={mover_rate / qemu_rate:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
