"""Redundancy of server-free paths: disjoint routes and single points of failure.

A route is (array port, mover port in, mover, mover port out, device port).
It survives the loss of a component unless that component *separates* one of
its two fabric legs; within a live fabric the separating nodes between two
ports are the ports themselves plus the articulation points (switches, ISLs,
switch ports, cables) on their block-cut-tree path. So:

* single points of failure = the components every working route must use
  (intersection of the routes' must-sets) -- exact;
* disjoint paths = maximum number of node-disjoint routes in a flow network
  built from the routes' legs and their separators (networkx max flow;
  see :func:`disjoint_count` for how write legs are condensed). Read and write legs
  get separate copies of fabric nodes so one route may cross a switch twice;
  when a single point of failure exists the count is capped at 1.
"""
from __future__ import annotations

import networkx as nx
from networkx.algorithms.flow import shortest_augmenting_path

from topology.graph import SanState
from topology.legs import MoverLegs
from topology.report import VolumeVerdict
from topology.separators import SeparatorIndex


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
        per_mover.append({leg.mover} | read | set(_write_must(sep, leg)))
    return _common(per_mover)


def _write_must(sep: SeparatorIndex, leg: MoverLegs) -> list[str]:
    """The components every write leg of one mover needs, in path order."""
    key = (leg.mover, tuple(leg.write))
    if key in sep.write_cache:
        return sep.write_cache[key]
    first = sep.separators(*leg.write[0][:2])
    common = set(first)
    for m_out, d_port, _ in leg.write[1:]:
        common &= set(sep.separators(m_out, d_port))
    out = [n for n in first if n in common]
    sep.write_cache[key] = out
    return out


def disjoint_count(sep: SeparatorIndex, legs: list[MoverLegs]) -> int:
    """Maximum number of node-disjoint routes (max flow with unit node capacities).

    Read legs run S -> array port -> separators -> mover port -> mover; nodes
    are shared between legs that share a component. Each mover then needs one
    unit of write capacity, so its write side is one chain of the components
    all its write legs need (a pool with hundreds of drives would otherwise
    dominate the network); drives shared by more movers than there are drives
    are therefore not counted as a limit.
    """
    if not legs:
        return 0
    edges: set[tuple[str, str]] = set()
    # Nodes are renamed by order of first appearance: domains built alike (every array wired
    # the same way to the movers) then give the same edge set, and the flow is computed once.
    canon: dict[str, str] = {"S": "S", "T": "T"}

    def c(n: str) -> str:
        if n not in canon:
            canon[n] = f"{len(canon)}"
        return canon[n]

    def chain(first: str, nodes: list[str], last: str) -> None:
        prev = first
        for n in nodes:
            n = c(n)
            edges.add((prev, f"{n}>in"))
            edges.add((f"{n}>in", f"{n}>out"))
            prev = f"{n}>out"
        edges.add((prev, last))

    for leg in legs:
        mover = c(f"m:{leg.mover}")
        edges.add((f"{mover}>in", f"{mover}>out"))
        for m_in, a_port in leg.read:
            chain("S", [f"r:{n}" for n in sep.condensed(sep.separators(a_port, m_in))], f"{mover}>in")
        chain(f"{mover}>out", [f"w:{n}" for n in sep.condensed(_write_must(sep, leg))], "T")
    key = frozenset(edges)
    if key in sep.flow_cache:
        return sep.flow_cache[key]
    g = nx.DiGraph()
    # Unit capacity on the in->out edge of each split node; other edges unbounded.
    g.add_edges_from((a, b, {"capacity": 1}) if a.endswith(">in") else (a, b) for a, b in edges)
    # Few augmenting paths are expected, so augmenting-path search beats preflow-push here.
    value = sep.flow_cache[key] = int(nx.maximum_flow_value(g, "S", "T", flow_func=shortest_augmenting_path))
    return value


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
    sep = state.separator_index()
    cache: dict[tuple, tuple[int, set[str], list]] = {}
    client_pairs = client_pairs or {}
    for v in verdicts:
        ls = legs.get(v.volume, [])
        if not ls:
            v.disjoint_paths, v.single_points_of_failure = 0, []
            continue
        # Verification shares MoverLegs objects between volumes that read alike; identity is the cheap key.
        key = tuple(id(x) for x in ls)
        if key not in cache:
            cache[key] = (disjoint_count(sep, ls), single_points(sep, ls), ls)  # ls pins the ids
        count, spof, _ = cache[key]
        spof = spof | client_points(sep, client_pairs.get(v.volume, []))
        v.disjoint_paths = min(count, 1) if spof else count
        v.single_points_of_failure = sorted(spof)
