"""`backup image`, `restore image` and `query backup` when the backup server owns catalogue and pools.

The client's site file then lists only what is local to it (its devices and
volumes, no pool, no catalogue); the server is named by dsm.opt or the
command line (tcpserveraddress, tcpport, nodename, password or
SERVERFREE_PASSWORD, tlsfingerprint).  The sans-I/O job runs here with
:class:`~orchestrator.server.node_driver.ServerDriver`; data moves over the
LAN into the server's grant, or -- with ``storage_agent`` in the site file
mapping the server's pool volumes to this client's devices -- LAN-free into
the granted range, failing over to the LAN.  With ``enableserverfree yes``
the client first asks the server to copy the volume through a data mover
(:func:`server_free`): the server runs that job; when it stops midway the
client finishes the object the server holds for it, and the answer goes into
the job's reasons.  A tape pool's records are written by the server (LAN) or
by this client as a storage agent (:func:`lan_free_to_tape`).
"""
from __future__ import annotations

import getpass
import os
import sys
from types import SimpleNamespace
from typing import Any

from orchestrator import compose
from orchestrator.drivers.open_site import OpenSite
from orchestrator.job import BackupSpec, DeviceSpec, JobReport, backup_job, restore_job, run_job
from orchestrator.job.restore import DELETEFILES_IGNORED
from orchestrator.job.spec import ResumePoint, TapePlan
from orchestrator.digest_spool import DigestSpool
from orchestrator.job.digest import iter_chunk_digests
from orchestrator.job.incremental import coverage_stream
from orchestrator.server.node_client import NodeSession
from orchestrator.server.node_driver import ServerDriver, object_volume

NO_SERVER_FREE = "enableserverfree is no: this client writes its grant LAN-free (storage_agent) or sends it over the LAN"
NOT_SERVER_FREE_RESTORE = ("enableserverfree is no: this restore goes LAN-free (storage_agent) or over the LAN")


def password_of(options: Any) -> str | None:
    return options.password or os.environ.get("SERVERFREE_PASSWORD") or None


def wants_server(options: Any) -> bool:
    """The client talks to the server when a password for it is at hand."""
    return password_of(options) is not None


def open_session(options: Any) -> NodeSession:
    password = password_of(options)
    if password is None and options.passwordaccess == "prompt" and sys.stdin.isatty():
        password = getpass.getpass(f"password for node {options.node}: ")
    return NodeSession(options.tcpserveraddress, options.tcpport, options.node, password or "",
                       tls_fingerprint=options.tlsfingerprint)


def server_address(options: Any) -> str:
    return f"{options.tcpserveraddress}:{options.tcpport}"


