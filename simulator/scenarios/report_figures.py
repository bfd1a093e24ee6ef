"""The figures of a sweep report, each an inline SVG string (matplotlib's object API, Agg canvas).

The numbers behind them come from :func:`window_stats`, :func:`failover_by_point`
and :func:`bottleneck_shares`, so the page's tables and its figures agree.
"""
from __future__ import annotations

import io
from collections import defaultdict
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from simulator.attribution import CATEGORIES

_COLOURS = {"client_disk": "#8c564b", "port": "#1f77b4", "isl": "#17becf", "mover": "#9467bd", "pool": "#2ca02c",
            "lan": "#ff7f0e", "cpu": "#d62728", "agent": "#bcbd22", "rate_cap": "#7f7f7f", "stalled": "#e377c2",
            "failover": "#000000", "waiting": "#c7c7c7"}


def _svg(fig: Figure) -> str:
    FigureCanvasAgg(fig)
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None}, bbox_inches="tight")
    text = buf.getvalue()
    return text[text.index("<svg"):]  # inline: no XML declaration or DOCTYPE


def _fig(height: float = 3.2) -> tuple[Figure, Any]:
    fig = Figure(figsize=(7.5, height))
    return fig, fig.add_subplot()


def ran(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The runs that ran (a run with an error has no figures to give)."""
    return [r for r in rows if not r.get("error")]


def window_stats(rows: list[dict[str, Any]]) -> dict[str, float]:
    w = np.array([r["backup_window_s"] for r in ran(rows) if r.get("backup_window_s") is not None], dtype=float)
    if not len(w):
        return {}
    return {"runs": float(len(w)), "min": float(w.min()), "p50": float(np.percentile(w, 50)),
            "p90": float(np.percentile(w, 90)), "p99": float(np.percentile(w, 99)), "max": float(w.max())}


def window_figure(rows: list[dict[str, Any]]) -> str:
    w = np.array([r["backup_window_s"] for r in ran(rows) if r.get("backup_window_s") is not None], dtype=float)
    fig, ax = _fig()
    if len(w):
        ax.hist(w, bins=min(40, max(5, int(np.sqrt(len(w))) * 2)), color="#4c78a8", edgecolor="white")
        for q, style in ((50, "-"), (90, "--")):
            v = float(np.percentile(w, q))
            ax.axvline(v, color="#d62728", linestyle=style, linewidth=1.2, label=f"p{q} {v:,.1f} s")
        ax.legend(loc="upper right", fontsize=8)
    ax.set_xlabel("backup window: simulated seconds until the last backup ended")
    ax.set_ylabel("runs")
    return _svg(fig)


def fault_point_key(varied: list[str]) -> str | None:
    """The varied key that says where the fault strikes (a ``faults.`` key), else the first varied one."""
    return next((k for k in varied if k.startswith("faults.")), varied[0] if varied else None)


def failover_by_point(rows: list[dict[str, Any]], key: str | None) -> list[dict[str, Any]]:
    """Per value of ``key``: runs, jobs, failover rate (jobs that failed over / jobs), mean loss, window."""
    groups: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for r in ran(rows):
        groups[r.get(f"vary:{key}") if key else "all runs"].append(r)
    out = []
    for point in sorted(groups, key=lambda v: (isinstance(v, str), v)):
        g = groups[point]
        jobs = sum(r["jobs"] or 0 for r in g)
        windows = [r["backup_window_s"] for r in g]
        out.append({"point": point, "runs": len(g), "jobs": jobs,
                    "rate": sum(r["jobs_with_failover"] or 0 for r in g) / jobs if jobs else 0.0,
                    "failover_s": float(np.mean([r["failover_seconds"] or 0.0 for r in g])),
                    "window_p50": float(np.median(windows)) if windows else 0.0,
                    "ok": sum(1 for r in g if r["ok"])})
    return out


def failover_figure(points: list[dict[str, Any]], key: str | None) -> str:
    fig, ax = _fig()
    labels = [str(p["point"]) for p in points]
    ax.bar(range(len(points)), [p["rate"] for p in points], color="#e45756")
    ax.set_xticks(range(len(points)), labels, rotation=45 if len(labels) > 12 else 0, fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("jobs that failed over")
    ax.set_xlabel(f"fault point ({key})" if key else "all runs")
    return _svg(fig)


def bottleneck_shares(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Shares of all jobs' time: per bottleneck class, failover and waiting (sums to 1)."""
    total = {c: sum(r.get(f"bottleneck_{c}_s") or 0.0 for r in ran(rows)) for c in CATEGORIES}
    total["failover"] = sum(r.get("failover_seconds") or 0.0 for r in ran(rows))
    total["waiting"] = sum(r.get("waiting_seconds") or 0.0 for r in ran(rows))
    whole = sum(total.values())
    return {c: s / whole for c, s in total.items() if s > 0} if whole > 0 else {}


def bottleneck_figure(shares: dict[str, float]) -> str:
    fig, ax = _fig(0.6 + 0.35 * max(1, len(shares)))
    items = sorted(shares.items(), key=lambda kv: kv[1])
    ax.barh([c for c, _ in items], [s for _, s in items], color=[_COLOURS.get(c, "#333333") for c, _ in items])
    for i, (_, s) in enumerate(items):
        ax.text(s, i, f" {s:.1%}", va="center", fontsize=8)
    ax.set_xlim(0, 1.1)
    ax.set_xlabel("share of the jobs' time")
    return _svg(fig)
