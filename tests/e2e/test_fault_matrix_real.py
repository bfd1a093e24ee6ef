"""A seeded subset of the fault matrix (tests/e2e/fault_matrix.py) on the real lab through the backup server.

The edge cells always run: the mover killed before the backup and before the
restore, OPERATING PARAMETERS answered NOT READY, the mover hung at its first
list (the server's --mover-timeout, then failover), the backup server down when
the job starts, its pool volume gone, every path down, the pool LUN gone (the
mover's and the storage agent's way to the pool: the image goes over the LAN to
the server); a seeded sample of the
other cells joins them.  The seed is printed; ``SANLAB_SEED=<seed>`` reruns the
same cells, and ``python -m tests.e2e.fault_matrix`` runs all of them.
"""
from __future__ import annotations

import json
import os
import random
import time

import pytest

from tests.e2e.fault_matrix import MOVER_TIMEOUT, Cell, MatrixLab, all_cells, image_bytes_of, run_cell
from tests.fixtures.sanlab import MIB, SanLab, missing_reason

ALWAYS = [Cell("mover-killed", "connect", "backup"), Cell("mover-killed", "connect", "restore"),
          Cell("not-ready", "operating-parameters", "backup"), Cell("mover-stopped", "first-list", "backup"),
          Cell("server-down", "connect", "backup"), Cell("server-pool-gone", "connect", "backup"),
          Cell("every-path-down", "connect", "backup"), Cell("pool-gone", "connect", "backup")]
SAMPLED = int(os.environ.get("SANLAB_MATRIX_CELLS", "2"))


@pytest.fixture(scope="module")
def matrix(tmp_path_factory):
    reason = missing_reason()
    if reason:
        pytest.skip(reason)
    lab = SanLab(tmp_path_factory.mktemp("matrixlab"), volume_size=16 * MIB, volume_scale=0.3,
                 mover_timeout=5.0).start()
    m = None
    try:
        m = MatrixLab(lab, lab.workdir)
        yield m, image_bytes_of(m)
    finally:
        if m is not None:
            m.close()
        lab.stop()


def test_fault_matrix_sample(matrix, record_property):
    m, size = matrix
    seed = int(os.environ.get("SANLAB_SEED", random.SystemRandom().randrange(1 << 32)))
    record_property("fault_matrix_seed", seed)
    others = [c for c in all_cells() if str(c) not in {str(a) for a in ALWAYS}]
    random.Random(seed).shuffle(others)
    cells = ALWAYS + others[:SAMPLED]
    rows = [run_cell(m, c, size) for c in cells]
    print(f"\nfault matrix seed {seed}; rerun with SANLAB_SEED={seed}")
    for r in rows:
        print(f"  {r['cell']:45s} exit {r['exit']} {r['path']:11s} {r.get('seconds', 0):5.1f}s "
              f"{'; '.join(r['problems']) or 'OK'}")
    bad = [f"{r['cell']} ({r['rule']}): {'; '.join(r['problems'])}" for r in rows if r["problems"]]
    assert not bad, f"seed {seed}: " + " | ".join(bad)
    row = {r["cell"]: r for r in rows}
    hung = row["backup/mover-stopped@first-list"]
    # a hung mover costs the server's --mover-timeout (3 s) plus the failover, not minutes
    assert hung["exit"] == 0 and hung["seconds"] < 30, hung
    # the server down: the client names it; the mover down or the server's pool volume gone: the client moves the
    # image itself, LAN-free, and says why the server-free copy did not happen
    assert "cannot reach the server" in row["backup/server-down@connect"]["report"].get("message", "") or \
        row["backup/server-down@connect"]["exit"] == 1, row["backup/server-down@connect"]
    killed = row["backup/mover-killed@connect"]
    assert killed["path"] == "lan-free" and "DM1" in " ".join(killed["report"]["reasons"]), killed
    gone = row["backup/server-pool-gone@connect"]
    assert gone["exit"] == 1 or "cannot open its pool volume" in " ".join(gone["report"].get("reasons", [])), gone
    lun_gone = row["backup/pool-gone@connect"]  # neither the mover nor the storage agent reaches the pool
    assert lun_gone["path"] == "lan", lun_gone
    assert "LAN-free: storage agent device pool0" in " ".join(lun_gone["report"]["reasons"]), lun_gone
    log = m.server.actlog()
    assert "server-free backup of LABNODE:E: not possible: the server cannot open its pool volume" in log, log[-2000:]


def test_busy_mover_is_retried_then_failed_over(matrix):
    """BUSY for 2 s: the server retries within its 3 s --mover-timeout, the copy stays server-free (and restores);
    BUSY for 60 s: the copy fails over once the timeout is spent, not after the minute."""
    m, size = matrix
    row = run_cell(m, Cell("busy", "first-list", "backup"), size)
    assert row["rule"] == "busy=2s@list=1" and not row["problems"], row
    assert row["exit"] == 0 and row["path"] == "server-free", row
    m.restart_mover("busy=60s@list=1")
    t0 = time.monotonic()
    res = m.backup()
    elapsed = time.monotonic() - t0
    assert res.returncode == 0 and "Traceback" not in res.stderr, res.stderr
    assert "server-free" not in json.loads(res.stdout)["path_used"], res.stdout
    said = m.server_log()  # the server commands the mover: the retries are in its log
    assert "answered BUSY: retrying" in said and "still answers BUSY" in said, said[-2000:]
    assert elapsed < MOVER_TIMEOUT + 25, elapsed  # the timeout plus the LAN-free copy, not the 60 s
    m.restart_mover(None)


def test_a_copy_aborted_late_is_resumed_by_the_client(matrix):
    """The mover aborts the server's copy near its end: the server keeps the batches the mover committed
    (ANR0539I), the client moves only the rest LAN-free into the same object, and the occupancy grows by the one
    object.  Judged by ntfs-3g on the restored LUN."""
    import re

    m, size = matrix
    late = size - 2 * MIB
    m.restart_mover(f"copy-aborted=0D/02@bytes={late}")
    objects_before = len(m.server.query("-inactive"))
    assert m.server.occupancy_objects() == objects_before
    res = m.backup()
    assert res.returncode == 0 and "Traceback" not in res.stderr, res.stdout[-1500:] + res.stderr[-1500:]
    rep = json.loads(res.stdout)
    assert f"fault injected: copy-aborted=0D/02@bytes={late}" in m.mover_log()
    assert rep["path_used"] == "server-free+lan-free", rep
    said = re.search(r"stopped at image byte (\d+) of (\d+)", " ".join(rep["reasons"]))
    assert said, rep["reasons"]
    kept, whole = int(said.group(1)), int(said.group(2))
    assert 0 < kept <= late and whole == rep["image_size"], (kept, late, rep)
    assert rep["bytes_by_path"].get("lan-free") == whole - kept, rep  # only the rest crossed the client
    log = m.server.actlog()
    assert f"object {rep['object_id']} of node LABNODE kept: {kept} of {whole} bytes are on the pool" in log, log
    assert m.server.states()[rep["object_id"]] == "active"
    assert len(m.server.query("-inactive")) == objects_before + 1
    assert m.server.occupancy_objects() == objects_before + 1  # one object, the mover's part and the client's
    m.restart_mover(None)
    r = m.restore(serverfree=True)
    assert r.returncode == 0 and json.loads(r.stdout)["path_used"] == "server-free", r.stdout + r.stderr
    from tests.fixtures.sanlab_volume import judge

    assert judge(m.lab.restore_img, m.lab.volume.files) == []