def backup_volume(args: Any, options: Any, volume: str, site: Any, device_volume: Any, progress: Any) -> JobReport:
    """One volume's image through the server (``device_volume``, ``progress``: the CLI's helpers)."""
    from orchestrator.volume import read_used_extents

    vopts = options.for_volume(volume)
    if vopts.excluded:
        raise ValueError(f"volume {volume} is excluded from image backup by exclude.image at {vopts.excluded_by}")
    vsite = site.volume(volume)
    with open_session(options) as session, OpenSite(site, optional_agents(site, vsite.device)) as opened:
        agent, agent_why = storage_agent(site, opened)
        mode, base_id, digests, coverage = str(vopts.mode), None, {}, []
        if mode == "incremental":
            objects, digests = session.chain(volume, incremental=True)
            if not objects:  # dsmc: an incremental with no full image yet takes a full one, and says so
                print(f"serverfree: no full image backup of {volume} yet: taking a full (selective) image "
                      "backup instead of an incremental one", file=sys.stderr)
                mode = "selective"
            else:
                chain = records(objects)
                base_id = chain[0].id
                # what the view's digests cover, as a stream over the chain's pieces (no pair per piece)
                coverage = coverage_stream([o.pieces for o in chain], BackupSpec.model_fields["chunk_size"].default)
        lan_free = bool(agent) and site.lan_free
        driver = ServerDriver(None, opened.movers, opened.devices, session=session,  # type: ignore[arg-type]
                              storage_agent=agent if lan_free else {})
        io = driver.io(vsite.device)
        size = vsite.size or (io.size - vsite.offset)
        layout = read_used_extents(device_volume(io, vsite.offset, size), volume, vsite.filesystem)
        fs = vsite.filesystem or layout.filesystem.value
        reasons, resume, sent = [NO_SERVER_FREE], None, None
        if vopts.enableserverfree:
            scan = {"mode": mode, "base_object_id": base_id, "coverage": coverage} if mode == "incremental" else None
            done, why, resume, sent = server_free(session, vopts, volume, vsite, io, size, fs, layout, lan_free,
                                                  scan)
            if done is not None:
                return done
            reasons = [f"server-free through the backup server: {why}"]
        verdict = SimpleNamespace(server_free=False, lan_free=lan_free, lan=True, reasons={}, route=None)
        elig = compose.start_path(vopts, file_system=fs, paths=verdict, movers=[])
        # a resumed object keeps the image layout the server's copy planned (the server-free gap size); the
        # extents stay the analysis' (n, 2) array (16 bytes an extent; the job streams over it)
        extents = sent if resume else layout.extents(compose.gap_size(vopts, elig))
        if resume:
            driver.resume = resume
            reasons = [f"server-free through the backup server stopped at image byte {resume['image_offset']} "
                       f"of {resume['image_size']}: the client moves the rest into the same object"]
        if lan_free and vopts.enablelanfree and mode == "selective" and not resume:
            tape = session.destination(None if vopts.mgmtclass in (None, "", "DEFAULT") else vopts.mgmtclass)["tape"]
            if tape and any(d in agent for d in tape["drives"]):
                agent = {"vopts": vopts, "fs": fs, "vsite": vsite, "io": io, "size": size, "reasons": reasons,
                         "extents": extents, "options": options, "volume": volume}
                done = lan_free_to_tape(driver, tape, agent, progress)
                if done.ok:
                    return done
                reasons = [*reasons, f"LAN-free to tape pool failed ({done.message}); the image goes over the LAN"]
                driver.tape_agent, driver.last_object, driver.tape_source = False, None, ()
            elif tape:
                reasons = [*reasons, f"LAN-free: storage_agent in the site file maps none of the tape pool's drives "
                                     f"({', '.join(tape['drives'])})"]
        plan = compose.path_plan(elig, server=server_address(options), pool_designators={},
                                 batch_mb=options.serverfreebatchsize, lan_free=lan_free,
                                 reasons=[*local_reasons(elig), *reasons, *agent_why])
        spec = compose.backup_spec(node=options.node, filespace=volume, vopts=vopts, elig=elig,
                                   source=DeviceSpec(name=vsite.device, designator="", block_size=io.block_size),
                                   volume_offset=vsite.offset, volume_size=size, file_system=fs, extents=extents,
                                   pool="", paths=plan, base_object_id=base_id, base_digests=digests,
                                   base_coverage=coverage, mode=mode,
                                   resume=ResumePoint(image_offset=resume["image_offset"], reason=resume["reason"],
                                                      mover=resume["mover"]) if resume else None)
        return run_job(backup_job(spec), progress(driver.execute))


def lan_free_to_tape(driver: Any, tape: dict, a: dict, progress: Any) -> JobReport:
    """The storage agent writes a tape pool's records on the drive the server holds for its session.

    No LAN rung: a failure ends this job (its object abandoned) and the caller sends the image over the LAN.
    """
    verdict = SimpleNamespace(server_free=False, lan_free=True, lan=False, reasons={}, route=None)
    elig = compose.start_path(a["vopts"], file_system=a["fs"], paths=verdict, movers=[], lan_available=False)
    plan = compose.path_plan(elig, server="", pool_designators={}, batch_mb=a["options"].serverfreebatchsize,
                             tape=TapePlan(record_bytes=int(tape["record_bytes"])), reasons=[*a["reasons"]])
    spec = compose.backup_spec(node=a["options"].node, filespace=a["volume"], vopts=a["vopts"], elig=elig,
                               source=DeviceSpec(name=a["vsite"].device, designator="", block_size=a["io"].block_size),
                               volume_offset=a["vsite"].offset, volume_size=a["size"], file_system=a["fs"],
                               extents=a["extents"], pool="", paths=plan)
    driver.tape_agent = True
    return run_job(backup_job(spec), progress(driver.execute))


class RemoteReport:
    """The report of a job the server ran (server-free), shaped as the CLI prints a JobReport."""

    def __init__(self, d: dict):
        self.d = d

    @property
    def ok(self) -> bool:
        return self.d.get("outcome") == "completed"

    def as_dict(self) -> dict:
        return self.d

    def summary(self) -> str:
        d = self.d
        return (f"{d.get('kind', 'job')} {d.get('node')}:{d.get('filespace')}: {d.get('outcome')} "
                f"(run by the backup server)\n"
                f"  path: {d.get('path_used')}; image {d.get('image_size')} bytes, stored {d.get('stored_size')}"
                f"{'; ' + d['message'] if d.get('message') else ''}"
                + "".join(f"\n  warning: {w}" for w in d.get("warnings") or []))


