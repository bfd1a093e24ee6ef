"""Plots of a simulated run: throughput per path over time, and a job Gantt chart.

Drawn with matplotlib's object API on the Agg canvas (no display, no pyplot
global state), written to the file the user asks for; the format follows the
file suffix (.png, .svg, .pdf).
"""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np

from simulator.timeline import Timeline

_PATH_COLOURS = {"server-free": "tab:green", "lan-free": "tab:blue", "lan": "tab:orange"}


def path_kind(label: str) -> str:
    return label.split(":", 1)[0]


def throughput_series(timeline: Timeline, group: str = "path") -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Summed rate per path label (``group="path"``) or per path kind (``"kind"``) as step functions."""
    deltas: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for rec in timeline.flows.values():
        key = rec.label if group == "path" else path_kind(rec.label)
        prev = 0.0
        for t, rate in rec.steps:
            deltas[key].append((t, rate - prev))
            prev = rate
        if prev and rec.end is not None:
            deltas[key].append((rec.end, -prev))
    out = {}
    for key, items in deltas.items():
        arr = np.array(sorted(items))
        times, idx = np.unique(arr[:, 0], return_inverse=True)
        level = np.cumsum(np.bincount(idx, weights=arr[:, 1]))
        out[key] = (times, np.maximum(level, 0.0))
    return out


def _save(fig, path: str | Path) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    path = Path(path)
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    return path


def plot_throughput(timeline: Timeline, path: str | Path, *, group: str = "path", max_series: int = 12) -> Path:
    """Step plot of MB/s per path (the busiest ``max_series``; the rest summed as "other")."""
    from matplotlib.figure import Figure

    series = throughput_series(timeline, group)
    if not series:
        raise ValueError("no flow rates in the timeline: was it recorded with record_rates=False?")
    volume = {k: float(np.sum(np.diff(t, append=t[-1]) * v)) for k, (t, v) in series.items()}
    keep = sorted(series, key=lambda k: -volume[k])[:max_series]
    fig = Figure(figsize=(10, 5))
    ax = fig.add_subplot()
    for key in keep:
        t, v = series[key]
        ax.step(t, v / 1e6, where="post", label=key, color=_PATH_COLOURS.get(key) if group == "kind" else None)
    if len(series) > len(keep):
        ax.plot([], [], " ", label=f"(+{len(series) - len(keep)} quieter paths not drawn)")
    for e in timeline.events_of("fault"):
        ax.axvline(e.time, color="red", alpha=0.25, lw=0.8)
    ax.set_xlabel("simulated time (s)")
    ax.set_ylabel("throughput (MB/s)")
    ax.set_title("throughput per path (red lines: faults)")
    ax.legend(fontsize="small", loc="upper right")
    return _save(fig, path)


def plot_gantt(timeline: Timeline, path: str | Path, *, max_jobs: int = 60) -> Path:
    """One row per job, one bar per flow coloured by data path; failed flows end in a red x."""
    from matplotlib.figure import Figure

    by_job: dict[str, list] = defaultdict(list)
    for rec in timeline.flows.values():
        by_job[rec.job or rec.label].append(rec)
    if not by_job:
        raise ValueError("no flows in the timeline: nothing to draw")
    jobs = sorted(by_job, key=lambda j: min(r.start for r in by_job[j]))[:max_jobs]
    fig = Figure(figsize=(10, max(2.5, 0.25 * len(jobs) + 1)))
    ax = fig.add_subplot()
    last = max((r.end or r.start) for recs in by_job.values() for r in recs)
    for row, job in enumerate(jobs):
        for rec in by_job[job]:
            end = rec.end if rec.end is not None else last
            ax.barh(row, end - rec.start, left=rec.start, height=0.6,
                    color=_PATH_COLOURS.get(path_kind(rec.label), "tab:gray"))
            if rec.outcome not in ("done", "running"):
                ax.plot(end, row, "x", color="red")
    ax.set_yticks(range(len(jobs)), jobs, fontsize="x-small")
    ax.invert_yaxis()
    ax.set_xlabel("simulated time (s)")
    title = "jobs" if len(by_job) <= max_jobs else f"first {max_jobs} of {len(by_job)} jobs"
    ax.set_title(f"{title}: green server-free, blue LAN-free, orange LAN; x = failed")
    return _save(fig, path)
