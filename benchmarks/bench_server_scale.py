"""Millions of extents through ``serverfree server``: backup (extent map -> plan -> commit) and restore planning,
time and peak RSS of the server process and of the client process, each its own.

Workload (as bench_scale_job's): EXTENTS extents of random whole-4-KiB lengths (mean 288 KiB) with gaps.  The
client process sends the extent map as rows (wire.py) in a ``serverfree_backup``; the server process checks it
as it arrives, plans the EXTENDED COPY lists window by window, "sends" them and commits the object's compact
blocks.  Then restore planning: ``serverfree_restore`` (the server plans the restore lists from the
catalogue's blocks read back as a stream), the restore chain fetched by the client (its pieces as rows, kept
as compact blocks -- what a LAN restore plans from) and ``query backup``.  The server's movers are
`orchestrator.drivers.acknowledging` (each list's bytes are read and COPY STATUS answered, no data moves: 5M
extents through a real mover take hours) and the pool read-back of a server-free copy is acknowledged too
(nothing was written to read back); everything else is the server as ``serverfree server`` runs it.
Measured per phase: wall seconds, CPU seconds of each process (/proc), peak RSS of each (server VmHWM from
/proc, cumulative; client ru_maxrss from os.wait4), with the load average.

Targets (issue 17): <= 10 s and <= 512 MiB for each process at 5M extents.

Last line: ``extents=N backup_s=.. restore_planning_s=.. server_peak_rss_mib=.. client_peak_rss_mib=.. load=..``

    .venv/bin/python benchmarks/bench_server_scale.py [--extents 1000000 5000000]
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from bench_scale_plan import extent_blocks, load  # noqa: E402
from bench_server_commit import peak_rss_mib  # noqa: E402
from bench_server_lan import proc_cpu  # noqa: E402

NODE, NODE_PW, ADMIN_PW = "BENCH", "bench-node-pw", "bench-admin-pw"
DISK_DESIG, POOL_DESIG, DEST_DESIG = "6001405" + "d" * 25, "6001405" + "b" * 25, "6001405" + "e" * 25


def extents_of(count: int) -> np.ndarray:
    """The volume's extent map as the analysis gives it: one (n, 2) array (16 bytes an extent)."""
    return np.concatenate([np.stack([b.volume_offset, b.length], axis=1) for b in extent_blocks(count)])


# -- the server process --------------------------------------------------------------------------
def serve(data: str) -> None:
    from orchestrator.drivers.acknowledging import AcknowledgingDriver
    from orchestrator.ops import VerifyResult
    from orchestrator.server import serverfree
    from orchestrator.server.app import open_server, serve_until_stopped

    serverfree.pool_view = lambda op: VerifyResult(True, "", ())  # nothing was written: nothing to read back
    server = open_server(data, admin_password=ADMIN_PW, movers={"DM1": "iscsi://127.0.0.1:9/iqn.2026-12.none:x/0"})
    server.serverfree.make_driver = lambda cat, movers, devices: AcknowledgingDriver(cat)
    print(f"listening {server.address}", flush=True)
    serve_until_stopped(server)


# -- the client process --------------------------------------------------------------------------
def client(host: str, port: str, server_pid: int, count: int) -> None:
    from orchestrator.server.node_client import NodeSession
    from orchestrator.server.node_jobs import records

    extents = extents_of(count)
    volume_size = int(extents[-1, 0] + extents[-1, 1])
    out: dict = {}

    def phase(name: str, fn):  # type: ignore[no-untyped-def]
        c0, s0, w0 = time.process_time(), proc_cpu(server_pid), time.perf_counter()
        result = fn()
        out[name] = {"wall": time.perf_counter() - w0, "client_cpu": time.process_time() - c0,
                     "server_cpu": proc_cpu(server_pid) - s0, "server_hwm": peak_rss_mib(server_pid)}
        return result

    with NodeSession(host, port, NODE, NODE_PW, timeout=3600) as n:
        reply = phase("backup", lambda: n.serverfree_backup(
            extents, filespace="E:", volume_size=volume_size, file_system="ntfs", source_designator=DISK_DESIG))
        if not reply.get("ok"):
            raise SystemExit(f"bench_server_scale: the server-free backup failed: {reply.get('reason')}")
        del extents
        reply = phase("serverfree_restore", lambda: n.call_long({
            "type": "serverfree_restore", "filespace": "E:", "destination_designator": DEST_DESIG,
            "destination_size": volume_size}))
        if not reply.get("ok"):
            raise SystemExit(f"bench_server_scale: the server-free restore failed: {reply.get('reason')}")

        def chain() -> int:
            objects, _ = n.chain("E:")
            chain = records(objects)
            return sum(len(b) for o in chain for b in o.pieces.blocks())  # what a LAN restore plans from
        out["chain_pieces"] = phase("chain", chain)
        out["query_pieces"] = phase("query", lambda: sum(len(o["pieces"]) for o in n.query("E:")))
    out["image_size"] = int(reply["report"].get("image_size") or 0)
    print(json.dumps(out))


