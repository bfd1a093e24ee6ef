"""Timeline output and plots: series add up, files are written, empty input is explained."""
import json

import numpy as np
import pytest

from simulator.plots import plot_gantt, plot_throughput, throughput_series
from simulator.timeline import Timeline
from simulator.faults import FaultInjector, FaultSpec
from simulator.fluid import copy
from simulator.copy_plan import UniformCopyPlan


def _run(san, run_proc):
    FaultInjector(san, [FaultSpec(kind="tape_error", target="DRV1", at_s=5)]).arm()
    lay = UniformCopyPlan(10**9, 10**8, 10**8, 10**7)
    run_proc(san, copy(san, "DM1", "C1:D", "DRV1", lay, job="J1"))


def test_series_integrate_to_bytes_moved(small_san, run_proc):
    _run(small_san, run_proc)
    (t, v), = throughput_series(small_san.timeline).values()
    assert float(np.sum(np.diff(t) * v[:-1])) == pytest.approx(250e6)  # 5 s at 50 MB/s


def test_plots_and_json_are_written(small_san, run_proc, tmp_path):
    _run(small_san, run_proc)
    png = plot_throughput(small_san.timeline, tmp_path / "tp.png")
    svg = plot_gantt(small_san.timeline, tmp_path / "gantt.svg")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert b"<svg" in svg.read_bytes()[:500]
    small_san.timeline.write_json(tmp_path / "t.json")
    data = json.loads((tmp_path / "t.json").read_text())
    assert [e["kind"] for e in data["events"]][:2] == ["fault", "copy-failed"]
    assert data["flows"][0]["outcome"] == "tape_error"


def test_empty_timeline_is_explained(tmp_path):
    with pytest.raises(ValueError, match="no flow rates"):
        plot_throughput(Timeline(), tmp_path / "x.png")
    with pytest.raises(ValueError, match="no flows"):
        plot_gantt(Timeline(), tmp_path / "x.png")
