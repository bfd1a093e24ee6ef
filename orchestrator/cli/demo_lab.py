"""The demo's lab: a data mover, the backup server and a client, each its own process on 127.0.0.1.

:class:`DemoLab` lays out a work directory (two NTFS volumes, a pool volume,
two blank restore LUNs), starts ``serverfree datamover serve`` serving them
as iSCSI LUNs with the designators of the demo's topology (COPY ABORTED
injected mid-way through the second backup and its restore), starts ``serverfree
server`` with its own ``--data`` directory, an administrator password from a
generated file, ``--mover DM1=...`` and the topology as ``--fabric``, defines
nodes, pool, policy and SAN objects with ``serverfree admin ... macro`` (the
one parser), and runs ``serverfree backup image`` / ``query backup`` /
``restore image`` as a client would, with a dsm.opt and a client site file.
Every process it starts it stops by PID.
"""
from __future__ import annotations

import json
import os
import resource
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any


IQN = "iqn.2026-12.org.serverfree.demo:dm1"
MIB = 1 << 20
#: LUN id on the mover -> (what, topology NAA or None for a restore LUN)
LUNS = {0: ("pool", "600a0b800000000000000000000000b1"), 1: ("H", "600a0b800000000000000000000000a5"),
        2: ("I", "600a0b800000000000000000000000a6"), 3: ("H-restore", None), 4: ("I-restore", None)}
NODE = "CLIENT1"
POOL_SIZE = 192 * MIB
START_TIMEOUT = 60.0


class DemoError(RuntimeError):
    """A part of the demo's lab did not start or answer (one line: which part and why)."""


def _cli() -> list[str]:
    exe = Path(sys.executable).with_name("serverfree")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "orchestrator.cli"]


