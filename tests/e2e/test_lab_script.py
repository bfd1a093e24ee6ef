"""The lab as a script (up/down by PID) and its data mover's config errors."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.fixtures.sanlab import ROOT, missing_reason

PY = sys.executable


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is gone for our purposes
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def test_up_then_down_stops_every_process_by_pid(tmp_path):
    reason = missing_reason()
    if reason:
        pytest.skip(reason)
    lab_dir = tmp_path / "lab"
    up = subprocess.Popen([PY, "-m", "tests.fixtures.sanlab", "up", "--dir", str(lab_dir), "--size-mib", "16"], cwd=ROOT,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        state = lab_dir / "lab.json"
        for _ in range(600):
            if state.exists() or up.poll() is not None:
                break
            time.sleep(0.05)
        assert state.exists(), up.stderr.read().decode() if up.poll() is not None else "lab.json never appeared"
        info = json.loads(state.read_text())
        pids = [info[k] for k in ("pid", "tgtd_pid", "mover_pid")]
        assert all(_alive(p) for p in pids), info
        assert info["mover_url"].startswith("iscsi://127.0.0.1:") and info["files"] > 10
        down = subprocess.run([PY, "-m", "tests.fixtures.sanlab", "down", "--dir", str(lab_dir)], cwd=ROOT,
                              capture_output=True, check=False, text=True, timeout=60)
        assert down.returncode == 0, down.stderr
        assert up.wait(timeout=60) == 0
        for _ in range(100):
            if not any(_alive(p) for p in pids[1:]):
                break
            time.sleep(0.05)
        assert not any(_alive(p) for p in pids[1:]), [p for p in pids if _alive(p)]
        assert not state.exists()
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()


def test_down_without_a_lab_says_so(tmp_path):
    r = subprocess.run([PY, "-m", "tests.fixtures.sanlab", "down", "--dir", str(tmp_path)], cwd=ROOT,
                       capture_output=True, check=False, text=True, timeout=60)
    assert r.returncode == 2 and "no running lab recorded in" in r.stderr and "lab.json" in r.stderr
