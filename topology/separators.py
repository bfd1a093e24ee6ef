"""Separators of a live fabric: which components cut every path between two ports.

Within a live fabric the separating nodes between two ports are the ports
themselves plus the articulation points (switches, ISLs, switch ports, cables)
on their block-cut-tree path (networkx biconnected components);
:class:`SeparatorIndex` answers that for any pair after one pass over the fabric.
"""
from __future__ import annotations

from collections import deque

import networkx as nx

from topology.fabric import LiveFabric, SanNodes


class _BlockCutTree:
    """Block-cut tree of a graph, rooted, to list the cut vertices between two nodes."""

    def __init__(self, graph: nx.Graph) -> None:
        self.block_of: dict[str, int] = {}
        self.articulation: set[str] = set()
        blocks = list(nx.biconnected_components(graph))
        for i, block in enumerate(blocks):
            for n in block:
                if n in self.block_of:
                    self.articulation.add(n)
                self.block_of[n] = i
        tree: dict[tuple, list[tuple]] = {}
        for i, block in enumerate(blocks):
            tree.setdefault(("B", i), [])
            for n in block & self.articulation:
                tree[("B", i)].append(("A", n))
                tree.setdefault(("A", n), []).append(("B", i))
        self.parent: dict[tuple, tuple | None] = {}
        self.depth: dict[tuple, int] = {}
        for root in tree:
            if root in self.parent:
                continue
            self.parent[root], self.depth[root] = None, 0
            queue = deque([root])
            while queue:
                x = queue.popleft()
                for y in tree[x]:
                    if y not in self.parent:
                        self.parent[y], self.depth[y] = x, self.depth[x] + 1
                        queue.append(y)

    def _node(self, n: str) -> tuple:
        return ("A", n) if n in self.articulation else ("B", self.block_of[n])

    def cut_vertices(self, a: str, b: str) -> list[str]:
        """Cut vertices strictly between a and b, in order (a, b in one connected component)."""
        if a not in self.block_of or b not in self.block_of:
            return []  # isolated nodes (a switch with no ISL) have no block
        x, y = self._node(a), self._node(b)
        left, right = [], []
        while x != y:
            if self.depth[x] >= self.depth[y]:
                left.append(x)
                x = self.parent[x]
            else:
                right.append(y)
                y = self.parent[y]
        return [n[1] for n in left + [x] + right[::-1] if n[0] == "A" and n[1] not in (a, b)]


def _attachments(graph: nx.Graph, kind, swport_owner) -> dict[str, tuple[str, str, str]]:  # type: ignore[no-untyped-def]
    """N_ports of ``graph`` cabled by one link into a switch port of a switch in ``graph``: port -> chain."""
    attach: dict[str, tuple[str, str, str]] = {}
    adj = graph.adj
    for n in graph:
        if kind(n) != "port":
            continue
        links = list(adj[n])  # an N_port has at most one cable
        if len(links) != 1:
            continue
        swports = [m for m in adj[links[0]] if m != n]
        if len(swports) != 1 or kind(swports[0]) != "swport":
            continue
        switch = swport_owner(swports[0])
        if switch in adj and switch in adj[swports[0]]:
            attach[n] = (links[0], swports[0], switch)
    return attach


class SeparatorIndex:
    """Answers "which nodes separate port a from port b" in the live fabric.

    Every N_port hangs off the fabric by one cable into one switch port, so
    its separators start with that pendant chain; between switches, the cut
    vertices come from the block-cut tree of the small core graph (switches,
    ISLs and their switch ports) -- far cheaper than the tree of the whole
    fabric with its tens of thousands of pendant ports.  `of_live_fabric`
    takes the chains and the core as `topology.fabric` found them; the
    constructor finds them in a whole live-fabric graph.
    """

    def __init__(self, fabric: nx.Graph, graph: nx.Graph | None = None) -> None:
        attrs = (graph or fabric).nodes

        def kind(n: str) -> str | None:
            return attrs[n].get("kind")

        attach = _attachments(fabric, kind, lambda n: attrs[n].get("owner"))
        isl = {n for n in fabric if attrs[n].get("kind") == "link" and attrs[n].get("isl")}
        self._setup({n: attrs[n].get("kind") for n in fabric}, isl, attach, fabric)

    @classmethod
    def of_live_fabric(cls, live: LiveFabric, nodes: SanNodes) -> SeparatorIndex:
        kind = nodes.kind
        attach = dict(live.chains)
        attach.update(_attachments(live.core, kind.get, nodes.swport_owner.get))
        sep = cls.__new__(cls)
        sep._setup(kind, nodes.isl, attach, live.core)
        return sep

    def _setup(self, kind, isl: set[str], attach: dict[str, tuple[str, str, str]],  # type: ignore[no-untyped-def]
               fabric: nx.Graph) -> None:
        self._kind, self._isl = kind, isl
        self.write_cache: dict[tuple, list[str]] = {}
        self.flow_cache: dict[frozenset, int] = {}
        self.attach = attach
        pendant = {x for port, (link, swport, _) in attach.items() for x in (port, link, swport)}
        core = fabric.subgraph(x for x in fabric if x not in pendant and kind.get(x) != "port")
        self.component = {x: i for i, comp in enumerate(nx.connected_components(core)) for x in comp}
        self.tree = _BlockCutTree(core)
        self._cache: dict[tuple[str, str], tuple[str, ...]] = {}
        self._core: dict[tuple[str, str], tuple[str, ...]] = {}

    def condensed(self, chain) -> list[str]:
        """Drop switch ports and cables that sit in series with one N_port or ISL (same flow, fewer nodes)."""
        return [n for n in chain if not self.is_serial(n)]

    def is_serial(self, n: str) -> bool:
        """Switch ports and (non-ISL) cables each sit in series with exactly one N_port or ISL."""
        kind = self._kind.get(n)
        return kind == "swport" or (kind == "link" and n not in self._isl)

    def separators(self, a: str, b: str) -> tuple[str, ...]:
        """Nodes whose loss disconnects a from b, in order from a to b (a and b included)."""
        key = (a, b)
        out = self._cache.get(key)
        if out is not None:
            return out
        if a not in self.attach or b not in self.attach:
            out = (a, b)  # not cabled: only the ends themselves
        else:
            la, pa, sa = self.attach[a]
            lb, pb, sb = self.attach[b]
            if sa == sb:
                core: tuple[str, ...] = (sa,)
            elif self.component.get(sa) != self.component.get(sb):
                core = (sa, sb)  # not connected; callers only ask for connected pairs
            else:
                core = self._core.get((sa, sb))
                if core is None:  # few switch pairs, many port pairs
                    core = self._core[(sa, sb)] = (sa, *self.tree.cut_vertices(sa, sb), sb)
            out = (a, la, pa, *core, pb, lb, b)
        self._cache[key] = out
        return out
