"""LibiscsiDevice over a million commands: RSS growth and commands per second.

Workload: sequential 1-block READ(16), one command in flight, through
``LibiscsiDevice.execute`` against a private tgtd on 127.0.0.1 (started and
stopped by PID here).  Peer, measured in the same run on the same LUN:
libiscsi's own C tool ``iscsi-perf -m 1 -b 1`` (sequential 1-block READ16,
1 in flight), i.e. what plain C libiscsi achieves on this machine and target.

Last line: ``rss_growth_kib=X cmds_per_s=Y ratio_vs_iscsi_perf=Z``
(ratio = our commands/s divided by iscsi-perf's IOPS, the mean of a run
before and one after ours, since the machine is shared).

    .venv/bin/python benchmarks/bench_libiscsi_leak.py [--commands 1000000]
"""
from __future__ import annotations

import argparse
import gc
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "fixtures"))

from tgtd import Tgtd  # noqa: E402

from scsi.devices import RawCommand  # noqa: E402
from scsi.devices.iscsi import LibiscsiDevice  # noqa: E402

BLOCK = 512
LUN_BYTES = 64 << 20


def rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def peer_iops(url: str, seconds: int) -> float:
    if shutil.which("iscsi-perf") is None:
        raise SystemExit("iscsi-perf not installed (Debian package libiscsi-bin)")
    out = subprocess.run(["iscsi-perf", "-m", "1", "-b", "1", "-t", str(seconds), url],
                         capture_output=True, text=True, timeout=seconds + 30).stdout
    found = re.findall(r"^iops average (\d+)", out, re.M)
    if not found:
        raise SystemExit(f"cannot read iscsi-perf's result: {out[-300:]!r}")
    return float(found[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--commands", type=int, default=1_000_000)
    ap.add_argument("--peer-seconds", type=int, default=5)
    args = ap.parse_args()
    nblocks = LUN_BYTES // BLOCK
    with Tgtd() as daemon:
        url = daemon.new_target("bench", {1: LUN_BYTES}).url(1)
        peer_before = peer_iops(url, args.peer_seconds)
        with LibiscsiDevice(url) as dev:
            cmd = RawCommand(bytes([0x88, 0]) + bytes(8) + (1).to_bytes(4, "big") + bytes(2), datain_len=BLOCK)
            for i in range(10_000):  # warm-up
                dev.execute(cmd)
            gc.collect()
            before = rss_kib()
            start = time.perf_counter()
            report = max(1, args.commands // 10)
            for i in range(args.commands):
                cmd.cdb[2:10] = (i % nblocks).to_bytes(8, "big")
                dev.execute(cmd)
                if (i + 1) % report == 0:
                    print(f"{i + 1} commands, rss {rss_kib()} KiB", file=sys.stderr, flush=True)
            elapsed = time.perf_counter() - start
            gc.collect()
            growth = rss_kib() - before
        # the machine is shared: measure the peer before and after, use the mean
        peer_after = peer_iops(url, args.peer_seconds)
    peer = (peer_before + peer_after) / 2
    print(f"peer iscsi-perf -m 1 -b 1: {peer_before:.0f} IOPS before, {peer_after:.0f} after")
    rate = args.commands / elapsed
    print(f"{args.commands} commands in {elapsed:.1f} s through LibiscsiDevice.execute")
    print(f"rss_growth_kib={growth} cmds_per_s={rate:.0f} ratio_vs_iscsi_perf={rate / peer:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
