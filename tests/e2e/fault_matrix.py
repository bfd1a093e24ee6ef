"""The fault matrix on the real lab, through the backup server and the command line a user runs.

Each cell: a fault kind at a job phase, for a backup (then the object is
restored to the blank LUN and judged by ntfs-3g: ``ntfsfix -n``, ``ntfsls``,
``ntfscat`` of every file against the bytes written when the volume was made)
or for a restore.  The lab runs as an operator runs it
(:mod:`tests.fixtures.lab_server`): ``serverfree server`` initiates the
server-free copies through the mover (``serverfree datamover serve``), the
client commands are processes with a dsm.opt naming the server.  The verdict of
every cell: exit 0 and a volume ntfs-3g finds identical, or exit 1 with one
line naming the cause; never exit 2, never a traceback, never an active
catalogue object that does not restore, never a pending object left behind.

Faults come from the mover's own injection (positions, not times: a seed
repeats a cell exactly) or from the lab (the mover or the server killed before
the job, the pool LUN removed from tgtd, the client LUN offline, the server's
pool volume file moved away).  Every injected fault is confirmed from the
mover's log (``fault injected: ...``) or the process state, or the cell fails.

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

from tests.fixtures.lab_server import LabServer
from tests.fixtures.sanlab import MIB, SanLab
from tests.fixtures.sanlab_volume import judge

MOVER_TIMEOUT = 3.0  # the server's --mover-timeout (a stalled mover is noticed after this)

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
    "server-down": None,  # the backup server SIGKILLed before the job (started again after it)
    "server-pool-gone": None,  # the server's pool volume file moved away (tgtd still serves the pool LUN)
    "every-path-down": None,  # mover killed, no LAN-free (no storage_agent), the server's pool volume gone: exit 1
    "source-offline": None,  # tgtd takes the client LUN offline (a backup's source; tgtd: removable LUs only)
    "pool-gone": None,  # tgtd removes the pool LUN (the mover's and the storage agent's way to the pool)
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
    """The lab, its backup server, and the client commands run against it."""

    def __init__(self, lab: SanLab, workdir: Path):
        self.lab, self.workdir = lab, workdir
        self.server = LabServer(lab, workdir / "server-lab", mover_timeout=MOVER_TIMEOUT).start()
        self.log_mark = 0
        self.server_mark = 0

    def close(self) -> None:
        self.server.stop()

    def backup(self) -> subprocess.CompletedProcess:
        return self.server.backup()

    def restore(self, serverfree: bool = True) -> subprocess.CompletedProcess:
        return self.server.restore(serverfree=serverfree)

    def restart_mover(self, rule: str | None) -> None:
        m = self.lab.mover
        if m is not None and m.proc is not None and m.proc.poll() is None:
            m.signal(signal.SIGKILL)
            m.signal(signal.SIGCONT)
        log = self.lab.workdir / "mover.log"
        self.log_mark = log.stat().st_size if log.exists() else 0  # the log is appended across restarts
        slog = self.server.workdir / "server.log"
        self.server_mark = slog.stat().st_size if slog.exists() else 0
        self.lab.start_mover([rule] if rule else [])  # on the same port: the server's --mover URL holds

    def mover_log(self) -> str:
        """What the mover started by the last restart_mover logged."""
        with open(self.lab.mover.log_path, "rb") as f:
            f.seek(self.log_mark)
            return f.read().decode(errors="replace")

    def server_log(self) -> str:
        """What the server wrote to its stderr since the last restart_mover."""
        with open(self.server.workdir / "server.log", "rb") as f:
            f.seek(self.server_mark)
            return f.read().decode(errors="replace")

    def hide_server_pool(self) -> Path:
        """Move the server's pool volume file away (tgtd keeps its open file: the pool LUN still answers)."""
        away = self.lab.pool_img.with_suffix(".away")
        os.rename(self.lab.pool_img, away)
        return away

    def unhide_server_pool(self, away: Path) -> None:
        os.rename(away, self.lab.pool_img)


