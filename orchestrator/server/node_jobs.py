"""`backup image`, `restore image` and `query backup` when the backup server owns catalogue and pools.

The client's site file then lists only what is local to it (its devices and
volumes, no pool, no catalogue); the server is named by dsm.opt or the
command line (tcpserveraddress, tcpport, nodename, password or
SERVERFREE_PASSWORD, tlsfingerprint).  The sans-I/O job runs here with
:class:`~orchestrator.server.node_driver.ServerDriver`; data moves over the
LAN into the server's grant, or -- with ``storage_agent`` in the site file
mapping the server's pool volumes to this client's devices -- LAN-free into
the granted range, failing over to the LAN.  Server-free copies initiated by
the server are not built yet: the job says so in its reasons.
"""
from __future__ import annotations

import getpass
import os
import sys
from types import SimpleNamespace
from typing import Any

from orchestrator import compose
from orchestrator.drivers.site import OpenSite
from orchestrator.job import DeviceSpec, JobReport, backup_job, restore_job, run_job
from orchestrator.ops import StoredPiece
from orchestrator.server.node_client import NodeSession
from orchestrator.server.node_driver import ServerDriver, object_volume

NO_SERVER_FREE = ("the backup server owns the pools and server-initiated server-free copies are not built yet: "
                  "this client writes its grant LAN-free (storage_agent in the site file) or sends it over the LAN")
LAN_ONLY = ("the backup server owns the pools; restores through it move over the LAN")


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
    from orchestrator.volume import read_layout

    vopts = options.for_volume(volume)
    if vopts.excluded:
        raise ValueError(f"volume {volume} is excluded from image backup by exclude.image at {vopts.excluded_by}")
    if str(vopts.mode) == "incremental":
        raise ValueError("-mode=incremental through the backup server is not built yet; use -mode=selective")
    vsite = site.volume(volume)
    with open_session(options) as session, OpenSite(site) as opened:
        lan_free = bool(site.storage_agent) and site.lan_free
        driver = ServerDriver(None, opened.movers, opened.devices, session=session,  # type: ignore[arg-type]
                              storage_agent=dict(site.storage_agent) if lan_free else {})
        io = driver.io(vsite.device)
        size = vsite.size or (io.size - vsite.offset)
        layout = read_layout(device_volume(io, vsite.offset, size), volume)
        fs = vsite.filesystem or layout.filesystem.value
        verdict = SimpleNamespace(server_free=False, lan_free=lan_free, lan=True, reasons={}, route=None)
        elig = compose.start_path(vopts, file_system=fs, paths=verdict, movers=[])
        extents = [(int(a), int(b)) for a, b in layout.extents(compose.gap_size(vopts, elig)).tolist()]
        plan = compose.path_plan(elig, server=server_address(options), pool_designators={},
                                 batch_mb=options.serverfreebatchsize, lan_free=lan_free,
                                 reasons=[*elig.reasons, NO_SERVER_FREE])
        spec = compose.backup_spec(node=options.node, filespace=volume, vopts=vopts, elig=elig,
                                   source=DeviceSpec(name=vsite.device, designator="", block_size=io.block_size),
                                   volume_offset=vsite.offset, volume_size=size, file_system=fs, extents=extents,
                                   pool="", paths=plan)
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


def restore(args: Any, options: Any, site: Any, dest_name: str, progress: Any) -> JobReport:
    """The node's active full image of the volume, over the LAN, onto ``dest_name``."""
    if args.incremental or args.pitdate:
        raise ValueError("-incremental and -pitdate through the backup server are not built yet")
    vsite = site.volume(args.volume)
    with open_session(options) as session, OpenSite(site) as opened:
        fulls = [o for o in records(session.query(args.volume)) if o.mode == "selective"]
        if not fulls:
            raise LookupError(f"no restorable image of {options.node}:{args.volume} on the server")
        driver = ServerDriver(None, opened.movers, opened.devices, session=session)  # type: ignore[arg-type]
        io = driver.io(dest_name)
        elig = compose.start_path(options.for_volume(args.volume), file_system=fulls[-1].file_system, paths=None,
                                  movers=[], encryption=False)
        plan = compose.path_plan(elig, server=server_address(options), pool_designators={},
                                 batch_mb=options.serverfreebatchsize, lan_free=False,
                                 reasons=[*elig.reasons, LAN_ONLY])
        offset = vsite.offset if dest_name == vsite.device else 0
        spec = compose.restore_spec(node=options.node, filespace=args.volume, chain=[fulls[-1]],
                                    destination=DeviceSpec(name=dest_name, designator="", block_size=io.block_size),
                                    destination_offset=offset, destination_size=io.size - offset,
                                    incremental=False, deletefiles=args.deletefiles, paths=plan)
        return run_job(restore_job(spec), progress(driver.execute))


def query(options: Any, volume: str | None, inactive: bool) -> list[Any]:
    with open_session(options) as session:
        return records(session.query(volume, inactive))


__all__ = ["backup_volume", "query", "restore", "wants_server"]
