"""A straightforward per-volume judge of server-free paths: verify()'s cross-check and benchmark peer.

:func:`topology.verify.verify` shares work between volumes (reads and writes per
mover, separators from one block-cut tree, one max flow per distinct leg
structure). This module judges every volume on its own with plain networkx
calls and no sharing between volumes, straight from the definitions:

* connectivity from the connected components of the live fabric;
* separators of a leg: the nodes of one shortest path whose removal leaves no
  path (``nx.has_path`` on a restricted view);
* single points of failure: fail each node of one working route (and of the
  client's own path to its disk) and judge the volume again;
* disjoint paths: the flow network described in :mod:`topology.redundancy`,
  built from those separators, solved with networkx's default max flow.

Scope: server-free verdicts, disjoint path counts and single points of failure
of topologies without TSM ``DEFINE PATH`` entries (reasons are verify's alone).
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import networkx as nx

from topology.graph import FABRIC_KINDS, SanState, build_graph, zone_membership
from topology.index import TopologyIndex
from topology.model import DataFormat, FileSystem, Topology, Volume

_SERVER_FREE_FS = frozenset({FileSystem.NTFS, FileSystem.RAW})


@dataclass(frozen=True)
class ReferenceVerdict:
    server_free: bool
    disjoint_paths: int
    single_points_of_failure: list[str]


@dataclass
class _Legs:
    mover: str
    read: list[tuple[str, str]]  # (mover port, array port)
    write: list[tuple[str, str]]  # (mover port, device port)


def reference_verdicts(topo: Topology, failed: Iterable[str] = (),
                       volumes: Iterable[Volume] | None = None) -> dict[str, ReferenceVerdict]:
    """Volume id -> ReferenceVerdict, each volume judged independently."""
    if topo.tsm_paths:
        raise ValueError("the reference judge does not model TSM DEFINE PATH entries")
    judge = _Judge(topo, set(failed))
    return {v.id: judge.verdict(v) for v in (topo.volumes if volumes is None else volumes)}


class _Judge:
    def __init__(self, topo: Topology, failed: set[str]) -> None:
        self.topo = topo
        self.ix = TopologyIndex.build(topo)
        self.g = build_graph(topo)
        self.down = set(SanState.build(topo, failed, graph=self.g, index=self.ix).down)
        kinds = self.g.nodes
        self.live = nx.Graph(self.g.subgraph(n for n in self.g if kinds[n]["kind"] in FABRIC_KINDS
                                             and n not in self.down))
        self.live_comp = self.components(self.live)
        self.zones = zone_membership(topo, self.ix)
        self.pools = {p.name: p for p in topo.stgpools}
        self.destination = {mc.name: mc.destination for mc in topo.mgmtclasses}

    # -- the live fabric, and without one more node ------------------------------
    def without(self, node: str) -> nx.Graph:
        return nx.restricted_view(self.live, [node], [])

    @staticmethod
    def components(fabric: nx.Graph) -> dict[str, int]:
        return {n: i for i, comp in enumerate(nx.connected_components(fabric)) for n in comp}

    def linked(self, cut: str | None):
        """Are two live ports cabled together -- in the live fabric, or in it without ``cut``?"""
        comp = self.live_comp
        if cut is None:
            return lambda i, t: comp.get(i) is not None and comp.get(i) == comp.get(t)
        view = self.without(cut)
        return lambda i, t: (comp.get(i) is not None and comp.get(i) == comp.get(t) and cut not in (i, t)
                             and nx.has_path(view, i, t))

    def hop(self, i: str, t: str, lun, down: set[str], linked) -> bool:
        if i in down or t in down or not linked(i, t):
            return False
        if not (self.zones.get(i, set()) & self.zones.get(t, set())):
            return False
        return lun is None or self.ix.is_masked(lun.array, i, lun.number, t)

    # -- the verdict ------------------------------------------------------------
    def legs(self, vol: Volume, down: set[str], linked,
             first: bool = False) -> tuple[list[tuple[str, str]], list[_Legs]]:
        """(client pairs, working legs per mover); no legs means no server-free path.

        With ``first``, stop at the first working client pair and the first working mover.
        """
        lun = self.ix.resolve_lun(vol.lun)
        array_ports = [p.wwpn for p in self.ix.arrays[lun.array].ports]
        client_ports = [p.wwpn for p in self.ix.hosts[vol.client].hba_ports]
        client = self.pairs(client_ports, array_ports, lun, down, linked, first)
        pool = self.pools[self.destination[vol.mgmtclass]]
        if (vol.client in down or vol.filesystem not in _SERVER_FREE_FS or not client
                or pool.dataformat is not DataFormat.NONBLOCK or lun.array in down):
            return client, []
        devices = []  # (ports, LunRef or None) of devices whose owners are up
        for kind, name, ports in self.ix.pool_devices(pool):
            if kind == "drive":
                if name not in down and self.ix.drive_library[name] not in down:
                    devices.append((ports, None))
            else:
                dlun = self.ix.resolve_lun(name)
                if dlun.array not in down:
                    devices.append((ports, dlun))
        out = []
        for mover in self.topo.movers_in_order():
            if mover.name in down:
                continue
            ports = [p.wwpn for p in mover.ports]
            read = self.pairs(ports, array_ports, lun, down, linked, first)
            write = [pair for d_ports, dlun in devices for pair in self.pairs(ports, d_ports, dlun, down, linked, first)
                     if not first or pair]
            if read and write:
                out.append(_Legs(mover.name, read, write))
                if first:
                    break
        return client, out

    def pairs(self, initiators: list[str], targets: list[str], lun, down: set[str], linked,
              first: bool) -> list[tuple[str, str]]:
        found = (p for p in ((i, t) for i in initiators for t in targets) if self.hop(*p, lun, down, linked))
        if first:
            return [p for p in [next(found, None)] if p]
        return list(found)

    def verdict(self, vol: Volume) -> ReferenceVerdict:
        client, legs = self.legs(vol, self.down, self.linked(None))
        if not legs:
            return ReferenceVerdict(False, 0, [])
        fabric = self.live
        # Any single point of failure lies on every route, so on the shortest paths of the first one.
        (m_in, a), (m_out, d) = legs[0].read[0], legs[0].write[0]
        candidates = {legs[0].mover}
        for x, y in ((a, m_in), (m_out, d), client[0]):
            candidates.update(nx.shortest_path(fabric, x, y))
        spof = []
        for c in sorted(candidates):
            if not self.legs(vol, self.down | {c}, self.linked(c), first=True)[1]:
                spof.append(c)
        count = 1 if spof else self.disjoint(legs, fabric)
        return ReferenceVerdict(True, count, spof)

    # -- disjoint paths ----------------------------------------------------------
    def separators(self, fabric: nx.Graph, a: str, b: str) -> list[str]:
        """Nodes of a shortest a-b path without which a and b are disconnected (a and b included)."""
        path = nx.shortest_path(fabric, a, b)
        return [n for n in path if n in (a, b) or not nx.has_path(self.without(n), a, b)]

    def serial(self, n: str) -> bool:
        attrs = self.g.nodes[n]
        return attrs["kind"] == "swport" or (attrs["kind"] == "link" and not attrs.get("isl"))

    def disjoint(self, legs: list[_Legs], fabric: nx.Graph) -> int:
        flow = nx.DiGraph()

        def chain(first: str, nodes: list[str], last: str) -> None:
            prev = first
            for n in nodes:
                flow.add_edge(prev, ("in", n))
                flow.add_edge(("in", n), ("out", n), capacity=1)
                prev = ("out", n)
            flow.add_edge(prev, last)

        for leg in legs:
            mover_in, mover_out = ("in", f"m:{leg.mover}"), ("out", f"m:{leg.mover}")
            flow.add_edge(mover_in, mover_out, capacity=1)
            for m_in, a in leg.read:
                chain("S", [f"r:{n}" for n in self.separators(fabric, a, m_in) if not self.serial(n)], mover_in)
            first = self.separators(fabric, *leg.write[0])
            common = set(first)
            for m_out, d in leg.write[1:]:
                common &= set(self.separators(fabric, m_out, d))
            chain(mover_out, [f"w:{n}" for n in first if n in common and not self.serial(n)], "T")
        return int(nx.maximum_flow_value(flow, "S", "T"))
