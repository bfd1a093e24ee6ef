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
from orchestrator.job import DeviceSpec, backup_job, run_job
from orchestrator.server import messages as m

MOVER_TIMEOUT = 60.0


def designator_key(volume: str) -> str:
    return f"designator:{volume}"


class ServerFree:
    """The server's movers (name -> URL, given at start) and the copies it initiates."""

    def __init__(self, server: Any, movers: dict[str, str]):
        self.server, self.urls = server, dict(movers)

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

    def backup(self, ops: Any, req: m.ServerFreeBackup) -> tuple[dict, bytes]:
        from orchestrator.drivers.site import LazyMover
        from scsi.devices import InProcessDevice
        from scsi.luns.file import FileBlockLun
        from scsi.target.blockdev import BlockLunDevice

        store, node = self.server.store, ops.node
        movers, why = self.movers_for(node)
        if store.setting("serverfree_status") != "ON":
            movers, why = [], "server-free data movement is OFF (SET SERVERFREE STATUS=ON)"
        mgmtclass, pool = store.destination(node, req.management_class)
        vols = [v for v in self.server.pools.volumes() if v["pool"] == pool]
        desig = {v["name"]: store.setting_or(designator_key(v["name"])) for v in vols}
        if movers and not any(desig.values()):
            movers, why = [], f"no volume of pool {pool} has a DESIGNATOR= the data mover can name"
        if not movers:
            store.log("ANR0538W", f"Session {ops.session.id}: server-free backup of {node}:{req.filespace} not "
                                  f"possible: {why}.", ops.session.id)
            return {"type": "serverfree_result", "ok": False, "reason": why}, b""
        t0 = time.monotonic()
        luns = {v: FileBlockLun(v, v) for v, d in desig.items() if d}
        movers_open = {n: LazyMover(n, self.urls[n], MOVER_TIMEOUT) for n in movers}
        cat = self.server.pools.catalogue()
        try:
            driver = RealDriver(cat, movers_open, {v: InProcessDevice(BlockLunDevice(lun)) for v, lun in luns.items()})
            vopts = SimpleNamespace(enableserverfree=True, enablelanfree=False, encrypted=False, mode=req.mode,
                                    imagetype=req.image_type, mgmtclass=mgmtclass, compression=False,
                                    presnapshotcmd="", postsnapshotcmd="", snapshotcachesize=100,
                                    snapshotcachelocation="", snapshotfsidleretries=0, snapshotfsidlewait=0.0)
            verdict = SimpleNamespace(server_free=True, lan_free=False, lan=False, reasons={}, route=None)
            elig = compose.start_path(vopts, file_system=req.file_system, paths=verdict, movers=movers,
                                      lan_available=False)
            plan = compose.path_plan(elig, server="", pool_designators={v: d for v, d in desig.items() if d},
                                     batch_mb=int(store.setting("serverfree_batchsize")), lan_free=False)
            spec = compose.backup_spec(node=node, filespace=req.filespace, vopts=vopts, elig=elig,
                                       source=DeviceSpec(name="client-volume", designator=req.source_designator,
                                                         block_size=req.block_size),
                                       volume_offset=req.volume_offset, volume_size=req.volume_size,
                                       file_system=req.file_system, extents=[tuple(e) for e in req.extents],
                                       pool=pool, paths=plan)
            self.server.pools.process_started(-ops.session.id, f"Server-free backup of {node}:{req.filespace}")
            report = run_job(backup_job(spec), driver.execute)
        finally:
            self.server.pools.process_ended(-ops.session.id)
            cat.close()
            for d in movers_open.values():
                d.close()
            for lun in luns.values():
                lun.close()
        self.server.pools.reclaim()
        out = report.as_dict()
        metrics = self.server.metrics
        if metrics is not None:
            metrics.latency.labels("server-free copy").observe(time.monotonic() - t0)
            if report.ok:
                metrics.bytes_moved("server-free", int(report.stored_size or 0))
                metrics.objects.labels("committed").inc()
            for f in report.failovers:
                metrics.failovers.labels(str(getattr(f, "reason", "") or getattr(f, "kind", "mover")))
        msg = "ANR0511I" if report.ok else "ANR0538W"
        store.log(msg, f"Session {ops.session.id}: server-free backup of {node}:{req.filespace} "
                       f"{'completed' if report.ok else 'failed: ' + (report.message or 'no mover finished')}.",
                  ops.session.id)
        return {"type": "serverfree_result", "ok": bool(report.ok), "reason": report.message or "",
                "report": json.loads(json.dumps(out, default=str))}, b""