def server_free(session: Any, vopts: Any, volume: str, vsite: Any, io: Any, size: int, fs: str,
                layout: Any, lan_free: bool = False, scan: dict | None = None,
                ) -> tuple[RemoteReport | None, str, dict | None, list | None]:
    """Ask the server to copy the volume through a data mover.

    (its report, "", None, extents) when it did; (None, why not, None, None) when it could not start;
    (None, why, resume, extents) when it stopped midway and holds the object for this client to finish.
    """
    if fs not in ("ntfs", "raw"):
        return None, f"{fs} volumes are not eligible (NTFS and raw only)", None, None
    image_type, warnings = str(vopts.imagetype), []
    if image_type == "snapshot":  # as the job does without a snapshot facility (a client of the server has none)
        image_type = "static"
        warnings = [f"no snapshot facility for {volume} (a copy-on-write snapshot lives on the client and a data "
                    "mover cannot read it); backing up an offline (static) image instead"]
    incremental: dict = {}
    scanned = None
    if scan is not None:  # the client scans its own volume; the server decides what changed against the chain
        chunk = BackupSpec.model_fields["chunk_size"].default
        try:  # digested chunk by chunk into a spool (the coverage is in volume order): no pair per chunk held
            ours = DigestSpool(iter_chunk_digests(scan["coverage"],
                                                  lambda p: io.read(vsite.offset + p.volume_offset, p.length), chunk))
        except Exception as exc:  # noqa: BLE001 - the LAN path's scan says it again, as a failure
            return None, f"the incremental scan of the volume failed: {exc}", None, None
        incremental = {"mode": "incremental", "base_object_id": scan["base_object_id"]}
        scanned = (len(ours), ours.pages())  # as rows after the extent map (the spool's rows are SCAN_ROW's)
    extents = layout.extents(vopts.gap_size("serverfree"))
    try:
        designator = io.designator()
    except Exception as exc:  # noqa: BLE001 - the reason goes into the report
        return None, f"the volume's designator (VPD 83h) cannot be read: {exc}", None, None
    reply = session.serverfree_backup(extents, scanned, **{"filespace": volume, "volume_size": size,
                             "volume_offset": vsite.offset, "file_system": fs,
                             "source_designator": designator, "block_size": io.block_size,
                             **({"topology_volume": vsite.topology_volume} if vsite.topology_volume else {}),
                             **({"lan_free": True} if lan_free else {}), **incremental, "image_type": image_type,
                             **({"management_class": vopts.mgmtclass} if vopts.mgmtclass not in (None, "", "DEFAULT")
                                else {})})
    if reply.get("ok"):
        report = reply["report"]
        report["warnings"] = [*warnings, *(report.get("warnings") or [])]
        return RemoteReport(report), "", None, extents
    return None, str(reply.get("reason") or "the data movers did not finish"), reply.get("resume"), extents


def local_reasons(elig: Any) -> list[str]:
    """The client's own eligibility reasons that still hold: its LAN-free and LAN ones (the server judges
    server-free, and says why in the reasons it gives)."""
    return [r for r in elig.reasons if r.startswith(("LAN-free:", "LAN:"))]


def records(objects: list[dict]) -> list[Any]:
    """The server's object dicts as the record shape the job and the listing read."""
    from orchestrator.catalogue import ObjectRecord

    out = []
    for d in objects:
        pieces = d.pop("pieces")  # a PieceStream over the answer's rows (NodeSession)
        d.pop("extents", None)
        rec = ObjectRecord(**{**d, "pool_volume": object_volume(d["id"]), "pool_device": "", "pool_offset": 0})
        rec.pieces = pieces
        out.append(rec)
    return out


