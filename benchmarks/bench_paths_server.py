"""Server-free vs LAN-free vs LAN through `serverfree server`: wall time and the CPU of client, server and mover.

The real SAN lab (tgtd, ``serverfree datamover serve``; tests/fixtures/sanlab.py)
and ``serverfree server`` defined by ``serverfree admin`` (tests/fixtures/lab_server.py),
the way an operator runs the product.  The same NTFS volume is backed up
by ``serverfree backup image`` client processes on each path in turn
(server-free; ``-enableserverfree=no`` for LAN-free into a granted range of
the pool; ``-enablelanfree=no`` too for the LAN), and each run prints its
wall time, the client process's CPU seconds (its rusage, start-up included),
and the CPU seconds the server and the mover spent meanwhile.  With
server-free movement the client only analyses its volume and sends the
extent map; the server initiates the copy and digests the pool side.

    .venv/bin/python benchmarks/bench_paths_server.py [--size-mib 1024] [--scale 0.64] [--repeat 1]

The client's start-up alone (``serverfree --version``) is timed too, since a
server-free client spends little more than that.  Last line:
``server_client_cpu_ratio=X`` = client CPU server-free / client CPU LAN
(whole client processes), beside the load average.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

sys.path.insert(0, str(Path(__file__).parent))
from bench_server_lan import proc_cpu  # noqa: E402
from tests.fixtures.lab_server import SERVERFREE, LabServer  # noqa: E402
from tests.fixtures.sanlab import SanLab  # noqa: E402

MIB = 1 << 20
PATHS = (("server-free", []), ("lan-free", ["-enableserverfree=no"]),
         ("lan", ["-enableserverfree=no", "-enablelanfree=no"]))


def version_cpu() -> float:
    """CPU seconds of `serverfree --version`: what any client process spends starting."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([SERVERFREE, "--version"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            cwd=ROOT, env=env)
    _, _, usage = os.wait4(proc.pid, 0)
    return usage.ru_utime + usage.ru_stime


def run_client(argv: list[str]) -> tuple[float, float, dict]:
    """Run one client command; (wall s, client CPU s, its JSON report)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    t0 = time.monotonic()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(argv, stdout=out, stderr=err, text=True, cwd=ROOT, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.monotonic() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        text, errors = out.read(), err.read()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv[1:4])} failed (exit {proc.returncode}): {errors.strip()[-2000:]}")
    return wall, usage.ru_utime + usage.ru_stime, json.loads(text)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mib", type=int, default=256, help="client volume size (default 256)")
    ap.add_argument("--scale", type=float, default=0.64, help="file sizes relative to a 48 MiB volume, per 48 MiB")
    ap.add_argument("--repeat", type=int, default=1, help="runs per path (the median by wall is printed)")
    ap.add_argument("--depth", type=int, default=16, help="the mover's most chunks in flight per copy")
    args = ap.parse_args(argv)
    if args.size_mib < 16 or args.repeat < 1:
        raise SystemExit("--size-mib must be at least 16 and --repeat at least 1")
    load_before = float(Path("/proc/loadavg").read_text().split()[0])
    start_cpu = statistics.median(version_cpu() for _ in range(3))
    pool = max(2048, (args.repeat * 3 + 2) * args.size_mib) * MIB
    rows, cpu = [], {}
    with tempfile.TemporaryDirectory(prefix="bench-paths-server-") as tmp, \
            SanLab(Path(tmp) / "lab", volume_size=args.size_mib * MIB, volume_scale=args.scale * args.size_mib / 48,
                   pool_size=pool, io_depth=args.depth) as lab:
        server = LabServer(lab, Path(tmp) / "srv").start()
        try:
            for name, opts in PATHS:
                runs = []
                for _ in range(args.repeat):
                    s0, m0 = proc_cpu(server.pid), proc_cpu(lab.mover.pid)
                    wall, client_cpu, rep = run_client(server.argv("backup", "image", "E:", "--json", *opts))
                    s1, m1 = proc_cpu(server.pid), proc_cpu(lab.mover.pid)
                    if rep.get("outcome") != "completed" or rep.get("path_used") != name:
                        raise SystemExit(f"{name}: the backup did not complete on its path: {rep.get('outcome')} "
                                         f"{rep.get('path_used')} {rep.get('message', '')}")
                    runs.append((wall, client_cpu, s1 - s0, m1 - m0, rep.get("image_size", 0)))
                wall, client_cpu, server_cpu, mover_cpu, nbytes = sorted(runs)[len(runs) // 2]
                cpu[name] = (wall, client_cpu)
                rows.append(f"{name:12s} {wall:7.2f} {nbytes / MIB / wall:8.1f} {client_cpu:10.3f} "
                            f"{server_cpu:10.3f} {mover_cpu:9.3f}")
        finally:
            server.stop()
    load_after = float(Path("/proc/loadavg").read_text().split()[0])
    print(f"lab: {args.size_mib} MiB NTFS volume (file scale {args.scale}), through serverfree server; "
          f"client start-up alone (serverfree --version) {start_cpu:.3f} CPU s")
    print(f"{'path':12s} {'wall s':>7s} {'MiB/s':>8s} {'client cpu':>10s} {'server cpu':>10s} {'mover cpu':>9s}")
    print("\n".join(rows))
    cores = os.cpu_count() or 1
    print(f"loadavg_before={load_before:.2f} loadavg_after={load_after:.2f} cores={cores}")
    wall_ratio = cpu["server-free"][0] / cpu["lan-free"][0]
    print(f"server_serverfree_vs_lanfree_wall={wall_ratio:.2f}"
          + (f" (load average above {cores} cores: noise)" if max(load_before, load_after) > cores else ""))
    sf, lan = cpu["server-free"][1], cpu["lan"][1]
    print(f"client CPU beyond start-up: server-free {sf - start_cpu:.3f} s, LAN {lan - start_cpu:.3f} s, "
          f"ratio {(sf - start_cpu) / max(lan - start_cpu, 1e-9):.3f}")
    print(f"server_client_cpu_ratio={sf / lan:.3f} (whole client processes; load {load_before:.2f}-{load_after:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
