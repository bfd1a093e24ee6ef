"""The calibration scenario of the lab (scenarios/calibration/sanlab.yaml) runs in the simulator."""
from __future__ import annotations

from pathlib import Path

import yaml

from tests.fixtures.sanlab_calibration import sim_run

SCENARIO = Path(__file__).resolve().parents[2] / "scenarios" / "calibration" / "sanlab.yaml"
MB = 1_000_000


def test_calibration_scenario_predicts_a_server_free_backup_bounded_by_its_rates():
    summary = sim_run(SCENARIO)  # serverfree sim run --json
    (job,) = summary["jobs"]
    assert job["outcome"] == "completed" and job["path"] == "server-free", job
    moved = job["bytes_by_path"]["server-free"]
    cal = yaml.safe_load(SCENARIO.read_text())["calibration"]
    slowest = min(cal["mover_mb_s"], cal["tape_native_mb_s"], cal["disk_mb_s"]) * MB
    # the copy cannot beat the slowest device on its path; verification reads the image back once more
    took = summary["simulated_seconds"]
    assert moved / slowest <= took <= 3 * moved / slowest + 1.0, took
