"""Verdicts per volume: can it go server-free, LAN-free, over the LAN -- and if not, why.

Rules are checked in a fixed order so the *first* broken one is reported:
server-free: client up, file system NTFS/raw, destination pool NONBLOCK with
devices, the volume's array up, then for each data mover (in order) mover up,
mover reads the LUN (hop), mover writes a pool device (hop), and -- when the
server has DEFINE PATH entries -- a defined, online path mover->disk and
mover->drive. With several movers, the one that got furthest is reported.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from topology.collector import collector_paused
from topology.graph import SanState, server_host
from topology.hops import End, check_hop
from topology.index import LunRef
from topology.legs import MoverLegs
from topology.model import DataFormat, FileSystem, StoragePool, Topology, Volume
from topology.redundancy import annotate_redundancy
from topology.report import DomainReport, Problem, VolumeVerdict

log = logging.getLogger(__name__)

SERVER_FREE_FILESYSTEMS = frozenset({FileSystem.NTFS, FileSystem.RAW})


@dataclass
class Device:
    kind: str  # "drive" | "lun"
    name: str
    ends: list[End]
    lun: LunRef | None = None
    owners: list[str] = field(default_factory=list)  # drive, library / array: whatever it needs up


@dataclass
class ServerFreeResult:
    problem: Problem | None
    legs: list[MoverLegs]


def verify(topology: Topology, failed: Iterable[str] = (), *, redundancy: bool = True,
           state: SanState | None = None) -> DomainReport:
    """Verdict for every volume of the domain with ``failed`` components down.

    ``failed`` names switches, links/ISLs, ports (WWPN or SWITCH/PORT), hosts,
    arrays, data movers, libraries, drives or the LAN; unknown names raise
    LookupError. With ``redundancy`` each verdict also carries the number of
    disjoint server-free paths and its single points of failure.
    """
    with collector_paused():
        state = state or SanState.build(topology, set(failed))
        ctx = _Context(state)
        verdicts = [ctx.verdict(v, want_routes=redundancy) for v in topology.volumes]
        if redundancy:
            annotate_redundancy(state, verdicts, ctx.legs, ctx.client_pairs)
    return DomainReport(topology=topology.name, failed=sorted(state.failed), volumes=verdicts,
                        warnings=list(topology.warnings))


class _Context:
    def __init__(self, state: SanState) -> None:
        self.state = state
        self.ix = state.index
        self.topo = state.topology
        self.movers = self.topo.movers_in_order()
        self.pool_for_class = {mc.name: mc.destination for mc in self.topo.mgmtclasses}
        self._devices: dict[str, list[Device]] = {}
        self.legs: dict[str, list[MoverLegs]] = {}
        self._read_cache: dict[tuple, object] = {}
        self._write_cache: dict[tuple, object] = {}
        self._legs_cache: dict[tuple, MoverLegs] = {}
        self._mover_ends: dict[str, list[End]] = {}
        self._volume_legs: dict[tuple, list[MoverLegs]] = {}
        self._write_legs: dict[tuple, tuple[list[tuple[str, str, str]], tuple | None]] = {}
        self._live_devices: dict[str, tuple[list[Device], Problem | None]] = {}
        self._array_ends: dict[str, list[End]] = {}
        self._mover_masking: dict[str, list[tuple[str, dict[int, set[str] | None]]]] = {}
        self._device_keys: dict[str, tuple[str, ...]] = {}
        self._mask_groups: dict[str, list[tuple[tuple[str, ...], dict[int, set[str] | None]]]] = {}
        self._client_ends: dict[str, list[End]] = {}
        self.mover_ports = {p.wwpn for m in self.movers for p in m.ports}
        self._client_disk: dict[str, Problem | None] = {}
        self.client_pairs: dict[str, list[tuple[str, str]]] = {}

    # -- helpers ---------------------------------------------------------
    def why(self, node: str) -> str:
        return self.state.why(node)

    def devices(self, pool: StoragePool) -> list[Device]:
        if pool.name not in self._devices:
            out = []
            for kind, name, ports in self.ix.pool_devices(pool):
                if kind == "drive":
                    lib = self.ix.drive_library[name]
                    out.append(Device(kind, name, [End(p, f"drive {name}", name) for p in ports],
                                      owners=[lib, name]))
                else:
                    lun = self.ix.resolve_lun(name)
                    out.append(Device(kind, name, [End(p, f"array {lun.array}", lun.array) for p in ports],
                                      lun=lun, owners=[lun.array]))
            self._devices[pool.name] = out
        return self._devices[pool.name]

    def owner_down(self, device: Device) -> Problem | None:
        for owner in device.owners:
            if owner in self.state.down:
                kind = self.state.kind(owner)
                what = f"{kind} {owner}" if owner == device.name else \
                    f"{kind} {owner} of {'drive' if device.kind == 'drive' else 'disk-pool LUN'} {device.name}"
                return Problem(rule="component-down", message=f"{what} is {self.why(owner)}",
                               objects=[owner, device.name])
        return None

    def client_disk(self, vol: Volume, lun: LunRef) -> Problem | None:
        """The client itself must see its volume's LUN (it reads the file system and its bitmap)."""
        if vol.id not in self._client_disk:
            hop = check_hop(self.state, self.client_ends(vol.client), self.array_ends(lun.array), lun, want_all=True)
            self.client_pairs[vol.id] = [(c.wwpn, a.wwpn) for c, a in hop.pairs]
            problem = None
            if not hop.ok:
                problem = Problem(rule="client-disk", message=f"client {vol.client} cannot read volume "
                                  f"{vol.mount}: {hop.problem.message}", objects=hop.problem.objects)
            self._client_disk[vol.id] = problem
        return self._client_disk[vol.id]

    def client_ends(self, client: str) -> list[End]:
        ends = self._client_ends.get(client)
        if ends is None:
            ends = self._client_ends[client] = [End(p.wwpn, f"client {client}", client)
                                                for p in self.ix.hosts[client].hba_ports]
        return ends

    def array_ends(self, array: str) -> list[End]:
        ends = self._array_ends.get(array)
        if ends is None:
            ends = self._array_ends[array] = [End(p.wwpn, f"array {array}", array)
                                              for p in self.ix.arrays[array].ports]
        return ends

    def mover_masking(self, array: str) -> list[tuple[str, dict[int, set[str] | None]]]:
        """(mover port, its LUN masking on ``array``) for every mover port the array masks LUNs to."""
        out = self._mover_masking.get(array)
        if out is None:
            out = self._mover_masking[array] = [(w, self.ix.masking[(array, w)]) for w in sorted(self.mover_ports)
                                                if (array, w) in self.ix.masking]
        return out

    def mover_mask_groups(self, array: str) -> list[tuple[tuple[str, ...], dict[int, set[str] | None]]]:
        """`mover_masking` with mover ports of equal masking grouped: (ports, masking) per group.

        Volumes whose LUNs are masked alike share their legs; comparing whole
        masking tables once per array (in C) beats walking every mover port per volume.
        """
        groups = self._mask_groups.get(array)
        if groups is None:
            found: list[tuple[list[str], dict[int, set[str] | None]]] = []
            for w, masks in self.mover_masking(array):
                for ports, other in found:
                    if other == masks:
                        ports.append(w)
                        break
                else:
                    found.append(([w], masks))
            groups = self._mask_groups[array] = [(tuple(ports), masks) for ports, masks in found]
        return groups

    def live_devices(self, pool: StoragePool) -> tuple[list[Device], Problem | None]:
        """The pool's devices whose owners are up, and the first down one's problem (once per pool)."""
        if pool.name not in self._live_devices:
            live, problem = [], None
            for d in self.devices(pool):
                p = self.owner_down(d)
                if p is None:
                    live.append(d)
                elif problem is None:
                    problem = p
            self._live_devices[pool.name] = (live, problem)
        return self._live_devices[pool.name]

    # -- verdict ---------------------------------------------------------
    def verdict(self, vol: Volume, want_routes: bool) -> VolumeVerdict:
        lun = self.ix.resolve_lun(vol.lun)
        pool = self.ix.pools[self.pool_for_class[vol.mgmtclass]]
        sf = self.server_free(vol, lun, pool, want_routes)
        lanfree_problem, lanfree_device = self.lan_free(vol, lun, pool)
        lan_problem = self.lan(vol, lun, pool)
        reasons = {}
        if sf.problem:
            reasons["server-free"] = sf.problem
        if lanfree_problem:
            reasons["lan-free"] = lanfree_problem
        if lan_problem:
            reasons["lan"] = lan_problem
        verdict = VolumeVerdict(volume=vol.id, client=vol.client, mount=vol.mount,
                                filesystem=vol.filesystem.value, lun=lun.label, pool=pool.name,
                                server_free=sf.problem is None, lan_free=lanfree_problem is None,
                                lan=lan_problem is None, path=None, reasons=reasons)
        if sf.problem is None:
            route = sf.legs[0].first_route()
            verdict.path, verdict.route = "server-free", route
            verdict.components = [lun.label, route.mover, route.device]
        elif lanfree_problem is None:
            verdict.path = "lan-free"
            verdict.components = [lun.label, vol.client, lanfree_device or ""]
        elif lan_problem is None:
            verdict.path = "lan"
            verdict.components = [lun.label, vol.client, self.topo.lan.name, server_host(self.topo) or ""]
        self.legs[vol.id] = sf.legs
        return verdict

    def client_problem(self, vol: Volume) -> Problem | None:
        if vol.client in self.state.down:
            return Problem(rule="component-down", message=f"client {vol.client} is {self.why(vol.client)}",
                           objects=[vol.client])
        return None

    def server_free(self, vol: Volume, lun: LunRef, pool: StoragePool, want_routes: bool) -> ServerFreeResult:
        def fail(rule: str, message: str, objects: list[str]) -> ServerFreeResult:
            return ServerFreeResult(Problem(rule=rule, message=message, objects=objects), [])

        if (p := self.client_problem(vol)) is not None:
            return ServerFreeResult(p, [])
        if vol.filesystem not in SERVER_FREE_FILESYSTEMS:
            return fail("filesystem", f"volume {vol.id} has file system {vol.filesystem.value}; server-free "
                        f"image backup takes only NTFS or raw volumes", [vol.id])
        if (p := self.client_disk(vol, lun)) is not None:
            return ServerFreeResult(p, [])
        if pool.dataformat is not DataFormat.NONBLOCK:
            return fail("pool-not-nonblock", f"management class {vol.mgmtclass} sends volume {vol.id} to "
                        f"storage pool {pool.name}, whose data format is {pool.dataformat.value}, not NONBLOCK",
                        [vol.mgmtclass, pool.name])
        devices = self.devices(pool)
        if not devices:
            return fail("pool-no-devices", f"storage pool {pool.name} has no drives or disk LUNs", [pool.name])
        if lun.array in self.state.down:
            return fail("component-down", f"array {lun.array} holding LUN {lun.label} is {self.why(lun.array)}",
                        [lun.array, f"{lun.array}:{lun.number}"])
        if not self.movers:
            return fail("no-mover", "no data mover is defined", [])
        live_devices, device_problem = self.live_devices(pool)
        if not live_devices:
            return ServerFreeResult(device_problem, [])
        array_ends = self.array_ends(lun.array)
        best: tuple[float, Problem] | None = None
        legs: list[MoverLegs] = []
        device_key = self._device_keys.get(pool.name)
        if device_key is None:
            device_key = self._device_keys[pool.name] = tuple(d.name for d in live_devices)
        # Volumes on one array whose LUNs are masked alike to the movers get the same legs.
        shared_key = None
        if want_routes and not self.topo.tsm_paths:
            n = lun.number
            shared_key = (lun.array, frozenset((ports, None if masks[n] is None else frozenset(masks[n]))
                                               for ports, masks in self.mover_mask_groups(lun.array)
                                               if n in masks),
                          device_key)
            if shared_key in self._volume_legs:
                return ServerFreeResult(None, self._volume_legs[shared_key])
        for mover in self.movers:
            problem, score, found = self._through_mover(vol, lun, mover, array_ends, live_devices, want_routes,
                                                        device_key)
            if found is not None:
                legs.append(found)
                if not want_routes:
                    break
            elif best is None or score > best[0]:
                best = (score, problem)
        if legs:
            if shared_key is not None:
                self._volume_legs[shared_key] = legs
            return ServerFreeResult(None, legs)
        assert best is not None
        return ServerFreeResult(best[1], [])

    def _mask_signature(self, lun: LunRef, mover) -> tuple:
        """How this LUN is masked to the mover's ports: LUNs with equal signatures read alike."""
        sig = []
        for p in mover.ports:
            per_lun = self.ix.masking.get((lun.array, p.wwpn))
            if per_lun and lun.number in per_lun:
                targets = per_lun[lun.number]
                sig.append((p.wwpn, None if targets is None else tuple(sorted(targets))))
        return tuple(sig)

    def _through_mover(self, vol, lun, mover, array_ends, devices, want_routes, device_key=()):
        """(problem, score, None) or (None, 0, MoverLegs) for one data mover."""
        if mover.name in self.state.down:
            return (Problem(rule="component-down", message=f"data mover {mover.name} is {self.why(mover.name)}",
                            objects=[mover.name]), 0.0, None)
        ends = self._mover_ends.get(mover.name)
        if ends is None:
            ends = self._mover_ends[mover.name] = [End(p.wwpn, f"data mover {mover.name}", mover.name)
                                                   for p in mover.ports]
        read_key = (mover.name, lun.array, self._mask_signature(lun, mover), want_routes)
        read = self._read_cache.get(read_key)
        if read is None:
            read = check_hop(self.state, ends, array_ends, lun, want_all=want_routes)
            if read.ok:  # failures name the LUN, so only successes are shared between volumes
                self._read_cache[read_key] = read
        if not read.ok:
            return read.problem, 1 + read.score / 10, None
        legs_key = (read_key, device_key)
        if not self.topo.tsm_paths and legs_key in self._legs_cache:
            return None, 0.0, self._legs_cache[legs_key]
        if not self.topo.tsm_paths:  # without server paths, what a mover can write is the same for every volume
            write_key = (mover.name, device_key, want_routes)
            if write_key not in self._write_legs:
                self._write_legs[write_key] = self._writes(vol, lun, mover, ends, devices, want_routes)
            write_pairs, best_write = self._write_legs[write_key]
        else:
            write_pairs, best_write = self._writes(vol, lun, mover, ends, devices, want_routes)
        if write_pairs:
            legs = MoverLegs(mover.name, [(m.wwpn, a.wwpn) for m, a in read.pairs], write_pairs)
            if not self.topo.tsm_paths:  # server paths depend on the volume; without them legs are shared
                self._legs_cache[legs_key] = legs
            return None, 0.0, legs
        return best_write[1], 2 + best_write[0] / 10, None

    def _writes(self, vol: Volume, lun: LunRef, mover, ends: list[End], devices: list[Device],
                want_routes: bool) -> tuple[list[tuple[str, str, str]], tuple | None]:
        """(write pairs, None) or ([], (score, problem)): what ``mover`` can write of ``devices``."""
        best_write = None
        write_pairs: list[tuple[str, str, str]] = []
        for d in devices:
            write_key = (mover.name, d.name, want_routes)
            write = self._write_cache.get(write_key)
            if write is None:
                write = self._write_cache[write_key] = check_hop(self.state, ends, d.ends, d.lun,
                                                                  want_all=want_routes)
            if not write.ok:
                if best_write is None or write.score > best_write[0]:
                    best_write = (write.score, write.problem)
                continue
            tsm = self._tsm_paths(vol, lun, mover.name, d)
            if tsm is not None:
                best_write = (10, tsm)
                continue
            write_pairs.extend((m_out.wwpn, d_port.wwpn, d.name) for m_out, d_port in write.pairs)
            if not want_routes:
                break
        return write_pairs, (None if write_pairs else best_write)

    def _tsm_paths(self, vol: Volume, lun: LunRef, mover: str, device: Device) -> Problem | None:
        """When the server has DEFINE PATH entries, the mover needs an online one to disk and device."""
        paths = self.topo.tsm_paths
        if not paths:
            return None
        disks = {d.name for d in self.topo.tsm_disks
                 if d.node == vol.client and (d.naa == lun.naa or (d.naa is None and d.serial
                                              and d.serial == self.ix.luns[(lun.array, lun.number)].serial))}
        mine = [p for p in paths if p.srctype == "DATAMOVER" and p.source == mover]
        if not any(p.desttype == "DISK" and p.destination in disks and p.online for p in mine):
            return Problem(rule="no-server-path",
                           message=f"the server has no online DEFINE PATH from data mover {mover} to the disk "
                                   f"of volume {vol.id} (LUN {lun.label})", objects=[mover, lun.label])
        if device.kind == "drive" and not any(p.desttype == "DRIVE" and p.destination == device.name
                                              and p.online for p in mine):
            return Problem(rule="no-server-path",
                           message=f"the server has no online DEFINE PATH from data mover {mover} to drive "
                                   f"{device.name}", objects=[mover, device.name])
        return None

    def lan_free(self, vol: Volume, lun: LunRef, pool: StoragePool) -> tuple[Problem | None, str | None]:
        if (p := self.client_problem(vol) or self.client_disk(vol, lun)) is not None:
            return p, None
        agents = [a for a in self.topo.storage_agents if vol.client in a.clients]
        if not agents:
            return Problem(rule="no-storage-agent", message=f"no storage agent serves client {vol.client}",
                           objects=[vol.client]), None
        live = [a for a in agents if a.name not in self.state.down and a.online and a.host not in self.state.down]
        if not live:
            a = agents[0]
            what = a.name if (a.name in self.state.down or not a.online) else f"{a.name} host {a.host}"
            return Problem(rule="component-down", message=f"storage agent {what} is "
                           f"{self.why(a.name if a.name in self.state.down else a.host)}",
                           objects=[a.name, a.host]), None
        devices = self.devices(pool)
        if not devices:
            return Problem(rule="pool-no-devices", message=f"storage pool {pool.name} has no drives or disk LUNs",
                           objects=[pool.name]), None
        best = None
        for d in devices:
            p = self.owner_down(d)
            if p is not None:
                best = best or (-1, p)
                continue
            hop = check_hop(self.state, self.client_ends(vol.client), d.ends, d.lun)
            if hop.ok:
                return None, d.name
            if best is None or hop.score > best[0]:
                best = (hop.score, hop.problem)
        return best[1], None

    def lan(self, vol: Volume, lun: LunRef, pool: StoragePool) -> Problem | None:
        if (p := self.client_problem(vol) or self.client_disk(vol, lun)) is not None:
            return p
        lan = self.topo.lan.name
        if lan in self.state.down:
            return Problem(rule="component-down", message=f"LAN {lan} is {self.why(lan)}", objects=[lan])
        if not self.ix.hosts[vol.client].lan_address:
            return Problem(rule="no-lan-address", message=f"client {vol.client} has no LAN address",
                           objects=[vol.client])
        server = server_host(self.topo)
        if server is None:
            return Problem(rule="no-server", message="no backup server is defined", objects=[])
        if server in self.state.down:
            return Problem(rule="component-down", message=f"server {server} is {self.why(server)}",
                           objects=[server])
        if not self.ix.hosts[server].lan_address:
            return Problem(rule="no-lan-address", message=f"server {server} has no LAN address", objects=[server])
        return self.server_writes(server, pool)

    def server_writes(self, server: str, pool: StoragePool) -> Problem | None:
        """On the LAN path the server writes the pool: one of its HBA ports must reach a live pool device
        (zoned, and for a disk pool masked to it), or the data has nowhere to go."""
        if not self.devices(pool):
            return Problem(rule="pool-no-devices", message=f"storage pool {pool.name} has no drives or disk LUNs",
                           objects=[pool.name])
        live, down = self.live_devices(pool)
        if not live:
            return down
        ends = [End(p.wwpn, f"server {server}", server) for p in self.ix.hosts[server].hba_ports]
        if not ends:
            return Problem(rule="server-no-hba", message=f"server {server} has no HBA port to write storage pool "
                           f"{pool.name}", objects=[server, pool.name])
        best = None
        for d in live:
            hop = check_hop(self.state, ends, d.ends, d.lun)
            if hop.ok:
                return None
            if best is None or hop.score > best[0]:
                best = (hop.score, hop.problem)
        return best[1]
