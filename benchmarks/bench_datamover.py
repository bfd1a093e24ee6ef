"""Benchmark: LUN-to-LUN copy through the copy manager vs qemu-img convert, same tgtd LUNs.

A private tgtd on 127.0.0.1 serves a source and a destination LUN.  The copy
manager reaches both over iSCSI (RemoteLun, libiscsi through pyscsi) and
executes one EXTENDED COPY list (02h segments) handed to it in-process --
the iSCSI front end of the mover only carries the 100-odd-byte list, so the
data path measured here is the mover's.  In the same run ``qemu-img convert
-n`` copies between the same two LUNs.  Destination contents are verified
after each copy.  The LAST line is ``datamover_vs_qemu_ratio=X`` (target >= 0.8).

    .venv/bin/python benchmarks/bench_datamover.py [--size 1G] [--sessions 8] [--depth 16] [--chunk 512K]
"""
from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scsi.copymgr import CopyLimits, CopyManager  # noqa: E402
from scsi.copymgr.client import Client, cscd_for_lun  # noqa: E402
from scsi.luns.remote import RemoteLun  # noqa: E402
from scsi.xcopy import BlockToBlock, Header, ParameterList  # noqa: E402
from tests.fixtures.tgtd import Tgtd, parse_size, tgtd_missing_reason  # noqa: E402


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


def mover_copy(src_url: str, dst_url: str, size: int, sessions: int, depth: int, chunk: int = 1 << 20) -> float:
    src = RemoteLun("client", src_url, sessions=sessions)
    dst = RemoteLun("pool", dst_url, sessions=sessions)
    try:
        limits = CopyLimits(chunk_bytes=chunk, io_depth=depth, io_workers=2 * sessions + 2)
        m = CopyManager({"client": src, "pool": dst}, limits=limits)
        blocks = size // src.block_size
        per = 65535 - 65535 % 2048  # 02h counts blocks in 16 bits
        segs = tuple(BlockToBlock(src=0, dst=1, block_count=min(per, blocks - i), src_lba=i, dst_lba=i)
                     for i in range(0, blocks, per))
        pl = ParameterList(header=Header(list_id=1), cscds=(cscd_for_lun(src), cscd_for_lun(dst)), segments=segs)
        t0 = time.perf_counter()
        r = Client(m).xcopy(pl)
        elapsed = time.perf_counter() - t0
        m.close()
        if not r.ok:
            raise SystemExit(f"EXTENDED COPY failed: {r.sense.hex()}")
        return elapsed
    finally:
        src.close()
        dst.close()


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
        mover_s = mover_copy(target.url(1), target.url(2), size, args.sessions, args.depth, parse_size(args.chunk))
        if digest(dst_path, size) != want:
            raise SystemExit("mover copy is not byte-identical")
        clear(dst_path, size)
        qemu_s = qemu_copy(target.url(1), target.url(2))
        if digest(dst_path, size) != want:
            raise SystemExit("qemu-img copy is not byte-identical")
    mib = size / (1 << 20)
    mover_rate, qemu_rate = mib / mover_s, mib / qemu_s
    print(f"size_mib={mib:.0f} sessions={args.sessions} depth={args.depth} chunk={args.chunk}")
    print(f"datamover_mib_s={mover_rate:.1f} ({mover_s:.2f} s)")
    print(f"qemu_img_convert_mib_s={qemu_rate:.1f} ({qemu_s:.2f} s)")
    print(f"datamover_vs_qemu_ratio={mover_rate / qemu_rate:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
