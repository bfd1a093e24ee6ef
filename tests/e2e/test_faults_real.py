"""Real faults at seeded byte positions of server-free backups the backup server initiates, each confirmed and judged.

The lab runs as an operator runs it (:mod:`tests.fixtures.lab_server`):
``serverfree server`` commands the mover, the client is a ``serverfree backup
image`` process.  Each trial restarts the data mover with one fault rule of its own injection
(scsi/copymgr/faults.py) at a seeded byte position B of the copy:

* ``tcp-cut``: the mover closes every iSCSI connection once B bytes have moved
  (``drop@bytes=B``; no CAP_NET_ADMIN needed, unlike ``ss -K``);
* ``copy-aborted``: the copy stops at B with COPY ABORTED 0Dh/02h;
* ``mover-kill`` / ``mover-stop``: the mover holds still at B
  (``stall@bytes=B``) and the test SIGKILLs / SIGSTOPs it there;
* ``source-offline`` / ``pool-removed``: the mover holds still at B while the
  test takes the client LUN offline in tgtd (for an outage, or for good) or
  removes the pool LUN.

So a printed seed repeats every trial exactly (positions, not wall-clock).
Every fault is confirmed to have happened -- the mover logged ``fault
injected`` at B with the connections closed, the process is dead or in state
T, tgtd shows the LUN offline or gone -- or the trial fails.  Every completed
backup is restored to the blank LUN and judged by ntfs-3g (``ntfsfix -n``,
``ntfsls``, ``ntfscat`` of every file against the bytes written when the
volume was made), never through the catalogue.  Most faults must land
mid-copy; the count is printed and recorded.  Where the server kept what the
mover committed (``ANR0539I``), the client's report must read
``server-free+...`` and say from which image byte the client moved the rest;
no trial may leave a pending object on the server.  ``SANLAB_SEED=<seed>`` reruns a
run, ``SANLAB_FAULTS=<n>`` changes the number of trials.
"""
from __future__ import annotations

import json
import os
import random
import re
import signal
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import pytest

from tests.fixtures.lab_server import LabServer
from tests.fixtures.sanlab import CLIENT_LUN, POOL_LUN, SanLab, missing_reason
from tests.fixtures.sanlab_volume import judge

MIB = 1 << 20
KINDS = ("mover-kill", "mover-stop", "tcp-cut", "copy-aborted", "source-offline", "pool-removed")
MOVER_TIMEOUT = 4.0  # the server's --mover-timeout: a stopped mover is noticed after this
HOLD = {"mover-kill": 60, "mover-stop": 60, "source-offline": 1, "pool-removed": 1}  # stall seconds at B


