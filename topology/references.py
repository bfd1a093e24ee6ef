"""Cross-reference checks run after the types are valid.

Every name, WWPN and LUN reference must point at something that exists; WWPNs
and component names must be unique (``--fail NAME`` must mean one thing).
Zone members and masking initiators that match no port are legal on a real
switch, so they only produce warnings -- verification later names them when
they explain a missing path (a WWPN typo).
"""
from __future__ import annotations

from typing import Any

from topology.errors import TopologyError, format_location
from topology.index import (
    TopologyIndex,
    link_name,
    normalise_endpoint,
    split_switch_port,
)
from topology.model import Role, Topology
from topology.wwn import looks_like_wwpn, parse_wwpn

_POOLLESS_DEVTYPES = {"DISK", "FILE"}


class _Checker:
    def __init__(self, topo: Topology, data: Any, file: str | None) -> None:
        self.topo, self.data, self.file = topo, data, file
        self.warnings: list[str] = []

    def fail(self, loc: tuple, message: str, value: Any = None) -> None:
        raise TopologyError(message, file=self.file, location=format_location(loc, self.data), value=value)

    def unique(self, kind: str, items: list, key: str = "name") -> set[str]:
        seen: set[str] = set()
        for i, item in enumerate(items):
            name = getattr(item, key)
            if name in seen:
                self.fail((kind, i, key), f"duplicate {kind[:-1]} name {name!r}", name)
            seen.add(name)
        return seen


