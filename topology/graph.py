"""The one networkx graph of a topology, and the live view of it under failures.

Nodes (attribute ``kind``):
  ``port`` (an N_port, id = WWPN), ``swport`` (``SW1/3``), ``switch``, ``link``
  (every cable and ISL is a node, so a link can fail like any component),
  ``host``, ``array``, ``mover``, ``drive``, ``library``, ``lan``.
Fabric connectivity only runs through port/swport/switch/link nodes, so a host
with HBAs on two fabrics does not join them. Owners hang off their ports.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import networkx as nx

from topology.collector import collector_paused
from topology.index import (
    TopologyIndex,
    index_of,
    link_name,
    normalise_endpoint,
    split_switch_port,
)
from topology.model import Role, Topology
from topology.wwn import parse_wwpn

FABRIC_KINDS = frozenset({"port", "swport", "switch", "link"})


def build_graph(topo: Topology, ix: TopologyIndex | None = None) -> nx.Graph:
    """Every component of the topology as a node; ``online`` and ``kind`` as attributes."""
    return _assemble(topo, *_graph_parts(topo))


def _assemble(topo: Topology, nodes: list[tuple[str, dict]], edges: list[tuple[str, str]]) -> nx.Graph:
    g = nx.Graph(name=topo.name)
    g.add_nodes_from(nodes)
    g.add_edges_from(edges)
    return g


def _graph_parts(topo: Topology) -> tuple[list[tuple[str, dict]], list[tuple[str, str]]]:
    """The graph's nodes (with attributes) and edges, as lists: built once, read by the live fabric too."""
    nodes: list[tuple[str, dict]] = [(topo.lan.name, {"kind": "lan", "online": topo.lan.online,
                                                      "speed_gbit": topo.lan.speed_gbit})]
    edges: list[tuple[str, str]] = []
    for h in topo.hosts:
        nodes.append((h.name, {"kind": "host", "online": h.online, "roles": [r.value for r in h.roles]}))
        if h.lan_address:
            edges.append((h.name, topo.lan.name))
        for p in h.hba_ports:
            nodes.append((p.wwpn, {"kind": "port", "online": p.online, "owner": h.name}))
            edges.append((h.name, p.wwpn))
    for a in topo.arrays:
        nodes.append((a.name, {"kind": "array", "online": a.online}))
        for p in a.ports:
            nodes.append((p.wwpn, {"kind": "port", "online": p.online, "owner": a.name}))
            edges.append((a.name, p.wwpn))
    for m in topo.datamovers:
        nodes.append((m.name, {"kind": "mover", "online": m.online}))
        for p in m.ports:
            nodes.append((p.wwpn, {"kind": "port", "online": p.online, "owner": m.name}))
            edges.append((m.name, p.wwpn))
    for lib in topo.libraries:
        nodes.append((lib.name, {"kind": "library", "online": lib.online}))
        for d in lib.drives:
            nodes.append((d.name, {"kind": "drive", "online": d.online}))
            nodes.append((d.wwpn, {"kind": "port", "online": True, "owner": d.name}))
            edges.extend(((lib.name, d.name), (d.name, d.wwpn)))
    for s in topo.switches:
        nodes.append((s.name, {"kind": "switch", "online": s.online}))
    for link in topo.links:
        a, b = normalise_endpoint(link.a), normalise_endpoint(link.b)
        sa, sb = split_switch_port(a), split_switch_port(b)
        name = link.name or link_name(a, b)  # unchecked topologies have no default names yet
        nodes.append((name, {"kind": "link", "online": link.online, "speed_gbit": link.speed_gbit,
                             "isl": bool(sa and sb)}))
        for end, sp in ((a, sa), (b, sb)):
            if sp:
                nodes.append((end, {"kind": "swport", "online": True, "owner": sp[0]}))
                edges.append((end, sp[0]))
            edges.append((name, end))
    return nodes, edges


def fabric_view(g: nx.Graph, down: set[str] = frozenset()) -> nx.Graph:
    """The fabric part of ``g`` without the nodes in ``down``."""
    return nx.subgraph_view(g, filter_node=lambda n: g.nodes[n]["kind"] in FABRIC_KINDS and n not in down)


def live_fabric(g: nx.Graph, down: set[str] | frozenset[str]) -> nx.Graph:
    """A concrete copy of the fabric without ``down`` nodes (views are too slow for big fabrics)."""
    kinds = g.nodes(data="kind")
    keep = {n for n, k in kinds if k in FABRIC_KINDS and n not in down}
    live = nx.Graph()
    live.add_nodes_from((n, {"kind": g.nodes[n]["kind"]}) for n in keep)
    live.add_edges_from((u, v) for u, v in g.edges if u in keep and v in keep)
    return live


def _bare_live_fabric(g: nx.Graph, edges: list[tuple[str, str]], down: set[str]) -> nx.Graph:
    """Like :func:`live_fabric` from the edge list the graph was built from, without node attributes.

    Node attributes stay on ``g`` (one copy); isolated fabric nodes are added too.
    """
    keep = {n for n, k in g.nodes(data="kind") if k in FABRIC_KINDS and n not in down}
    live = nx.Graph()
    live.add_nodes_from(keep)
    live.add_edges_from((u, v) for u, v in edges if u in keep and v in keep)
    return live


