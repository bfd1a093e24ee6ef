"""The calibration scenario of the lab (scenarios/calibration/sanlab.yaml) runs in the simulator, and its
prediction is the documented composition of the rates measured on the lab -- a check that needs no CPU:
the simulator's arithmetic is deterministic, whatever the machine's load when the rates were measured."""
from __future__ import annotations

import math
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
