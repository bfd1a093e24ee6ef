"""The client itself killed mid-backup: the catalogue never lists the half-written object.

The backup runs in its own process (``python -m tests.fixtures.sanlab_client``)
against the lab; it is SIGKILLed at a seeded random moment after its pending
object appears.  Nothing may be listed but complete objects; the leftover is
swept to abandoned, and the next backup completes and restores identical.
"""
from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time

from orchestrator.catalogue import Catalogue
from orchestrator.ops import PathKind
from tests.e2e.judge import pool_image, volume_view
from tests.fixtures.sanlab import ROOT
from tests.fixtures.sanlab_client import FILESPACE, NODE, LabClient


def _pending(db_path) -> bool:
    try:
        with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=5) as db:
            return db.execute("SELECT 1 FROM objects WHERE state='pending'").fetchone() is not None
    except sqlite3.OperationalError:  # not created yet
        return False


def test_client_killed_mid_backup_leaves_nothing_restorable(sanlab, tmp_path):
    seed = int(os.environ.get("SANLAB_SEED", random.SystemRandom().randrange(1 << 32)))
    print(f"client crash seed {seed}")
    delay = random.Random(seed).uniform(0.0, 0.3)
    lab_json = tmp_path / "lab.json"
    lab_json.write_text(json.dumps(sanlab.describe()))
    db = tmp_path / "crash.db"
    proc = subprocess.Popen([sys.executable, "-m", "tests.fixtures.sanlab_client", "--lab", str(lab_json),
                             "--catalogue", str(db)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not _pending(db) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert proc.poll() is None, f"seed {seed}: the client ended before it was killed: {proc.stderr.read()!r}"
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
        said = proc.stdout.read().decode(errors="replace").strip()
        print(f"client killed {delay:.2f} s after its pending object appeared; it had reported: {said or 'nothing'}")
        proc.stdout.close()
        proc.stderr.close()
    with Catalogue(db) as cat:
        listed = cat.query(inactive=True)
        states = cat.states()
        # killed before its commit: nothing listed; killed after it (a fast job): one complete object
        assert all(states[o.id] in ("active", "inactive") for o in listed), (seed, states)
        pending = [i for i, st in states.items() if st == "pending"]
        assert all(i not in {o.id for o in listed} for i in pending), (seed, states)
        assert cat.sweep_pending() == len(pending)
        assert set(cat.states().values()) <= {"active", "abandoned"}, (seed, cat.states())
        # the next backup, by a client of this process, completes and is the one listed
        fresh = LabClient(sanlab, cat)
        try:
            run = fresh.backup(PathKind.SERVER_FREE)
        finally:
            fresh.close_devices()
        assert run.report.outcome == "completed", (seed, run.report.message)
        obj = cat.get(run.report.object_id)
        assert [o.id for o in cat.query(NODE, FILESPACE)] == [obj.id]
        assert pool_image(sanlab, obj) == volume_view(sanlab.client_img, obj)
