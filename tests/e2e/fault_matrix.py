"""The fault matrix on the real lab, through the command line a user runs.

Each cell: a fault kind at a job phase, for a backup (then the object is
restored to the blank LUN and judged by ntfs-3g: ``ntfsfix -n``, ``ntfsls``,
``ntfscat`` of every file against the bytes written when the volume was made)
or for a restore.  The verdict of every cell: exit 0 and a volume ntfs-3g
finds identical, or exit 1 with one line naming the cause; never exit 2,
never a traceback, never an active catalogue object that does not restore.

Faults come from the mover's own injection (positions, not times: a seed
repeats a cell exactly) or from the lab (process killed before the job, LAN
server down).  The verification cells (run_verification_cell: pool LUN removed,
backup server SIGKILLed, client SIGKILLed while the server digests the pool for
a server-free backup) are timed by holding the backup server stopped until the
client has connected to it.  Every injected fault is confirmed from the mover's log
(``fault injected: ...``) or the process state, or the cell fails.

Run the whole matrix::

    .venv/bin/python -m tests.e2e.fault_matrix            # every cell, a table at the end
    .venv/bin/python -m tests.e2e.fault_matrix --seed 3 --cells 6
"""
from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tests.fixtures.sanlab import MIB, ROOT, SanLab
from tests.fixtures.sanlab_volume import judge

CLI = [sys.executable, "-c", "import sys; from orchestrator.cli import main; sys.exit(main())"]
MOVER_TIMEOUT = 3.0  # the site file's command timeout for DM1 (a stalled mover is noticed after this)

#: phase -> how the position is written in a rule (``{half}``/``{late}``: bytes of the image)
PHASES = {
    "connect": "command=any",
    "operating-parameters": "command=rcr-op",
    "first-list": "list=1,segment=0",
    "mid-batch": "bytes={half}",
    "last-batch": "bytes={late}",
}
#: kind -> the mover rule (None: done by the lab itself)
KINDS = {
    "mover-killed": None,
    "mover-stopped": "stall=120s@{pos}",
    "tcp-cut": "drop@{pos}",
    "busy": "busy=2s@{pos}",
    "copy-aborted": "copy-aborted=0D/02@{pos}",
    "not-ready": "check=02/04/01@{pos}",
    "lan-server-down": None,
    "every-path-down": None,  # mover killed, LAN server down, no LAN-free: the job must fail with exit 1
    "source-offline": None,  # tgtd takes the client LUN offline (a backup's source; tgtd: removable LUs only)
    "pool-gone": None,  # tgtd removes the pool LUN
}