def restore(args: Any, options: Any, site: Any, dest_name: str, progress: Any, pit: Any = None) -> JobReport:
    """The node's image chain (active, or in force at ``pit``) onto ``dest_name``: server-free or over the LAN."""
    vsite = site.volume(args.volume)
    with open_session(options) as session, OpenSite(site, optional_agents(site, dest_name)) as opened:
        agent, agent_why = storage_agent(site, opened)
        objects, _ = session.chain(args.volume, incremental=args.incremental, pitdate=pit.isoformat() if pit else None)
        if not objects:
            when = f" at or before {pit.isoformat()}" if pit else ""
            raise LookupError(f"no restorable image of {options.node}:{args.volume}{when} on the server")
        chain = records(objects)
        on_tape = any(rec.tape_location for rec in chain)
        for rec in chain:  # the server reads a tape object's records for the client: to it, a range of bytes
            rec.tape_location = None
        driver = ServerDriver(None, opened.movers, opened.devices, session=session,  # type: ignore[arg-type]
                              batched_get=not on_tape)  # a disk object's pieces are read many to a GET_RANGES
        io = driver.io(dest_name)
        offset = vsite.offset if dest_name == vsite.device else 0
        reasons = [NOT_SERVER_FREE_RESTORE, *agent_why]
        if options.for_volume(args.volume).enableserverfree:
            try:
                reply = session.call_long({"type": "serverfree_restore", "filespace": args.volume,
                                           "destination_designator": io.designator(), "block_size": io.block_size,
                                           "destination_offset": offset, "destination_size": io.size - offset,
                                           "incremental": bool(args.incremental),
                                           "pitdate": pit.isoformat() if pit else None})
            except OSError as exc:  # the designator could not be read: the LAN restore says why
                reply = {"ok": False, "reason": f"the destination's designator (VPD 83h) cannot be read: {exc}"}
            if reply.get("ok"):
                report = dict(reply["report"])
                if args.deletefiles and len(chain) > 1:  # the client's own flag: the server restored the chain
                    report["warnings"] = [*report.get("warnings", []), DELETEFILES_IGNORED]
                return RemoteReport(report)  # type: ignore[return-value]
            reasons = [f"server-free through the backup server: {reply.get('reason') or 'the movers did not finish'}",
                       *agent_why]
        vopts = options.for_volume(args.volume)
        if on_tape and agent and vopts.enablelanfree:
            reasons.append("LAN-free: the image lies on tape; the server reads its records (it owns the drive)")
        lan_free = bool(agent) and site.lan_free and bool(vopts.enablelanfree) and not on_tape and \
            lan_free_grants(session, driver, chain, agent, reasons)
        verdict = SimpleNamespace(server_free=False, lan_free=lan_free, lan=True, reasons={}, route=None)
        elig = compose.start_path(vopts, file_system=chain[0].file_system, paths=verdict, movers=[],
                                  encryption=False)
        plan = compose.path_plan(elig, server=server_address(options), pool_designators={},
                                 batch_mb=options.serverfreebatchsize, lan_free=lan_free,
                                 reasons=[*local_reasons(elig), *reasons])
        spec = compose.restore_spec(node=options.node, filespace=args.volume, chain=chain,
                                    destination=DeviceSpec(name=dest_name, designator="", block_size=io.block_size),
                                    destination_offset=offset, destination_size=io.size - offset,
                                    incremental=args.incremental, deletefiles=args.deletefiles, paths=plan)
        return run_job(restore_job(spec), progress(driver.execute))


def optional_agents(site: Any, needed: str) -> set[str]:
    """The storage agent's devices the job can do without (the backup server is the other way to the pool)."""
    return set(site.storage_agent.values()) - {needed}


def storage_agent(site: Any, opened: Any) -> tuple[dict[str, str], list[str]]:
    """``storage_agent`` of the site file without the devices this client could not open, and why."""
    agent = {vol: dev for vol, dev in site.storage_agent.items() if dev not in opened.unavailable}
    why = [f"LAN-free: storage agent device {dev} (pool volume {vol}) cannot be opened: {opened.unavailable[dev]}"
           for vol, dev in site.storage_agent.items() if dev in opened.unavailable]
    return agent, why


def lan_free_grants(session: Any, driver: Any, chain: list[Any], agent: dict[str, str], reasons: list[str]) -> bool:
    """Ask the server for this session's read range of every object of ``chain`` and point the records at
    this client's devices for those pool volumes; False (and why, in ``reasons``) when one is out of reach."""
    for rec in chain:
        g = session.restore_grant(rec.id)
        device = agent.get(g["pool_volume"], "")
        if not device:
            reasons.append(f"LAN-free: the server holds object {rec.id} on volume {g['pool_volume']}, which "
                           "storage_agent in the site file does not map to a device of this client")
            return False
        rec.pool_device, rec.pool_offset = device, int(g["pool_offset"])
        driver.grant_read(device, int(g["pool_offset"]), int(g["length"]))
    return True


def query(options: Any, volume: str | None, inactive: bool) -> list[Any]:
    with open_session(options) as session:
        return records(session.query(volume, inactive))


__all__ = ["backup_volume", "query", "restore", "wants_server"]
