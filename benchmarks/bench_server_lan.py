"""The LAN path through the authenticated backup server vs local mode's in-process pool (no network).

Workload: one image of SIZE MiB (random bytes) sent in 8 MiB pieces, then read
back, over 127.0.0.1.  Ours: ``serverfree server`` (a node session: SCRAM login,
BEGIN grant, PUT, COMMIT, GET), its own process; CPU seconds are read from
/proc for the server and from this process for the client.  Peer, in the same
run on the same machine: local mode's LAN path (:mod:`orchestrator.lan.local_pool`:
the same frames over a socket pair to a thread of this process, no login, no
grant; the open TCP LAN data process it replaced is retired), whose client
and server CPU are both this process's.

Last line: ``server_lan_mib_s=X client_login_cpu_s=Y cpu_ratio_vs_local_pool=Z load=L``
(ratio = (client + server CPU seconds) of ours / of the peer).

    .venv/bin/python benchmarks/bench_server_lan.py [--size 256]
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from orchestrator.lan.client import LanClient
from orchestrator.lan.local_pool import LocalPool
from orchestrator.ops import StoredPiece
from orchestrator.server.client import ServerSession
from orchestrator.server.node_client import NodeSession

EXE = str(Path(sys.executable).parent / "serverfree")
PIECE = 8 << 20


def proc_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start(argv: list[str], env: dict | None = None) -> tuple[subprocess.Popen, str]:
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                         env={**os.environ, **(env or {})})
    line = p.stdout.readline()
    return p, line.split()[-1]


def bench_server(tmp: Path, pool_bytes: int) -> tuple[subprocess.Popen, str, str]:
    """``serverfree server`` on 127.0.0.1 with a file pool of ``pool_bytes`` and node BENCH: (process, host, port)."""
    p, addr = start([EXE, "server", "--data", str(tmp / "srv"), "--listen", "127.0.0.1:0"],
                    {"SERVERFREE_ADMIN_PASSWORD": "bench-admin-pw"})
    host, port = addr.rsplit(":", 1)
    try:
        with ServerSession(host, port, role="admin", name="admin", password="bench-admin-pw") as a:
            for c in ["define devclass F devtype=file", "define stgpool P F",
                      f"define volume P {tmp / 'pool.img'} capacity={pool_bytes // (1 << 20) + 8}m",
                      "define mgmtclass STANDARD STANDARD destination=P", "register node BENCH bench-node-pw"]:
                assert a.command(c)[0], c
    except BaseException:
        os.kill(p.pid, signal.SIGTERM)
        p.wait(10)
        raise
    return p, host, port


def ours(tmp: Path, data: bytes) -> tuple[float, float, float, float]:
    p, host, port = bench_server(tmp, len(data))
    try:
        srv0, c0 = proc_cpu(p.pid), time.process_time()
        n = NodeSession(host, port, "BENCH", "bench-node-pw")
        login_cpu = time.process_time() - c0
        t0 = time.monotonic()
        g = n.begin("E:", len(data), len(data))
        for o in range(0, len(data), PIECE):
            n.put(g["object_id"], o, PIECE, data[o:o + PIECE])
        n.commit(g["object_id"], [StoredPiece(0, 0, len(data))])
        back = b"".join(n.get(g["object_id"], o, PIECE) for o in range(0, len(data), PIECE))
        wall = time.monotonic() - t0
        n.close()
        assert back == data
        return wall, time.process_time() - c0, proc_cpu(p.pid) - srv0, login_cpu
    finally:
        os.kill(p.pid, signal.SIGTERM)
        p.wait(10)


def peer(tmp: Path, data: bytes) -> tuple[float, float, float]:
    (tmp / "peer.img").write_bytes(bytes(len(data)))
    with LocalPool({"V": tmp / "peer.img"}) as pool:
        addr = pool.address
        c0, t0 = time.process_time(), time.monotonic()
        with LanClient(addr, "V", 0) as c:
            for o in range(0, len(data), PIECE):
                c.put(o, PIECE, data[o:o + PIECE])
            c.sync()
        with LanClient(addr, "V", 0, "read") as c:
            back = b"".join(c.get(o, PIECE, PIECE) for o in range(0, len(data), PIECE))
        wall = time.monotonic() - t0
        assert back == data
        return wall, time.process_time() - c0, 0.0  # the pool's thread is in this process's CPU


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=256, help="MiB (a multiple of 8)")
    size = ap.parse_args().size << 20
    data = os.urandom(size)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        w, cc, sc, login = ours(tmp, data)
        pw, pc, ps = peer(tmp, data)
    load = os.getloadavg()[0]
    print(f"ours: wall {w:.2f} s, client CPU {cc:.2f} s (login {login:.3f} s), server CPU {sc:.2f} s")
    print(f"peer (local mode's in-process pool): wall {pw:.2f} s, client + pool CPU {pc + ps:.2f} s")
    print(f"server_lan_mib_s={2 * size / (1 << 20) / w:.0f} client_login_cpu_s={login:.3f} "
          f"cpu_ratio_vs_local_pool={(cc + sc) / max(pc + ps, 1e-9):.2f} load={load:.2f}")


if __name__ == "__main__":
    main()
