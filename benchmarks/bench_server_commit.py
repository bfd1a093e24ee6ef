"""A commit of many pieces through ``serverfree server``: the paged message's time and the server's peak RSS.

Workload: one object whose image is PIECES runs of 16 bytes (1 MiB-aligned PUTs
cover them all), each on the volume 32 bytes apart, so the COMMIT names
PIECES extents and travels as 33-byte rows (orchestrator/server/wire.py; until
issue 17's streaming, ~100 bytes of JSON per piece parsed whole into models:
1M pieces cost the server 1.4 GB).  The object is read back (``query backup``)
to check that every piece was committed.  Measured: wall seconds of the COMMIT
call, the server's and this client's CPU seconds over it, the server's peak
RSS (VmHWM) before and after, and the load average.  No peer: the figure is
the cost per piece of a commit and how much memory the server needs for it.

Last line: ``commit_pieces=N commit_s=X server_cpu_s=Y client_cpu_s=C server_peak_rss_mib=Z (before W) load=L``

    .venv/bin/python benchmarks/bench_server_commit.py [--pieces 1000000]
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

from orchestrator.ops import StoredPiece
from orchestrator.server.node_client import NodeSession

sys.path.insert(0, str(Path(__file__).parent))
from bench_server_lan import bench_server, proc_cpu  # noqa: E402

RUN = 16


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pieces", type=int, default=1_000_000)
    n_pieces = ap.parse_args().pieces
    image = os.urandom(n_pieces * RUN)
    pieces = [StoredPiece(i * RUN, i * 2 * RUN, RUN) for i in range(n_pieces)]
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        p, host, port = bench_server(tmp, len(image))
        try:
            n = NodeSession(host, port, "BENCH", "bench-node-pw", timeout=3600)
            g = n.begin("E:", len(image), 2 * len(image))
            n.put(g["object_id"], 0, len(image), image)
            before, cpu0, c0, t0 = peak_rss_mib(p.pid), proc_cpu(p.pid), time.process_time(), time.monotonic()
            n.commit(g["object_id"], pieces)
            wall, cpu, ccpu = time.monotonic() - t0, proc_cpu(p.pid) - cpu0, time.process_time() - c0
            after = peak_rss_mib(p.pid)
            [obj] = n.query("E:")
            if len(obj["pieces"]) != n_pieces:
                raise SystemExit(f"bench_server_commit: {len(obj['pieces'])} pieces committed, not {n_pieces}")
            n.close()
        finally:
            os.kill(p.pid, signal.SIGTERM)
            p.wait(30)
    print(f"commit_pieces={n_pieces} commit_s={wall:.2f} server_cpu_s={cpu:.2f} client_cpu_s={ccpu:.2f} "
          f"server_peak_rss_mib={after:.0f} (before {before:.0f}) load={os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
