"""A seeded subset of the fault matrix (tests/e2e/fault_matrix.py) on the real lab, every run.

The edge cells that once ended in exit 2 always run (mover killed before the
backup and before the restore, OPERATING PARAMETERS answered NOT READY, the
mover hung at its first list); a seeded sample of the other cells joins them.
The seed is printed; ``SANLAB_SEED=<seed>`` reruns the same cells, and
``python -m tests.e2e.fault_matrix`` runs all of them.
"""
from __future__ import annotations

import os
import random

import pytest

from tests.e2e.fault_matrix import Cell, MatrixLab, all_cells, image_bytes_of, run_cell
from tests.fixtures.sanlab import MIB, SanLab, missing_reason

ALWAYS = [Cell("mover-killed", "connect", "backup"), Cell("mover-killed", "connect", "restore"),
          Cell("not-ready", "operating-parameters", "backup"), Cell("mover-stopped", "first-list", "backup"),
          Cell("every-path-down", "connect", "backup")]
SAMPLED = int(os.environ.get("SANLAB_MATRIX_CELLS", "2"))


@pytest.fixture(scope="module")
def matrix(tmp_path_factory):
    reason = missing_reason()
    if reason:
        pytest.skip(reason)
    lab = SanLab(tmp_path_factory.mktemp("matrixlab"), volume_size=16 * MIB, volume_scale=0.3,
                 mover_timeout=5.0).start()
    try:
        m = MatrixLab(lab, lab.workdir)
        yield m, image_bytes_of(m)
    finally:
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
    hung = next(r for r in rows if r["cell"] == "backup/mover-stopped@first-list")
    # a hung mover costs its command timeout (3 s in the site file) plus the failover, not minutes
    assert hung["exit"] == 0 and hung["seconds"] < 30, hung


def test_busy_mover_is_retried_then_failed_over(matrix):
    """BUSY for 2 s: retried within DM1's 3 s command timeout, the copy stays server-free (and restores);
    BUSY for 60 s: the job fails over once the timeout is spent, not after the minute."""
    import json
    import time

    from tests.e2e.fault_matrix import MOVER_TIMEOUT

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
    assert "answered BUSY: retrying" in res.stderr and "still answers BUSY" in res.stderr, res.stderr
    assert elapsed < MOVER_TIMEOUT + 25, elapsed  # the timeout plus the LAN-free copy, not the 60 s
    m.restart_mover(None)


def test_the_pool_not_digestible_on_the_servers_side_while_verifying(matrix):
    """The LAN path's pool gone when a server-free backup verifies: the client checks the pool over the SAN
    instead, commits, and the object restores identically (judged by ntfs-3g)."""
    from tests.e2e.fault_matrix import run_verification_cell

    m, _ = matrix
    row = run_verification_cell(m, "lan-pool-gone")
    assert row["exit"] == 0 and not row["problems"], row
    assert row["seconds"] < 10, row
