"""Lookup tables over a Topology: who owns a port, which LUN a reference means, ...

Built once per topology; verification and redundancy only read them.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

from topology.model import (
    Array,
    DataMover,
    Drive,
    Host,
    Library,
    Lun,
    StoragePool,
    Topology,
)
from topology.wwn import parse_naa, parse_wwpn

_SWITCH_PORT = re.compile(r"^(?P<switch>[^/]+)/(?P<index>\d+)$")
_CANONICAL_WWPN = re.compile(r"[12356][0-9a-f](?::[0-9a-f]{2}){7}")  # what parse_wwpn returns


@dataclass(frozen=True)
class PortOwner:
    kind: str  # "host" | "array" | "mover" | "drive"
    name: str


@dataclass(frozen=True)
class LunRef:
    array: str
    number: int
    naa: str

    @property
    def label(self) -> str:
        """How a storage engineer names it: ``600a0b80...:5``."""
        return f"{self.naa}:{self.number}"


def split_switch_port(text: str) -> tuple[str, int] | None:
    """``SW1/3`` -> ("SW1", 3); None for anything else (a WWPN has no slash: answered without the cache)."""
    if "/" not in text:
        return None
    return _split_switch_port(text)


@lru_cache(maxsize=262144)
def _split_switch_port(text: str) -> tuple[str, int] | None:
    m = _SWITCH_PORT.match(text.strip())
    return (m.group("switch"), int(m.group("index"))) if m else None


def link_name(a: str, b: str) -> str:
    return f"{a}<->{b}"


@dataclass
class TopologyIndex:
    topology: Topology
    port_owner: dict[str, PortOwner] = field(default_factory=dict)
    hosts: dict[str, Host] = field(default_factory=dict)
    arrays: dict[str, Array] = field(default_factory=dict)
    movers: dict[str, DataMover] = field(default_factory=dict)
    drives: dict[str, Drive] = field(default_factory=dict)
    drive_library: dict[str, str] = field(default_factory=dict)
    libraries: dict[str, Library] = field(default_factory=dict)
    pools: dict[str, StoragePool] = field(default_factory=dict)
    luns: dict[tuple[str, int], Lun] = field(default_factory=dict)
    lun_by_naa: dict[str, tuple[str, int]] = field(default_factory=dict)
    masking: dict[tuple[str, str], dict[int, set[str] | None]] = field(default_factory=dict)
    presented: dict[tuple[str, int], set[str]] = field(default_factory=dict)
    switch_port_peer: dict[str, str] = field(default_factory=dict)

    @classmethod
    def build(cls, topo: Topology) -> TopologyIndex:
        ix = cls(topology=topo)
        for h in topo.hosts:
            ix.hosts[h.name] = h
            for p in h.hba_ports:
                ix.port_owner.setdefault(p.wwpn, PortOwner("host", h.name))
        for a in topo.arrays:
            ix.arrays[a.name] = a
            for p in a.ports:
                ix.port_owner.setdefault(p.wwpn, PortOwner("array", a.name))
            for lun in a.luns:
                ix.luns[(a.name, lun.number)] = lun
                ix.lun_by_naa.setdefault(lun.naa, (a.name, lun.number))
            seen_by: dict[int, set[str]] = {}
            for m in a.masking:
                per_lun = ix.masking.setdefault((a.name, m.initiator), {})
                if m.target_ports is None and not per_lun:  # the common case, in bulk
                    per_lun.update(dict.fromkeys(m.luns))
                else:
                    for n in m.luns:
                        targets = None if m.target_ports is None else set(m.target_ports)
                        if n in per_lun and per_lun[n] is not None and targets is not None:
                            per_lun[n] = per_lun[n] | targets
                        elif n in per_lun:
                            per_lun[n] = None
                        else:
                            per_lun[n] = targets
                for n in m.luns:
                    s = seen_by.get(n)
                    if s is None:
                        s = seen_by[n] = set()
                    s.add(m.initiator)
            for n, initiators in seen_by.items():
                ix.presented[(a.name, n)] = initiators
        for mv in topo.datamovers:
            ix.movers[mv.name] = mv
            for p in mv.ports:
                ix.port_owner.setdefault(p.wwpn, PortOwner("mover", mv.name))
        for lib in topo.libraries:
            ix.libraries[lib.name] = lib
            for d in lib.drives:
                ix.drives[d.name] = d
                ix.drive_library[d.name] = lib.name
                ix.port_owner.setdefault(d.wwpn, PortOwner("drive", d.name))
        for pool in topo.stgpools:
            ix.pools[pool.name] = pool
        for link in topo.links:
            a, b = normalise_endpoint(link.a), normalise_endpoint(link.b)
            if split_switch_port(a) and not split_switch_port(b):
                ix.switch_port_peer[a] = b
            elif split_switch_port(b) and not split_switch_port(a):
                ix.switch_port_peer[b] = a
        return ix

    def resolve_lun(self, ref: str) -> LunRef:
        """``ARR1:5`` or an NAA designator -> LunRef; LookupError naming the reference."""
        text = ref.strip()
        if ":" in text:
            array, _, number = text.rpartition(":")
            if array in self.arrays and number.isdigit():
                key = (array, int(number))
                if key not in self.luns:
                    raise LookupError(f"array {array} has no LUN {number}")
                return LunRef(array, int(number), self.luns[key].naa)
        try:
            naa = parse_naa(text)
        except ValueError:
            raise LookupError(f"LUN reference {ref!r} is neither ARRAY:NUMBER of a known array "
                              f"nor an NAA designator") from None
        if naa not in self.lun_by_naa:
            raise LookupError(f"no array has a LUN with NAA designator {naa}")
        array, number = self.lun_by_naa[naa]
        return LunRef(array, number, naa)

    def is_masked(self, array: str, initiator: str, lun: int, target_port: str) -> bool:
        """True when ``lun`` of ``array`` is presented to ``initiator`` through ``target_port``."""
        per_lun = self.masking.get((array, initiator))
        if not per_lun or lun not in per_lun:
            return False
        targets = per_lun[lun]
        return targets is None or target_port in targets

    def pool_devices(self, pool: StoragePool) -> list[tuple[str, str, list[str]]]:
        """Devices of a pool as (kind, name, ports): tape drives of its library, or disk-pool LUNs."""
        devclass = next((d for d in self.topology.devclasses if d.name == pool.devclass), None)
        out: list[tuple[str, str, list[str]]] = []
        if devclass is not None and devclass.library and devclass.library in self.libraries:
            for d in self.libraries[devclass.library].drives:
                out.append(("drive", d.name, [d.wwpn]))
        for ref in pool.disk_luns:
            lun = self.resolve_lun(ref)
            out.append(("lun", f"{lun.array}:{lun.number}", [p.wwpn for p in self.arrays[lun.array].ports]))
        return out

    def endpoint_node(self, text: str) -> str:
        """Graph node for a link endpoint or zone member (WWPN normalised, switch port as is)."""
        return normalise_endpoint(text)


def index_of(topo: Topology) -> TopologyIndex:
    """The index built when ``topo`` was checked (or a new one): a topology is indexed once.

    A Topology edited after loading must be checked again (``check_references``),
    which replaces the index -- as the TSM macro merge does.
    """
    ix = getattr(topo, "_index", None)
    if not isinstance(ix, TopologyIndex) or ix.topology is not topo:
        ix = TopologyIndex.build(topo)
        topo._index = ix
    return ix


def normalise_endpoint(text: str) -> str:
    """A link end or zone member as a graph node: WWPNs in canonical spelling, switch ports as written.

    Most are already canonical (the loader wrote them so); those are
    recognised by one regular expression instead of an LRU cache that 100,000
    ports would overflow.
    """
    if _CANONICAL_WWPN.fullmatch(text):
        return text
    return _normalise_endpoint(text)


@lru_cache(maxsize=262144)
def _normalise_endpoint(text: str) -> str:
    if split_switch_port(text):
        return text.strip()
    try:
        return parse_wwpn(text)
    except ValueError:
        return text.strip()
