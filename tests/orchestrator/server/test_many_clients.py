"""Eight clients at once against one server process, and the server SIGKILLed mid-job and started again."""
from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from orchestrator.catalogue import Catalogue
from orchestrator.cli import main
from orchestrator.server.client import ServerSession
from tests.fixtures.backup_server import run_commands

SERVERFREE = str(Path(sys.executable).parent / "serverfree")
ADMIN_PW = "admin-secret-1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(data: Path, port: int) -> subprocess.Popen:
    env = {**os.environ, "SERVERFREE_ADMIN_PASSWORD": ADMIN_PW}
    proc = subprocess.Popen([SERVERFREE, "server", "--data", str(data), "--listen", f"127.0.0.1:{port}"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    line = proc.stdout.readline()
    assert line.startswith("listening"), line + proc.stderr.read()
    return proc


def stop(proc: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, sig)
        proc.wait(15)


def admin(port: int, *commands: str) -> None:
    with ServerSession("127.0.0.1", port, role="admin", name="admin", password=ADMIN_PW) as a:
        run_commands(a, commands)


def make_volume(path: Path, size: int, seed: int) -> bytes:
    rng = random.Random(seed)
    vol = bytearray(size)
    for i in range(0, size, 32 << 10):
        if rng.random() < 0.7:
            vol[i:i + (32 << 10)] = rng.randbytes(32 << 10)
    path.write_bytes(bytes(vol))
    return bytes(vol)


def client_files(tmp: Path, name: str, volumes: dict[str, int], seed: int) -> tuple[Path, Path, dict]:
    """A client's site file (devices and volumes only: no pool), dsm.opt, and the bytes of each volume."""
    d = tmp / name
    d.mkdir()
    data, devices, vols = {}, [], []
    for i, (vol, size) in enumerate(volumes.items()):
        data[vol] = make_volume(d / f"v{i}.img", size, seed * 10 + i)
        (d / f"r{i}.img").write_bytes(bytes(size))
        devices += [f"d{i}: v{i}.img", f"r{i}: r{i}.img"]
        vols.append(f"  '{vol}': {{device: d{i}, filesystem: raw}}")
    site = d / "site.yaml"
    site.write_text("devices: {" + ", ".join(devices) + "}\nvolumes:\n" + "\n".join(vols) + "\n")
    opt = d / "dsm.opt"
    opt.write_text(f"nodename {name}\ndomain.image {' '.join(volumes)}\nimagegapsize 0\n")
    return site, opt, data


def run(argv: list[str], password: str, port: int, **kw) -> subprocess.Popen:
    env = {**os.environ, "SERVERFREE_PASSWORD": password}
    return subprocess.Popen([SERVERFREE, *argv, "-tcpserveraddress=127.0.0.1", f"-tcpport={port}"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


@pytest.fixture
def server(tmp_path):
    port = free_port()
    proc = start_server(tmp_path / "srv", port)
    admin(port, "define devclass FILECLASS devtype=file", "define stgpool POOL1 FILECLASS",
          f"define volume POOL1 {tmp_path / 'pool1.img'} capacity=48m",
          f"define volume POOL1 {tmp_path / 'pool2.img'} capacity=48m",
          "define mgmtclass STANDARD STANDARD destination=POOL1")
    yield port, proc
    stop(proc)


def test_eight_clients_two_volumes_each_at_once(server, tmp_path, monkeypatch, capsys):
    port, _ = server
    clients = {}
    for c in range(8):
        name = f"CLIENT{c}"
        admin(port, f"register node {name} {name.lower()}-secret")
        clients[name] = client_files(tmp_path, name, {"E:": (1 << 20) + c * 65536, "F:": 512 << 10}, c)
    procs = {n: run(["backup", "image", "--options", str(opt), "--site", str(site)], f"{n.lower()}-secret", port)
             for n, (site, opt, _) in clients.items()}
    for n, p in procs.items():
        out, err = p.communicate(timeout=240)
        assert p.returncode == 0, f"{n}: {out}{err}"
    # every object restores identically, each to its own spare device (the restore command, in this process)
    for n, (site, opt, data) in clients.items():
        monkeypatch.setenv("SERVERFREE_PASSWORD", f"{n.lower()}-secret")
        for i, vol in enumerate(data):
            rc = main(["restore", "image", vol, f"r{i}", "--options", str(opt), "--site", str(site),
                       "-tcpserveraddress=127.0.0.1", f"-tcpport={port}"])
            assert rc == 0, capsys.readouterr()
            assert (site.parent / f"r{i}.img").read_bytes() == data[vol], f"{n} {vol}"
    # the catalogue: 16 active objects, one per node and volume, no two sharing pool space
    with Catalogue(tmp_path / "srv" / "catalogue.sqlite") as cat:
        objs = cat.query(inactive=True, with_pieces=True)
        assert sorted((o.node, o.filespace) for o in objs) == sorted((n, v) for n in clients for v in ("E:", "F:"))
        assert all(o.state == "active" and o.path_used == "lan" for o in objs)
        by_volume: dict[str, list] = {}
        for o in objs:
            by_volume.setdefault(o.pool_volume, []).append((o.pool_offset, o.pool_offset + o.image_size))
            assert sum(p.length for p in o.pieces) == o.image_size
        for ranges in by_volume.values():
            ranges.sort()
            assert all(a[1] <= b[0] for a, b in zip(ranges, ranges[1:])), ranges
        assert set(cat.states().values()) == {"active"}


def test_server_killed_mid_job_then_started_again(tmp_path):
    port = free_port()
    data_dir = tmp_path / "srv"
    proc = start_server(data_dir, port)
    try:
        admin(port, "define devclass FILECLASS devtype=file", "define stgpool POOL1 FILECLASS",
              f"define volume POOL1 {tmp_path / 'pool.img'} capacity=256m",
              "define mgmtclass STANDARD STANDARD destination=POOL1", "register node BIG big-node-secret")
        site, opt, data = client_files(tmp_path, "BIG", {"E:": 96 << 20}, 99)
        client = run(["backup", "image", "E:", "--options", str(opt), "--site", str(site)], "big-node-secret", port)
        catalogue = data_dir / "catalogue.sqlite"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # kill as soon as the object is pending: 96 MiB take
            with Catalogue(catalogue) as cat:  # far longer to move than this poll, on any machine
                if "pending" in cat.states().values():
                    break
            time.sleep(0.01)
        else:
            pytest.fail("the backup never started")
        stop(proc, signal.SIGKILL)
        out, err = client.communicate(timeout=60)
        assert client.returncode != 0
        with Catalogue(catalogue) as cat:
            assert list(cat.states().values()) == ["pending"]
            used = cat.db.execute("SELECT next_offset FROM pool_volumes").fetchone()[0]
            assert used >= 96 << 20
        proc = start_server(data_dir, port)
        with Catalogue(catalogue) as cat:
            assert list(cat.states().values()) == ["abandoned"]
            assert cat.db.execute("SELECT next_offset FROM pool_volumes").fetchone()[0] == 0  # reclaimed
        retry = run(["backup", "image", "E:", "--options", str(opt), "--site", str(site)], "big-node-secret", port)
        out, err = retry.communicate(timeout=240)
        assert retry.returncode == 0, out + err
        stop(proc)
        proc = start_server(data_dir, port)  # a second start reclaims nothing more
        restore = run(["restore", "image", "E:", "r0", "--options", str(opt), "--site", str(site)],
                      "big-node-secret", port)
        out, err = restore.communicate(timeout=240)
        assert restore.returncode == 0, out + err
        assert (site.parent / "r0.img").read_bytes() == data["E:"]
        with Catalogue(catalogue) as cat:
            states = cat.states()
            assert sorted(states.values()) == ["abandoned", "active"]
            active = cat.query()[0]
            assert active.pool_offset == 0  # the reclaimed space was reused, once
        with ServerSession("127.0.0.1", port, role="admin", name="admin", password=ADMIN_PW) as a:
            log = a.command("query actlog")[1]
        assert log.count("ANR1341I") == 1 and log.count("ANR1342I") == 1
    finally:
        stop(proc)
