"""Draw the fabric as SVG: devices left and right of the switches, chosen paths highlighted.

Written with ElementTree (no graphviz binary needed). Cables and ISLs that are
down are red and dashed; every cable on a volume's chosen server-free route is
green and thick; down devices get a red outline.

``detail=True`` also draws what a site review asks for: each array's LUNs in
its box (the disk-pool LUNs marked with their pool), each storage pool framed
around the drives of its library, and the active zones -- one coloured dot per
zone on every device with a port in it, and a legend naming them.
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
_LUN_H, _MAX_LUNS = 15, 8
_ZONE_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22",
                 "#7f7f7f", "#d62728")


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


def _lun_lines(state: SanState) -> dict[str, list[str]]:
    """Array -> one line per LUN (number, serial, size; the disk pool it belongs to)."""
    topo = state.topology
    pool_of = {ref: p.name for p in topo.stgpools for ref in p.disk_luns}
    out: dict[str, list[str]] = {}
    for a in topo.arrays:
        lines = []
        for lun in a.luns[:_MAX_LUNS]:
            size = f" {lun.size / 2**30:.0f} GiB" if lun.size else ""
            pool = pool_of.get(f"{a.name}:{lun.number}") or pool_of.get(lun.name or "")
            lines.append(f"LUN {lun.number} {lun.serial}{size}" + (f" [pool {pool}]" if pool else ""))
        if len(a.luns) > _MAX_LUNS:
            lines.append(f"... {len(a.luns) - _MAX_LUNS} more LUNs")
        out[a.name] = lines
    return out


def _device_zones(state: SanState, node: str) -> list[str]:
    zones: set[str] = set()
    for m in state.graph.neighbors(node):
        if state.graph.nodes[m]["kind"] == "port":
            zones |= state.port_zones.get(m, set())
    return sorted(zones)


def _pools(state: SanState, svg: ET.Element, pos: dict[str, tuple[float, float]]) -> None:
    """A dashed frame per tape storage pool around the drives of its device class's library."""
    topo = state.topology
    libraries = {lib.name: [d.name for d in lib.drives] for lib in topo.libraries}
    library_of = {dc.name: dc.library for dc in topo.devclasses}
    for i, pool in enumerate(topo.stgpools):
        drives = [d for d in libraries.get(library_of.get(pool.devclass) or "", []) if d in pos]
        if not drives:
            continue
        pad = 6 + 4 * i
        x0 = min(pos[d][0] for d in drives) - pad
        y0 = min(pos[d][1] for d in drives) - pad - 12
        y1 = max(pos[d][1] for d in drives) + _BOX_H + pad
        frame = ET.SubElement(svg, "rect", x=f"{x0}", y=f"{y0}", width=f"{_BOX_W + 2 * pad}", height=f"{y1 - y0}",
                              fill="none", stroke="#2b7a3d", attrib={"stroke-dasharray": "4,3", "class": "pool"})
        ET.SubElement(frame, "title").text = f"storage pool {pool.name} ({pool.devclass})"
        ET.SubElement(svg, "text", x=f"{x0 + 4}", y=f"{y0 + 10}", fill="#2b7a3d",
                      attrib={"font-size": "10"}).text = f"pool {pool.name} ({library_of.get(pool.devclass)})"


def render_svg(state: SanState, report: DomainReport, *, detail: bool = False) -> str:
    g = state.graph
    left = [n for n, k in g.nodes(data="kind") if k in _LEFT]
    right = [n for n, k in g.nodes(data="kind") if k in _RIGHT]
    switches = [n for n, k in g.nodes(data="kind") if k == "switch"]
    luns = _lun_lines(state) if detail else {}
    zone_names = sorted({z for zs in state.port_zones.values() for z in zs}) if detail else []
    colour = {z: _ZONE_COLOURS[i % len(_ZONE_COLOURS)] for i, z in enumerate(zone_names)}
    width = 1000
    pos: dict[str, tuple[float, float]] = {}
    box_h: dict[str, float] = {}
    bottom = 70.0
    for column, x in ((left, 40), (switches, 405), (right, 770)):
        y = 70.0 + (16 if column is right and detail else 0)  # room for the first pool's label
        for n in column:
            pos[n] = (x, y)
            box_h[n] = _BOX_H + _LUN_H * len(luns.get(n, []))
            y += box_h[n] + _GAP + (8 if column is right and detail else 0)
        bottom = max(bottom, y)
    height = int(bottom + 50 + (18 * ((len(zone_names) + 2) // 3) + 20 if zone_names else 0))
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
        ET.SubElement(svg, "rect", x=str(x), y=str(y), width=str(_BOX_W), height=str(box_h[n]), rx="5",
                      fill=_FILL.get(kind, "#ffffff"), stroke="#d62728" if down else "#444444",
                      attrib={"stroke-width": "3" if down else "1"})
        label = f"{kind} {n}" + (" (down)" if down else "")
        ET.SubElement(svg, "text", x=str(x + 8), y=str(y + 21)).text = label
        for i, line in enumerate(luns.get(n, [])):
            ET.SubElement(svg, "text", x=str(x + 14), y=str(y + _BOX_H + i * _LUN_H),
                          attrib={"font-size": "10", "class": "lun"}).text = line
        for i, z in enumerate(_device_zones(state, n) if detail else []):
            dot = ET.SubElement(svg, "circle", cx=str(x + _BOX_W - 10 - 12 * i), cy=str(y + 10), r="5",
                                fill=colour.get(z, "#000000"), attrib={"class": "zone"})
            ET.SubElement(dot, "title").text = f"zone {z}"
    if detail:
        _pools(state, svg, pos)
        for i, z in enumerate(zone_names):
            zx, zy = 20 + (i % 3) * 320, bottom + 10 + (i // 3) * 18
            ET.SubElement(svg, "circle", cx=str(zx + 5), cy=str(zy), r="5", fill=colour[z])
            ET.SubElement(svg, "text", x=str(zx + 15), y=str(zy + 4)).text = f"zone {z}"
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
