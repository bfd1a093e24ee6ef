"""Draw the fabric as SVG: devices left and right of the switches, chosen paths highlighted.

Written with ElementTree (no graphviz binary needed). Cables and ISLs that are
down are red and dashed; every cable on a volume's chosen server-free route is
green and thick; down devices get a red outline.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET

import networkx as nx

from topology.graph import SanState
from topology.report import DomainReport

_LEFT = ("host", "array")
_RIGHT = ("mover", "drive")
_FILL = {"host": "#dbe9f6", "array": "#f6e7c8", "mover": "#e3d7f3", "drive": "#d8f0dc", "switch": "#eeeeee"}
_BOX_W, _BOX_H, _GAP = 190, 34, 16


def highlighted_links(state: SanState, report: DomainReport) -> set[str]:
    """Link nodes on the live shortest paths of every chosen server-free route."""
    live = state.live_fabric
    out: set[str] = set()
    for v in report.volumes:
        r = v.route
        if r is None:
            continue
        for a, b in ((r.array_port, r.mover_in), (r.mover_out, r.device_port)):
            try:
                path = nx.shortest_path(live, a, b)
            except (nx.NetworkXNoPath, nx.NodeNotFound):
                continue
            out.update(n for n in path if state.graph.nodes[n]["kind"] == "link")
    return out


def render_svg(state: SanState, report: DomainReport) -> str:
    g = state.graph
    left = [n for n, k in g.nodes(data="kind") if k in _LEFT]
    right = [n for n, k in g.nodes(data="kind") if k in _RIGHT]
    switches = [n for n, k in g.nodes(data="kind") if k == "switch"]
    height = max(len(left), len(right), len(switches), 1) * (_BOX_H + _GAP) + 120
    width = 1000
    pos: dict[str, tuple[float, float]] = {}
    for column, x in ((left, 40), (switches, 405), (right, 770)):
        for i, n in enumerate(column):
            pos[n] = (x, 70 + i * (_BOX_H + _GAP))
    svg = ET.Element("svg", xmlns="http://www.w3.org/2000/svg", width=str(width), height=str(height),
                     viewBox=f"0 0 {width} {height}", attrib={"font-family": "sans-serif", "font-size": "12"})
    title = f"{report.topology}" + (f" (failed: {', '.join(report.failed)})" if report.failed else "")
    ET.SubElement(svg, "text", x="20", y="28", attrib={"font-size": "16"}).text = title
    hot = highlighted_links(state, report)
    for link, kind in g.nodes(data="kind"):
        if kind != "link":
            continue
        ends = [g.nodes[n]["owner"] for n in g.neighbors(link)]
        if len(ends) != 2 or not all(e in pos for e in ends):
            continue
        (x1, y1), (x2, y2) = (_anchor(pos[ends[0]], pos[ends[1]]), _anchor(pos[ends[1]], pos[ends[0]]))
        broken = link in state.down or any(n in state.down for n in g.neighbors(link))
        style = {"stroke": "#999999", "stroke-width": "1.5"}
        if link in hot:
            style = {"stroke": "#1a9a3a", "stroke-width": "4"}
        if broken:
            style = {"stroke": "#d62728", "stroke-width": "2", "stroke-dasharray": "6,4"}
        line = ET.SubElement(svg, "line", x1=f"{x1:.0f}", y1=f"{y1:.0f}", x2=f"{x2:.0f}", y2=f"{y2:.0f}",
                             attrib=style)
        ET.SubElement(line, "title").text = f"{link} ({g.nodes[link].get('speed_gbit')} Gbit/s)" + \
            (" DOWN" if broken else "")
    for n, (x, y) in pos.items():
        kind = g.nodes[n]["kind"]
        down = n in state.down
        ET.SubElement(svg, "rect", x=str(x), y=str(y), width=str(_BOX_W), height=str(_BOX_H), rx="5",
                      fill=_FILL.get(kind, "#ffffff"), stroke="#d62728" if down else "#444444",
                      attrib={"stroke-width": "3" if down else "1"})
        label = f"{kind} {n}" + (" (down)" if down else "")
        ET.SubElement(svg, "text", x=str(x + 8), y=str(y + 21)).text = label
    legend_y = height - 30
    for i, (text, colour) in enumerate((("chosen server-free route", "#1a9a3a"), ("down", "#d62728"))):
        ET.SubElement(svg, "line", x1=str(20 + i * 260), y1=str(legend_y), x2=str(60 + i * 260), y2=str(legend_y),
                      stroke=colour, attrib={"stroke-width": "4"})
        ET.SubElement(svg, "text", x=str(68 + i * 260), y=str(legend_y + 4)).text = text
    return ET.tostring(svg, encoding="unicode")


def _anchor(a: tuple[float, float], b: tuple[float, float]) -> tuple[float, float]:
    """Attach lines to the box side facing the other end."""
    x, y = a
    if b[0] == x:  # ISL between two switches of the middle column: run along their right side
        return (x + _BOX_W, y + _BOX_H / 2)
    return (x + _BOX_W if b[0] > x else x, y + _BOX_H / 2)
