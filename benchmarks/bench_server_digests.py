"""Chunk digests through ``serverfree server``: a DIGEST answer, a COMMIT carrying them, a LAN-free COMMIT.

Workload: an object of CHUNKS pieces of 16 bytes, each at the start of its own
4 KiB volume chunk, so every request names CHUNKS chunk digests -- what a
read-back of a 4 TiB image at 1 MiB chunks (or a verified LAN backup of it)
carries.  Three phases, each timed: DIGEST (the server reads the pool and
answers with the digests), COMMIT of the object with those digests (into the
catalogue), and a second object written "LAN-free" (straight into the pool
file) whose COMMIT makes the server digest every piece it never saw and compare
with the client's digests.  Measured: wall seconds, the server's and the
client's CPU seconds, and the server's peak RSS (VmHWM, which only grows: each
phase's figure includes those before it), and the load average.  No peer: the
figure is the server's memory per chunk; run it with ``PYTHONPATH`` at an older
checkout for that code's figures (the client API is the same).

Last line: ``chunks=N digest_s=.. commit_s=.. lanfree_commit_s=.. server_peak_rss_mib=.. load=L``

    .venv/bin/python benchmarks/bench_server_digests.py [--chunks 1000000]
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from orchestrator.piece_blocks import PieceBlock
from orchestrator.piece_stream import PieceStream
from orchestrator.server.node_client import NodeSession

sys.path.insert(0, str(Path(__file__).parent))
from bench_server_commit import peak_rss_mib  # noqa: E402
from bench_server_lan import bench_server, proc_cpu  # noqa: E402

RUN, CHUNK = 16, 4096


def spread(n: int) -> PieceStream:
    """n pieces of RUN image bytes, one at the start of each volume chunk, as columns."""
    def blocks():
        for o in range(0, n, 65536):
            i = np.arange(o, min(n, o + 65536), dtype=np.int64)
            yield PieceBlock.of(o * RUN, i * CHUNK, np.full(i.size, RUN))
    return PieceStream(blocks, n)


def timed(pid: int, call):  # type: ignore[no-untyped-def]
    cpu0, c0, t0 = proc_cpu(pid), time.process_time(), time.monotonic()
    out = call()
    return out, {"s": time.monotonic() - t0, "server_cpu_s": proc_cpu(pid) - cpu0,
                 "client_cpu_s": time.process_time() - c0, "server_peak_rss_mib": peak_rss_mib(pid)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chunks", type=int, default=1_000_000)
    n = ap.parse_args().chunks
    if n <= 0:
        raise SystemExit("bench_server_digests: --chunks must be positive")
    image = np.random.default_rng(3).integers(0, 256, n * RUN, dtype=np.uint8).tobytes()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        p, host, port = bench_server(tmp, 2 * len(image) + (8 << 20))
        try:
            s = NodeSession(host, port, "BENCH", "bench-node-pw", timeout=3600)
            g = s.begin("E:", len(image), n * CHUNK)
            s.put(g["object_id"], 0, len(image), image)
            before = peak_rss_mib(p.pid)
            digests, digest = timed(p.pid, lambda: s.digest(g["object_id"], CHUNK, spread(n)))
            if len(digests) != n:
                raise SystemExit(f"bench_server_digests: {len(digests)} digests for {n} chunks")
            _, commit = timed(p.pid, lambda: s.commit(g["object_id"], spread(n), digests=digests, chunk_size=CHUNK))
            f = s.begin("F:", len(image), n * CHUNK, lan_free=True)
            fd = os.open(tmp / "pool.img", os.O_WRONLY)
            try:
                os.pwrite(fd, image, int(f["lan_free"]["pool_offset"]))
            finally:
                os.close(fd)
            _, lanfree = timed(p.pid, lambda: s.commit(f["object_id"], spread(n), "lan-free", digests=digests,
                                                       chunk_size=CHUNK))
            if len(s.query()) != 2:
                raise SystemExit("bench_server_digests: the two objects were not both committed")
            s.close()
        finally:
            os.kill(p.pid, signal.SIGTERM)
            p.wait(30)
    load = os.getloadavg()[0]
    for name, r in (("digest", digest), ("commit", commit), ("lanfree_commit", lanfree)):
        print(f"{name}: {r['s']:.2f} s wall, server {r['server_cpu_s']:.2f} CPU s, client {r['client_cpu_s']:.2f} "
              f"CPU s, server peak RSS {r['server_peak_rss_mib']:.0f} MiB")
    print(f"chunks={n} digest_s={digest['s']:.2f} commit_s={commit['s']:.2f} lanfree_commit_s={lanfree['s']:.2f} "
          f"server_peak_rss_mib={lanfree['server_peak_rss_mib']:.0f} (before {before:.0f}) load={load:.2f}")


if __name__ == "__main__":
    main()
