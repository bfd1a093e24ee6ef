"""Server-free vs LAN-free vs LAN on the real SAN lab, and the simulator's prediction of it.

Brings up the lab (tgtd, our data mover, the backup server; see
tests/fixtures/sanlab.py), measures its component rates (client LUN reads
and pool LUN writes as the mover issues them -- its chunk, at depth 1 and at
its io depth --, the mover's copy rate and per-command cost, the backup
server's read-back digest of the pool), backs the same
NTFS volume up over each path and prints, per path: wall time, throughput,
client CPU seconds and client bytes read (all of the job, and during data
movement alone).  Then it writes the calibration scenario for this very
set-up with the rates just measured, runs the simulator on it (the engine of
``serverfree sim run``) and prints predicted vs measured server-free duration,
per phase and per term of the model (device streams alone, the mover's copy),
the old derivation's prediction (device streams as probed) beside it, and the
mover's copy probed again right after the server-free backup (the load's drift).
With ``--backing-dir /dev/shm`` the lab's LUN files are in RAM: on this
machine's disk the copy rate moved with the disk's pace between probe and
backup (quiet, 2026-12-06: the same copy 227-296 MB/s from one run to the
next), so the prediction is checked with the LUNs in RAM.

    .venv/bin/python benchmarks/bench_paths_real.py [--size-mib 48] [--scale 1.0] [--backing-dir /dev/shm]
        [--write-scenario scenarios/calibration/sanlab.yaml]

For the mover's throughput target run it on a 1 GiB volume filled to about
60 % (``--size-mib 1024 --scale 0.64 --repeat 1 --batch-mb 80``): the load average before
and after is printed, and the line before the last compares server-free wall
time with LAN-free's (target <= 0.8 on a quiet machine; with a load average
above the core count it says so instead of a ratio).

Last line: ``client_cpu_ratio=X`` = client CPU server-free / client CPU LAN
(whole jobs; target < 0.05).
"""
from __future__ import annotations

import argparse
import logging
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from pyscsi.pyscsi.scsi import SCSI

from orchestrator.catalogue import Catalogue
from orchestrator.ops import PathKind
from scsi.commands import extended_copy
from orchestrator.lan.client import LanClient
from orchestrator.lan.local_pool import LocalPool
from orchestrator.ops import StoredPiece
from scsi.devices import LibiscsiDevice
from scsi.luns.remote import RemoteLun
from simulator.calibration import Calibration
from scsi.xcopy import BlockToBlock, Header, IdentificationCscd, ParameterList
from tests.fixtures.sanlab import SanLab
from tests.fixtures.sanlab_calibration import predict, stream_rate, write_scenario
from tests.fixtures.sanlab_client import LabClient

MIB = 1 << 20
MB = 1_000_000


