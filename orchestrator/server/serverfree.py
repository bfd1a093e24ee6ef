"""Server-free image backup initiated by the server (the third-party copy TSM's server starts).

The client sends its volume's extent map and image metadata (message
``serverfree_backup``); the server checks the path from its definitions --
a DATAMOVER that is online, a PATH from it to a DISK of this node, a pool
volume whose designator the mover can name, a mover it can reach -- then runs
the sans-I/O backup job itself with the real driver: it plans the EXTENDED
COPY lists at the server's SET SERVERFREE BATCHSIZE, sends them and RECEIVE
COPY RESULTS to the movers through pyscsi (CHAP when the mover's URL carries
an account), checks the pool over its own path and commits.  The client
never touches the data.  When no mover can finish, the object is abandoned
and the answer says why: the client then moves the image itself (LAN-free or
LAN), so the failover ladder reads as it always did.
"""
from __future__ import annotations

import json
import time
from types import SimpleNamespace
from typing import Any

from orchestrator import compose
from orchestrator.drivers.real import RealDriver
from orchestrator.job import DeviceSpec, backup_job, restore_job, run_job
from orchestrator.server import messages as m
from orchestrator.server import serverfree_tape
from orchestrator.server.resume import HeldObject
from orchestrator.server.tape import tape_pool

MOVER_TIMEOUT = 60.0


def designator_key(volume: str) -> str:
    return f"designator:{volume}"


