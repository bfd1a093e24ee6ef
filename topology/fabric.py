"""The live fabric of a large SAN without a graph node per N_port.

Nearly every N_port hangs off the fabric by one cable into one switch port
(a *pendant chain*: port - link - switch port - switch).  A chain whose pieces
are all up joins its switch's connected component and adds nothing else, so
only the rest -- switches, ISLs and their switch ports, odd or broken wiring --
goes into a networkx graph (the *core*, a few thousand nodes for 100,000
ports).  Components of the whole live fabric then come from the core's, and
the separator index of `topology.redundancy` reads the chains directly.

The node names, kinds and online flags are those of `topology.graph`'s
graph, derived from the model in one pass (`SanNodes`), so a verification
never has to build the full graph; it is built only when a caller asks for it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import networkx as nx

from topology.index import link_name, normalise_endpoint, split_switch_port
from topology.model import Topology

FABRIC_KINDS = frozenset({"port", "swport", "switch", "link"})
OWNER_KINDS = ("host", "array", "mover", "drive", "library")


@dataclass
class SanNodes:
    """Every node of the SAN graph: its kind, whether it is online, and what hangs off owners."""

    kind: dict[str, str] = field(default_factory=dict)
    offline: set[str] = field(default_factory=set)
    owned: dict[str, list[str]] = field(default_factory=dict)  # owner -> its ports / a library's drives
    swport_owner: dict[str, str] = field(default_factory=dict)
    isl: set[str] = field(default_factory=set)
    links: list[tuple[str, str, str]] = field(default_factory=list)  # (link name, end a, end b)
    _implicit: set[str] | None = None

    def __contains__(self, node: str) -> bool:
        """True for every node of the graph, those named only by a link (no kind) included."""
        if node in self.kind:
            return True
        if self._implicit is None:
            self._implicit = {x for _, a, b in self.links
                              for x in (a, b, self.swport_owner.get(a), self.swport_owner.get(b))
                              if x is not None and x not in self.kind}
        return node in self._implicit

    @classmethod
    def of(cls, topo: Topology) -> SanNodes:
        """The same nodes, in the same order of assignment, as ``topology.graph._graph_parts``."""
        out = cls()
        kind, offline, owned = out.kind, out.offline, out.owned
        kind[topo.lan.name] = "lan"
        if not topo.lan.online:
            offline.add(topo.lan.name)

        def owner(name: str, what: str, online: bool, ports) -> None:  # type: ignore[no-untyped-def]
            kind[name] = what
            if not online:
                offline.add(name)
            mine = owned.setdefault(name, [])
            for p in ports:
                kind[p.wwpn] = "port"
                if p.online:
                    offline.discard(p.wwpn)
                else:
                    offline.add(p.wwpn)
                mine.append(p.wwpn)

        for h in topo.hosts:
            owner(h.name, "host", h.online, h.hba_ports)
        for a in topo.arrays:
            owner(a.name, "array", a.online, a.ports)
        for m in topo.datamovers:
            owner(m.name, "mover", m.online, m.ports)
        for lib in topo.libraries:
            kind[lib.name] = "library"
            if not lib.online:
                offline.add(lib.name)
            owned.setdefault(lib.name, []).extend(d.name for d in lib.drives)
            for d in lib.drives:
                kind[d.name] = "drive"
                if not d.online:
                    offline.add(d.name)
                kind[d.wwpn] = "port"
                offline.discard(d.wwpn)
                owned.setdefault(d.name, []).append(d.wwpn)
        for s in topo.switches:
            kind[s.name] = "switch"
            if not s.online:
                offline.add(s.name)
        for link in topo.links:
            a, b = normalise_endpoint(link.a), normalise_endpoint(link.b)
            sa, sb = split_switch_port(a), split_switch_port(b)
            name = link.name or link_name(a, b)
            kind[name] = "link"
            if link.online:
                offline.discard(name)
            else:
                offline.add(name)
            if sa and sb:
                out.isl.add(name)
            else:
                out.isl.discard(name)
            for end, sp in ((a, sa), (b, sb)):
                if sp:
                    kind[end] = "swport"
                    offline.discard(end)
                    out.swport_owner[end] = sp[0]
            out.links.append((name, a, b))
        return out


@dataclass
class LiveFabric:
    """Connected components of the live fabric, its pendant chains, and the small core graph."""

    component_of: dict[str, int]
    chains: dict[str, tuple[str, str, str]]  # live pendant port -> (link, switch port, switch)
    core: nx.Graph  # live fabric nodes outside the chains, with their edges


def live_fabric_of(nodes: SanNodes, down: set[str]) -> LiveFabric:
    """Components and chains of the fabric without the ``down`` nodes (as graph.live_fabric would give).

    ``component_of`` covers every live port and core node (not the cables and
    switch ports inside chains: callers ask about ports).
    """
    kind = nodes.kind.get
    fabric_kinds = FABRIC_KINDS
    link_ends: dict[str, list[str]] = {}
    links_at: dict[str, int] = {}
    for name, a, b in nodes.links:
        if name in down or kind(name) != "link":
            continue
        ends = link_ends[name] = []
        for end in (a, b):
            if end not in down and kind(end) in fabric_kinds:
                ends.append(end)
                links_at[end] = links_at.get(end, 0) + 1
    chains: dict[str, tuple[str, str, str]] = {}
    owner = nodes.swport_owner
    for name, ends in link_ends.items():
        if len(ends) != 2:
            continue
        for port, swport in (ends, ends[::-1]):
            if kind(port) == "port" and kind(swport) == "swport" and links_at[port] == 1 \
                    and links_at[swport] == 1:
                switch = owner[swport]
                if switch not in down and kind(switch) == "switch":
                    chains[port] = (name, swport, switch)
    chain_links = {name for name, _, _ in chains.values()}
    core = nx.Graph()
    core.add_nodes_from(n for n, k in nodes.kind.items() if k == "switch" and n not in down)
    for name, ends in link_ends.items():
        if name in chain_links:
            continue
        core.add_node(name)
        for end in ends:
            core.add_edge(name, end)
            if kind(end) == "swport":
                switch = owner[end]
                if switch not in down and kind(switch) in fabric_kinds:
                    core.add_edge(end, switch)
    for ports in nodes.owned.values():  # ports with no live cable are fabric nodes of their own
        core.add_nodes_from(p for p in ports if p not in links_at and p not in down and kind(p) == "port")
    component_of = {n: i for i, comp in enumerate(nx.connected_components(core)) for n in comp}
    for port, (_, _, switch) in chains.items():
        component_of[port] = component_of[switch]
    return LiveFabric(component_of, chains, core)