def process_cpu(pid: int) -> float:
    """utime + stime of a process, all its threads, in seconds (/proc/PID/stat fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
MOVEMENT_OPS = ("CopyBatches", "LanFreeWrite", "LanSend")


def _scsi(url: str) -> tuple[LibiscsiDevice, SCSI]:
    dev = LibiscsiDevice(url, timeout=60)
    s = SCSI(dev)
    s.blocksize = 512
    return dev, s


def median_rates(runs: list[dict[str, float]]) -> dict[str, float]:
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


def measure_rates_once(lab: SanLab, client: LabClient, nbytes: int, scratch: list[int], depth: int
                       ) -> dict[str, float]:
    """Component rates of this machine's lab, each measured on its own (``scratch``: 3 fresh pool LBAs).

    The client LUN's reads and the pool LUN's writes are measured as the mover issues them (its own
    libiscsi path, its chunk, at depth 1 and at its io depth, written to never-written pool areas as a
    backup writes); the mover's copy rate and per-command cost with EXTENDED COPY; the backup server's
    read-back + digest rate of the pool (its VerifyPool).
    """
    out: dict[str, float] = {"depth": float(depth)}
    src_lun, pool_lun = RemoteLun("client", lab.url(1)), RemoteLun("pool", lab.url(2))
    try:
        (m1, o1), (m2, o2) = src_lun.transfer_limits(), pool_lun.transfer_limits()
        most, best = min(m1, m2) if m1 and m2 else m1 or m2, max(o1, o2)  # as blockcopy.chunk_size combines them
        cal = Calibration(mover_chunk_kib=lab.chunk_bytes // 1024, lun_max_transfer_kib=most // 1024,
                          lun_optimal_transfer_kib=best // 1024)
        chunk = cal.mover_chunk()  # the lab mover's chunk_bytes under the LUNs' Block Limits
        out.update(chunk=float(chunk), max_transfer=float(most), optimal_transfer=float(best))
        for key, lun, write, lba in (("disk_read", src_lun, False, 0), ("pool_write", pool_lun, True, scratch[0])):
            out[f"{key}_1"] = stream_rate(lun, write=write, depth=1, chunk=chunk, lba=lba, nbytes=nbytes)
            if write:  # the queued writes go to fresh blocks too, and start with no dirty pages of the
                lba = scratch[1]  # depth-1 probe left to write back (as the mover's copies start: they flush)
                pool_lun.flush()
            out[f"{key}_q"] = stream_rate(lun, write=write, depth=depth, chunk=chunk, lba=lba, nbytes=nbytes)
        pool_lun.flush()  # SYNCHRONIZE CACHE: the probes' dirty pages are not left for the mover's probe to pay
    finally:
        src_lun.close()
        pool_lun.close()
    out["mover_command_s"], out["mover_copy"] = measure_mover(lab, client, nbytes, scratch[2])
    with LocalPool(lab.lan_pool) as pool, LanClient(pool.address, "VOL1", scratch[2] * 512, "read") as server:
        t0 = time.monotonic()
        server.digest([StoredPiece(0, 0, nbytes)], MIB)  # what VerifyPool asks of the backup server
        out["verify"] = nbytes / (time.monotonic() - t0)
    return out


def measure_mover(lab: SanLab, client: LabClient, nbytes: int, dst_lba: int) -> tuple[float, float]:
    """(seconds per EXTENDED COPY handshake, copy bytes/s net of them) of the mover: 20 one-block lists, then
    the client volume's first ``nbytes`` copied to the pool at ``dst_lba`` in lists of the backup's size."""
    src = IdentificationCscd(designator=client.designators["client"], pdt=0, block_length=512)
    dst = IdentificationCscd(designator=client.designators["pool"], pdt=0, block_length=512)
    dev, s = _scsi(lab.mover_url)
    try:
        # lists of the backup's size (batch_mb), one after the other, as a backup sends them
        step = client.batch_mb * MIB
        plists = [ParameterList(header=Header(list_id=1 + n, list_id_usage=0), cscds=(src, dst), segments=tuple(
            BlockToBlock(src=0, dst=1, block_count=min(8192, (end - o) // 512), src_lba=o // 512,
                         dst_lba=dst_lba + o // 512) for o in range(start, end, 8192 * 512))).encode()
                  for n, (start, end) in enumerate((a, min(nbytes, a + step)) for a in range(0, nbytes, step))]
        tiny = ParameterList(header=Header(list_id=0, list_id_usage=0), cscds=(src, dst),
                             segments=(BlockToBlock(src=0, dst=1, block_count=1, src_lba=0,
                                                    dst_lba=dst_lba),)).encode()
        t0 = time.monotonic()
        for _ in range(20):
            extended_copy(s, tiny)
        command_s = (time.monotonic() - t0) / 20
        t0 = time.monotonic()
        for plist in plists:
            extended_copy(s, plist)
        # the model adds each list's handshake itself (mover_command_ms): count it once, not twice
        copy_s = max(time.monotonic() - t0 - len(plists) * command_s, 1e-6)
        return command_s, nbytes / copy_s
    finally:
        dev.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mib", type=int, default=48, help="client volume size")
    ap.add_argument("--scale", type=float, default=1.0, help="file sizes relative to a 48 MiB volume")
    ap.add_argument("--repeat", type=int, default=3, help="runs per path and per rate (medians are printed)")
    ap.add_argument("--write-scenario", type=Path, help="also write the calibration scenario here")
    ap.add_argument("--depth", type=int, default=16, help="the mover's most chunks in flight per copy")
    ap.add_argument("--batch-mb", type=int, default=10,
                    help="MiB per EXTENDED COPY list (SERVERFREEBATCHSIZE; default 10, the lab's, which the "
                         "calibration check assumes; the product's default is 80)")
    ap.add_argument("--backing-dir", type=Path,
                    help="directory for the lab's LUN files (/dev/shm: in RAM; default: the temporary directory). "
                         "A disk-backed lab's copy rate follows the disk's pace from minute to minute, which a "
                         "probe taken once cannot predict: the calibration check wants the LUNs in RAM")
    args = ap.parse_args(argv)
    if args.backing_dir is not None and not args.backing_dir.is_dir():
        raise SystemExit(f"--backing-dir {args.backing_dir}: no such directory")
    if args.size_mib < 16 or args.repeat < 1:
        raise SystemExit("--size-mib must be at least 16 and --repeat at least 1")
    logging.basicConfig(level=logging.ERROR)
    load_before = float(Path("/proc/loadavg").read_text().split()[0])
    pool = max(2048, (4 * args.repeat + 4) * args.size_mib) * MIB  # room for the rate probes' scratch areas
    print(f"LUN files in {args.backing_dir or tempfile.gettempdir()}")
    with tempfile.TemporaryDirectory(prefix="bench-paths-", dir=args.backing_dir) as tmp, \
            SanLab(Path(tmp) / "lab", volume_size=args.size_mib * MIB, volume_scale=args.scale * args.size_mib / 48,
                   pool_size=pool, io_depth=args.depth) as lab:
        cat = Catalogue(Path(tmp) / "catalogue.db")
        client = LabClient(lab, cat, mover_timeout=30.0, batch_mb=args.batch_mb)
        extents, _ = client.extents()
        image = sum(n for _, n in extents)
        rate_runs, copy_after = [], []
        print(f"lab: {args.size_mib} MiB NTFS volume, {len(lab.volume.files)} files, {len(extents)} extents, "
              f"image {image / MIB:.1f} MiB ({100 * image / lab.volume_size:.0f} % used)")
        results = {}
        rows = []
        for start in (PathKind.SERVER_FREE, PathKind.LAN_FREE, PathKind.LAN):
            runs = []
            for i in range(args.repeat):
                if start == PathKind.SERVER_FREE:  # rates measured right before each server-free run
                    scratch = [(lab.pool_size - (2 + 3 * i + k) * lab.volume_size) // 512 for k in range(3)]
                    rate_runs.append(measure_rates_once(lab, client, lab.volume_size, scratch, args.depth))
                mover_cpu0 = process_cpu(lab.mover.pid)
                run = client.backup(start, extents=extents)
                run.mover_cpu = process_cpu(lab.mover.pid) - mover_cpu0
                if start == PathKind.SERVER_FREE:  # the mover probed again right after: the load's drift
                    after = (lab.pool_size - (2 + 3 * args.repeat + i) * lab.volume_size) // 512
                    copy_after.append(measure_mover(lab, client, lab.volume_size, after)[1])
                rep = run.report
                if rep.outcome != "completed" or rep.path_used != start.value:
                    print(f"{start.value}: backup did not complete on its path: {rep.outcome} {rep.path_used} "
                          f"{rep.message}", file=sys.stderr)
                    return 1
                runs.append(run)
            run = sorted(runs, key=lambda r: r.wall)[len(runs) // 2]  # the median run by wall time
            move_cpu = sum(run.cpu_by_op[o] for o in MOVEMENT_OPS)
            move_read = sum(run.by_op.get(o, {}).get("client.read_bytes", 0) for o in MOVEMENT_OPS)
            results[start] = run
            rows.append(f"{start.value:12s} {run.wall:7.2f} {image / run.wall / MB:7.1f} {run.cpu:7.3f} "
                        f"{run.read_bytes('client') / MIB:9.1f} {run.read_bytes('pool') / MIB:9.1f} {move_cpu:10.3f} "
                        f"{move_read / MIB:13.1f}")
        rates = median_rates(rate_runs)
        print("rates (median; _1: depth 1, _q: the mover's depth): " + ", ".join(
            f"{k} {v * 1000:.2f} ms" if k == "mover_command_s" else f"{k} {int(v)}"
            if k in ("depth", "chunk", "max_transfer", "optimal_transfer") else f"{k} {v / MB:.1f} MB/s"
            for k, v in rates.items()))
        print(f"{'path':12s} {'wall s':>7s} {'MB/s':>7s} {'cpu s':>7s} {'read MiB':>9s} {'pool rd MiB':>9s} "
              f"{'move cpu s':>10s} {'move read MiB':>13s}   (read: client volume; pool rd: pool read back)")
        print("\n".join(rows))
        sf = results[PathKind.SERVER_FREE]
        print(f"server-free: the mover's CPU {sf.mover_cpu:.2f} s ({sf.mover_cpu / (image / (1 << 30)):.2f} s/GiB "
              f"moved); every path's client CPU is in the table")
        print("server-free phases (wall s): " + ", ".join(f"{k} {v:.2f}" for k, v in sf.wall_by_op.items()))
        scen_path = write_scenario(args.write_scenario or Path(tmp) / "sanlab.yaml", lab.volume_size, rates,
                                   extents, client.batch_mb)
        tuned = [tuple(map(int, m.groups())) for m in re.finditer(
            r"block copy of \d+ extents: [\d.]+ s, chunk (\d+), depth (\d+) -> (\d+)",
            (lab.workdir / "mover.log").read_text(errors="replace"))]
        if tuned:  # what the real mover chose: the model assumes rates["chunk"] and --depth commands in flight
            print(f"the mover's block copies: {len(tuned)}, chunk {sorted({t[0] for t in tuned})}, depth "
                  f"{min(t[1] for t in tuned)}..{max(t[2] for t in tuned)} (tuned, at most --depth {args.depth}); "
                  f"the model's chunk {int(rates['chunk'])} at depth {args.depth}")
        predicted, copy_predicted = predict(scen_path)
        measured = sf.wall
        copy_measured = sf.wall_by_op["CopyBatches"]
        print(f"calibration scenario {scen_path}: predicted server-free {predicted:.2f} s (copy "
              f"{copy_predicted:.2f} s), measured {measured:.2f} s (copy phase {copy_measured:.2f} s), "
              f"predicted/measured {predicted / measured:.2f}, copy {copy_predicted / copy_measured:.2f}")
        # each term of the model alone: the device streams as probed (mover unbounded), the mover's own copy
        alone = write_scenario(scen_path.with_name("devices-only.yaml"), lab.volume_size, rates, extents,
                               client.batch_mb, devices_only=True)
        _, copy_devices = predict(alone)
        after = statistics.median(copy_after)
        _, copy_later = predict(write_scenario(scen_path.with_name("probed-after.yaml"), lab.volume_size,
                                               {**rates, "mover_copy": after}, extents, client.batch_mb))
        print(f"the mover's copy probed {rates['mover_copy'] / MB:.1f} MB/s before the server-free backup and "
              f"{after / MB:.1f} MB/s right after it (the load's drift); with the later probe the copy is "
              f"predicted {copy_later:.2f} s, /measured {copy_later / copy_measured:.2f}")
        as_probed = write_scenario(scen_path.with_name("as-probed.yaml"), lab.volume_size, rates, extents,
                                   client.batch_mb, consistent=False)
        predicted_old, copy_old = predict(as_probed)
        print(f"with the device streams as probed (the derivation before the copy-consistency rule): predicted "
              f"{predicted_old:.2f} s (copy {copy_old:.2f} s), predicted/measured {predicted_old / measured:.2f}, "
              f"copy {copy_old / copy_measured:.2f}")
        lists = -(-image // (client.batch_mb * MIB))  # a batch is a window of the image stream
        copy_mover = image / rates["mover_copy"] + lists * rates["mover_command_s"]
        print(f"terms of the predicted copy: devices as probed alone (read and write streams at depth "
              f"{args.depth}, mover unbounded) {copy_devices:.2f} s (/measured {copy_devices / copy_measured:.2f}); "
              f"the mover's probed copy rate + {lists} list handshakes {copy_mover:.2f} s "
              f"(/measured {copy_mover / copy_measured:.2f}); the scenario's streams are never slower than the "
              f"mover's probed copy through them (tests/fixtures/sanlab_calibration.py lab_calibration)")
        lan_cpu = results[PathKind.LAN].cpu
        move_ratio = sum(sf.cpu_by_op[o] for o in MOVEMENT_OPS) / max(1e-9, sum(
            results[PathKind.LAN].cpu_by_op[o] for o in MOVEMENT_OPS))
        print(f"data-movement-only client CPU ratio (server-free / LAN) {move_ratio:.3f}")
        client.close_devices()
        cat.close()
    load_after = float(Path("/proc/loadavg").read_text().split()[0])
    cores = os.cpu_count() or 1
    wall_ratio = sf.wall / results[PathKind.LAN_FREE].wall
    print(f"loadavg_before={load_before:.2f} loadavg_after={load_after:.2f} cores={cores}")
    if max(load_before, load_after) > cores:
        print(f"serverfree_vs_lanfree_wall=none (load average {max(load_before, load_after):.2f} above {cores} "
              f"cores: wall-clock ratios would be noise; raw ratio {wall_ratio:.2f}, target <= 0.8)")
    else:
        print(f"serverfree_vs_lanfree_wall={wall_ratio:.2f} (target <= 0.8)")
    print(f"client_cpu_ratio={sf.cpu / lan_cpu:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
