"""`serverfree sim run`: a scenario file through the real orchestrator job, plots on request, bad input."""
import json
from pathlib import Path

import pytest

from orchestrator.cli import main
from simulator.scenarios.load import extents_for

DATA = Path(__file__).parent / "data"


def test_sim_run_fails_over_and_writes_outputs(tmp_path, capsys):
    rc = main(["sim", "run", str(DATA / "dual-fabric-faults.yaml"), "--json",
               "--timeline", str(tmp_path / "t.json"), "--gantt", str(tmp_path / "g.png")])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0
    (job,) = out["jobs"]
    assert job["outcome"] == "completed" and job["path"] == "server-free+lan-free"
    assert "COPY TARGET DEVICE NOT REACHABLE" in job["failovers"][0]
    # about 30 s at the calibration's 60 MB/s drive went server-free (the last batch counted by the segments
    # COPY STATUS vouches for), the rest LAN-free; at the old, ignored 15 MB/s it would be a quarter of that
    sf = job["bytes_by_path"]["server-free"]
    assert 30 * 60e6 - 80 * 2**20 < sf <= 30 * 60e6, sf
    att = job["bottlenecks"]  # the 60 MB/s drive held the job back; the two failovers cost time
    assert att["main_bottleneck"] == "pool" and att["bottleneck_share"]["pool"] > 0.9
    assert 0 < att["failover_seconds"] < 30
    assert out["cpu_seconds"]["CLIENT1"] > 0 and out["simulated_seconds"] < 1000
    assert (tmp_path / "g.png").stat().st_size > 1000
    assert json.loads((tmp_path / "t.json").read_text())["events"][0]["kind"] == "fault"


def test_bad_scenario_is_one_clear_line(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("topology: x.yaml\nbackups: []\n")
    assert main(["sim", "run", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("serverfree: error:") and "backups" in err and err.count("\n") == 1


def test_unknown_volume_is_named(tmp_path, capsys):
    f = tmp_path / "s.yaml"
    f.write_text(f"topology: {DATA.parent.parent.parent / 'scenarios/topologies/dual-fabric.yaml'}\n"
                 "backups: [{volume: 'NOPE:X:'}]\n")
    assert main(["sim", "run", str(f)]) == 2
    assert "backup of NOPE:X:: no such volume" in capsys.readouterr().err


def test_extents_are_block_aligned_and_spread():
    ext = extents_for(10 * 2**20, 4, 0.5)
    assert len(ext) == 4 and all(o % 512 == 0 and n % 512 == 0 for o, n in ext)
    assert sum(n for _, n in ext) == pytest.approx(5 * 2**20, rel=0.01)


def test_failed_drive_is_dismounted_and_another_mounted():
    from orchestrator.cli.sim_cmd import run_scenario
    from simulator.scenarios.load import Scenario

    scen = Scenario.model_validate({
        "topology": str(DATA.parent.parent.parent / "scenarios/topologies/dual-fabric.yaml"),
        "calibration": {"tape_native_mb_s": 60, "disk_positioning_ms": 0},
        "faults": [{"kind": "tape_error", "target": "DRV1", "at_s": 8}],  # mid-copy: 1 GiB at 60 MB/s takes ~18 s
        "backups": [{"volume": "CLIENT1:H:", "fragments": 1, "used": 0.1}]})
    run = run_scenario(scen)
    (report,) = run.reports
    assert report.ok and report.path_used == "server-free", report.summary()
    (f,) = report.failovers  # DM1 -> DM2, still server-free, on the newly mounted drive
    assert (f.from_path, f.to_path, f.mover) == ("server-free", "server-free", "DM1")
    assert "THIRD PARTY DEVICE FAILURE (0Dh/01h)" in f.reason and report.movers_used == ["DM1", "DM2"]
    (remount,) = run.san.timeline.events_of("remount")
    assert remount.detail == {"failed": "DRV1", "drive": "DRV2"}