class ServerFree:
    """The server's movers (name -> URL, given at start) and the copies it initiates."""

    def __init__(self, server: Any, movers: dict[str, str], fabric: str | None = None):
        self.server, self.urls, self.fabric = server, dict(movers), fabric

    def topology_movers(self, volume_id: str, designator: str) -> tuple[list[str], str]:
        """With a fabric file: the SAN (fabric + every definition) verified for the client's volume.

        The movers are those :func:`orchestrator.compose.volume_paths` finds serving the volume on
        their own, in configured order, that this server can reach; the volume's LUN must be the
        disk the client named by its designator.
        """
        from orchestrator.server.commands import current_topology
        from topology.errors import TopologyError
        from topology.load import load_topology

        try:
            topo = current_topology(self.server.store, load_topology(self.fabric, check=False))
            paths = compose.volume_paths(topo, volume_id)
        except (TopologyError, LookupError, ValueError) as exc:
            return [], f"the SAN topology cannot be judged: {exc}"
        v = paths.verdict
        if not v.server_free:
            return [], f"the topology has no server-free path for {volume_id}: {v.reason or 'no reason given'}"
        lun = next((x for a in topo.arrays for x in a.luns if f"{a.name}:{x.number}" == v.lun), None)
        naa = (getattr(lun, "naa", None) or "").lower()
        if naa and designator and naa != designator.lower():
            return [], f"volume {volume_id} is LUN {v.lun} ({naa}) in the topology, but the client names disk " \
                       f"{designator.lower()}"
        movers = [m for m in paths.movers if m in self.urls]
        if not movers:
            return [], f"the movers that serve {volume_id} ({', '.join(paths.movers) or 'none'}) have no --mover address"
        return movers, ""

    def movers_for(self, node: str) -> tuple[list[str], str]:
        """Movers in definition order that are online, reachable and have a PATH to a disk of ``node``."""
        defs: dict[str, dict] = {}
        paths: set[str] = set()
        for row in self.server.store.definitions():
            params = json.loads(row["params"])
            if row["noun"] == "DATAMOVER":
                defs.setdefault(row["name"], {}).update(params)
            elif row["noun"] == "PATH" and params.get("NODE", "").upper() == node \
                    and params.get("DESTTYPE", "").upper().startswith("DI"):
                paths.add(row["name"].split()[0])
        if not defs:
            return [], "no data mover is defined (DEFINE DATAMOVER)"
        ok = [n for n, p in defs.items() if n in paths and str(p.get("ONLINE", "YES")).upper().startswith("Y")
              and n in self.urls]
        if ok:
            return ok, ""
        why = [f"{n}: " + ("no PATH to a disk of node " + node if n not in paths else
                           "offline" if not str(p.get("ONLINE", "YES")).upper().startswith("Y") else
                           "the server has no --mover address for it") for n, p in defs.items()]
        return [], "no data mover serves this node (" + "; ".join(why) + ")"

    def _refuse(self, ops: Any, what: str, why: str) -> tuple[dict, bytes]:
        self.server.store.log("ANR0538W", f"Session {ops.session.id}: server-free {what} not possible: {why}.",
                              ops.session.id)
        return {"type": "serverfree_result", "ok": False, "reason": why}, b""

    def _run(self, ops: Any, what: str, movers: list[str], volumes: list[str], job: Any,
             intercept: Any = None, devices: dict | None = None) -> Any:
        """Run a job with the server's movers and pool volumes (as in-process block LUNs).

        ``intercept(op)`` sees every operation first; a result it returns is the job's answer.
        ``devices`` (tape drives) joins the driver's devices, and may still grow while the job runs."""
        from orchestrator.drivers.site import LazyMover
        from scsi.devices import InProcessDevice
        from scsi.luns.file import FileBlockLun
        from scsi.target.blockdev import BlockLunDevice

        t0 = time.monotonic()
        luns = {v: FileBlockLun(v, v) for v in volumes}
        movers_open = {n: LazyMover(n, self.urls[n], MOVER_TIMEOUT) for n in movers}
        cat = self.server.pools.catalogue()
        self.server.pools.process_started(-ops.session.id, f"Server-free {what}")
        try:
            devs = devices if devices is not None else {}
            devs.update({v: InProcessDevice(BlockLunDevice(lun)) for v, lun in luns.items()})
            driver = RealDriver(cat, movers_open, devs)
            execute = driver.execute if intercept is None else (lambda op: intercept(op) or driver.execute(op))
            report = run_job(job, execute)
        finally:
            self.server.pools.process_ended(-ops.session.id)
            cat.close()
            for d in movers_open.values():
                d.close()
            for lun in luns.values():
                lun.close()
        metrics = self.server.metrics
        if metrics is not None:
            metrics.latency.labels("server-free copy").observe(time.monotonic() - t0)
            if report.ok:
                metrics.bytes_moved("server-free", int(report.stored_size or report.image_size or 0))
            for f in report.failovers:
                metrics.failovers.labels(str(getattr(f, "reason", "") or "mover")).inc()
        self.server.store.log("ANR0511I" if report.ok else "ANR0538W",
                              f"Session {ops.session.id}: server-free {what} "
                              f"{'completed' if report.ok else 'failed: ' + (report.message or 'no mover finished')}.",
                              ops.session.id)
        return {"type": "serverfree_result", "ok": bool(report.ok), "reason": report.message or "",
                "report": json.loads(json.dumps(report.as_dict(), default=str))}, b""

    def _start(self, ops: Any, what: str, pool: str, volume_id: str = "",
               designator: str = "", disk_pool: bool = True) -> tuple[list[str], dict[str, str], str]:
        """(movers, pool volume -> designator, why not) for a copy of node ``ops.node`` with ``pool``."""
        store = self.server.store
        if self.fabric and volume_id:
            movers, why = self.topology_movers(volume_id, designator)
        else:
            movers, why = self.movers_for(ops.node)
        if store.setting("serverfree_status") != "ON":
            movers, why = [], "server-free data movement is OFF (SET SERVERFREE STATUS=ON)"
        desig = {v["name"]: store.setting_or(designator_key(v["name"])) for v in self.server.pools.volumes()
                 if not pool or v["pool"] == pool}
        desig = {v: d for v, d in desig.items() if d}
        if movers and not desig and disk_pool:
            movers, why = [], f"no volume of pool {pool} has a DESIGNATOR= the data mover can name"
        return movers, desig, why

    @staticmethod
    def _options(mgmtclass: str, mode: str = "selective", imagetype: str = "static") -> SimpleNamespace:
        return SimpleNamespace(enableserverfree=True, enablelanfree=False, encrypted=False, mode=mode,
                               imagetype=imagetype, mgmtclass=mgmtclass, compression=False, presnapshotcmd="",
                               postsnapshotcmd="", snapshotcachesize=100, snapshotcachelocation="",
                               snapshotfsidleretries=0, snapshotfsidlewait=0.0)

    def _plan(self, vopts: Any, fs: str, movers: list[str], desig: dict[str, str],
              tape: Any = None) -> tuple[Any, Any]:
        verdict = SimpleNamespace(server_free=True, lan_free=False, lan=False, reasons={}, route=None)
        elig = compose.start_path(vopts, file_system=fs, paths=verdict, movers=movers, lan_available=False)
        plan = compose.path_plan(elig, server="", pool_designators=desig,
                                 batch_mb=int(self.server.store.setting("serverfree_batchsize")), lan_free=False,
                                 tape=tape)
        return elig, plan

    def backup(self, ops: Any, req: m.ServerFreeBackup) -> tuple[dict, bytes]:
        what = f"backup of {ops.node}:{req.filespace}"
        mgmtclass, pool = self.server.store.destination(ops.node, req.management_class)
        tp = tape_pool(self.server.store, pool)  # the pool's kind, decided as the LAN grant decides it
        if tp is not None:
            return serverfree_tape.backup(self, ops, req, mgmtclass, tp)
        movers, desig, why = self._start(ops, what, pool, req.topology_volume or f"{ops.node}:{req.filespace}",
                                         req.source_designator)
        if not movers:
            return self._refuse(ops, what, why)
        vopts = self._options(mgmtclass, req.mode, req.image_type)
        elig, plan = self._plan(vopts, req.file_system, movers, desig)
        spec = compose.backup_spec(node=ops.node, filespace=req.filespace, vopts=vopts, elig=elig,
                                   source=DeviceSpec(name="client-volume", designator=req.source_designator,
                                                     block_size=req.block_size),
                                   volume_offset=req.volume_offset, volume_size=req.volume_size,
                                   file_system=req.file_system, extents=[tuple(e) for e in req.extents],
                                   pool=pool, paths=plan)
        hold = HeldObject()
        result = self._run(ops, what, movers, list(desig), backup_job(spec), hold.intercept)
        if not result[0]["ok"] and hold.object_id is not None:
            result = hold.settle(ops, req, result[0]), b""
        self.server.pools.reclaim()
        return result

    def restore(self, ops: Any, req: m.ServerFreeRestore) -> tuple[dict, bytes]:
        what = f"restore of {ops.node}:{req.filespace}"
        with self.server.pools.catalogue() as cat:
            chain = cat.restore_chain(ops.node, req.filespace)
        obj = chain[0]
        if obj.tape_location:
            return serverfree_tape.restore(self, ops, req, obj)
        movers, desig, why = self._start(ops, what, obj.pool, req.topology_volume or f"{ops.node}:{req.filespace}",
                                         "")  # a restore may go to another disk than the backed-up LUN
        if movers and obj.pool_device not in desig:
            movers, why = [], f"pool volume {obj.pool_volume} has no DESIGNATOR= the data mover can name"
        if movers and any(p.compressed for p in obj.pieces):
            movers, why = [], "the image holds compressed pieces, which only the client can restore"
        if not movers:
            return self._refuse(ops, what, why)
        elig, plan = self._plan(self._options(obj.management_class), obj.file_system, movers, desig)
        spec = compose.restore_spec(node=ops.node, filespace=req.filespace, chain=[obj],
                                    destination=DeviceSpec(name="client-volume", designator=req.destination_designator,
                                                           block_size=req.block_size),
                                    destination_offset=req.destination_offset,
                                    destination_size=req.destination_size, incremental=False, deletefiles=False,
                                    paths=plan)
        return self._run(ops, what, movers, list(desig), restore_job(spec))