def check_references(topo: Topology, *, data: Any = None, file: str | None = None) -> list[str]:
    """Raise TopologyError at the first broken reference; return warnings."""
    c = _Checker(topo, data if data is not None else topo.model_dump(mode="json"), file)
    hosts = c.unique("hosts", topo.hosts)
    switches = {s.name: s for s in topo.switches}
    c.unique("switches", topo.switches)
    c.unique("arrays", topo.arrays)
    movers = c.unique("datamovers", topo.datamovers)
    libraries = c.unique("libraries", topo.libraries)
    devclasses = c.unique("devclasses", topo.devclasses)
    pools = c.unique("stgpools", topo.stgpools)
    mgmtclasses = c.unique("mgmtclasses", topo.mgmtclasses)
    c.unique("storage_agents", topo.storage_agents)
    c.unique("zones", topo.zones)
    c.unique("zonesets", topo.zonesets)

    # Component names share one namespace: --fail NAME must be unambiguous.
    owner: dict[str, tuple] = {}

    def claim(name: str, loc: tuple) -> None:
        if name in owner:
            c.fail(loc, f"name {name!r} is already used by {format_location(owner[name], c.data)}", name)
        owner[name] = loc

    for kind, items in (("hosts", topo.hosts), ("switches", topo.switches), ("arrays", topo.arrays),
                        ("datamovers", topo.datamovers), ("libraries", topo.libraries),
                        ("storage_agents", topo.storage_agents)):
        for i, item in enumerate(items):
            claim(item.name, (kind, i, "name"))
    for li, lib in enumerate(topo.libraries):
        for di, d in enumerate(lib.drives):
            claim(d.name, ("libraries", li, "drives", di, "name"))
    claim(topo.lan.name, ("lan", "name"))

    # WWPNs: unique over every port in the SAN.
    ports: dict[str, tuple] = {}

    def port(wwpn: str, loc: tuple) -> None:
        if wwpn in ports:
            c.fail(loc, f"duplicate WWPN {wwpn}, already used at {format_location(ports[wwpn], c.data)}", wwpn)
        ports[wwpn] = loc

    for i, h in enumerate(topo.hosts):
        for j, p in enumerate(h.hba_ports):
            port(p.wwpn, ("hosts", i, "hba_ports", j, "wwpn"))
    for i, a in enumerate(topo.arrays):
        for j, p in enumerate(a.ports):
            port(p.wwpn, ("arrays", i, "ports", j, "wwpn"))
    for i, m in enumerate(topo.datamovers):
        for j, p in enumerate(m.ports):
            port(p.wwpn, ("datamovers", i, "ports", j, "wwpn"))
    for i, lib in enumerate(topo.libraries):
        for j, d in enumerate(lib.drives):
            port(d.wwpn, ("libraries", i, "drives", j, "wwpn"))

    def endpoint(text: str, loc: tuple) -> str:
        sp = split_switch_port(text)
        if sp:
            sw, idx = sp
            if sw not in switches:
                c.fail(loc, f"unknown switch {sw!r}", text)
            if idx >= switches[sw].port_count:
                c.fail(loc, f"switch {sw} has ports 0..{switches[sw].port_count - 1}, not {idx}", text)
            return text.strip()
        try:
            wwpn = parse_wwpn(text)
        except ValueError as exc:
            c.fail(loc, f"{exc}; a link end is a WWPN or SWITCH/PORT", text)
        if wwpn not in ports:
            c.fail(loc, f"WWPN {wwpn} is not a port of any host, array, data mover or drive "
                   f"(one defined only in a TSM macro needs that macro merged)", text)
        return wwpn

    cabled: dict[str, tuple] = {}
    for i, link in enumerate(topo.links):
        a = endpoint(link.a, ("links", i, "a"))
        b = endpoint(link.b, ("links", i, "b"))
        if not split_switch_port(a) and not split_switch_port(b):
            c.fail(("links", i), f"link {a} <-> {b} joins two N_ports; every cable needs a switch port end")
        for end, key in ((a, "a"), (b, "b")):
            if end in cabled:
                c.fail(("links", i, key), f"{end} is already cabled by {format_location(cabled[end], c.data)}", end)
            cabled[end] = ("links", i)
        if link.name is None:
            link.name = link_name(a, b)
        claim(link.name, ("links", i, "name"))

    port_of_switch_port = {}
    for link in topo.links:
        a, b = normalise_endpoint(link.a), normalise_endpoint(link.b)
        if split_switch_port(a) and not split_switch_port(b):
            port_of_switch_port[a] = b
        if split_switch_port(b) and not split_switch_port(a):
            port_of_switch_port[b] = a

    zones = {z.name for z in topo.zones}
    for i, z in enumerate(topo.zones):
        for j, member in enumerate(z.members):
            loc = ("zones", i, "members", j)
            sp = split_switch_port(member)
            if sp:
                endpoint(member, loc)
                if member.strip() not in port_of_switch_port:
                    c.warnings.append(f"zone {z.name} member {member} is a switch port with no device cabled")
                continue
            try:
                wwpn = parse_wwpn(member)
            except ValueError as exc:
                c.fail(loc, f"{exc}; a zone member is a WWPN or SWITCH/PORT", member)
            if wwpn not in ports:
                c.warnings.append(f"zone {z.name} member {wwpn} matches no port (a WWPN typo?)")
    for i, zs in enumerate(topo.zonesets):
        for j, zname in enumerate(zs.zones):
            if zname not in zones:
                c.fail(("zonesets", i, "zones", j), f"zone set {zs.name} lists unknown zone {zname!r}", zname)
    zonesets = {zs.name for zs in topo.zonesets}
    for i, name in enumerate(topo.active_zonesets):
        if name not in zonesets:
            c.fail(("active_zonesets", i), f"unknown zone set {name!r}", name)

    naas: dict[str, tuple] = {}
    for i, a in enumerate(topo.arrays):
        numbers: set[int] = set()
        array_ports = {p.wwpn for p in a.ports}
        for j, lun in enumerate(a.luns):
            if lun.number in numbers:
                c.fail(("arrays", i, "luns", j, "number"), f"array {a.name} has LUN {lun.number} twice", lun.number)
            numbers.add(lun.number)
            if lun.naa in naas:
                c.fail(("arrays", i, "luns", j, "naa"),
                       f"NAA designator {lun.naa} already used at {format_location(naas[lun.naa], c.data)}", lun.naa)
            naas[lun.naa] = ("arrays", i, "luns", j)
        for j, m in enumerate(a.masking):
            for k, n in enumerate(m.luns):
                if n not in numbers:
                    c.fail(("arrays", i, "masking", j, "luns", k), f"array {a.name} has no LUN {n} to mask", n)
            for k, t in enumerate(m.target_ports or []):
                if t not in array_ports:
                    c.fail(("arrays", i, "masking", j, "target_ports", k), f"{t} is not a port of array {a.name}", t)
            if m.initiator not in ports:
                c.warnings.append(f"array {a.name} masks LUNs {m.luns} to {m.initiator}, which matches no port "
                                  f"(a WWPN typo?)")

    for i, name in enumerate(topo.datamover_order):
        if name not in movers:
            c.fail(("datamover_order", i), f"unknown data mover {name!r}", name)

    for i, dc in enumerate(topo.devclasses):
        if dc.library is not None and dc.library not in libraries:
            c.fail(("devclasses", i, "library"), f"unknown library {dc.library!r}", dc.library)
        if dc.library is None and dc.devtype not in _POOLLESS_DEVTYPES:
            c.fail(("devclasses", i, "library"), f"device class {dc.name} of type {dc.devtype} needs a library")
    ix = TopologyIndex.build(topo)
    topo._index = ix  # verification reuses it instead of indexing the same topology again
    for i, pool in enumerate(topo.stgpools):
        if pool.devclass not in devclasses:
            c.fail(("stgpools", i, "devclass"), f"unknown device class {pool.devclass!r}", pool.devclass)
        for j, ref in enumerate(pool.disk_luns):
            try:
                ix.resolve_lun(ref)
            except LookupError as exc:
                c.fail(("stgpools", i, "disk_luns", j), str(exc), ref)
    for i, mc in enumerate(topo.mgmtclasses):
        if mc.destination not in pools:
            c.fail(("mgmtclasses", i, "destination"), f"unknown storage pool {mc.destination!r}", mc.destination)
    for i, sa in enumerate(topo.storage_agents):
        if sa.host not in hosts:
            c.fail(("storage_agents", i, "host"), f"unknown host {sa.host!r}", sa.host)
        for j, client in enumerate(sa.clients):
            if client not in hosts:
                c.fail(("storage_agents", i, "clients", j), f"unknown client {client!r}", client)
    if topo.server is not None:
        if topo.server not in hosts:
            c.fail(("server",), f"unknown host {topo.server!r}", topo.server)
        if Role.server not in ix.hosts[topo.server].roles:
            c.warnings.append(f"server {topo.server} does not list the role 'server'")

    volume_ids: set[str] = set()
    for i, v in enumerate(topo.volumes):
        if v.client not in hosts:
            c.fail(("volumes", i, "client"), f"unknown client {v.client!r}", v.client)
        if v.id in volume_ids:
            c.fail(("volumes", i, "mount"), f"volume {v.id} is defined twice", v.mount)
        volume_ids.add(v.id)
        if v.mgmtclass not in mgmtclasses:
            c.fail(("volumes", i, "mgmtclass"), f"unknown management class {v.mgmtclass!r}", v.mgmtclass)
        try:
            lun = ix.resolve_lun(v.lun)
        except LookupError as exc:
            c.fail(("volumes", i, "lun"), str(exc), v.lun)
        size = ix.luns[(lun.array, lun.number)].size
        if size and v.offset + v.size > size:
            c.fail(("volumes", i, "size"), f"volume {v.id} ends at byte {v.offset + v.size}, beyond the "
                   f"{size}-byte LUN {lun.label}", v.size)
        if not ix.presented.get((lun.array, lun.number)):
            c.fail(("volumes", i, "lun"), f"volume {v.id} lives on LUN {lun.label} of array {lun.array}, "
                   f"which is masked to no initiator (nobody presents it)", v.lun)

    disks = set()
    for i, d in enumerate(topo.tsm_disks):
        if d.node not in hosts:
            c.fail(("tsm_disks", i, "node"), f"unknown node {d.node!r}", d.node)
        if d.naa is None and not any(lun.serial == d.serial and d.serial for lun in ix.luns.values()):
            c.fail(("tsm_disks", i), f"disk {d.name} matches no LUN by serial {d.serial!r}", d.serial)
        if d.naa is not None and d.naa not in ix.lun_by_naa:
            c.fail(("tsm_disks", i, "naa"), f"disk {d.name}: no LUN has NAA designator {d.naa}", d.naa)
        disks.add(d.name)
    for i, p in enumerate(topo.tsm_paths):
        if p.srctype == "DATAMOVER" and p.source not in movers:
            c.fail(("tsm_paths", i, "source"), f"unknown data mover {p.source!r}", p.source)
        targets = {"DISK": disks, "DRIVE": set(ix.drives), "LIBRARY": libraries}[p.desttype]
        if p.destination not in targets:
            c.fail(("tsm_paths", i, "destination"), f"unknown {p.desttype.lower()} {p.destination!r}",
                   p.destination)
    return c.warnings


__all__ = ["check_references", "looks_like_wwpn"]
