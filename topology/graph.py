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
from topology.fabric import FABRIC_KINDS, OWNER_KINDS, LiveFabric, SanNodes, live_fabric_of
from topology.index import (
    TopologyIndex,
    index_of,
    link_name,
    normalise_endpoint,
    split_switch_port,
)
from topology.model import Role, Topology
from topology.separators import SeparatorIndex
from topology.wwn import parse_wwpn

__all__ = ["FABRIC_KINDS", "SanState", "build_graph", "fabric_view", "live_fabric", "member_wwpn",
           "resolve_component", "server_host", "zone_membership"]


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


@dataclass
class SanState:
    """A topology with a set of components down (failed on purpose, or offline).

    Verification needs only the fabric's components and pendant chains
    (`topology.fabric`); the full networkx graph (``graph``) and the live
    fabric graph (``live_fabric``) are built on first use, for explanations,
    rendering and what-if callers.
    """

    topology: Topology
    index: TopologyIndex
    failed: set[str]
    down: set[str] = field(default_factory=set)
    component_of: dict[str, int] = field(default_factory=dict)
    port_zones: dict[str, set[str]] = field(default_factory=dict)
    cause: dict[str, str] = field(default_factory=dict)
    nodes: SanNodes = field(default_factory=SanNodes)
    fabric: LiveFabric | None = None
    _graph: nx.Graph | None = None
    _live_graph: nx.Graph | None = None
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
        nodes = SanNodes.of(topo)
        resolved = {_resolve(nodes, name) for name in failed}
        down = set(resolved) | nodes.offline
        # An owner that is down takes its ports with it; a library takes its drives.
        cause: dict[str, str] = {}
        kind = nodes.kind
        for n in sorted(down, key=lambda x: kind.get(x) != "library"):
            if kind.get(n) in OWNER_KINDS:
                for m in nodes.owned.get(n, ()):
                    if m not in down:
                        down.add(m)
                        cause[m] = n
                        if kind[m] == "drive":
                            for x in nodes.owned.get(m, ()):
                                if x not in down:
                                    down.add(x)
                                    cause[x] = n
        live = live_fabric_of(nodes, down)
        return cls(topology=topo, index=ix, failed=resolved, down=down, component_of=live.component_of,
                   port_zones=zone_membership(topo, ix), cause=cause, nodes=nodes, fabric=live, _graph=graph)

    @property
    def graph(self) -> nx.Graph:
        """Every component as a node (``kind``, ``online`` ...): built on first use."""
        if self._graph is None:
            with collector_paused():
                self._graph = build_graph(self.topology)
        return self._graph

    @property
    def live_fabric(self) -> nx.Graph:
        """The fabric without the down nodes, as one graph: built on first use."""
        if self._live_graph is None:
            with collector_paused():
                self._live_graph = live_fabric(self.graph, self.down)
        return self._live_graph

    def kind(self, node: str) -> str | None:
        return self.nodes.kind.get(node)

    def separator_index(self) -> SeparatorIndex:
        """:class:`~topology.separators.SeparatorIndex` over this state's live fabric."""
        assert self.fabric is not None
        return SeparatorIndex.of_live_fabric(self.fabric, self.nodes)

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
            return f"down ({self.kind(c)} {c} is {self.why(c)})"
        return "offline"

    def describe_down(self, node: str) -> str:
        kind = self.kind(node)
        why = self.why(node)
        if kind == "link":
            label = "ISL" if node in self.nodes.isl else "link"
        else:
            label = {"port": "port", "swport": "switch port", "switch": "switch"}.get(kind, kind)
        return f"{label} {node} is {why}"


def resolve_component(g: nx.Graph, name: str) -> str:
    """Map a ``--fail`` argument to a graph node (WWPNs in any spelling); LookupError otherwise."""
    return _resolve(g, name)


def _resolve(nodes, name: str) -> str:  # type: ignore[no-untyped-def]
    """``name`` (or its WWPN spelling) if it is among ``nodes`` (a graph or `SanNodes`)."""
    if name in nodes:
        return name
    try:
        wwpn = parse_wwpn(name)
    except ValueError:
        wwpn = None
    if wwpn and wwpn in nodes:
        return wwpn
    raise LookupError(f"unknown component {name!r}: not a switch, link, port, host, array, data mover, "
                      f"library, drive or LAN of this topology")


def zone_membership(topo: Topology, ix: TopologyIndex) -> dict[str, set[str]]:
    """WWPN -> names of the active zones it is a member of (switch-port members resolved)."""
    active = {z for zs in topo.zonesets if zs.name in topo.active_zonesets for z in zs.zones}
    out: dict[str, set[str]] = {}
    seen: dict[str, str | None] = {}  # a port is a member of many zones: resolve each spelling once
    for z in topo.zones:
        if z.name not in active:
            continue
        for member in z.members:
            wwpn = seen.get(member, "")
            if wwpn == "":
                wwpn = seen[member] = member_wwpn(member, ix)
            if wwpn:
                zones = out.get(wwpn)
                if zones is None:
                    zones = out[wwpn] = set()
                zones.add(z.name)
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
