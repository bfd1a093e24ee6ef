"""The server's server-free backup to a tape pool at millions of extents: the request's map to a committed object.

`bench_scale_job --tape` runs the job alone; this runs the server's own
entry (`orchestrator.server.serverfree_tape.backup`): the extent map as the
(n, 2) array NodeOps reads from the request's rows, the drive held from the
object's BEGIN, the job with the server's plan, the commit of the object's
blocks and its tape location.  The movers are the acknowledging driver
(`orchestrator.drivers.acknowledging`: every list's bytes read and COPY
STATUS answered, no data moved), the drive a stand-in (LOCATE to end of data
is logical object 0), the catalogue a real one in a temporary directory.
One child process; its peak RSS (os.wait4) is printed with the CPU seconds
and the load average.

    .venv/bin/python benchmarks/bench_tape_serverfree.py [--extents 5000000]
"""
from __future__ import annotations

import argparse
import contextlib
import json
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

from bench_scale_job import extent_arrays
from bench_scale_plan import DISK, load, measure_in_child

DRIVE_NAA = "6001405" + "1" * 25


def measure(count: int) -> dict[str, float | int | str]:
    import numpy as np

    from orchestrator.catalogue import Catalogue
    from orchestrator.drivers.acknowledging import AcknowledgingDriver
    from orchestrator.job import run_job
    from orchestrator.server import serverfree_tape, tape
    from orchestrator.server.serverfree import ServerFree

    extents = np.concatenate(list(extent_arrays(count)))  # what NodeOps.extents_in hands the server: one array
    serverfree_tape._designators = lambda server, tp: {"DRV1": DRIVE_NAA}  # the drive answers VPD 83h
    tape.open_drive = lambda name, device: SimpleNamespace()  # LOCATE and the copies go to the driver
    with tempfile.TemporaryDirectory(prefix="serverfree-bench-") as tmp, Catalogue(Path(tmp) / "cat.db") as cat:
        cat.add_pool_volume("TAPEPOOL", "VOL001", "DRV1", 1 << 60)
        driver = AcknowledgingDriver(cat)

        @contextlib.contextmanager
        def catalogue():
            yield cat

        class Server(ServerFree):
            def _start(self, ops, what, pool, volume_id="", designator="", disk_pool=True):
                return ["M1"], {}, ""

            def _run(self, ops, what, movers, volumes, job, intercept=None, devices=None):
                report = run_job(job, lambda op: intercept(op) or driver.execute(op))
                return {"ok": report.ok, "reason": report.message or ""}, b""

        store = SimpleNamespace(setting=lambda name: "80", log=lambda *a, **k: None)
        sf = Server(SimpleNamespace(store=store, pools=SimpleNamespace(catalogue=catalogue, reclaim=lambda: None),
                                    drives=tape.Drives()), {"M1": "x"})
        volume_size = int(extents[-1, 0] + extents[-1, 1])
        req = SimpleNamespace(filespace="E:", topology_volume="", source_designator=DISK.designator,
                              mode="selective", image_type="static", file_system="NTFS", block_size=512,
                              volume_offset=0, volume_size=volume_size)
        ops = SimpleNamespace(node="NODEA", who="session 1", session=SimpleNamespace(id=1))
        tp = tape.TapePool("TAPEPOOL", "LIB1", {"DRV1": "drv1.tape"})
        c0, w0 = time.process_time(), time.perf_counter()
        answer, _ = serverfree_tape.backup(sf, ops, req, "STANDARD", tp, extents)
        c1, w1 = time.process_time(), time.perf_counter()
        if not answer["ok"]:
            raise SystemExit(f"bench_tape_serverfree: the backup failed: {answer['reason']}")
        (obj,) = cat.query("NODEA", "E:")
        blocks = cat.db.execute("SELECT sum(count) FROM extent_blocks").fetchone()[0]
        return dict(cpu=c1 - c0, wall=w1 - w0, catalogue_extents=blocks, tape_location=obj.tape_location,
                    lists=sum(v for k, v in driver.counts.items() if k.startswith("lists:")),
                    segments=driver.counts.get("segments", 0))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--extents", type=int, default=5_000_000)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.extents <= 0:
        raise SystemExit("bench_tape_serverfree: --extents must be positive")
    if args.child:
        print(json.dumps(measure(args.extents)))
        return
    print(f"date={time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} {load()}")
    r, rss = measure_in_child(__file__, ["--extents", str(args.extents)])
    print(f"extents={args.extents} lists={r['lists']} segments={r['segments']} "
          f"catalogue_extents={r['catalogue_extents']}")
    print(f"tape_location={r['tape_location']}")
    print(f"extents={args.extents} serverfree_tape_backup_cpu_seconds={r['cpu']:.2f} wall_seconds={r['wall']:.2f} "
          f"peak_rss_mib={rss:.0f} {load()}")


if __name__ == "__main__":
    main()
