"""The fault matrix on the real lab, through the command line a user runs.

Each cell: a fault kind at a job phase, for a backup (then the object is
restored to the blank LUN and judged by ntfs-3g: ``ntfsfix -n``, ``ntfsls``,
``ntfscat`` of every file against the bytes written when the volume was made)
or for a restore.  The verdict of every cell: exit 0 and a volume ntfs-3g
finds identical, or exit 1 with one line naming the cause; never exit 2,
never a traceback, never an active catalogue object that does not restore.

Faults come from the mover's own injection (positions, not times: a seed
repeats a cell exactly) or from the lab (process killed before the job, the
LAN path's pool volume gone).  The verification cell (run_verification_cell)
takes the LAN path's pool away, so the pool cannot be digested on the server's
side for a server-free backup and the client must check it over the SAN.
Every injected fault is confirmed from the mover's log (``fault injected: ...``)
or the process state, or the cell fails.

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
    "lan-pool-gone": None,  # the LAN path's pool volume (the site's lan_pool) cannot be opened
    "every-path-down": None,  # mover killed, LAN pool gone, no LAN-free: the job must fail with exit 1
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

    def write_site(self, lan_pool: dict[str, str] | None = None, lan_free: bool = True) -> None:
        lab = self.lab
        site = {"catalogue": str(self.catalogue), "lan_pool": {"volumes": lan_pool or lab.lan_pool},
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

    def gone_pool(self) -> dict[str, str]:
        """A lan_pool whose volume file does not exist: the LAN path cannot open the pool."""
        return {"VOL1": str(self.workdir / "no-such-pool.img")}

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
    if cell.kind == "lan-pool-gone":
        m.write_site(lan_pool=m.gone_pool())
    if cell.kind == "every-path-down":
        m.write_site(lan_pool=m.gone_pool(), lan_free=False)
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


#: faults while a server-free backup verifies (the pool digested on the server's side): kind -> expected exit
VERIFY_KINDS = {"lan-pool-gone": 0}


def run_verification_cell(m: MatrixLab, kind: str) -> dict:
    """A server-free backup whose pool cannot be digested on the server's side (the site's lan_pool names a
    missing file): the copy completes, the client checks the pool over the SAN instead, commits, and the
    object restores identically (judged by ntfs-3g)."""
    lab, problems = m.lab, []
    m.restart_mover(None)
    m.write_site(lan_pool=m.gone_pool())
    t0 = time.monotonic()
    try:
        res = m.backup()
    finally:
        m.write_site()
    elapsed = time.monotonic() - t0
    err, out = res.stderr, res.stdout
    if "Traceback" in err:
        problems.append(f"traceback: {err[-400:]}")
    if "checking the pool device over the SAN" not in err:
        problems.append(f"the client never lost the server's side while verifying: {err[-300:]}")
    if res.returncode != VERIFY_KINDS[kind]:
        problems.append(f"exit {res.returncode} (expected {VERIFY_KINDS[kind]}): {err.strip()[-300:]}")
    report = {}
    try:
        report = json.loads(out) if out.strip() else {}
    except json.JSONDecodeError:
        problems.append(f"--json output is not JSON: {out[:200]}")
    if res.returncode == 0:
        r = m.restore(serverfree=False)
        if r.returncode != 0:
            problems.append(f"the committed object does not restore: {r.stderr.strip()[-300:]}")
        else:
            problems += judge(lab.restore_img, lab.volume.files)
    return {"cell": f"backup/{kind}@verification", "rule": None, "exit": res.returncode,
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