def _cpu_of(pid: int) -> float:
    """User + system CPU seconds of a running process (Linux /proc), 0.0 where unknown."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


class Child:
    """A long-running process that prints a ready line; stopped by its PID."""

    def __init__(self, name: str, argv: list[str], log: Path, env: dict[str, str] | None = None):
        self.name, self.log_path = name, log
        self.log = open(log, "w")
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=self.log, text=True,
                                     env={**os.environ, **(env or {})})

    def ready(self, prefix: str) -> str:
        """The first stdout line starting with ``prefix`` (the process says where it listens)."""
        deadline = time.monotonic() + START_TIMEOUT
        assert self.proc.stdout is not None
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            if line.startswith(prefix):
                return line.strip()
        self.stop()
        tail = self.log_path.read_text(errors="replace").strip().splitlines()[-1:] or ["no output"]
        raise DemoError(f"the {self.name} did not start: {tail[0]} (log: {self.log_path})")

    @property
    def cpu_seconds(self) -> float:
        return _cpu_of(self.proc.pid)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.log.close()


class DemoLab:
    """The work directory, the mover and the server; :meth:`client` runs one client command."""

    def __init__(self, work: Path, topology: dict, faults_at_bytes: list[int]):
        self.work = work
        self.topology = topology
        self.faults_at_bytes = faults_at_bytes
        self.mover: Child | None = None
        self.server: Child | None = None
        self.node_password = secrets.token_urlsafe(18)
        self.admin_password = secrets.token_urlsafe(18)
        self.port = 0

    def path(self, what: str) -> Path:
        return self.work / f"{what}.img"

    # -- the data mover ----------------------------------------------------------------------
    def start_mover(self) -> str:
        import yaml

        luns = [{"id": n, "path": str(self.path(what)), "serial": f"DEMO-{what.upper()}"[:16],
                 **({"naa": naa} if naa else {})} for n, (what, naa) in LUNS.items()]
        cfg = {"portal": "127.0.0.1:0", "target": IQN, "luns": luns,
               "acl": [{"initiator": "*", "luns": "all"}],
               "faults": [f"copy-aborted=0D/02@bytes={b}" for b in self.faults_at_bytes]}
        (self.work / "mover.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
        self.mover = Child("data mover", [*_cli(), "datamover", "serve", "--config", str(self.work / "mover.yaml")],
                           self.work / "mover.log")
        line = self.mover.ready("serverfree datamover: serving")
        self.mover_portal = line.rsplit(" on ", 1)[1]
        return line

    def url(self, lun: int) -> str:
        return f"iscsi://{self.mover_portal}/{IQN}/{lun}"

    # -- the backup server ---------------------------------------------------------------------
    def start_server(self) -> str:
        import yaml

        pw = self.work / "admin.pw"
        pw.write_text(self.admin_password + "\n")
        pw.chmod(0o600)
        (self.work / "fabric.yaml").write_text(yaml.safe_dump(self.topology, sort_keys=False))
        self.server = Child("backup server", [*_cli(), "server", "--data", str(self.work / "server"),
                                              "--listen", "127.0.0.1:0", "--admin", "admin",
                                              "--admin-password-file", str(pw), "--mover", f"DM1={self.url(0)}",
                                              "--fabric", str(self.work / "fabric.yaml")],
                            self.work / "server.log")
        line = self.server.ready("listening")
        self.port = int(line.rsplit(":", 1)[1])
        return line

    def macro(self) -> Path:
        """The site's definitions as a TSM macro: policy, node, pool volume, mover, disks, paths."""
        dm = self.topology["datamovers"][0]
        pool = self.path("pool")
        text = f"""/* serverfree demo: what the backup server owns, defined as a TSM administrator would */
register node {NODE} {self.node_password} domain=STANDARD
define devclass DISKCLASS devtype=file
define stgpool SFPOOL DISKCLASS dataformat=nonblock
define volume SFPOOL {pool} capacity={POOL_SIZE // MIB}m designator={LUNS[0][1]}
define mgmtclass STANDARD SF1 destination=SFPOOL
define datamover {dm['name']} type=scsi wwn={dm['ports'][0]['wwpn']} dataformat=nonblock
define disk {NODE} DISK_H wwn={LUNS[1][1]}
define disk {NODE} DISK_I wwn={LUNS[2][1]}
define path {dm['name']} DISK_H srctype=datamover desttype=disk node={NODE} lun=5
define path {dm['name']} DISK_I srctype=datamover desttype=disk node={NODE} lun=6
set serverfree batchsize=10 status=on
"""
        path = self.work / "demo.mac"
        path.write_text(text)
        return path

    def admin(self, *command: str) -> str:
        """``serverfree admin -id=admin ... COMMAND``; its output (DemoError when refused)."""
        done = subprocess.run([*_cli(), "admin", "-id=admin", "-tcpserveraddress=127.0.0.1", f"-tcpport={self.port}",
                               *command], capture_output=True, text=True, timeout=120,
                              env={**os.environ, "SERVERFREE_PASSWORD": self.admin_password})
        if done.returncode != 0:
            why = (done.stderr.strip() or done.stdout.strip()).splitlines()[-1:] or ["no output"]
            raise DemoError(f"serverfree admin {' '.join(command)}: {why[0]}")
        return done.stdout

    # -- the client ----------------------------------------------------------------------------
    def client_files(self) -> tuple[Path, Path]:
        """The client's site file (its devices, the storage-agent map) and dsm.opt (the server, options)."""
        import yaml

        site = {"devices": {"H": self.url(1), "I": self.url(2), "pool": self.url(0),
                            "H-restore": self.url(3), "I-restore": self.url(4)},
                "storage_agent": {str(self.path("pool")): "pool"},
                "volumes": {"H:": {"device": "H"}, "I:": {"device": "I"}}}
        (self.work / "site.yaml").write_text(yaml.safe_dump(site, sort_keys=False))
        del site["storage_agent"]  # the same client with its SAN path to the pool down: no LAN-free
        (self.work / "site-no-agent.yaml").write_text(yaml.safe_dump(site, sort_keys=False))
        (self.work / "dsm.opt").write_text(
            f"nodename {NODE}\ntcpserveraddress 127.0.0.1\ntcpport {self.port}\npasswordaccess generate\n"
            "enableserverfree yes\nenablelanfree yes\nimagetype static\ncompression yes\n")
        return self.work / "site.yaml", self.work / "dsm.opt"

    def client(self, *command: str) -> tuple[Any, float, float, str]:
        """Run ``serverfree COMMAND --options dsm.opt --json`` as the client: (JSON, client CPU s, server CPU s,
        stderr)."""
        assert self.server is not None
        before, srv0 = resource.getrusage(resource.RUSAGE_CHILDREN), self.server.cpu_seconds
        done = subprocess.run([*_cli(), *command, "--options", str(self.work / "dsm.opt"), "--json"],
                              capture_output=True, text=True, timeout=600,
                              env={**os.environ, "SERVERFREE_PASSWORD": self.node_password})
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        try:
            out = json.loads(done.stdout)
        except ValueError:
            why = done.stderr.strip().splitlines()[-1:] or [f"exit {done.returncode}, no output"]
            raise DemoError(f"serverfree {' '.join(command)}: {why[0]}") from None
        return out, cpu, self.server.cpu_seconds - srv0, done.stderr

    def stop(self) -> None:
        for child in (self.server, self.mover):
            if child is not None:
                child.stop()