@dataclass
class Cell:
    kind: str
    phase: str
    job: str = "backup"

    def rule(self, image_bytes: int) -> str | None:
        template = KINDS[self.kind]
        if template is None:
            return None
        pos = PHASES[self.phase].format(half=image_bytes // 2, late=max(1, image_bytes - 2 * MIB))
        if self.kind in ("busy", "not-ready") and self.phase in ("mid-batch", "last-batch"):
            return None  # answers commands, not positions inside a copy: not a cell
        if self.kind == "not-ready" and self.phase == "first-list":
            pos = "command=xcopy"
        if self.kind == "busy" and self.phase == "first-list":
            pos = "list=1"
        if self.kind == "copy-aborted" and self.phase in ("connect", "operating-parameters"):
            return None
        return template.format(pos=pos)

    def __str__(self) -> str:
        return f"{self.job}/{self.kind}@{self.phase}"


def all_cells() -> list[Cell]:
    cells = []
    for job in ("backup", "restore"):
        for kind in KINDS:
            for phase in PHASES:
                cell = Cell(kind, phase, job)
                if KINDS[kind] is None and phase != "connect":
                    continue
                if kind == "source-offline" and job == "restore":
                    continue  # a restore's source is the pool: pool-gone
                if KINDS[kind] is not None and cell.rule(64 * MIB) is None:
                    continue
                cells.append(cell)
    return cells


class MatrixLab:
    """The lab plus a site file for the command line."""

    def __init__(self, lab: SanLab, workdir: Path):
        self.lab, self.workdir = lab, workdir
        self.catalogue = workdir / "catalogue.db"
        self.site = workdir / "site.yaml"
        self.log_mark = 0
        self.write_site()

    def write_site(self, lan_server: str | None = None, lan_free: bool = True) -> None:
        lab = self.lab
        site = {"catalogue": str(self.catalogue), "lan_server": lan_server or lab.lanserver.address,
                "lan_free": lan_free, "verified_without_topology": True,
                "devices": {"disk0": lab.url(1), "pool0": lab.url(2), "restore0": lab.url(3)},
                "movers": {"DM1": {"url": lab.mover_url, "command_timeout": MOVER_TIMEOUT}},
                "pool": {"name": "POOL1", "volumes": [{"name": "VOL1", "device": "pool0",
                                                        "capacity": lab.pool_size}]},
                "volumes": {"E:": {"device": "disk0"}}}
        self.site.write_text(json.dumps(site, indent=1))

    def cli(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run([*CLI, *args, "--site", str(self.site)], capture_output=True, text=True,
                              timeout=timeout, cwd=ROOT)

    def backup(self) -> subprocess.CompletedProcess:
        return self.cli("backup", "image", "E:", "-enableserverfree=yes", "-enablelanfree=yes",
                        "-imagetype=static", "--json")

    def restore(self, serverfree: bool = True) -> subprocess.CompletedProcess:
        self.lab.blank_restore_lun()
        return self.cli("restore", "image", "E:", "restore0", f"-enableserverfree={'yes' if serverfree else 'no'}",
                        "-enablelanfree=yes", "--json")

    def restart_mover(self, rule: str | None) -> None:
        m = self.lab.mover
        if m is not None and m.proc is not None and m.proc.poll() is None:
            m.signal(signal.SIGKILL)
            m.signal(signal.SIGCONT)
        log = self.lab.workdir / "mover.log"
        self.log_mark = log.stat().st_size if log.exists() else 0  # the log is appended across restarts
        self.lab.start_mover([rule] if rule else [])
        self.write_site()

    def mover_log(self) -> str:
        """What the mover started by the last restart_mover logged."""
        with open(self.lab.mover.log_path, "rb") as f:
            f.seek(self.log_mark)
            return f.read().decode(errors="replace")


def _active_ids(catalogue: Path) -> set[int]:
    from orchestrator.catalogue import Catalogue

    with Catalogue(catalogue) as cat:
        return {o.id for o in cat.query(inactive=False)}


def run_cell(m: MatrixLab, cell: Cell, image_bytes: int) -> dict:
    """Run one cell and judge it; returns its row (``problems`` empty when the cell holds)."""
    problems: list[str] = []
    lab = m.lab
    rule = cell.rule(image_bytes)
    if cell.job == "restore":
        m.restart_mover(None)
        base = m.backup()  # a clean object to restore
        if base.returncode != 0:
            return {"cell": str(cell), "rule": rule, "exit": base.returncode, "path": "-",
                    "problems": [f"clean backup before the restore failed: {base.stderr.strip()[-300:]}"]}
    m.restart_mover(rule)
    before = _active_ids(m.catalogue)
    if cell.kind in ("mover-killed", "every-path-down"):
        lab.mover.signal(signal.SIGKILL)
        lab.mover.proc.wait(10)
        if lab.mover.proc.poll() is None:
            problems.append("the mover was not killed")
    if cell.kind == "lan-server-down":
        m.write_site(lan_server="127.0.0.1:9")  # discard port: nothing listens
    if cell.kind == "every-path-down":
        m.write_site(lan_server="127.0.0.1:9", lan_free=False)
    if cell.kind == "source-offline":
        lab.set_source_online(False)
    if cell.kind == "pool-gone":
        lab.remove_pool()
    t0 = time.monotonic()
    try:
        res = m.backup() if cell.job == "backup" else m.restore()
    finally:
        if cell.kind == "source-offline":
            lab.set_source_online(True)
        if cell.kind == "pool-gone":
            lab.restore_pool()
    elapsed = time.monotonic() - t0
    m.write_site()
    out = res.stdout.strip()
    report = {}
    try:
        report = json.loads(out) if out else {}
    except json.JSONDecodeError:
        problems.append(f"--json output is not JSON: {out[:200]}")
    if "Traceback" in res.stderr:
        problems.append(f"traceback: {res.stderr[-400:]}")
    if res.returncode not in (0, 1):
        problems.append(f"exit {res.returncode}: {res.stderr.strip()[-300:]}")
    if rule is not None:
        if "fault injected" not in m.mover_log():
            problems.append(f"the fault {rule} never fired (mover log has no 'fault injected')")
    if cell.kind == "every-path-down" and res.returncode != 1:
        problems.append(f"with every path down the job must fail with exit 1, not {res.returncode}")
    after = _active_ids(m.catalogue)
    if res.returncode == 1:
        message = report.get("message") or res.stderr.strip()
        if not message or "\n" in message.strip():
            problems.append(f"exit 1 without one line naming the cause: {message!r}")
        if cell.job == "backup" and after - before:
            problems.append(f"a failed backup left active object(s) {sorted(after - before)}")
    elif res.returncode == 0 and cell.job == "backup":
        m.restart_mover(None)  # judge the object with a healthy mover
        r = m.restore(serverfree=False)
        if r.returncode != 0:
            problems.append(f"the committed object does not restore: {r.stderr.strip()[-300:]}")
    if res.returncode == 0:
        problems += judge(lab.restore_img, lab.volume.files) if cell.job == "restore" or not problems else []
    return {"cell": str(cell), "rule": rule, "exit": res.returncode, "path": report.get("path_used", "-"),
            "seconds": round(elapsed, 1), "problems": problems}


#: faults while a server-free backup verifies (the backup server digests the pool): kind -> expected exit
VERIFY_KINDS = {"pool-gone": 0, "lan-server-down": 0, "client-killed": None}


def _connected_to(port: int) -> bool:
    """An established TCP connection to 127.0.0.1:port (the kernel accepts it while the server is stopped)."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            f = row.split()
            if f[3] == "01" and int(f[2].rsplit(":", 1)[1], 16) == port:
                return True
    return False


def run_verification_cell(m: MatrixLab, kind: str) -> dict:
    """A server-free backup with the fault while it verifies: the backup server is SIGSTOPped before the job
    (a server-free copy needs it only to verify), the fault is applied once the client has connected to it,
    then the server continues.  Verdicts as run_cell's; a killed client leaves no active object and the next
    backup completes and restores."""
    lab, problems = m.lab, []
    m.restart_mover(None)
    server = lab.lanserver
    port = int(server.address.rsplit(":", 1)[1])
    before = _active_ids(m.catalogue)
    server.signal(signal.SIGSTOP)
    t0 = time.monotonic()
    proc = subprocess.Popen([*CLI, "backup", "image", "E:", "-enableserverfree=yes", "-enablelanfree=yes",
                             "-imagetype=static", "--json", "--site", str(m.site)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        while not _connected_to(port) and proc.poll() is None and time.monotonic() - t0 < 120:
            time.sleep(0.02)
        if proc.poll() is not None:
            problems.append("the job ended before it verified through the backup server")
        if kind == "pool-gone":
            lab.remove_pool()
        elif kind == "lan-server-down":
            server.signal(signal.SIGKILL)
        elif kind == "client-killed":
            proc.kill()
        server.signal(signal.SIGCONT)
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        lab.restore_pool()
        if server.proc is not None and server.proc.poll() is not None:
            server.proc = None
            server.start()
        else:
            server.signal(signal.SIGCONT)
        m.write_site()
    elapsed = time.monotonic() - t0
    if "Traceback" in err:
        problems.append(f"traceback: {err[-400:]}")
    after = _active_ids(m.catalogue)
    report = {}
    if kind == "client-killed" and proc.returncode != -signal.SIGKILL:
        problems.append(f"the client was not killed while verifying (exit {proc.returncode})")
    if kind == "lan-server-down" and "checking the pool device over the SAN" not in err:
        problems.append(f"the client never lost the backup server while verifying: {err[-300:]}")
    if kind == "client-killed":
        nxt = m.backup()  # the next start sweeps the killed job's object; nothing of it may stay active
        if "marked abandoned" not in nxt.stderr:
            problems.append(f"the next backup did not sweep the killed job's object: {nxt.stderr[-300:]}")
        if after - before:
            problems.append(f"the killed job left active object(s) {sorted(after - before)}")
        res_code, out = nxt.returncode, nxt.stdout
        if res_code != 0:
            problems.append(f"the backup after the kill failed: {nxt.stderr[-300:]}")
    else:
        res_code = proc.returncode
        if res_code != VERIFY_KINDS[kind]:
            problems.append(f"exit {res_code} (expected {VERIFY_KINDS[kind]}): {err.strip()[-300:]}")
        if res_code == 1 and (after - before):
            problems.append(f"a failed backup left active object(s) {sorted(after - before)}")
    try:
        report = json.loads(out) if out.strip() else {}
    except json.JSONDecodeError:
        problems.append(f"--json output is not JSON: {out[:200]}")
    if res_code == 0:
        r = m.restore(serverfree=False)
        if r.returncode != 0:
            problems.append(f"the committed object does not restore: {r.stderr.strip()[-300:]}")
        else:
            problems += judge(lab.restore_img, lab.volume.files)
    exit_code = proc.returncode if kind != "client-killed" else f"killed, next {res_code}"
    return {"cell": f"backup/{kind}@verification", "rule": None, "exit": exit_code,
            "path": report.get("path_used", "-"), "seconds": round(elapsed, 1), "problems": problems}


def image_bytes_of(m: MatrixLab) -> int:
    res = m.cli("backup", "image", "E:", "-enableserverfree=yes", "-imagetype=static", "--json")
    if res.returncode != 0:
        raise RuntimeError(f"clean server-free backup failed: {res.stderr}")
    rep = json.loads(res.stdout)
    return int(sum(rep.get("bytes_by_path", {}).values()) or 16 * MIB)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=None, help="shuffle and pick cells with this seed")
    ap.add_argument("--cells", type=int, default=0, help="run only this many cells (0: all)")
    ap.add_argument("--dir", default=None, help="lab work folder (default: a temporary one)")
    a = ap.parse_args(argv)
    cells = all_cells()
    if a.seed is not None:
        random.Random(a.seed).shuffle(cells)
    if a.cells:
        cells = cells[:a.cells]
    with SanLab(a.dir, volume_size=16 * MIB, volume_scale=0.3, mover_timeout=5.0) as lab:
        m = MatrixLab(lab, lab.workdir)
        size = image_bytes_of(m)
        rows = [run_cell(m, c, size) for c in cells]
        if not a.cells:
            rows += [run_verification_cell(m, kind) for kind in VERIFY_KINDS]
    bad = [r for r in rows if r["problems"]]
    for r in rows:
        print(f"{r['cell']:45s} exit {r['exit']}  {r['path']:11s} {r.get('seconds', 0):5.1f}s  "
              f"{'OK' if not r['problems'] else '; '.join(r['problems'])}")
    print(f"{len(rows) - len(bad)} of {len(rows)} cells hold (load {os.getloadavg()[0]:.2f})")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
