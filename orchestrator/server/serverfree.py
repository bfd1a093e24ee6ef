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
from datetime import datetime, timezone
from types import SimpleNamespace
from typing import Any

from orchestrator import compose
from orchestrator.drivers.real import RealDriver
from orchestrator.job import DeviceSpec, backup_job, restore_job, run_job
from orchestrator.chunk_runs import touched_chunk_arrays
from orchestrator.ops import DigestResult, DigestVolume, Failure, VerifyPool, VerifyResult
from orchestrator.piece_stream import PieceStream
from orchestrator.server import messages as m
from orchestrator.server import serverfree_tape
from orchestrator.server.resume import HeldObject
from orchestrator.server.tape import tape_pool

MOVER_TIMEOUT = 60.0


def designator_key(volume: str) -> str:
    return f"designator:{volume}"


def pool_view(op: VerifyPool) -> VerifyResult:
    """The server owns the pool: it digests what the mover wrote there itself, so the object gets real chunk
    digests (an image incremental then compares against them) without a byte crossing the LAN."""
    import os

    from orchestrator.server.node_digests import pool_digests

    try:
        fd = os.open(op.pool_device, os.O_RDONLY)
    except OSError as exc:
        return VerifyResult(False, f"pool volume {op.pool_device}: {exc}")
    accounted = op.accounted if isinstance(op.accounted, PieceStream) else \
        sorted(op.accounted, key=lambda q: q.image_offset)  # a stream is in image order already (and not held)
    try:  # chunk by chunk into a spool (pieces in image order are in volume order): not a hasher a chunk
        return VerifyResult(True, "", pool_digests(fd, op.pool_offset, accounted, op.chunk_size))
    except OSError as exc:
        return VerifyResult(False, f"reading pool volume {op.pool_device} failed: {exc}")
    except ValueError as exc:
        return VerifyResult(False, f"digesting pool volume {op.pool_device}: {exc}")
    finally:
        os.close(fd)


