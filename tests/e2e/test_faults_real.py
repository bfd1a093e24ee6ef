"""Real faults at seeded random points of real server-free backups.

Each trial starts a server-free backup and, a seeded random time after the
first EXTENDED COPY is sent, does one of: SIGKILL the data mover, SIGSTOP it
(only the client's command timeout notices), cut its TCP connections
(``ss -K``), take the source LUN offline in tgtd (for a random outage, or for
the rest of the job), remove the pool LUN from tgtd.  Whatever happens, the
job must complete (failing over to LAN-free or LAN) or fail with a message;
the catalogue must never list an incomplete object; every completed backup
must restore byte-identical.  The seed is printed; rerun one with
``SANLAB_SEED=<seed>``, change the count with ``SANLAB_FAULTS=<n>``.
"""
from __future__ import annotations

import os
import random
import signal
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import pytest

from orchestrator.catalogue import Catalogue
from orchestrator.ops import CopyBatches, Operation, PathKind
from tests.e2e.judge import pool_image, volume_view
from tests.fixtures.sanlab import SanLab, missing_reason
from tests.fixtures.sanlab_client import LabClient
from tests.fixtures.sanlab_volume import judge

MIB = 1 << 20
KINDS = ("mover-kill", "mover-stop", "mover-cut", "source-offline", "pool-removed")
MOVER_TIMEOUT = 2.0


@dataclass
class Fault:
    kind: str
    delay: float  # seconds after the first EXTENDED COPY was sent
    outage: float | None = None  # source-offline: back online after this long (None: not during the job)
    fired_at: float | None = None
    error: str = ""
    _thread: threading.Thread | None = field(default=None, repr=False)

    def arm(self, lab: SanLab) -> callable:
        def hook(op: Operation) -> None:
            if isinstance(op, CopyBatches) and self._thread is None:
                self._thread = threading.Thread(target=self._fire, args=(lab, time.monotonic()), daemon=True)
                self._thread.start()
        return hook

    def _fire(self, lab: SanLab, t0: float) -> None:
        time.sleep(self.delay)
        self.fired_at = time.monotonic() - t0
        try:
            if self.kind == "mover-kill":
                lab.kill_mover()
            elif self.kind == "mover-stop":
                lab.freeze_mover()
            elif self.kind == "mover-cut":
                self.error = lab.cut_mover_connections()
            elif self.kind == "source-offline":
                lab.set_source_online(False)
                if self.outage is not None:
                    time.sleep(self.outage)
                    lab.set_source_online(True)
            elif self.kind == "pool-removed":
                lab.remove_pool()
        except Exception as exc:  # noqa: BLE001 - the fault itself failed: the trial reports it
            self.error = f"{type(exc).__name__}: {exc}"

    def recover(self, lab: SanLab) -> None:
        """Undo the fault so the next trial starts from a healthy lab."""
        if self._thread is not None:
            self._thread.join(timeout=30)
        if self.kind == "source-offline":
            lab.set_source_online(True)
        elif self.kind == "pool-removed":
            lab.restore_pool()
        if self.kind in ("mover-kill", "mover-stop") or lab.mover is None or lab.mover.proc is None \
                or lab.mover.proc.poll() is not None:
            if lab.mover is not None and lab.mover.proc is not None:
                lab.mover.signal(signal.SIGKILL)  # a frozen mover dies while stopped, never resumes a copy
                lab.mover.signal(signal.SIGCONT)
            lab.start_mover()


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


def _check_catalogue(cat: Catalogue, where: str) -> None:
    states = cat.states()
    assert "pending" not in states.values(), f"{where}: pending objects left behind: {states}"
    for obj in cat.query(inactive=True, with_pieces=True):
        pos = 0
        for p in sorted(obj.pieces, key=lambda p: p.image_offset):
            assert p.image_offset == pos, f"{where}: object {obj.id} listed with a hole at image byte {pos}"
            pos += p.length
        assert pos == obj.image_size, f"{where}: object {obj.id} listed with {pos} of {obj.image_size} bytes"


def test_random_faults_fail_over_or_fail_clearly(small_lab, tmp_path, record_property):
    lab = small_lab
    seed = int(os.environ.get("SANLAB_SEED", random.SystemRandom().randrange(1 << 32)))
    trials = int(os.environ.get("SANLAB_FAULTS", "20"))
    print(f"\nfault injection seed {seed} ({trials} trials); rerun with SANLAB_SEED={seed}")
    record_property("fault_seed", seed)
    rng = random.Random(seed)
    cat = Catalogue(tmp_path / "catalogue.db")
    client = LabClient(lab, cat, mover_timeout=MOVER_TIMEOUT)
    try:
        for _ in range(2):  # the second clean run (warm caches, warm mover) times the copy window
            clean = client.backup(PathKind.SERVER_FREE)
            assert clean.report.outcome == "completed" and clean.report.path_used == "server-free"
        window = max(0.05, clean.wall_by_op["CopyBatches"])
        outcomes: Counter = Counter()
        lines = []
        kinds = [KINDS[i % len(KINDS)] for i in range(trials)]
        rng.shuffle(kinds)
        for n, kind in enumerate(kinds):
            fault = Fault(kind, rng.uniform(0, window),
                          rng.choice([None, rng.uniform(0.1, 1.5)]) if kind == "source-offline" else None)
            where = f"seed {seed} trial {n} {fault}"
            try:
                run = client.backup(PathKind.SERVER_FREE, hook=fault.arm(lab))
            finally:
                fault.recover(lab)
            rep = run.report
            assert not fault.error or kind == "mover-cut", f"{where}: could not inject: {fault.error}"
            assert rep.outcome in ("completed", "failed"), where
            _check_catalogue(cat, where)
            states = cat.states()
            assert rep.object_id is not None, where
            if rep.outcome == "failed":
                assert rep.message and len(rep.message) > 20, f"{where}: unclear failure {rep.message!r}"
                assert states[rep.object_id] == "abandoned", where
                assert rep.object_id not in {o.id for o in cat.query(inactive=True)}, where
            else:
                assert states[rep.object_id] == "active", where
                obj = cat.get(rep.object_id)
                assert sum(rep.bytes_by_path.values()) == obj.image_size, where
                assert pool_image(lab, obj) == volume_view(lab.client_img, obj), f"{where}: pool differs"
                lab.blank_restore_lun()
                via = PathKind.SERVER_FREE if n % 2 == 0 else PathKind.LAN_FREE
                r = client.restore(via)
                assert r.report.outcome == "completed", f"{where}: restore failed: {r.report.message}"
                assert volume_view(lab.restore_img, obj) == volume_view(lab.client_img, obj), where
                if n % 5 == 0:
                    assert judge(lab.restore_img, lab.volume.files) == [], where
            path = rep.path_used or "-"
            outcomes[(kind, rep.outcome, path)] += 1
            lines.append(f"  {n:2d} {kind:15s} at {fault.fired_at if fault.fired_at is not None else -1:5.2f}s "
                         f"(outage {fault.outage or 0:.2f}) -> {rep.outcome:9s} {path:11s} "
                         f"{' | '.join(f.reason[:90] for f in rep.failovers)} {rep.message}")
        print("\n".join(lines))
        print(f"seed {seed}: {dict(outcomes)}")
        fired_mid_copy = sum(1 for k, o, p in outcomes.elements() if o == "completed" and p != "server-free")
        assert fired_mid_copy + sum(1 for k, o, p in outcomes.elements() if o == "failed") > 0, \
            f"seed {seed}: no fault landed inside a copy; the window {window:.2f}s is wrong"
    finally:
        client.close_devices()
        cat.close()