# -- the measuring process -----------------------------------------------------------------------
def measure(count: int) -> dict:
    from orchestrator.server.client import ServerSession

    with tempfile.TemporaryDirectory(prefix="serverfree-bench-") as tmp:
        image = sum(int(b.length.sum()) for b in extent_blocks(count))
        srv = subprocess.Popen([sys.executable, __file__, "--serve", f"{tmp}/srv"], stdout=subprocess.PIPE, text=True)
        try:
            addr = (srv.stdout.readline() if srv.stdout else "").split()[-1]
            host, port = addr.rsplit(":", 1)
            with ServerSession(host, port, role="admin", name="admin", password=ADMIN_PW) as a:
                for c in [f"register node {NODE} {NODE_PW}", "define devclass F devtype=file",
                          "define stgpool P F dataformat=nonblock",
                          f"define volume P {tmp}/pool.img capacity={image // (1 << 20) + 64}m "
                          f"designator={POOL_DESIG}",
                          "define mgmtclass STANDARD STANDARD destination=P",
                          "define datamover DM1 type=scsi wwn=21:00:00:e0:8b:05:05:04 dataformat=nonblock",
                          f"define disk {NODE} DISK1 wwn={DISK_DESIG}",
                          f"define path DM1 DISK1 srctype=datamover desttype=disk node={NODE} lun=0"]:
                    ok, text = a.command(c)
                    if not ok:
                        raise SystemExit(f"bench_server_scale: {c}: {text}")
            cl = subprocess.Popen([sys.executable, __file__, "--client", host, port, str(srv.pid), str(count)],
                                  stdout=subprocess.PIPE, text=True)
            text = cl.stdout.read() if cl.stdout else ""
            _, status, usage = os.wait4(cl.pid, 0)
            if status:
                raise SystemExit(f"bench_server_scale: the client process failed (status {status})")
            out = json.loads(text)
            out["client_rss"] = usage.ru_maxrss / 1024
            out["server_rss"] = peak_rss_mib(srv.pid)
        finally:
            srv.send_signal(signal.SIGTERM)
            srv.wait(60)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--extents", type=int, nargs="+", default=[1_000_000, 5_000_000])
    ap.add_argument("--serve", help=argparse.SUPPRESS)
    ap.add_argument("--client", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        return serve(args.serve)
    if args.client:
        return client(args.client[0], args.client[1], int(args.client[2]), int(args.client[3]))
    if any(n < 1 for n in args.extents):
        raise SystemExit("bench_server_scale: --extents must be >= 1")
    print(f"date={time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} cpus={os.cpu_count()} {load()}")
    for count in args.extents:
        r = measure(count)
        for name in ("backup", "serverfree_restore", "chain", "query"):
            p = r[name]
            print(f"extents={count} phase={name} wall_s={p['wall']:.2f} client_cpu_s={p['client_cpu']:.2f} "
                  f"server_cpu_s={p['server_cpu']:.2f} server_peak_rss_so_far_mib={p['server_hwm']:.0f} {load()}")
        restore = sum(r[k]["wall"] for k in ("serverfree_restore", "chain"))
        print(f"extents={count} image_bytes={r['image_size']} chain_pieces={r['chain_pieces']} "
              f"query_pieces={r['query_pieces']} backup_s={r['backup']['wall']:.2f} "
              f"restore_planning_s={restore:.2f} server_peak_rss_mib={r['server_rss']:.0f} "
              f"client_peak_rss_mib={r['client_rss']:.0f} {load()}")


if __name__ == "__main__":
    main()
