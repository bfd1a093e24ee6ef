"""A sweep's result as one self-contained HTML page: no file, font or script from anywhere else.

Sections, each a ``<figure>`` with an inline SVG: the backup-window
distribution, the failover rate by fault point, the bottleneck shares (with
failover and waiting time) and the site's topology with its zones, LUNs and
pools (:func:`topology.svg.render_svg` with ``detail``).  Tables give the same
numbers; the runs table sorts by a click on its header.
"""
from __future__ import annotations

import html
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from simulator.scenarios import report_figures as figs

_MAX_TABLE_ROWS = 500

_CSS = """
body{font-family:sans-serif;margin:2em auto;max-width:1100px;color:#222}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ccc}
figure{margin:1em 0}figcaption{font-size:.9em;color:#555}
table{border-collapse:collapse;font-size:.85em}td,th{border:1px solid #ddd;padding:2px 6px;text-align:right}
th{background:#f3f3f3;cursor:pointer}td.text{text-align:left}tr.bad td{background:#fdecea}
.note{color:#a33}
"""

_JS = """
document.querySelectorAll('table.sortable th').forEach(function (th, col) {
  th.addEventListener('click', function () {
    var body = th.closest('table').tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    var up = th.dataset.dir !== 'up';
    th.dataset.dir = up ? 'up' : 'down';
    rows.sort(function (a, b) {
      var x = a.cells[col].textContent, y = b.cells[col].textContent;
      var nx = parseFloat(x), ny = parseFloat(y);
      var c = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
      return up ? c : -c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
  });
});
"""


def _e(v: Any) -> str:
    return html.escape(str(v), quote=True)


def _num(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:,.3f}".rstrip("0").rstrip(".") if abs(v) < 1e6 else f"{v:,.0f}"
    return _e("" if v is None else v)


def topology_svg(meta: dict[str, Any]) -> tuple[str, str]:
    """The site drawing, or ("", why not) when the sweep's topology cannot be read any more."""
    from topology.graph import SanState
    from topology.load import load_topology, topology_from_data
    from topology.svg import render_svg
    from topology.verify import verify

    ref = meta.get("topology")
    try:
        if isinstance(ref, dict):
            topo = topology_from_data(ref, file="the sweep's inline topology")
        elif isinstance(ref, str):
            topo = load_topology(Path(ref))
        else:
            return "", "the result does not name the sweep's topology"
        state = SanState.build(topo)
        return render_svg(state, verify(topo, state=state, redundancy=False), detail=True), ""
    except (OSError, ValueError, LookupError) as exc:
        return "", f"topology {ref}: {exc}"


def _table(rows: list[dict[str, Any]], columns: list[str], *, cls: str = "", bad=lambda r: False) -> str:
    head = "".join(f"<th>{_e(c)}</th>" for c in columns)
    body = []
    for r in rows:
        cells = "".join(f'<td class="text">{_e(r.get(c))}</td>' if isinstance(r.get(c), str)
                        else f"<td>{_num(r.get(c))}</td>" for c in columns)
        body.append(f'<tr{" class=bad" if bad(r) else ""}>{cells}</tr>')
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def render_report(rows: list[dict[str, Any]], meta: dict[str, Any], source: str = "") -> str:
    """The page for a sweep's rows and metadata (:func:`simulator.scenarios.sweep.read_result`)."""
    varied = [c.removeprefix("vary:") for c in (rows[0] if rows else {}) if c.startswith("vary:")]
    key = figs.fault_point_key(varied)
    points = figs.failover_by_point(rows, key)
    shares = figs.bottleneck_shares(rows)
    stats = figs.window_stats(rows)
    topo_svg, topo_note = topology_svg(meta)
    name = meta.get("name") or Path(source).stem or "sweep"
    errors = sum(1 for r in rows if r.get("error"))
    ok = sum(1 for r in rows if r.get("ok"))
    with_failover = sum(1 for r in figs.ran(rows) if r.get("failovers"))
    varies = "; ".join(f"{v['key']} = {', '.join(map(str, v['values'][:12]))}"
                       + (" ..." if len(v["values"]) > 12 else "") for v in meta.get("varies", [])) or "nothing"
    window = (f"p50 {stats['p50']:,.1f} s, p90 {stats['p90']:,.1f} s, p99 {stats['p99']:,.1f} s, "
              f"max {stats['max']:,.1f} s over {int(stats['runs'])} runs") if stats else "no run finished"
    main = max(shares, key=shares.__getitem__) if shares else "none"
    run_cols = [c for c in (rows[0] if rows else {}) if c not in ("first_failure",)]
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>serverfree sweep report: {_e(name)}</title><style>{_CSS}</style></head><body>",
        f"<h1>Sweep report: {_e(name)}</h1>",
        f"<p>{len(rows)} runs ({_e(meta.get('seeds', 1))} seed(s) per combination), varied: {_e(varies)}. "
        f"{ok} met every expectation, {errors} could not run, {with_failover} failed over at least once. "
        f"Result: {_e(source)}; page made {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC.</p>",
        "<h2>Backup window</h2>",
        f'<figure id="backup-window">{figs.window_figure(rows)}<figcaption>Distribution of the backup window '
        f"(simulated seconds until a run's last backup ended): {_e(window)}.</figcaption></figure>",
        "<h2>Failover rate by fault point</h2>",
        f'<figure id="failover-rate">{figs.failover_figure(points, key)}<figcaption>Share of jobs that failed '
        f"over, per value of {_e(key or 'nothing (one group)')}.</figcaption></figure>",
        _table(points, ["point", "runs", "jobs", "rate", "failover_s", "window_p50", "ok"]),
        "<h2>Bottleneck shares</h2>",
        f'<figure id="bottlenecks">{figs.bottleneck_figure(shares)}<figcaption>Which resource held the jobs '
        f"back in the max-min allocation, as a share of all jobs' time, with the time lost to failovers and "
        f"the time spent waiting (mounts, drives, commands). Largest: {_e(main)}.</figcaption></figure>",
        "<h2>Site</h2>",
        (f'<figure id="topology">{topo_svg}<figcaption>The topology of the sweep\'s scenario: zones (coloured '
         f"dots, legend below), LUNs in their arrays, storage pools framed around their drives.</figcaption>"
         f"</figure>") if topo_svg else f'<p class="note">No site drawing: {_e(topo_note)}</p>',
        f"<h2>Runs</h2><p>{min(len(rows), _MAX_TABLE_ROWS)} of {len(rows)} runs; click a heading to sort.</p>",
        _table(rows[:_MAX_TABLE_ROWS], run_cols, cls="sortable", bad=lambda r: not r.get("ok")),
        f"<script>{_JS}</script></body></html>",
    ]
    return "\n".join(parts)


def write_report(result: Path, out: Path) -> int:
    """Read a sweep result, write its page; returns the number of runs."""
    from simulator.scenarios.sweep import read_result

    rows, meta = read_result(result)
    if not rows:
        raise ValueError(f"{result}: the sweep result holds no runs")
    out.write_text(render_report(rows, meta, str(result)), encoding="utf-8")
    return len(rows)
