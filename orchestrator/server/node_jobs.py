"""`backup image`, `restore image` and `query backup` when the backup server owns catalogue and pools.

The client's site file then lists only what is local to it (its devices and
volumes, no pool, no catalogue); the server is named by dsm.opt or the
command line (tcpserveraddress, tcpport, nodename, password or
SERVERFREE_PASSWORD, tlsfingerprint).  The sans-I/O job runs here with
:class:`~orchestrator.server.node_driver.ServerDriver`; data moves over the
LAN into the server's grant.  Server-free copies initiated by the server and
LAN-free grants are not built yet: the job starts on the LAN and says so.
"""
from __future__ import annotations

import getpass
import os
import sys
from typing import Any

from orchestrator.drivers.site import OpenSite, load_site
from orchestrator.eligibility import decide
from orchestrator.job import BackupSpec, DeviceSpec, JobReport, PathPlan, RestoreSpec, backup_job, object_spec, \
    restore_job, run_job
from orchestrator.ops import StoredPiece
from orchestrator.server.node_client import NodeSession
from orchestrator.server.node_driver import ServerDriver, object_volume

LAN_ONLY = ("the backup server owns the pools; server-initiated server-free copies and LAN-free grants are not "
            "built yet, so this client moves its data over the LAN")


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


def backup_volume(args: Any, options: Any, volume: str, build, device_volume, progress) -> JobReport:  # noqa: ANN001
    """One volume's image through the server (``build``, ``device_volume``, ``progress``: the CLI's helpers)."""
    from orchestrator.volume import read_layout

    vopts = options.for_volume(volume)
    if vopts.excluded:
        raise ValueError(f"volume {volume} is excluded from image backup by exclude.image at {vopts.excluded_by}")
    if str(vopts.mode) == "incremental":
        raise ValueError("-mode=incremental through the backup server is not built yet; use -mode=selective")
    site = load_site(args.site)
    vsite = site.volume(volume)
    with open_session(options) as session, OpenSite(site) as opened:
        driver = ServerDriver(None, opened.movers, opened.devices, session=session)  # type: ignore[arg-type]
        io = driver.io(vsite.device)
        size = vsite.size or (io.size - vsite.offset)
        layout = read_layout(device_volume(io, vsite.offset, size), volume)
        fs = vsite.filesystem or layout.filesystem.value
        elig = decide(enableserverfree=False, file_system=fs, encryption=vopts.encrypted, verdict=None,
                      lan_available=True, enablelanfree=False)
        extents = [(int(a), int(b)) for a, b in layout.extents(vopts.gap_size("lan")).tolist()]
        paths = build(PathPlan, start=elig.start, reasons=[*elig.reasons, LAN_ONLY], notes=elig.notes, movers=[],
                      lan_free=False, lan=True, server=server_address(options), pool_designators={},
                      batch_mb=options.serverfreebatchsize)
        spec = build(BackupSpec, node=options.node, filespace=volume,
                     source=DeviceSpec(name=vsite.device, designator="", block_size=io.block_size),
                     volume_offset=vsite.offset, volume_size=size, file_system=fs, extents=extents,
                     mode=str(vopts.mode), image_type=str(vopts.imagetype),
                     management_class=vopts.mgmtclass, pool="", compression=vopts.compression,
                     presnapshotcmd=vopts.presnapshotcmd or "", postsnapshotcmd=vopts.postsnapshotcmd or "",
                     paths=paths)
        return run_job(backup_job(spec), progress(driver.execute))


def records(objects: list[dict]) -> list[Any]:
    """The server's object dicts as the record shape the job and the listing read."""
    from orchestrator.catalogue import ObjectRecord

    out = []
    for d in objects:
        pieces = [StoredPiece(a, b, c, bool(e), f if e else 0) for a, b, c, e, f in d.pop("pieces")]
        d.pop("extents", None)
        rec = ObjectRecord(**{**d, "pool_volume": object_volume(d["id"]), "pool_device": "", "pool_offset": 0})
        rec.pieces = pieces
        out.append(rec)
    return out


def restore(args: Any, options: Any, build, progress) -> JobReport:  # noqa: ANN001
    if args.incremental or args.pitdate:
        raise ValueError("-incremental and -pitdate through the backup server are not built yet")
    site = load_site(args.site)
    vsite = site.volume(args.volume)
    dest_name = args.dest or vsite.device
    if dest_name not in site.devices:
        raise LookupError(f"destination {dest_name!r} is not a device in the site file")
    with open_session(options) as session, OpenSite(site) as opened:
        fulls = [o for o in records(session.query(args.volume)) if o.mode == "selective"]
        if not fulls:
            raise LookupError(f"no restorable image of {options.node}:{args.volume} on the server")
        driver = ServerDriver(None, opened.movers, opened.devices, session=session)  # type: ignore[arg-type]
        io = driver.io(dest_name)
        paths = build(PathPlan, start="lan", reasons=[LAN_ONLY], movers=[], lan_free=False, lan=True,
                      server=server_address(options), pool_designators={}, batch_mb=options.serverfreebatchsize)
        offset = vsite.offset if dest_name == vsite.device else 0
        spec = build(RestoreSpec, node=options.node, filespace=args.volume, chain=[object_spec(fulls[-1])],
                     destination=DeviceSpec(name=dest_name, designator="", block_size=io.block_size),
                     destination_offset=offset, destination_size=io.size - offset, incremental=False,
                     deletefiles=args.deletefiles, paths=paths)
        return run_job(restore_job(spec), progress(driver.execute))


def query(options: Any, volume: str | None, inactive: bool) -> list[Any]:
    with open_session(options) as session:
        return records(session.query(volume, inactive))


__all__ = ["backup_volume", "query", "restore", "wants_server"]