@dataclass
class Fault:
    kind: str
    at: int  # bytes the mover has written when the fault strikes
    outage: float | None = None  # source-offline: back online this long after the hold (None: not during the job)
    confirmed: str = ""
    problem: str = ""
    _thread: threading.Thread | None = field(default=None, repr=False)

    def rule(self) -> str:
        if self.kind == "tcp-cut":
            return f"drop@bytes={self.at}"
        if self.kind == "copy-aborted":
            return f"copy-aborted=0D/02@bytes={self.at}"
        return f"stall={HOLD[self.kind]}s@bytes={self.at}"

    def arm(self, lab: SanLab, log_mark: int) -> None:
        """Start the mover with the rule; for the lab's own faults, a thread waits for the hold and strikes."""
        lab.start_mover([self.rule()])
        if self.kind in HOLD:
            self._thread = threading.Thread(target=self._strike, args=(lab, log_mark), daemon=True)
            self._thread.start()

    def _strike(self, lab: SanLab, log_mark: int) -> None:
        deadline = time.monotonic() + 120
        while "fault injected" not in _log_since(lab, log_mark):
            if time.monotonic() > deadline:
                return
            time.sleep(0.005)
        try:
            if self.kind == "mover-kill":
                lab.kill_mover()
            elif self.kind == "mover-stop":
                lab.freeze_mover()
            elif self.kind == "source-offline":
                lab.set_source_online(False)
                self.confirmed = _lun_state(lab, CLIENT_LUN)
                if self.outage is not None:
                    time.sleep(HOLD[self.kind] + self.outage)
                    lab.set_source_online(True)
            elif self.kind == "pool-removed":
                lab.remove_pool()
                self.confirmed = _lun_state(lab, POOL_LUN)
        except Exception as exc:  # noqa: BLE001 - the fault itself failed: the trial reports it
            self.problem = f"{type(exc).__name__}: {exc}"

    def confirm(self, lab: SanLab, log_mark: int) -> str:
        """'' when the fault is known to have happened at its position, else what is missing."""
        if self._thread is not None:
            self._thread.join(timeout=60)
        if self.problem:
            return self.problem
        log = _log_since(lab, log_mark)
        if f"fault injected: {self.rule()}" not in log:
            return f"the mover never logged the fault {self.rule()}"
        if self.kind == "tcp-cut" and "iSCSI connection(s) closed" not in log:
            return "the mover did not close its connections"
        proc = lab.mover.proc
        if self.kind == "mover-kill":
            try:
                proc.wait(10)
            except Exception:  # noqa: BLE001
                return "the mover is still running after SIGKILL"
        if self.kind == "mover-stop":
            state = _proc_state(proc.pid)
            if state != "T":
                return f"the mover is in state {state!r}, not stopped (T)"
        if self.kind == "source-offline" and "Online: No" not in self.confirmed:
            return f"tgtd does not show the client LUN offline: {self.confirmed!r}"
        if self.kind == "pool-removed" and self.confirmed != "absent":
            return f"tgtd still lists the pool LUN: {self.confirmed!r}"
        return ""

    def recover(self, lab: SanLab) -> None:
        """Undo the fault so the next trial starts from a healthy lab."""
        if self.kind == "source-offline":
            lab.set_source_online(True)
        elif self.kind == "pool-removed":
            lab.restore_pool()
        proc = lab.mover.proc if lab.mover is not None else None
        if proc is not None and proc.poll() is None:
            lab.mover.signal(signal.SIGKILL)  # a frozen mover dies while stopped, never resumes a copy
            lab.mover.signal(signal.SIGCONT)
            proc.wait(10)


def _log_since(lab: SanLab, mark: int) -> str:
    with open(lab.workdir / "mover.log", "rb") as f:
        f.seek(mark)
        return f.read().decode(errors="replace")


def _proc_state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"


def _lun_state(lab: SanLab, lun: int) -> str:
    """tgtd's own account of one LU: its show block (with 'Online: Yes/No'), or 'absent'."""
    out = lab.tgtd.tgtadm("--op", "show", "--mode", "target")
    target = next((t for t in ("\n" + out).split("\nTarget ") if t.startswith(f"{lab.target.tid}:")), "")
    blocks = target.split("LUN: ")
    for block in blocks[1:]:
        if block.split("\n", 1)[0].strip() == str(lun):
            return block
    return "absent"


@pytest.fixture(scope="module")
def small_lab(tmp_path_factory):
    reason = missing_reason()
    if reason:
        pytest.skip(reason)
    lab = SanLab(tmp_path_factory.mktemp("faultlab"), volume_size=16 * MIB, volume_scale=0.3,
                 mover_timeout=5.0).start()
    try:
        yield lab
    finally:
        lab.stop()


@pytest.fixture(scope="module")
def server(small_lab):
    srv = LabServer(small_lab, small_lab.workdir / "server-lab", mover_timeout=MOVER_TIMEOUT).start()
    try:
        yield srv
    finally:
        srv.stop()


def _report(res, where: str) -> dict:
    assert "Traceback" not in res.stderr, f"{where}: {res.stderr[-1500:]}"
    assert res.returncode in (0, 1), f"{where}: exit {res.returncode}: {res.stderr[-800:]}"
    return json.loads(res.stdout) if res.stdout.strip() else {"outcome": "failed", "message": res.stderr.strip()}