def run_cell(m: MatrixLab, cell: Cell, image_bytes: int) -> dict:
    """Run one cell and judge it; returns its row (``problems`` empty when the cell holds)."""
    problems: list[str] = []
    lab, srv = m.lab, m.server
    rule = cell.rule(image_bytes)
    if cell.job == "restore":
        m.restart_mover(None)
        base = m.backup()  # a clean object to restore
        if base.returncode != 0:
            return {"cell": str(cell), "rule": rule, "exit": base.returncode, "path": "-",
                    "problems": [f"clean backup before the restore failed: {base.stderr.strip()[-300:]}"]}
    m.restart_mover(rule)
    before = srv.active()
    away = None
    if cell.kind in ("mover-killed", "every-path-down"):
        lab.mover.signal(signal.SIGKILL)
        lab.mover.proc.wait(10)
        if lab.mover.proc.poll() is None:
            problems.append("the mover was not killed")
    if cell.kind in ("server-pool-gone", "every-path-down"):
        away = m.hide_server_pool()
    if cell.kind == "every-path-down":
        srv.write_site(lan_free=False)
    if cell.kind == "server-down":
        srv.kill()
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
        if away is not None:
            m.unhide_server_pool(away)
        if cell.kind == "every-path-down":
            srv.write_site()
        if cell.kind == "server-down":
            srv.start()
    elapsed = time.monotonic() - t0
    out = res.stdout.strip()
    report = {}
    try:
        report = json.loads(out) if out else {}
    except json.JSONDecodeError:
        problems.append(f"--json output is not JSON: {out[:200]}")
    if "Traceback" in res.stderr:
        problems.append(f"traceback: {res.stderr[-400:]}")
    if "Traceback" in m.server_log():
        problems.append(f"traceback in the server's log: {m.server_log()[-400:]}")
    if res.returncode not in (0, 1):
        problems.append(f"exit {res.returncode}: {res.stderr.strip()[-300:]}")
    if rule is not None:
        if "fault injected" not in m.mover_log():
            problems.append(f"the fault {rule} never fired (mover log has no 'fault injected')")
    if cell.kind == "busy" and res.returncode == 0 and not report.get("path_used", "").startswith("server-free"):
        problems.append(f"a mover BUSY for 2 s (less than its {MOVER_TIMEOUT:g} s timeout) was failed over, not "
                        f"waited for: path {report.get('path_used')}")
    if cell.kind in ("every-path-down", "server-down") and res.returncode != 1:
        problems.append(f"with {cell.kind} the job must fail with exit 1, not {res.returncode}")
    states = srv.states()
    if "pending" in states.values():
        problems.append(f"the job ended with a pending object left on the server: {states}")
    after = {i for i, s in states.items() if s == "active"}
    if res.returncode == 1:
        message = report.get("message") or res.stderr.strip()
        if not message or "\n" in message.strip():
            problems.append(f"exit 1 without one line naming the cause: {message!r}")
        if cell.job == "backup" and after - before:
            problems.append(f"a failed backup left active object(s) {sorted(after - before)}")
    elif res.returncode == 0 and cell.job == "backup":
        r = m.restore(serverfree=False)  # LAN-free: the pool LUN read by the client, whatever the mover's state
        if r.returncode != 0:
            problems.append(f"the committed object does not restore: {r.stderr.strip()[-300:]}")
    if res.returncode == 0:
        problems += judge(lab.restore_img, lab.volume.files) if cell.job == "restore" or not problems else []
    return {"cell": str(cell), "rule": rule, "exit": res.returncode, "path": report.get("path_used", "-"),
            "seconds": round(elapsed, 1), "problems": problems, "report": report}


def image_bytes_of(m: MatrixLab) -> int:
    res = m.backup()
    if res.returncode != 0:
        raise RuntimeError(f"clean server-free backup failed: {res.stderr}")
    rep = json.loads(res.stdout)
    assert rep["path_used"] == "server-free", rep
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
        try:
            size = image_bytes_of(m)
            rows = [run_cell(m, c, size) for c in cells]
        finally:
            m.close()
    bad = [r for r in rows if r["problems"]]
    for r in rows:
        print(f"{r['cell']:45s} exit {r['exit']}  {r['path']:11s} {r.get('seconds', 0):5.1f}s  "
              f"{'OK' if not r['problems'] else '; '.join(r['problems'])}")
    print(f"{len(rows) - len(bad)} of {len(rows)} cells hold (load {os.getloadavg()[0]:.2f})")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
