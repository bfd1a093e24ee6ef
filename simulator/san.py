"""The simulated SAN: devices, links and routes on one flow network.

:class:`SimSAN` is built either by hand (tests, benchmarks) or from a topology
file (:mod:`simulator.from_topology`).  It knows how to turn a data path --
server-free (disk -> mover -> drive), LAN-free (client reads its disk and
writes the drive through its storage agent) or LAN (client -> LAN -> server
-> drive) -- into a list of (resource, weight) pairs, and keeps per-job byte
counts so that faults can strike "after N bytes" or "at P %" of a job.

FC links are full duplex: each link is two resources, ``NAME>`` and ``NAME<``.
A route between two devices may have alternatives (one per fabric); a new
flow takes the alternative that is up and least used, like a multipath driver.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import simpy

from simulator.attribution import Attribution
from simulator.calibration import MB, MiB, Calibration
from simulator.devices import (Components, DataMover, DiskLun, Host, Lan, StorageAgent, TapeDrive,
                               queued_commands, tape_drive)
from simulator.flows import CountingEnvironment, Flow, FlowNetwork, Resource, Streaming
from simulator.san_routes import ROUTE_CACHE_PAIRS, Routes
from simulator.timeline import Timeline

log = logging.getLogger(__name__)

Path = list[tuple[Resource, float]]


@dataclass
class JobProgress:
    """Bytes a job has moved over all its flows (for job-relative fault triggers)."""

    total: float
    done: float = 0.0
    running: list[Flow] = field(default_factory=list)
    watchers: list[tuple[float, Callable[[], Any]]] = field(default_factory=list)  # (job bytes, action)


class SimSAN(Routes):
    """Devices + links + routes + jobs on a :class:`FlowNetwork` in a simpy environment."""

    def __init__(self, calibration: Calibration | None = None, *, env: simpy.Environment | None = None,
                 record_rates: bool = True, detail: bool = True):
        self.cal = calibration or Calibration()
        self.env = env or CountingEnvironment()
        # detail=False (capacity runs): no per-flow timeline, no per-job record kept after a job ends
        self.detail = detail
        self.timeline = Timeline(record_rates=record_rates, detail=detail)
        self.net = FlowNetwork(self.env, self.timeline)
        self.dev = Components()
        self.links: dict[str, tuple[Resource, Resource]] = {}
        self.link_kind: dict[str, str] = {}
        self.aliases: dict[str, str] = {}  # switch port -> link name
        self.routes: dict[tuple[str, str], list[list[tuple[str, bool]]]] = {}
        self._route_res: dict[tuple[str, str], list[tuple[Resource, ...]]] = {}
        # Optional: computes a pair's routes on first use (large worlds need not list them all).
        self.route_factory: Callable[[str, str], list[list[tuple[str, bool]]]] | None = None
        # Pairs whose routes were computed on use (factory, or reversed): at most ROUTE_CACHE_PAIRS are
        # kept, oldest dropped first -- they are computed again, the same, if asked for again.
        self._derived: dict[tuple[str, str], None] = {}
        self.route_cache_pairs = ROUTE_CACHE_PAIRS
        self.jobs: dict[str, JobProgress] = {}
        self.server: str | None = None
        self._route_use: dict[int, int] = {}  # flows per resource, for route choice
        self.job_listeners: list[Callable[[str, JobProgress], Any]] = []
        self.owners: dict[str, str] = {}  # client disk LUN -> client host
        self.agent_of: dict[str, str] = {}  # client host -> its storage agent
        self.attribution = Attribution(self.net.resources, self.owners)  # per-job bottleneck and failover time

    # -- building -------------------------------------------------------------------
    def add_link(self, name: str, bytes_s: float, kind: str = "link") -> None:
        """A full-duplex FC link or ISL of ``bytes_s`` payload bytes/s in each direction."""
        if name in self.links:
            raise ValueError(f"link {name!r} is defined twice")
        self.links[name] = (self.net.add_resource(f"{name}>", bytes_s, kind),
                            self.net.add_resource(f"{name}<", bytes_s, kind))
        self.link_kind[name] = kind

    def add_disk(self, name: str, mb_s: float | None = None, *, owner: str | None = None) -> DiskLun:
        """A disk LUN (a client volume's LUN when ``owner`` names the client, else a disk-pool LUN)."""
        res = self.net.add_resource(f"disk:{name}", (mb_s or self.cal.disk_mb_s) * MB, "disk")
        lun = DiskLun(name, res, self.cal.disk_positioning_ms / 1000, self.cal.disk_command_ms / 1000)
        self.dev.disks[name] = lun
        if owner is not None:
            self.owners[name] = owner
        return lun

    def add_mover(self, name: str, mb_s: float | None = None, concurrency: int | None = None) -> DataMover:
        res = self.net.add_resource(f"mover:{name}", (mb_s or self.cal.mover_mb_s) * MB, "mover")
        mover = DataMover(name, res, simpy.Resource(self.env, concurrency or self.cal.mover_concurrency),
                          self.cal.mover_buffer_mib * MiB, self.cal.mover_command_ms / 1000)
        self.dev.movers[name] = mover
        return mover

    def add_drive(self, name: str, native_mb_s: float | None = None) -> TapeDrive:
        res = self.net.add_resource(f"drive:{name}", (native_mb_s or self.cal.tape_native_mb_s) * MB, "drive")
        drive = tape_drive(self.env, name, res, self.cal)
        self.dev.drives[name] = drive
        return drive

    def add_host(self, name: str, *, cores: float | None = None, nic_gbit: float | None = None,
                 server: bool = False) -> Host:
        cpu = self.net.add_resource(f"cpu:{name}", cores or self.cal.host_cpu_cores, "cpu")
        nic = self.net.add_resource(f"nic:{name}", self.cal.lan_bytes_s(nic_gbit), "nic") if nic_gbit else None
        host = Host(name, cpu, nic)
        self.dev.hosts[name] = host
        if server:
            self.server = name
        return host

    def add_lan(self, name: str = "LAN", gbit: float = 1.0) -> Lan:
        lan = Lan(name, self.net.add_resource(f"lan:{name}", self.cal.lan_bytes_s(gbit), "lan"))
        self.dev.lans[name] = lan
        return lan

    def add_agent(self, name: str, host: str, mb_s: float | None = None, *,
                  serves: Iterable[str] = ()) -> StorageAgent:
        """A storage agent on ``host``; clients listed in ``serves`` use it for LAN-free."""
        agent = StorageAgent(name, self.net.add_resource(f"agent:{name}", (mb_s or self.cal.storage_agent_mb_s)
                                                         * MB, "agent"), host)
        self.dev.agents[name] = agent
        for client in serves:
            self.agent_of[client] = name
        return agent

    def alias(self, name: str, link: str) -> None:
        """Let faults name a link by another name (a switch port, a WWPN)."""
        if link not in self.links:
            raise LookupError(f"alias {name!r}: no link named {link!r}")
        self.aliases[name] = link

    # -- lookup ---------------------------------------------------------------------
    def link(self, name: str) -> tuple[Resource, Resource]:
        key = self.aliases.get(name, name)
        try:
            return self.links[key]
        except KeyError:
            raise LookupError(f"no link, ISL or switch port named {name!r} in the simulated SAN") from None

    def _get(self, table: dict[str, Any], name: str, what: str) -> Any:
        try:
            return table[name]
        except KeyError:
            known = ", ".join(sorted(table)[:8]) or "none"
            raise LookupError(f"no {what} named {name!r} in the simulated SAN (known: {known})") from None

    def disk(self, name: str) -> DiskLun:
        return self._get(self.dev.disks, name, "disk LUN")

    def mover(self, name: str) -> DataMover:
        return self._get(self.dev.movers, name, "data mover")

    def drive(self, name: str) -> TapeDrive:
        return self._get(self.dev.drives, name, "tape drive")

    def host(self, name: str) -> Host:
        return self._get(self.dev.hosts, name, "host")

    def agent(self, name: str) -> StorageAgent:
        return self._get(self.dev.agents, name, "storage agent")

    def lan(self, name: str | None = None) -> Lan:
        if name is None:
            if not self.dev.lans:
                raise LookupError("the simulated SAN has no LAN")
            return next(iter(self.dev.lans.values()))
        return self._get(self.dev.lans, name, "LAN")

    # -- paths ----------------------------------------------------------------------
    def _source(self, name: str, nbytes: float, extents: int, commands: float = 0.0) -> tuple[Path, Streaming | None]:
        """Read terms: a disk pays positioning per extent; a tape drive reads ``1/compression`` per byte;
        both pay ``commands`` unhidden command latencies (:func:`simulator.devices.queued_commands`)."""
        if name in self.dev.drives:
            d = self.dev.drives[name]
            return [(d.resource, d.stream_weight(nbytes, commands))], d.streaming()
        src = self.disk(name)
        return [(src.resource, src.weight(nbytes, extents, commands))], None

    def _destination(self, name: str, upstream_buffer: float, nbytes: float = 0.0,
                     extents: int = 1, commands: float = 0.0) -> tuple[Path, Streaming | None]:
        """Write terms: a drive (streaming, compression) or a disk (a pool LUN, or a restore target)."""
        if name in self.dev.drives:
            d = self.dev.drives[name]
            return [(d.resource, d.stream_weight(nbytes, commands))], d.streaming(upstream_buffer)
        lun = self.disk(name)
        return [(lun.resource, lun.weight(nbytes, extents, commands))], None

    def mover_commands(self, nbytes: float, extents: int = 1) -> float:
        """Unhidden command latencies of one side of a server-free copy: the mover's chunks at its depth."""
        return queued_commands(nbytes, self.cal.mover_chunk(), self.cal.mover_io_depth, extents)

    def _cpu(self, host: str | None, path: str) -> Path:
        if host is None or host not in self.dev.hosts:
            return []
        per = (self.cal.server_cpu_ms_per_mib if host == self.server else self.cal.client_cpu_ms_per_mib)
        w = per.per_byte(path)
        return [(self.dev.hosts[host].cpu, w)] if w > 0 else []

    def _extents(self, source: str, destination: str, extents: int) -> tuple[int, int]:
        """Who pays positioning per extent: the client disk (the source of a backup, the destination of
        a restore); pools and drives are written and read sequentially."""
        if destination in self.owners:
            return 1, extents
        return (1 if source in self.dev.drives else extents), 1

    def _links(self, a: str, b: str) -> Path:
        return [(r, 1.0) for r in self.route(a, b)]

    def server_free_path(self, source: str, mover: str, destination: str, nbytes: float, *,
                         extents: int = 1, commands: int = 1) -> tuple[Path, Streaming | None]:
        """source -> fabric -> mover -> fabric -> destination; the server only issues commands.

        Backup reads a client disk and writes a drive or pool LUN; restore the reverse.
        """
        mv = self.mover(mover)
        src_ext, dst_ext = self._extents(source, destination, extents)
        # the mover reads and writes at once, each side a queue of mover_io_depth chunks (its own stream)
        path, s_in = self._source(source, nbytes, src_ext, self.mover_commands(nbytes, extents))
        path += self._links(source, mover)
        path.append((mv.resource, mv.weight(nbytes, commands)))
        path += self._links(mover, destination)
        dest, s_out = self._destination(destination, mv.buffer, nbytes, dst_ext, self.mover_commands(nbytes, extents))
        path += dest
        path += self._cpu(self.server, "server-free")  # the server plans and polls the copy
        owner = self.owners.get(source) or self.owners.get(destination)
        if owner != self.server:  # the client only sends its extent map (calibration: 0 ms/MiB by default)
            path += self._cpu(owner, "server-free")
        return path, s_out or s_in

    def lan_free_path(self, client: str, source: str, destination: str, nbytes: float, *,
                      extents: int = 1, agent: str | None = None) -> tuple[Path, Streaming | None]:
        """The client moves the data itself over its HBA (through its storage agent), either way."""
        src_ext, dst_ext = self._extents(source, destination, extents)
        path, s_in = self._source(source, nbytes, src_ext)
        path += self._links(source, client)
        if agent is not None:
            path.append((self.agent(agent).resource, 1.0))
        path += self._cpu(client, "lan-free")
        if self.server != client:
            path += self._cpu(self.server, "lan-free")  # the server grants and commits the pool range
        path += self._links(client, destination)
        dest, s_out = self._destination(destination, 0.0, nbytes, dst_ext)
        return path + dest, s_out or s_in

    def lan_path(self, client: str, source: str, destination: str, nbytes: float, *,
                 extents: int = 1, lan: str | None = None, restore: bool = False) -> tuple[Path, Streaming | None]:
        """client disk -> client CPU/NIC -> LAN -> server NIC/CPU -> fabric -> drive (``restore``: reversed)."""
        if self.server is None:
            raise LookupError("the simulated SAN has no backup server host")
        sender, receiver = (self.server, client) if restore else (client, self.server)
        src_ext, dst_ext = self._extents(source, destination, extents)
        path, s_in = self._source(source, nbytes, src_ext)
        path += self._links(source, sender)
        path += self._cpu(sender, "lan")
        for h in (sender, receiver):
            nic = self.host(h).nic
            if nic is not None:
                path.append((nic, 1.0))
        path.append((self.lan(lan).resource, 1.0))
        path += self._cpu(receiver, "lan")
        path += self._links(receiver, destination)
        dest, s_out = self._destination(destination, 0.0, nbytes, dst_ext)
        return path + dest, s_out or s_in

    # -- jobs and flows ---------------------------------------------------------------
    def register_job(self, job: str, total_bytes: float) -> JobProgress:
        """Declare a job's size (percent triggers need it); listeners learn of it."""
        prog = self.jobs.get(job)
        if prog is None:
            prog = self.jobs[job] = JobProgress(float(total_bytes))
        else:
            prog.total = float(total_bytes)
        for listener in list(self.job_listeners):
            listener(job, prog)
        return prog

    def end_job(self, job: str, start: float, end: float, *, attribution: bool = True) -> None:
        """A job ended.  With ``detail=False`` its bottleneck report is folded into
        ``attribution.totals`` (``attribution=False``: the caller takes the report itself) and its byte
        count is dropped (unless a fault still waits for its bytes), so a run of any number of jobs
        keeps nothing per finished job; with detail both stay for reports."""
        if self.detail:
            return
        if attribution:
            self.attribution.close(job, start, end)
        prog = self.jobs.get(job)
        if prog is not None and not prog.running and not prog.watchers:
            del self.jobs[job]

    def watch_job(self, job: str, at_bytes: float, action: Callable[[], Any]) -> None:
        """Run ``action`` when the job has moved ``at_bytes`` bytes (over any of its flows)."""
        prog = self.jobs.setdefault(job, JobProgress(0.0))
        if at_bytes <= prog.done:
            action()
            return
        prog.watchers.append((at_bytes, action))
        for flow in prog.running:
            self._arm(prog, flow)

    def _arm(self, prog: JobProgress, flow: Flow) -> None:
        base = flow.meta["job_base"]
        armed = flow.meta.setdefault("armed", set())
        for at, action in list(prog.watchers):
            if base < at <= base + flow.total and id(action) not in armed:
                armed.add(id(action))
                self.net.add_mark(flow, at - base, lambda _f, a=action, at=at: self._fire(prog, at, a))

    def _fire(self, prog: JobProgress, at: float, action: Callable[[], Any]) -> None:
        if (at, action) in prog.watchers:
            prog.watchers.remove((at, action))
            action()

    def start_flow(self, nbytes: float, path: Path, *, streaming: Streaming | None = None, label: str = "",
                   job: str = "", meta: dict[str, Any] | None = None, counts: bool = True) -> Flow:
        """Start a flow for ``job``; job-relative fault triggers inside it are armed as byte marks.

        ``counts=False``: the flow belongs to the job (timeline, plots) but its bytes are not job
        progress -- exact mode counts a copy's bytes once, as they reach the destination, not
        again as the mover reads them.  Concurrent counting flows of one job take consecutive
        byte ranges (each starts where the running ones will end), so no job byte falls between
        two flows and every trigger has a flow to fire in.
        """
        prog = self.jobs.setdefault(job, JobProgress(0.0)) if job and counts else None
        m = dict(meta or {})
        m["job_base"] = prog.done + sum(f.total for f in prog.running) if prog else 0.0
        if job:
            self.attribution.flow_started(job, self.env.now)
        flow = self.net.start(nbytes, path, label=label, job=job, streaming=streaming, meta=m)
        for r, _ in path:
            self._route_use[r.index] = self._route_use.get(r.index, 0) + 1
        flow.finished.callbacks.append(lambda ev, f=flow: self._flow_ended(f, ev.value))
        if prog is not None and flow.id in self.net.active:
            prog.running.append(flow)
            if prog.watchers:
                self._arm(prog, flow)
        return flow

    def _flow_ended(self, flow: Flow, end: Any) -> None:
        self.attribution.flow_ended(flow)
        for r, _ in flow.path:
            self._route_use[r.index] -= 1
        prog = self.jobs.get(flow.job) if flow.job else None
        if prog is not None and flow in prog.running:
            prog.done += end.bytes_done
            prog.running.remove(flow)
            # a trigger no running flow covers any more (its flow stopped early) fires once passed
            for at, action in sorted((w for w in prog.watchers if w[0] <= prog.done), key=lambda w: w[0]):
                self._fire(prog, at, action)

    def run(self, until: float | None = None) -> None:
        self.env.run(until=until)
