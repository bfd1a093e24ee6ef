"""Build a :class:`SimSAN` from a topology model (``topology.load_topology``).

Every cable and ISL becomes a full-duplex link at its line rate; arrays' LUNs
become disk LUNs (named ``ARRAY:NUMBER``), data movers, tape drives, hosts,
the LAN and storage agents become devices with the topology's own figures
(throughput, concurrency, native rate, array rate) and the calibration's for
the rest.  Routes are the shortest cabled paths between two devices' ports
that the active zoning allows, one alternative per port pair (so a dual
fabric gives two); components the topology marks offline start broken.
"""
from __future__ import annotations

import logging
from itertools import islice

import networkx as nx

from simulator.calibration import Calibration
from simulator.san import SimSAN
from topology.graph import SanState, build_graph, fabric_view, server_host
from topology.index import TopologyIndex, normalise_endpoint, split_switch_port
from topology.model import Role, Topology

log = logging.getLogger(__name__)

MAX_ALTERNATIVES = 4  # per port pair, when a fabric has parallel ISLs


#: calibration field -> (topology objects, their field, what they are): figures a topology may carry itself
TOPOLOGY_FIGURES = {
    "disk_mb_s": ("arrays", "read_mb_s", "array"),
    "mover_mb_s": ("datamovers", "throughput_mb_s", "data mover"),
    "mover_concurrency": ("datamovers", "concurrency", "data mover"),
    "tape_native_mb_s": ("drives", "native_mb_s", "drive"),
}


def _objects(topo: Topology, kind: str) -> list:
    if kind == "drives":
        return [d for lib in topo.libraries for d in lib.drives]
    return list(getattr(topo, kind))


def given(obj, name: str):
    """A figure the topology file sets itself (None when it leaves it to the calibration)."""
    return getattr(obj, name) if name in obj.model_fields_set else None


def check_calibration(topo: Topology, cal: Calibration) -> None:
    """Refuse a calibration figure the topology overrides on every device it could apply to.

    The topology wins where it sets a figure; a scenario's calibration value that no device would use
    would silently change nothing, so it is refused with the devices that set it instead.
    """
    for fld, (kind, attr, what) in TOPOLOGY_FIGURES.items():
        if fld not in cal.model_fields_set:
            continue
        objs = _objects(topo, kind)
        values = {o.name: given(o, attr) for o in objs}
        if objs and all(v is not None for v in values.values()) and any(v != getattr(cal, fld)
                                                                        for v in values.values()):
            setters = ", ".join(f"{what} {n} ({attr} {v:g})" for n, v in values.items())
            raise ValueError(f"calibration.{fld}: topology {topo.name} sets {attr} on every {what} ({setters}), "
                             f"so {getattr(cal, fld):g} would change nothing; change it in the topology or drop "
                             f"it from the calibration")


def san_from_topology(topo: Topology, calibration: Calibration | None = None, *,
                      record_rates: bool = True, detail: bool = True) -> SimSAN:
    """The simulated SAN of a topology; figures the topology leaves unset come from the calibration."""
    cal = calibration or Calibration()
    check_calibration(topo, cal)
    san = SimSAN(cal, record_rates=record_rates, detail=detail)
    ix = TopologyIndex.build(topo)
    graph = build_graph(topo, ix)
    state = SanState.build(topo, graph=graph, index=ix)
    fabric = fabric_view(graph)
    zoning = bool(state.port_zones)

    ends: dict[str, tuple[str, str]] = {}
    for link in topo.links:
        a, b = normalise_endpoint(link.a), normalise_endpoint(link.b)
        kind = "isl" if split_switch_port(a) and split_switch_port(b) else "link"
        san.add_link(link.name, cal.fc_bytes_s(link.speed_gbit), kind)
        ends[link.name] = (a, b)
        for end in (a, b):
            if split_switch_port(end) or end in ix.port_owner:
                san.aliases.setdefault(end, link.name)
        if not link.online:
            for r in san.links[link.name]:
                san.net.set_capacity(r, 0.0)

    server = server_host(topo)
    ports: dict[str, list[str]] = {}
    for h in topo.hosts:
        san.add_host(h.name, nic_gbit=h.lan_speed_gbit if h.lan_address else None, server=h.name == server)
        ports[h.name] = [p.wwpn for p in h.hba_ports]
    san.add_lan(topo.lan.name, topo.lan.speed_gbit)
    if not topo.lan.online:
        san.lan().up = False
        san.net.set_capacity(san.lan().resource, 0.0)
    owners = {}
    for v in topo.volumes:
        ref = ix.resolve_lun(v.lun)
        owners[f"{ref.array}:{ref.number}"] = v.client
    for a in topo.arrays:
        for lun in a.luns:
            name = f"{a.name}:{lun.number}"
            san.add_disk(name, given(a, "read_mb_s"), owner=owners.get(name))
            ports[name] = [p.wwpn for p in a.ports]
            if not a.online:
                san.disk(name).ready = False
    for m in topo.datamovers:
        mv = san.add_mover(m.name, given(m, "throughput_mb_s"), given(m, "concurrency"))
        ports[m.name] = [p.wwpn for p in m.ports]
        if not m.online:
            mv.state = "hung"
            san.net.set_capacity(mv.resource, 0.0)
    for lib in topo.libraries:
        for d in lib.drives:
            drv = san.add_drive(d.name, given(d, "native_mb_s"))
            ports[d.name] = [d.wwpn]
            if not (d.online and lib.online):
                drv.failed = True
    for agent in topo.storage_agents:
        san.add_agent(agent.name, agent.host, serves=agent.clients or [agent.host])

    def add_routes(src: str, dst: str) -> None:
        for pa in ports.get(src, []):
            for pb in ports.get(dst, []):
                if pa not in fabric or pb not in fabric or (zoning and not state.zoned(pa, pb)):
                    continue
                try:
                    paths = list(islice(nx.all_shortest_paths(fabric, pa, pb), MAX_ALTERNATIVES))
                except nx.NetworkXNoPath:
                    continue
                for nodes in paths:
                    hops = []
                    for i, n in enumerate(nodes):
                        if n in ends:
                            hops.append((n, nodes[i - 1] == ends[n][0]))
                    san.add_route(src, dst, hops)

    disks = [n for n in ports if n in san.dev.disks]
    targets = list(san.dev.drives) + disks
    for disk in disks:
        for mover in san.dev.movers:
            add_routes(disk, mover)
        owner = san.owners.get(disk)
        if owner:
            add_routes(disk, owner)
    for mover in san.dev.movers:
        for t in targets:
            add_routes(mover, t)
    writers = {h.name for h in topo.hosts if Role.client in h.roles or Role.storage_agent in h.roles}
    if server:
        writers.add(server)
    for w in sorted(writers):
        for t in targets:
            add_routes(w, t)
    log.info("simulated SAN %s: %d links, %d routes", topo.name, len(san.links), len(san.routes))
    return san
