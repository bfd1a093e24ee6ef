"""The calibration scenario of the lab (scenarios/calibration/sanlab.yaml) runs in the simulator, and its
prediction is the documented composition of the rates measured on the lab -- a check that needs no CPU:
the simulator's arithmetic is deterministic, whatever the machine's load when the rates were measured.
On the real lab, what the model assumes of the mover (chunk, depth) is what the mover does.  Predicted
against measured wall time is benchmarks/bench_paths_real.py's to report (with the load average): on
the shared machine its spread is the load's, not the model's."""
from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import yaml

from tests.fixtures.sanlab_calibration import sim_run

SCENARIO = Path(__file__).resolve().parents[2] / "scenarios" / "calibration" / "sanlab.yaml"
MB, MIB = 1_000_000, 1 << 20


def stream_seconds(nbytes: float, mb_s: float, command_ms: float, chunk: int, depth: int) -> float:
    """A device's stream as the mover drives it: ``depth`` commands of ``chunk`` bytes in flight."""
    return nbytes / (mb_s * MB) + math.ceil(nbytes / chunk) * command_ms / 1000 / depth


def test_calibration_scenario_predicts_the_composition_of_the_measured_rates():
    summary = sim_run(SCENARIO)  # serverfree sim run --json
    (job,) = summary["jobs"]
    assert job["outcome"] == "completed" and job["path"] == "server-free", job
    image = job["bytes_by_path"]["server-free"]
    scen = yaml.safe_load(SCENARIO.read_text())
    cal = scen["calibration"]
    chunk, depth = cal["mover_chunk_kib"] * 1024, cal["mover_io_depth"]
    lists = math.ceil(image / (scen["batch_mb"] * MIB))
    # the mover reads and writes at once: the copy lasts as long as its slowest part -- the client LUN's
    # read stream, the pool's write stream (each at the mover's depth), or the mover's own copy rate
    # with one handshake per EXTENDED COPY list -- not their sum
    copy = max(stream_seconds(image, cal["disk_mb_s"], cal["disk_command_ms"], chunk, depth),
               stream_seconds(image, cal["tape_native_mb_s"], cal["tape_command_ms"], chunk, depth),
               image / (cal["mover_mb_s"] * MB) + lists * cal["mover_command_ms"] / 1000)
    verify = image / (cal["verify_mb_s"] * MB)  # then the backup server reads the object back and digests it
    assert summary["simulated_seconds"] == pytest.approx(copy + verify, rel=0.01, abs=0.002), (copy, verify)


def test_the_model_assumes_the_chunk_and_depth_the_real_mover_uses(sanlab, client):
    """CPU-independent: on the real lab, the chunk the simulator derives (the mover's chunk_bytes under the
    LUNs' Block Limits VPD) is the one the real mover issued, its tuned depth stays within the io depth
    the model queues, and the device probes the calibration feeds the model give usable figures."""
    from orchestrator.ops import PathKind
    from scsi.luns.remote import RemoteLun
    from simulator.calibration import Calibration
    from tests.fixtures.sanlab import CLIENT_LUN, POOL_LUN
    from tests.fixtures.sanlab_calibration import device_model, stream_rate

    run = client.backup(PathKind.SERVER_FREE)
    assert run.report.outcome == "completed" and run.report.path_used == "server-free", run.report.message
    copies = [tuple(map(int, m.groups())) for m in re.finditer(
        r"block copy of \d+ extents: [\d.]+ s, chunk (\d+), depth (\d+) -> (\d+)",
        (sanlab.workdir / "mover.log").read_text(errors="replace"))]
    assert copies, "the mover logged no block copy"
    luns = [RemoteLun(name, sanlab.url(n)) for name, n in (("client", CLIENT_LUN), ("pool", POOL_LUN))]
    try:
        (m1, o1), (m2, o2) = (lun.transfer_limits() for lun in luns)
        most = min(m1, m2) if m1 and m2 else m1 or m2
        cal = Calibration(mover_chunk_kib=sanlab.chunk_bytes // 1024, lun_max_transfer_kib=most // 1024,
                          lun_optimal_transfer_kib=max(o1, o2) // 1024, mover_io_depth=sanlab.io_depth)
        assert {chunk for chunk, _, _ in copies} == {cal.mover_chunk()}, copies
        assert all(2 <= min(a, b) and max(a, b) <= cal.mover_io_depth for _, a, b in copies), copies
        scratch = (sanlab.pool_size - 16 * MIB) // 512  # blocks no backup uses
        sync, queued = (stream_rate(luns[1], write=True, depth=d, chunk=cal.mover_chunk(), lba=scratch,
                                    nbytes=8 * MIB) for d in (1, cal.mover_io_depth))
    finally:
        for lun in luns:
            lun.close()
    mb_s, command_ms = device_model(sync, queued, cal.mover_chunk(), cal.mover_io_depth)
    assert mb_s * MB >= max(sync, queued) * 0.999 and command_ms >= 0, (sync, queued, mb_s, command_ms)