def test_random_faults_fail_over_or_fail_clearly(small_lab, server, record_property):
    lab, srv = small_lab, server
    seed = int(os.environ.get("SANLAB_SEED", random.SystemRandom().randrange(1 << 32)))
    trials = int(os.environ.get("SANLAB_FAULTS", "8"))
    print(f"\nfault injection seed {seed} ({trials} trials); rerun with SANLAB_SEED={seed}")
    record_property("fault_seed", seed)
    rng = random.Random(seed)
    lab.start_mover()
    clean = _report(srv.backup(), "clean backup")
    assert clean["outcome"] == "completed" and clean["path_used"] == "server-free", clean
    image = clean["image_size"]
    kinds = [KINDS[i % len(KINDS)] for i in range(trials)]
    rng.shuffle(kinds)
    outcomes: Counter = Counter()
    lines, landed, moved_on, judged, resumed = [], 0, 0, 0, 0
    for n, kind in enumerate(kinds):
        at = rng.randrange(1, image // (64 * 1024)) * 64 * 1024  # a 64 KiB boundary inside the image
        # an outage outlasts the mover's hold at B, so the resumed copy meets the LUN offline
        outage = rng.choice([None, rng.uniform(0.3, 1.5)]) if kind == "source-offline" else None
        fault = Fault(kind, at, outage)
        where = f"seed {seed} trial {n} {kind} at byte {at}"
        mark = (lab.workdir / "mover.log").stat().st_size
        before = srv.active()
        fault.arm(lab, mark)
        t0 = time.monotonic()
        try:
            res = srv.backup()
            took = time.monotonic() - t0
            missing = fault.confirm(lab, mark)
        finally:
            fault.recover(lab)
        assert not missing, f"{where}: the fault did not happen: {missing}"
        rep = _report(res, where)
        # confirm() proved the mover was holding at byte B of its copy when the fault struck: mid-copy;
        # whether the job then had to fail over (or fail) is counted apart
        landed += 1
        forced = rep["outcome"] == "failed" or rep.get("path_used") != "server-free"
        moved_on += forced
        states = srv.states()
        assert "pending" not in states.values(), f"{where}: pending objects left behind: {states}"
        if rep["outcome"] == "failed":
            assert res.returncode == 1 and rep["message"] and "\n" not in rep["message"].strip(), \
                f"{where}: unclear failure {rep!r}"
            assert srv.active() == before, f"{where}: a failed backup changed the active objects"
        else:
            assert res.returncode == 0 and states[rep["object_id"]] == "active", where
            path = rep["path_used"]
            if path.startswith("server-free+"):  # the server kept what the mover committed; the client the rest
                resumed += 1
                said = re.search(r"stopped at image byte (\d+) of (\d+)", " ".join(rep["reasons"]))
                assert said and 0 < int(said.group(1)) < int(said.group(2)), f"{where}: {rep}"
                rest = sum(n for p, n in rep["bytes_by_path"].items() if p != "server-free")
                assert rest == int(said.group(2)) - int(said.group(1)), f"{where}: the client moved more than the rest"
            serverfree = n % 2 == 0  # every other restore server-free (a healthy mover), else LAN-free (none)
            if serverfree:
                lab.start_mover()
            r = _report(srv.restore(serverfree=serverfree), where + " restore")
            assert r["outcome"] == "completed", f"{where}: restore failed: {r.get('message')}"
            problems = judge(lab.restore_img, lab.volume.files)
            assert problems == [], f"{where}: ntfs-3g finds the restored volume wrong: {problems}"
            judged += 1
        path = rep.get("path_used") or "-"
        outcomes[(kind, rep["outcome"], path)] += 1
        lines.append(f"  {n:2d} {kind:15s} at {at / MIB:6.2f} MiB (outage {fault.outage or 0:.2f}) {took:4.1f} s -> "
                     f"{rep['outcome']:9s} {path:20s} {'failed over' if forced else 'rode it out'} "
                     f"{' | '.join(r[:90] for r in rep.get('reasons', []))} {rep.get('message', '')}")
    print("\n".join(lines))
    log = srv.actlog()
    print(f"seed {seed}: {landed} of {trials} faults landed mid-copy (confirmed), {moved_on} made the job fail "
          f"over or fail, {resumed} resumed after the mover's part; {judged} completed backups restored and judged "
          f"by ntfs-3g; {dict(outcomes)}")
    record_property("faults_landed_mid_copy", landed)
    record_property("faults_forcing_failover", moved_on)
    record_property("trials_judged_by_ntfs3g", judged)
    assert landed == trials, f"seed {seed}: only {landed} of {trials} faults landed mid-copy"
    assert moved_on * 4 >= trials * 3, f"seed {seed}: only {moved_on} of {trials} faults reached the job"
    assert log.count("ANR0539I") >= resumed, log[-3000:]  # each resume is the server's decision, logged