class ServerFree:
    """The server's movers (name -> URL, given at start) and the copies it initiates."""

    def __init__(self, server: Any, movers: dict[str, str], fabric: str | None = None,
                 mover_timeout: float | None = None):
        self.server, self.urls, self.fabric = server, dict(movers), fabric
        self.mover_timeout = mover_timeout or MOVER_TIMEOUT

    make_driver = staticmethod(RealDriver)  # (catalogue, movers, devices) -> the driver a copy job runs with

    def topology_movers(self, volume_id: str, designator: str) -> tuple[list[str], str, Any]:
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
            return [], f"the SAN topology cannot be judged: {exc}", None
        v = paths.verdict
        if not v.server_free:
            return [], f"the topology has no server-free path for {volume_id}: {v.reason or 'no reason given'}", None
        lun = next((x for a in topo.arrays for x in a.luns if f"{a.name}:{x.number}" == v.lun), None)
        naa = (getattr(lun, "naa", None) or "").lower()
        if naa and designator and naa != designator.lower():
            return [], f"volume {volume_id} is LUN {v.lun} ({naa}) in the topology, but the client names disk " \
                       f"{designator.lower()}", None
        movers = [m for m in paths.movers if m in self.urls]
        if not movers:
            return [], f"the movers that serve {volume_id} ({', '.join(paths.movers) or 'none'}) have no --mover " \
                       "address", None
        return movers, "", paths.pool  # and the pool the verdict judged the path to (checked against the policy)

    @staticmethod
    def _same_destination(judged: Any, volume_id: str, pool: str, desig: dict[str, str]) -> str:
        """"" when the pool the topology verdict judged is the one the server's policy sends the data to.

        The server's policy (node -> domain -> management class -> pool) decides the destination; the
        topology's volumes name a management class of their own.  A verdict about another pool's LUNs
        proves nothing about this copy, so the server's pool volumes must be LUNs of the judged pool.
        """
        if judged is None:
            return ""
        theirs = {d.lower() for d in judged.designators.values() if d}
        off = sorted(v for v, d in desig.items() if d.lower() not in theirs)
        if not off:
            return ""
        return (f"the SAN topology judged the path of {volume_id} to pool {judged.name} "
                f"({', '.join(judged.devices) or 'no LUNs'}), but the server's policy sends it to pool {pool}, whose "
                f"volume(s) {', '.join(off)} are not LUNs of that pool in the topology")

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
        from orchestrator.drivers.lazy_mover import LazyMover
        from scsi.devices import InProcessDevice
        from scsi.luns.file import FileBlockLun
        from scsi.target.blockdev import BlockLunDevice

        t0 = time.monotonic()
        luns: dict[str, FileBlockLun] = {}
        try:
            for v in volumes:
                luns[v] = FileBlockLun(v, v)
        except (OSError, ValueError) as exc:  # the pool volume's file or device is gone: the client moves it
            for lun in luns.values():
                lun.close()
            return self._refuse(ops, what, f"the server cannot open its pool volume: {exc}")
        movers_open = {n: LazyMover(n, self.urls[n], self.mover_timeout) for n in movers}
        cat = self.server.pools.catalogue()
        self.server.pools.process_started(-ops.session.id, f"Server-free {what}")
        try:
            devs = devices if devices is not None else {}
            devs.update({v: InProcessDevice(BlockLunDevice(lun)) for v, lun in luns.items()})
            driver = self.make_driver(cat, movers_open, devs)
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
            movers, why, judged = self.topology_movers(volume_id, designator)
        else:
            movers, why = self.movers_for(ops.node)
        if store.setting("serverfree_status") != "ON":
            movers, why = [], "server-free data movement is OFF (SET SERVERFREE STATUS=ON)"
        desig = {v["name"]: store.setting_or(designator_key(v["name"])) for v in self.server.pools.volumes()
                 if not pool or v["pool"] == pool}
        desig = {v: d for v, d in desig.items() if d}
        if movers and not desig and disk_pool:
            movers, why = [], f"no volume of pool {pool} has a DESIGNATOR= the data mover can name"
        if movers and self.fabric and volume_id and disk_pool:
            differs = self._same_destination(judged, volume_id, pool, desig)
            if differs:
                movers, why = [], differs
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

    def backup(self, ops: Any, req: m.ServerFreeBackup, extents: Any, scan: Any = None) -> tuple[dict, bytes]:
        """``extents``: the request's extent map as an (n, 2) array, ``scan`` an incremental's chunk digests
        (`piece_rows.Scan`), both read from its rows by NodeOps."""
        with self.server.pools.catalogue() as cat:  # an incremental's base view is read from it during the job
            return self._backup(ops, req, extents, scan, cat)

    def _backup(self, ops: Any, req: m.ServerFreeBackup, extents: Any, scan: Any, cat: Any) -> tuple[dict, bytes]:
        what = f"backup of {ops.node}:{req.filespace}"
        mgmtclass, pool = self.server.store.destination(ops.node, req.management_class)
        tp = tape_pool(self.server.store, pool)  # the pool's kind, decided as the LAN grant decides it
        if tp is not None and req.mode == "incremental":
            return self._refuse(ops, what, f"image incrementals to tape pool {tp.name} go over the LAN")
        if tp is not None:
            return serverfree_tape.backup(self, ops, req, mgmtclass, tp, extents)
        base: dict = {}
        if req.mode == "incremental":
            base, why = self._incremental_base(ops, req, cat)
            if not base:
                return self._refuse(ops, what, why)
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
                                   file_system=req.file_system, extents=extents,
                                   pool=pool, paths=plan, mode=req.mode, **base)
        hold = HeldObject()

        def intercept(op: Any) -> Any:
            if isinstance(op, DigestVolume):  # the client scanned its volume; the server cannot read it
                try:
                    covered = scan is not None and scan.covers_exactly(
                        touched_chunk_arrays(PieceStream.of(op.pieces), op.chunk_size))
                except ValueError:  # pieces out of volume order: the job says so
                    covered = False
                if not covered:
                    return DigestResult((), Failure("error", "the client's incremental scan does not cover the "
                                                             "chunks the image's digests cover"))
                return DigestResult(scan.pairs())
            if isinstance(op, VerifyPool) and op.accounted and not op.pieces:
                return pool_view(op)
            return hold.intercept(op)

        result = self._run(ops, what, movers, list(desig), backup_job(spec), intercept)
        if not result[0]["ok"] and hold.object_id is not None:
            result = hold.settle(ops, req, result[0]), b""
        self.server.pools.reclaim()
        return result

    def _incremental_base(self, ops: Any, req: m.ServerFreeBackup, cat: Any) -> tuple[dict, str]:
        """The chain an image incremental builds on: its full image, the view's digests and what they cover --
        streams read from ``cat`` on each pass of the job (it stays open meanwhile), not held."""
        from orchestrator.catalogue import CatalogueError
        from orchestrator.job.incremental import coverage_stream
        from orchestrator.job.spec import BackupSpec

        try:
            chain = cat.restore_chain(ops.node, req.filespace, incremental=True, stream=True)
            digests = cat.digest_runs(chain)
        except CatalogueError as exc:
            return {}, str(exc)
        if chain[0].id != req.base_object_id:
            return {}, f"the incremental names base object {req.base_object_id}, but the active full image is " \
                       f"object {chain[0].id}"
        coverage = coverage_stream([o.pieces for o in chain], BackupSpec.model_fields["chunk_size"].default)
        return {"base_object_id": chain[0].id, "base_digests": digests, "base_coverage": coverage}, ""

    def restore(self, ops: Any, req: m.ServerFreeRestore) -> tuple[dict, bytes]:
        what = f"restore of {ops.node}:{req.filespace}"
        try:
            pit = datetime.fromisoformat(req.pitdate) if req.pitdate else None
        except ValueError:
            raise LookupError(f"pitdate {req.pitdate!r} is not an ISO date") from None
        with self.server.pools.catalogue() as cat:  # the very chain the client was given (NodeOps.chain)
            # its pieces as streams of the catalogue's blocks, read again on each pass of the job (never held)
            chain = cat.restore_chain(ops.node, req.filespace, incremental=req.incremental, stream=True,
                                      pitdate=pit if pit is None or pit.tzinfo else pit.replace(tzinfo=timezone.utc))
            return self._restore(ops, req, what, chain)

    def _restore(self, ops: Any, req: m.ServerFreeRestore, what: str, chain: list) -> tuple[dict, bytes]:
        obj = chain[0]
        if obj.tape_location and len(chain) == 1:
            return serverfree_tape.restore(self, ops, req, obj)
        movers, desig, why = self._start(ops, what, obj.pool, req.topology_volume or f"{ops.node}:{req.filespace}",
                                         "")  # a restore may go to another disk than the backed-up LUN
        off = next((o for o in chain if o.pool_device not in desig or o.tape_location), None)
        if movers and off is not None:
            movers, why = [], (f"object {off.id} lies on tape behind a chain of several objects" if off.tape_location
                               else f"pool volume {off.pool_volume} has no DESIGNATOR= the data mover can name")
        if movers and any(o.compressed for o in chain):  # recorded at commit: no pass over the pieces
            movers, why = [], "the image holds compressed pieces, which only the client can restore"
        if not movers:
            return self._refuse(ops, what, why)
        elig, plan = self._plan(self._options(obj.management_class), obj.file_system, movers, desig)
        spec = compose.restore_spec(node=ops.node, filespace=req.filespace, chain=chain,
                                    destination=DeviceSpec(name="client-volume", designator=req.destination_designator,
                                                           block_size=req.block_size),
                                    destination_offset=req.destination_offset,
                                    destination_size=req.destination_size, incremental=req.incremental,
                                    deletefiles=False, paths=plan)
        return self._run(ops, what, movers, list(desig), restore_job(spec))
