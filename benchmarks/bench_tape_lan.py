"""The backup server's LAN path to a tape pool at many pieces: PUT each piece, DIGEST the records, COMMIT, GET.

A node session writes an object of ``--pieces`` pieces (4 KiB each, every
other 4 KiB of the volume) to a tape pool whose drive is an emulated tape
file on the server, asks for the chunk digests of the records read back
(4 KiB chunks: one per piece), commits the object, and reads every piece
back with one GET each, in image order (a LAN restore).  Everything runs in
one child process (server threads and the client on 127.0.0.1); its peak RSS
(os.wait4) is printed with the CPU seconds and wall time of each phase and
the load average.  Per-piece lists on the server show as memory that grows
with the piece count, and a GET that reads the object's map as time that
grows with it.

    .venv/bin/python benchmarks/bench_tape_lan.py [--pieces 20000] [--gets N]
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from bench_scale_plan import load, measure_in_child

PIECE = 4096
ADMIN_PW, NODE_PW = "admin-secret-1", "node-a-secret"


def measure(count: int, gets: int) -> dict[str, float | int]:
    from orchestrator.piece_blocks import PieceBlock
    from orchestrator.piece_stream import PieceStream
    from orchestrator.server.app import open_server
    from orchestrator.server.client import ServerSession
    from orchestrator.server.node_client import NodeSession
    from scsi.luns import TapeLun

    import numpy as np

    out: dict[str, float | int] = {}
    with tempfile.TemporaryDirectory(prefix="serverfree-bench-") as tmp:
        TapeLun("DRV1", Path(tmp) / "drv1.tape", create=True).close()
        srv = open_server(Path(tmp) / "srv", admin_password=ADMIN_PW).start()
        try:
            host, port = srv.address.split(":")
            with ServerSession(host, port, role="admin", name="admin", password=ADMIN_PW) as a:
                for c in [f"register node NODEA {NODE_PW}", "define library LIB1 libtype=manual",
                          "define drive LIB1 DRV1 wwn=50:01:04:f0:00:00:00:01",
                          f"define path SERVER1 DRV1 srctype=server desttype=drive library=LIB1 "
                          f"device={tmp}/drv1.tape",
                          "define devclass LTOCLASS devtype=lto library=LIB1", "define stgpool TAPEPOOL LTOCLASS",
                          "define volume TAPEPOOL VOL001 drive=DRV1",
                          "define mgmtclass STANDARD STANDARD destination=TAPEPOOL"]:
                    ok, text = a.command(c)
                    if not ok:
                        raise SystemExit(f"bench_tape_lan: {c}: {text}")

            def pieces() -> PieceStream:
                def blocks():
                    for first in range(0, count, 1 << 16):
                        k = min(1 << 16, count - first)
                        idx = np.arange(first, first + k, dtype=np.int64)
                        yield PieceBlock.of(first * PIECE, idx * 2 * PIECE, np.full(k, PIECE, np.int64))
                return PieceStream(blocks)

            data = bytes(range(256)) * (PIECE // 256)
            with NodeSession(host, int(port), "NODEA", NODE_PW) as n:
                g = n.begin("E:", count * PIECE, 2 * count * PIECE)
                oid = g["object_id"]
                c0, w0 = time.process_time(), time.perf_counter()
                for i in range(count):
                    n.put(oid, i * PIECE, PIECE, data)
                c1, w1 = time.process_time(), time.perf_counter()
                digests = n.digest(oid, PIECE, iter(pieces()), count)
                c2, w2 = time.process_time(), time.perf_counter()
                n.commit(oid, iter(pieces()), "lan", digests, chunk_size=PIECE)
                c3, w3 = time.process_time(), time.perf_counter()
                for i in range(gets):
                    if n.get(oid, i * PIECE, PIECE) != data:
                        raise SystemExit(f"bench_tape_lan: GET of piece {i} gave other bytes")
                c4, w4 = time.process_time(), time.perf_counter()
            if len(digests) != count:
                raise SystemExit(f"bench_tape_lan: {len(digests)} digests for {count} chunks")
            out.update(put_cpu=c1 - c0, put_wall=w1 - w0, digest_cpu=c2 - c1, digest_wall=w2 - w1,
                       commit_cpu=c3 - c2, commit_wall=w3 - w2, get_cpu=c4 - c3, get_wall=w4 - w3)
        finally:
            srv.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pieces", type=int, default=20_000)
    ap.add_argument("--gets", type=int, default=None, help="GET only the first GETS pieces (default: all)")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.pieces <= 0:
        raise SystemExit("bench_tape_lan: --pieces must be positive")
    gets = args.pieces if args.gets is None else args.gets
    if not 0 <= gets <= args.pieces:
        raise SystemExit(f"bench_tape_lan: --gets must be between 0 and --pieces ({args.pieces})")
    if args.child:
        print(json.dumps(measure(args.pieces, gets)))
        return
    print(f"date={time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} pieces={args.pieces} piece_bytes={PIECE} "
          f"{load()}")
    r, rss = measure_in_child(__file__, ["--pieces", str(args.pieces), "--gets", str(gets)])
    for phase in ("put", "digest", "commit", "get"):
        print(f"{phase}{f' ({gets} pieces)' if phase == 'get' else ''}: cpu_seconds={r[phase + '_cpu']:.2f} wall_seconds={r[phase + '_wall']:.2f}")
    print(f"pieces={args.pieces} peak_rss_mib={rss:.0f} (server and client in one process) {load()}")


if __name__ == "__main__":
    main()
