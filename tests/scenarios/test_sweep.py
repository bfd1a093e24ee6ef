"""Sweeps on dask.distributed: a LocalCluster of 2 workers, and an external `dask scheduler` + 2 `dask worker`
processes started here on 127.0.0.1 (a sweep through it interrupted, then resumed) and stopped by PID."""
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from orchestrator.cli import main
from simulator.scenarios.sweep import load_base, read_result, sweep
from simulator.scenarios.sweep_spec import parse_vary, plan_runs
from simulator.scenarios.sweep_task import run_batch

TOPO = Path(__file__).resolve().parents[2] / "scenarios" / "topologies" / "small.yaml"
SCENARIO = f"""
topology: {TOPO}
options: {{enableserverfree: yes, enablelanfree: yes}}
volumes: [{{id: "CLIENT1:H:", size: 1GiB}}]
faults:
  - {{kind: switch_port_down, target: SW1/3, at_percent: 50, job: "CLIENT1:H:"}}
jobs:
  - backup: "CLIENT1:H:"
    expect: {{path: server-free}}
"""
VARY = ["faults.0.at_percent=10:90:40"]


def _scenario(tmp_path):
    p = tmp_path / "sweep.yaml"
    p.write_text(SCENARIO)
    return p


def _same(a, b):
    strip = lambda rows: [{k: v for k, v in r.items() if k != "wall_seconds"} for r in rows]  # noqa: E731
    return strip(a) == strip(b)


def test_local_cluster_sweep_gives_the_rows_of_the_runs_made_in_process(tmp_path):
    scen = _scenario(tmp_path)
    out = tmp_path / "result.parquet"
    varies = [parse_vary(v) for v in VARY]
    progress = []
    done = sweep(scen, varies, out, seeds=2, workers=2, batch=2, progress=progress.append)
    assert done.runs == 6 and done.tasks == 3 and done.workers == 2 and done.resumed == 0
    assert [p.done for p in progress] == [2, 4, 6] and not (tmp_path / "result.parquet.parts").exists()
    rows, meta = read_result(out)
    assert [r["run"] for r in rows] == list(range(6)) and meta["runs"] == 6
    assert [r["vary:faults.0.at_percent"] for r in rows] == [10, 10, 50, 50, 90, 90]
    assert all(r["failover_path"] == "server-free->lan-free" and r["jobs_with_failover"] == 1 for r in rows)
    assert all(r["main_bottleneck"] == "pool" and r["failover_seconds"] > 0 for r in rows)
    assert len({r["backup_window_s"] for r in rows}) > 1  # the fault point moves the window
    # deterministic from its seeds: the same rows as the same runs made here, without Dask
    base, _ = load_base(scen.resolve())
    here = run_batch(base, str(tmp_path.resolve()), str(scen), plan_runs(base, varies, 2))
    assert _same(rows, here)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _dask(log, *args):
    exe = Path(sys.executable).with_name("dask")
    with open(log, "ab") as f:  # the process keeps its own copy of the file; logs never fill a pipe
        return subprocess.Popen([str(exe), *args], stdout=subprocess.DEVNULL, stderr=f, start_new_session=True)


def test_sweep_through_an_existing_cluster_by_address(tmp_path, capsys):
    from dask.distributed import Client

    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    log = tmp_path / "dask.log"
    procs = [_dask(log, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard")]
    try:
        for _ in range(2):
            procs.append(_dask(log, "worker", address, "--host", "127.0.0.1", "--nthreads", "1", "--no-nanny",
                               "--no-dashboard"))
        deadline = time.monotonic() + 60
        while True:  # the scheduler takes a moment to listen
            try:
                with Client(address, timeout="5s") as c:
                    c.wait_for_workers(2, timeout=60)
                break
            except OSError:
                if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                    raise
                time.sleep(0.3)
        out, scen = tmp_path / "rows.csv", _scenario(tmp_path)

        def interrupt(_progress):  # Ctrl-C after the first batch is saved
            raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            sweep(scen, [parse_vary(VARY[0])], out, seeds=2, scheduler=address, batch=2, progress=interrupt)
        assert not out.exists() and len(list(tmp_path.glob("rows.csv.parts/runs-*.parquet"))) == 1
        rc = main(["scenario", "sweep", str(scen), "--vary", VARY[0], "--seeds", "2",
                   "--scheduler", address, "--batch", "2", "-o", str(out)])
        captured = capsys.readouterr()
        assert rc == 0, captured.err
        assert "6 runs (2 resumed) in 2 tasks on 2 workers" in captured.out
        assert "sweep: 6/6 runs (100%)" in captured.err and "2 resumed" in captured.err  # progress shown
        rows, meta = read_result(out)
        assert len(rows) == 6 and meta["seeds"] == 2 and rows[5]["vary:faults.0.at_percent"] == 90
        assert all(r["jobs"] == 1 and r["ok"] is False and "server-free+lan-free" in r["first_failure"]
                   for r in rows)
    finally:
        _stop(procs[1:])  # the workers first, while their scheduler still answers; then the scheduler
        _stop(procs[:1])


def _stop(procs):
    """SIGTERM each by its PID and wait; SIGKILL one that does not end within 20 s."""
    for p in procs:
        if p.poll() is None:
            os.kill(p.pid, signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.kill(p.pid, signal.SIGKILL)
            p.wait()


def test_bad_scheduler_address_is_one_line(tmp_path, capsys):
    rc = main(["scenario", "sweep", str(_scenario(tmp_path)), "--scheduler", f"tcp://127.0.0.1:{_free_port()}",
               "-o", str(tmp_path / "r.csv")])
    err = capsys.readouterr().err  # not bad input: the cluster is not there (exit 1, one line)
    assert rc == 1 and "--scheduler tcp://127.0.0.1" in err and "no Dask scheduler answers" in err


def test_unknown_result_format_is_refused(tmp_path, capsys):
    assert main(["scenario", "sweep", str(_scenario(tmp_path)), "-o", str(tmp_path / "r.xlsx")]) == 2
    assert "-o " + str(tmp_path / "r.xlsx") + ": a sweep result is Parquet (.parquet) or CSV (.csv)" in capsys.readouterr().err