@dataclass
class SanState:
    """A topology's graph with a set of components down (failed on purpose, or offline)."""

    topology: Topology
    index: TopologyIndex
    graph: nx.Graph
    failed: set[str]
    down: set[str] = field(default_factory=set)
    component_of: dict[str, int] = field(default_factory=dict)
    port_zones: dict[str, set[str]] = field(default_factory=dict)
    cause: dict[str, str] = field(default_factory=dict)
    live_fabric: nx.Graph = field(default_factory=nx.Graph)
    _cabled: nx.Graph | None = None
    _cabled_component: dict[str, int] = field(default_factory=dict)

    @classmethod
    def build(cls, topo: Topology, failed: set[str] | frozenset[str] | tuple = (),
              graph: nx.Graph | None = None, index: TopologyIndex | None = None) -> SanState:
        with collector_paused():  # tens of thousands of acyclic graph dicts: see topology.collector
            return cls._build(topo, failed, graph, index)

    @classmethod
    def _build(cls, topo: Topology, failed, graph: nx.Graph | None, index: TopologyIndex | None) -> SanState:
        ix = index or index_of(topo)
        edges = None
        if graph is not None:
            g = graph
        else:
            nodes, edges = _graph_parts(topo)
            g = _assemble(topo, nodes, edges)
        resolved = {resolve_component(g, name) for name in failed}
        down = set(resolved)
        down.update(n for n, attrs in g.nodes(data=True) if not attrs.get("online", True))
        # An owner that is down takes its ports with it; a library takes its drives.
        cause: dict[str, str] = {}
        for n in sorted(down, key=lambda x: g.nodes[x]["kind"] != "library"):
            kind = g.nodes[n]["kind"]
            if kind in ("host", "array", "mover", "drive", "library"):
                for m in g.neighbors(n):
                    if g.nodes[m]["kind"] in ("port", "drive") and m not in down:
                        down.add(m)
                        cause[m] = n
                        if g.nodes[m]["kind"] == "drive":
                            for x in g.neighbors(m):
                                if g.nodes[x]["kind"] == "port" and x not in down:
                                    down.add(x)
                                    cause[x] = n
        state = cls(topology=topo, index=ix, graph=g, failed=resolved, down=down)
        state.cause = cause
        state.live_fabric = fabric = live_fabric(g, down) if edges is None else _bare_live_fabric(g, edges, down)
        for i, comp in enumerate(nx.connected_components(fabric)):
            for n in comp:
                state.component_of[n] = i
        state.port_zones = zone_membership(topo, ix)
        return state

    def connected(self, a: str, b: str) -> bool:
        ca = self.component_of.get(a)
        return ca is not None and ca == self.component_of.get(b)

    def zoned(self, a: str, b: str) -> bool:
        za, zb = self.port_zones.get(a), self.port_zones.get(b)
        return bool(za and zb) and not za.isdisjoint(zb)

    def down_between(self, a: str, b: str) -> list[str]:
        """Components that are down on the shortest cabled route from ``a`` to ``b`` ([] if none cabled)."""
        if self._cabled is None:
            self._cabled = live_fabric(self.graph, frozenset())
            self._cabled_component = {n: i for i, comp in enumerate(nx.connected_components(self._cabled))
                                      for n in comp}
        ca = self._cabled_component.get(a)
        if ca is None or ca != self._cabled_component.get(b):
            return []
        return [n for n in nx.shortest_path(self._cabled, a, b) if n in self.down]

    def why(self, node: str) -> str:
        """``failed`` (on request), ``offline`` (in the file) or ``down (library LIB1 is failed)``."""
        if node in self.failed:
            return "failed"
        if node in self.cause:
            c = self.cause[node]
            return f"down ({self.graph.nodes[c]['kind']} {c} is {self.why(c)})"
        return "offline"

    def describe_down(self, node: str) -> str:
        kind = self.graph.nodes[node]["kind"]
        why = self.why(node)
        if kind == "link":
            label = "ISL" if self.graph.nodes[node].get("isl") else "link"
        else:
            label = {"port": "port", "swport": "switch port", "switch": "switch"}.get(kind, kind)
        return f"{label} {node} is {why}"


def resolve_component(g: nx.Graph, name: str) -> str:
    """Map a ``--fail`` argument to a graph node (WWPNs in any spelling); LookupError otherwise."""
    if name in g:
        return name
    try:
        wwpn = parse_wwpn(name)
    except ValueError:
        wwpn = None
    if wwpn and wwpn in g:
        return wwpn
    raise LookupError(f"unknown component {name!r}: not a switch, link, port, host, array, data mover, "
                      f"library, drive or LAN of this topology")


def zone_membership(topo: Topology, ix: TopologyIndex) -> dict[str, set[str]]:
    """WWPN -> names of the active zones it is a member of (switch-port members resolved)."""
    active = {z for zs in topo.zonesets if zs.name in topo.active_zonesets for z in zs.zones}
    out: dict[str, set[str]] = {}
    for z in topo.zones:
        if z.name not in active:
            continue
        for member in z.members:
            wwpn = member_wwpn(member, ix)
            if wwpn:
                out.setdefault(wwpn, set()).add(z.name)
    return out


def member_wwpn(member: str, ix: TopologyIndex) -> str | None:
    node = normalise_endpoint(member)
    if split_switch_port(node):
        return ix.switch_port_peer.get(node)
    return node


def server_host(topo: Topology) -> str | None:
    if topo.server:
        return topo.server
    return next((h.name for h in topo.hosts if Role.server in h.roles), None)
