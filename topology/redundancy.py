"""Redundancy of server-free paths: disjoint routes and single points of failure.

A route is (array port, mover port in, mover, mover port out, device port).
It survives the loss of a component unless that component *separates* one of
its two fabric legs; within a live fabric the separating nodes between two
ports are the ports themselves plus the articulation points (switches, ISLs,
switch ports, cables) on their block-cut-tree path. So:

* single points of failure = the components every working route must use
  (intersection of the routes' must-sets) -- exact;
* disjoint paths = maximum number of node-disjoint routes in a flow network
  built from the routes' legs and their separators (networkx max flow). Read and write legs
  get separate copies of fabric nodes so one route may cross a switch twice;
  when a single point of failure exists the count is capped at 1.
"""
from __future__ import annotations

from collections import deque

import networkx as nx
from networkx.algorithms.flow import shortest_augmenting_path

from topology.graph import SanState, fabric_view
from topology.report import VolumeVerdict
from topology.verify import MoverLegs


class SeparatorIndex:
    """Answers "which nodes separate port a from port b" from the block-cut tree of the live fabric."""

    def __init__(self, fabric: nx.Graph) -> None:
        self.block_of: dict[str, int] = {}
        articulation: set[str] = set()
        blocks = list(nx.biconnected_components(fabric))
        for i, block in enumerate(blocks):
            for n in block:
                if n in self.block_of:
                    articulation.add(n)
                self.block_of[n] = i
        self.articulation = articulation
        tree: dict[tuple, list[tuple]] = {}
        for i, block in enumerate(blocks):
            b = ("B", i)
            tree.setdefault(b, [])
            for n in block:
                if n in articulation:
                    a = ("A", n)
                    tree[b].append(a)
                    tree.setdefault(a, []).append(b)
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
        self._cache: dict[tuple[str, str], tuple[str, ...]] = {}

    def _tree_node(self, n: str) -> tuple:
        return ("A", n) if n in self.articulation else ("B", self.block_of[n])

    def separators(self, a: str, b: str) -> tuple[str, ...]:
        """Nodes whose loss disconnects a from b, in order from a to b (a and b included)."""
        key = (a, b)
        if key in self._cache:
            return self._cache[key]
        if a not in self.block_of or b not in self.block_of:
            out: tuple[str, ...] = (a, b)  # isolated ports: only the ends
            self._cache[key] = out
            return out
        x, y = self._tree_node(a), self._tree_node(b)
        left, right = [], []
        while x != y:
            if self.depth[x] >= self.depth[y]:
                left.append(x)
                x = self.parent[x]
            else:
                right.append(y)
                y = self.parent[y]
        chain = left + [x] + right[::-1]
        inner = [n[1] for n in chain if n[0] == "A" and n[1] not in (a, b)]
        out = (a, *inner, b)
        self._cache[key] = out
        return out


def _common(sets) -> set[str]:
    common: set[str] | None = None
    for x in sets:
        common = set(x) if common is None else common & set(x)
        if not common:
            return set()
    return common or set()


def single_points(sep: SeparatorIndex, legs: list[MoverLegs]) -> set[str]:
    """Components whose loss alone removes every route.

    Routes through a mover are all (read pair, write pair) combinations, so
    the intersection over them is {mover} | common(read legs) | common(write
    legs); across movers the results intersect again.
    """
    per_mover = []
    for leg in legs:
        read = _common(sep.separators(a, m) for m, a in leg.read)
        write = _common(sep.separators(m, d) for m, d, _ in leg.write)
        per_mover.append({leg.mover} | read | write)
    return _common(per_mover)


def disjoint_count(sep: SeparatorIndex, legs: list[MoverLegs]) -> int:
    """Maximum number of node-disjoint routes (max flow with unit node capacities).

    Read legs run S -> array port -> separators -> mover port -> mover; write
    legs mover -> mover port -> separators -> device port -> T; nodes are
    shared between legs that share a component.
    """
    if not legs:
        return 0
    edges: set[tuple[str, str]] = set()

    def chain(first: str, nodes: list[str], last: str) -> None:
        prev = first
        for n in nodes:
            edges.add((prev, f"{n}>in"))
            edges.add((f"{n}>in", f"{n}>out"))
            prev = f"{n}>out"
        edges.add((prev, last))

    for leg in legs:
        mover = f"m:{leg.mover}"
        edges.add((f"{mover}>in", f"{mover}>out"))
        for m_in, a_port in leg.read:
            chain("S", [f"r:{n}" for n in sep.separators(a_port, m_in)], f"{mover}>in")
        for m_out, d_port, _ in leg.write:
            chain(f"{mover}>out", [f"w:{n}" for n in sep.separators(m_out, d_port)], "T")
    g = nx.DiGraph()
    # Unit capacity on the in->out edge of each split node; other edges unbounded.
    g.add_edges_from((a, b, {"capacity": 1}) if a.endswith(">in") else (a, b) for a, b in edges)
    # Few augmenting paths are expected, so augmenting-path search beats preflow-push here.
    return int(nx.maximum_flow_value(g, "S", "T", flow_func=shortest_augmenting_path))


def client_points(sep: SeparatorIndex, pairs: list[tuple[str, str]]) -> set[str]:
    """Components every (client port, array port) pair needs: the client must read its own disk."""
    return _common(sep.separators(c, a) for c, a in pairs)


def annotate_redundancy(state: SanState, verdicts: list[VolumeVerdict], legs: dict[str, list[MoverLegs]],
                        client_pairs: dict[str, list[tuple[str, str]]] | None = None) -> None:
    """Fill ``disjoint_paths`` and ``single_points_of_failure`` on each verdict (in place).

    The client's own access to its disk counts too: a server-free backup needs
    the client to read the volume's file system, so its cable is a single
    point of failure even though no data crosses it.
    """
    sep = SeparatorIndex(fabric_view(state.graph, state.down))
    cache: dict[tuple, tuple[int, set[str]]] = {}
    client_pairs = client_pairs or {}
    for v in verdicts:
        ls = legs.get(v.volume, [])
        if not ls:
            v.disjoint_paths, v.single_points_of_failure = 0, []
            continue
        key = tuple((x.mover, tuple(x.read), tuple(x.write)) for x in ls)
        if key not in cache:
            cache[key] = (disjoint_count(sep, ls), single_points(sep, ls))
        count, spof = cache[key]
        spof = spof | client_points(sep, client_pairs.get(v.volume, []))
        v.disjoint_paths = min(count, 1) if spof else count
        v.single_points_of_failure = sorted(spof)
