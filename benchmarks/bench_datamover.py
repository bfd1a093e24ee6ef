"""Benchmark: a tgtd-to-tgtd copy by `serverfree datamover serve` vs qemu-img convert, same LUNs.

A private tgtd on 127.0.0.1 serves a source and a destination LUN.  The
product's mover runs as its own process (``serverfree datamover serve
--config``) with both tgtd LUNs in its ``remote:`` section.  One EXTENDED
COPY list (02h segments naming the LUNs by their VPD 83h designators) is
sent over iSCSI to the mover's LUN 0, and its progress is polled with
RECEIVE COPY RESULTS (COPY STATUS) on the same session while the mover moves
the data tgtd -> mover -> tgtd.  In the same run ``qemu-img convert -n``
copies between the same two LUNs.  Destination contents are verified after
each copy.  Each size (1 GiB and 4 GiB by default) prints both rates, the CPU
seconds per GiB of the mover process (its own utime+stime over the copy, from
/proc) and of qemu-img (rusage of the child), and the load average before and
after.  The ratio is printed only when the load average stayed at or below the
core count (a loaded machine slows the two unequally); otherwise the line
says why.  The LAST line is ``datamover_vs_qemu_ratio=X`` for the largest size
(targets on a quiet machine: X >= 1.2, mover CPU s/GiB <= qemu-img's).

Where the LUNs' backing files live decides what is compared.  On a disk the
mover's GOOD waits for the medium (it flushes before GOOD) while qemu-img's
default leaves its writes in the page cache, so the run first measures the
medium's durable write rate beside the LUNs and prints it; ``--backing-dir
/dev/shm`` keeps both LUNs in RAM, where neither peer waits on a disk and the
two copy engines (and the target's work for each) are what differ.

    .venv/bin/python benchmarks/bench_datamover.py [--sizes 1G,4G] [--sessions 2] [--depth 16] [--chunk 1M]
        [--backing-dir /dev/shm] [--durable-peer] [--profile DIR --with py-spy|strace|perf]
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


def backing_fs(path: Path) -> str:
    """The file system type and device holding ``path`` (its longest mount point in /proc/mounts)."""
    best, found = "", "unknown"
    for line in Path("/proc/mounts").read_text().splitlines():
        dev, mnt, fstype = line.split()[:3]
        if str(path.resolve()).startswith(mnt.rstrip("/") + "/") and len(mnt) > len(best):
            best, found = mnt, f"{fstype} on {dev} ({mnt})"
    return found


def medium_rate(work: Path, size: int) -> float:
    """MiB/s of writing ``size`` bytes to a file beside the LUNs and fdatasync-ing it.

    The mover's GOOD comes after SYNCHRONIZE CACHE, so on a disk its rate can
    be no better than this; qemu-img's default (cache=unsafe) never flushes.
    """
    path = work / "medium-rate.tmp"
    chunk = os.urandom(4 << 20)
    t0 = time.perf_counter()
    with open(path, "wb") as f:
        for off in range(0, size, len(chunk)):
            f.write(chunk[:min(len(chunk), size - off)])
        os.fdatasync(f.fileno())
    elapsed = time.perf_counter() - t0
    path.unlink()
    return size / (1 << 20) / elapsed


def start_mover(work: Path, remotes: dict[str, str], sessions: int, depth: int,
                chunk: int, flush_behind: int | None = None) -> tuple[subprocess.Popen, str, Path]:
    """`serverfree datamover serve --config` reaching the tgtd LUNs {name: URL}; returns (process, LUN 0 URL, log)."""
    gateway = work / "gateway.img"
    with open(gateway, "wb") as f:
        f.truncate(1 << 20)
    port = free_port()
    limits = {"io_depth": depth, "io_workers": 2 * sessions + 2,
              "total_concurrent_copies": 16, "max_concurrent_copies": 8}
    if chunk:
        limits["chunk_bytes"] = chunk
    cfg = {"portal": f"127.0.0.1:{port}", "target": MOVER_IQN,
           "luns": [{"id": 0, "path": str(gateway), "serial": "BENCHGW1"}],
           "remote": [{"name": name, "url": url, "sessions": sessions, "timeout": 600}
                      for name, url in remotes.items()],
           "acl": [{"initiator": "*", "luns": "all"}],
           "limits": limits}
    if flush_behind is not None:
        cfg["limits"]["flush_behind_bytes"] = flush_behind
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


def mover_copy(mover_url: str, src_url: str, dst_url: str, size: int, poll: float,
               initiator: str = INITIATOR, quiet: bool = False) -> tuple[float, int]:
    """Send one EXTENDED COPY over iSCSI to the mover and poll COPY STATUS on the same I_T nexus until it ends.

    Returns (seconds from sending the list to its GOOD status, number of progress polls answered).
    """
    src, dst = designator_cscd(src_url), designator_cscd(dst_url)
    blocks = size // src.block_length
    per = 65535 - 65535 % 2048  # 02h counts blocks in 16 bits
    segs = tuple(BlockToBlock(src=0, dst=1, block_count=min(per, blocks - i), src_lba=i, dst_lba=i)
                 for i in range(0, blocks, per))
    pl = ParameterList(header=Header(list_id=1), cscds=(src, dst), segments=segs)
    dev = LibiscsiDevice(mover_url, initiator_iqn=initiator, timeout=1800)
    try:
        t0 = time.perf_counter()
        copy = dev.submit(ExtendedCopy(None, pl))
        polls, last = 0, -1
        # keep the session serviced between polls: the list goes out at once and its status is
        # read the moment it arrives (a sleep here would delay both by up to one poll interval)
        while not dev.wait(copy, timeout=poll):
            status = dev.submit(ReceiveCopyResults(None, RcrServiceAction.COPY_STATUS, list_id=1))
            dev.wait(status)
            if status.error is None and status.result is not None and status.result.ok:
                st = ReceiveCopyResults.unmarshall_datain(status.result.data, RcrServiceAction.COPY_STATUS)
                done = st.bytes_transferred << (10 * int(st.transfer_count_units))
                polls += 1
                if done * 10 // size != last and not quiet:
                    last = done * 10 // size
                    print(f"  progress {done / (1 << 20):.0f} MiB ({st.segments_processed} segments)",
                          file=sys.stderr, flush=True)
        dev.wait(copy)
        elapsed = time.perf_counter() - t0
        if copy.error is not None:
            raise SystemExit(f"EXTENDED COPY failed: {copy.error}")
        if not copy.result.ok:
            raise SystemExit(f"EXTENDED COPY failed: {Sense.decode(copy.result.sense) if copy.result.sense else copy.result}")
        return elapsed, polls
    finally:
        dev.close()


def qemu_copy(src_url: str, dst_url: str, cache: str | None = None) -> tuple[float, float]:
    """``qemu-img convert -n [-t CACHE]`` between the LUNs: (wall seconds, CPU seconds of qemu-img).

    Without ``cache`` qemu-img converts with its default for convert, ``unsafe``: it never sends
    SYNCHRONIZE CACHE, so what it wrote may still sit in the target's cache when it exits.
    """
    qemu = shutil.which("qemu-img")
    if qemu is None:
        raise SystemExit("qemu-img is not installed (apt-get install qemu-utils qemu-block-extra)")
    t0 = time.perf_counter()
    proc = subprocess.Popen([qemu, "convert", "-n", *(["-t", cache] if cache else []),
                             "-f", "raw", "-O", "raw", src_url, dst_url])
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"qemu-img convert failed with exit code {proc.returncode}")
    return time.perf_counter() - t0, usage.ru_utime + usage.ru_stime


def process_cpu(pid: int) -> float:
    """utime + stime of a process, all its threads, in seconds (/proc/PID/stat fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tgtd_cpu(pid: int, since: tuple[float, ...] | None = None) -> tuple[float, ...]:
    """(all threads, event-loop thread) CPU seconds and minor page faults of tgtd, or their growth ``since``.

    tgtd's main thread (TID = PID) runs its iSCSI event loop -- every PDU
    either peer sends or receives passes through it -- while its bs_rdwr
    worker threads do the pread/pwrite; on two cores that loop is what both
    copies wait on, so its seconds per GiB show which peer costs the target less.
    The faults count buffers tgtd touches for the first time: it takes a fresh
    mapping for each command of 1 MiB or more (two faults per 4 KiB page copied).
    """
    total = process_cpu(pid)
    fields = Path(f"/proc/{pid}/task/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    main = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    faults = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[7])
    now = (total, main, faults)
    return now if since is None else tuple(a - b for a, b in zip(now, since))


def loadavg() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


class Profiler:
    """Attach py-spy, strace -c or perf to the mover for one copy (``--profile DIR --with TOOL``)."""

    def __init__(self, tool: str | None, out: Path | None, pid: int, label: str):
        self.proc: subprocess.Popen | None = None
        if not tool or out is None:
            return
        out.mkdir(parents=True, exist_ok=True)
        base = out / f"mover-{label}"
        if tool == "py-spy":
            exe = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
            argv = [exe, "record", "--pid", str(pid), "--rate", "200", "--format", "raw", "--gil", "-o", f"{base}.pyspy.txt"]
        elif tool == "strace":
            argv = ["strace", "-c", "-f", "-p", str(pid), "-o", f"{base}.strace.txt"]
        elif tool == "perf":
            argv = ["perf", "record", "-g", "-p", str(pid), "-o", f"{base}.perf.data"]
        else:
            raise SystemExit(f"--with: unknown profiler {tool!r} (py-spy, strace, perf)")
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.0)  # let it attach before the copy starts

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def run_size(size: int, args: argparse.Namespace) -> dict:
    """One size: the mover's copy, then qemu-img's, between the same two tgtd LUNs."""
    with tempfile.TemporaryDirectory(prefix="bench-datamover-", dir=args.backing_dir) as tmp, Tgtd(Path(tmp)) as tgtd:
        target = tgtd.new_target("bench", {1: size, 2: size})
        if args.target_mrdsl:  # both peers log in after this, so both get the same PDU size
            tgtd.tgtadm("--op", "update", "--mode", "target", "--tid", str(target.tid),
                        "--name", "MaxRecvDataSegmentLength", "--value", str(args.target_mrdsl))
        src_path, dst_path = target.luns[1], target.luns[2]
        backing = backing_fs(Path(tmp))
        medium = 0.0 if backing.startswith("tmpfs") else medium_rate(Path(tmp), size)
        fill(src_path, size)
        want = digest(src_path, size)
        os.sync()  # each copy starts with nothing dirty: the fill's writeback must not run under either copy
        load_before = loadavg()
        proc, mover_url, log_path = start_mover(Path(tmp), {"client": target.url(1), "pool": target.url(2)},
                                                args.sessions, args.depth, parse_size(args.chunk) if args.chunk else 0,
                                                None if args.flush_behind is None else parse_size(args.flush_behind))
        try:
            profiler = Profiler(args.with_tool, args.profile, proc.pid, f"{size >> 20}M")
            cpu0 = process_cpu(proc.pid)
            tgtd0 = tgtd_cpu(tgtd.proc.pid)
            try:
                mover_s, polls = mover_copy(mover_url, target.url(1), target.url(2), size, args.poll)
            finally:
                mover_cpu = process_cpu(proc.pid) - cpu0
                mover_tgtd = tgtd_cpu(tgtd.proc.pid, tgtd0)
                profiler.stop()
        finally:
            stop(proc)
        mover_log = log_path.read_text()
        if "EXTENDED COPY list id 1" not in mover_log:
            raise SystemExit("the mover did not log the EXTENDED COPY")
        pipeline = [line.split("block copy of", 1)[1].strip() for line in mover_log.splitlines()
                    if "block copy of" in line]
        phases = [line.split("bytes, GOOD in", 1)[1].strip() for line in mover_log.splitlines()
                  if "EXTENDED COPY list id 1 " in line and "bytes, GOOD in" in line]
        if digest(dst_path, size) != want:
            raise SystemExit("mover copy is not byte-identical")
        clear(dst_path, size)
        os.sync()
        tgtd0 = tgtd_cpu(tgtd.proc.pid)
        qemu_s, qemu_cpu = qemu_copy(target.url(1), target.url(2))
        qemu_tgtd = tgtd_cpu(tgtd.proc.pid, tgtd0)
        if digest(dst_path, size) != want:
            raise SystemExit("qemu-img copy is not byte-identical")
        durable_s = 0.0
        if args.durable_peer:  # the same copy made durable before qemu-img exits, as the mover's GOOD is
            clear(dst_path, size)
            os.sync()
            durable_s, _ = qemu_copy(target.url(1), target.url(2), cache="writeback")
            if digest(dst_path, size) != want:
                raise SystemExit("qemu-img -t writeback copy is not byte-identical")
    return {"backing": backing, "medium": medium, "durable_s": durable_s, "pipeline": pipeline, "phases": phases, "size": size, "mover_s": mover_s, "polls": polls, "mover_cpu": mover_cpu, "qemu_s": qemu_s,
            "qemu_cpu": qemu_cpu, "mover_tgtd": mover_tgtd, "qemu_tgtd": qemu_tgtd, "load_before": load_before, "load_after": loadavg()}


def report(r: dict, args: argparse.Namespace) -> str:
    """Print one size's figures; return the line that ends them (the ratio, or why there is none)."""
    gib = r["size"] / (1 << 30)
    mib = r["size"] / (1 << 20)
    mover_rate, qemu_rate = mib / r["mover_s"], mib / r["qemu_s"]
    cores = os.cpu_count() or 1
    print(f"size_mib={mib:.0f} sessions={args.sessions} depth={args.depth} chunk={args.chunk or 'mover default'} "
          f"tgtd_mrdsl={args.target_mrdsl or 'default'} "
          f"loadavg_before={r['load_before']:.2f} loadavg_after={r['load_after']:.2f} cores={cores}")
    print(f"luns_backed_by={r['backing']}" + (f" medium_durable_write_mib_s={r['medium']:.1f} (write + fdatasync of "
          f"{mib:.0f} MiB beside the LUNs: the most a copy that is durable at GOOD can reach)" if r["medium"] else ""))
    print(f"datamover_mib_s={mover_rate:.1f} ({r['mover_s']:.2f} s, EXTENDED COPY over iSCSI, "
          f"{r['polls']} COPY STATUS polls) mover_cpu_s_per_gib={r['mover_cpu'] / gib:.2f}")
    for line in r["pipeline"]:
        print(f"  mover pipeline: block copy of {line}")
    for line in r["phases"]:
        print(f"  mover phases: GOOD in {line} (the rest of the wall time is iSCSI to and from the mover)")
    print(f"qemu_img_convert_mib_s={qemu_rate:.1f} ({r['qemu_s']:.2f} s) qemu_img_cpu_s_per_gib={r['qemu_cpu'] / gib:.2f}")
    print(f"tgtd_cpu_s_per_gib: mover copy {r['mover_tgtd'][0] / gib:.2f} (event loop {r['mover_tgtd'][1] / gib:.2f}), "
          f"qemu-img copy {r['qemu_tgtd'][0] / gib:.2f} (event loop {r['qemu_tgtd'][1] / gib:.2f})")
    print(f"tgtd_minor_faults_per_gib: mover copy {r['mover_tgtd'][2] / gib:.0f}, qemu-img copy {r['qemu_tgtd'][2] / gib:.0f}")
    print(f"cpu_ratio_mover_vs_qemu={r['mover_cpu'] / max(r['qemu_cpu'], 1e-9):.2f} (target <= 1)")
    if r["durable_s"]:
        print(f"qemu_img_durable_mib_s={mib / r['durable_s']:.1f} ({r['durable_s']:.2f} s, -t writeback: flushed "
              f"before it exits, as the mover flushes before GOOD) datamover_vs_durable_qemu_raw_ratio="
              f"{mover_rate * r['durable_s'] / mib:.2f}")
    worst = max(r["load_before"], r["load_after"])
    if worst > cores:
        return (f"datamover_vs_qemu_ratio=none (load average {worst:.2f} above {cores} cores: the machine is "
                f"shared and wall-clock ratios would be noise; raw ratio {mover_rate / qemu_rate:.2f})")
    return f"datamover_vs_qemu_ratio={mover_rate / qemu_rate:.2f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1G,4G", help="comma-separated sizes to copy (default 1G,4G)")
    ap.add_argument("--sessions", type=int, default=2, help="iSCSI sessions per remote LUN for the mover")
    ap.add_argument("--depth", type=int, default=16, help="most chunks in flight per copy (the mover adapts below it)")
    ap.add_argument("--chunk", help="bytes per read/write request (default: the mover's own chunk_bytes; "
                    "capped by the LUNs' Block Limits VPD)")
    ap.add_argument("--flush-behind", help="the mover's flush_behind_bytes (default its own, 64M; 0: none)")
    ap.add_argument("--durable-peer", action="store_true",
                    help="also time qemu-img convert -t writeback, which flushes before it exits (the default, "
                         "unsafe, never flushes; the mover's GOOD means flushed)")
    ap.add_argument("--backing-dir", type=Path,
                    help="directory for both LUNs' backing files (default: the temp dir; /dev/shm keeps them "
                         "in RAM, so neither peer waits on the disk and the copy engines are compared)")
    ap.add_argument("--poll", type=float, default=0.5, help="seconds between COPY STATUS polls")
    ap.add_argument("--target-mrdsl", type=int, default=0,
                    help="tgtd's MaxRecvDataSegmentLength for both peers (default: tgtd's own, 8192)")
    ap.add_argument("--profile", type=Path, help="directory for the mover's profile (see --with)")
    ap.add_argument("--with", dest="with_tool", choices=("py-spy", "strace", "perf"),
                    help="profiler attached to the mover during each copy (needs --profile)")
    args = ap.parse_args(argv)
    try:
        sizes = [parse_size(s) for s in args.sizes.split(",") if s.strip()]
    except ValueError:
        raise SystemExit(f"--sizes: cannot read {args.sizes!r} (e.g. 1G,4G)") from None
    if not sizes or any(s < (1 << 20) for s in sizes):
        raise SystemExit(f"--sizes: each size must be at least 1M, not {args.sizes!r}")
    if args.with_tool and args.profile is None:
        raise SystemExit("--with needs --profile DIR")
    reason = tgtd_missing_reason()
    if reason:
        raise SystemExit(reason)
    for size in sizes:
        print(report(run_size(size, args), args), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
