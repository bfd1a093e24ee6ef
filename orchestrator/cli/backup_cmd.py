"""`serverfree backup image VOLUME`: an image backup, server-free when the rules allow.

Composes the client options (dsm.opt + dsmc-style overrides), the site file
(which names are which devices), the volume analysis (extents), the topology
verdict (verified paths, data movers in order) and the catalogue into a
BackupSpec, then runs the sans-I/O job with the real driver.  Exit status:
0 completed, 1 the job failed (the report says why), 2 bad input.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from orchestrator.catalogue import Catalogue
from orchestrator.drivers.real import RealDriver
from orchestrator.drivers.site import OpenSite, SiteConfig, load_site
from orchestrator.drivers.snapshot import CowSnapshots
from orchestrator.eligibility import decide
from orchestrator.job import BackupSpec, DeviceSpec, JobReport, PathPlan, backup_job, run_job
from orchestrator.job.digest import view_coverage
from orchestrator.ops import Operation, PathKind

log = logging.getLogger(__name__)


def register(sub) -> None:  # type: ignore[no-untyped-def]
    from orchestrator.options import add_option_arguments

    p = sub.add_parser("backup", help="image backup (server-free, LAN-free or LAN)")
    what = p.add_subparsers(dest="backup_command", metavar="WHAT")
    what.required = True
    img = what.add_parser("image", help="back up a volume image",
                          description="Back up VOLUME as an image.  dsmc spelling works: -mode=incremental.")
    img.add_argument("volume", metavar="VOLUME", nargs="?",
                     help="volume name as the site file lists it (e.g. E:); default: every domain.image volume "
                          "not excluded by exclude.image")
    img.add_argument("--site", required=True, metavar="SITE.YAML",
                     help="devices, data movers, pool and volumes (docs/backup-restore.md)")
    img.add_argument("--json", action="store_true", help="print the job report as JSON")
    add_option_arguments(img)
    img.set_defaults(func=run)


# -- composition helpers shared with restore ---------------------------------------------------
def open_catalogue(site: SiteConfig, options: Any) -> Catalogue:
    if site.pool is None:
        raise ValueError("the site file names no pool: give one, or back up through the backup server "
                         "(tcpserveraddress, tcpport, nodename and password)")
    cat = Catalogue(site.catalogue or options.catalog)
    for v in site.pool.volumes:
        cat.add_pool_volume(site.pool.name, v.name, v.device, v.capacity)
    return cat


def lan_server(site: SiteConfig, options: Any) -> str:
    """The LAN backup server: the site file's ``lan_server``, else dsm.opt's tcpserveraddress:tcpport."""
    return site.lan_server or options.lan_server_address()


def topology_verdict(site: SiteConfig, volume: str, topology_volume: str | None,
                     server: str | None = None) -> tuple[Any, list[str] | None]:
    """(verdict, movers in order) from the site's topology; (None, None) without one.

    ``server`` is the LAN server address in force (default: the site's ``lan_server``).
    """
    if site.topology is None:
        if site.verified_without_topology:
            server = site.lan_server if server is None else server
            verdict = SimpleNamespace(server_free=bool(site.movers), lan_free=site.lan_free,
                                      lan=bool(server), reasons={}, route=None)
            return verdict, list(site.movers)
        return None, None
    from topology.load import load_topology
    from topology.verify import verify

    where = site.path(site.topology)
    if not Path(where).is_file():
        raise ValueError(f"the site file's topology: {where} does not exist (or is not a file)")
    topo = load_topology(where)
    vid = topology_volume or volume
    verdict = verify(topo, redundancy=False).volume(vid)
    movers: list[str] = []
    if verdict.server_free:
        names = [m.name for m in topo.movers_in_order()]
        for name in names:
            others = [n for n in names if n != name]
            if verify(topo, failed=others, redundancy=False).volume(vid).server_free:
                movers.append(name)
    return verdict, [m for m in movers if m in site.movers]


def pool_designators(site: SiteConfig, opened: OpenSite, driver: RealDriver) -> dict[str, str]:
    """Pool device -> designator for the data mover's target descriptors (a tape pool: every drive)."""
    if site.pool.is_tape:
        return opened.tape_designators()
    return {v.device: driver.io(v.device).designator() for v in site.pool.volumes}


FIXED_NO_LAN_FREE = ("a fixed-block tape pool has no LAN-free path: the client's tape I/O is variable-block "
                     "only (no MODE SELECT of the block length)")


def tape_limits(fixed: bool, elig: Any) -> Any:
    """The eligibility a fixed-block tape pool leaves: no LAN-free path (server-free or LAN)."""
    if not fixed or not (elig.lan_free or elig.start == PathKind.LAN_FREE):
        return elig
    if elig.start != PathKind.LAN_FREE:
        return elig.model_copy(update={"lan_free": False, "notes": [*elig.notes, FIXED_NO_LAN_FREE]})
    if not elig.lan:
        raise ValueError(f"{FIXED_NO_LAN_FREE}, server-free is not possible ({'; '.join(elig.reasons) or 'no reason'})"
                         " and no LAN server is configured (lan_server in the site file, or tcpserveraddress)")
    return elig.model_copy(update={"start": PathKind.LAN, "lan_free": False,
                                   "reasons": [*elig.reasons, FIXED_NO_LAN_FREE]})


def check_lan_drive(site_file: str, site: SiteConfig, drives: list[str], what: str) -> None:
    """A job starting on the LAN path reaches tape only through the drive the LAN server serves."""
    want = site.pool.lan_drive
    other = sorted(set(drives) - {want}) if want is not None and drives else []
    if other:
        raise ValueError(f"{site_file}: pool.lan_drive: the LAN server serves drive {want!r}, but {what} drive "
                         f"{', '.join(other)}; the LAN path cannot reach it")


def check_volume_bounds(site_file: str, volume: str, vsite: Any, io: Any) -> None:
    """The site file's offset/size must be whole blocks inside the device (else the SAN refuses later)."""
    where = f"{site_file}: volumes.{volume}"
    if vsite.offset % io.block_size:
        raise ValueError(f"{where}.offset: {vsite.offset} is not a whole number of {io.block_size}-byte blocks "
                         f"of device {vsite.device}")
    if vsite.offset >= io.size:
        raise ValueError(f"{where}.offset: {vsite.offset} lies beyond the end of device {vsite.device} "
                         f"({io.size} bytes)")
    if vsite.size is not None and (vsite.size % io.block_size or vsite.offset + vsite.size > io.size):
        raise ValueError(f"{where}.size: {vsite.size} bytes from offset {vsite.offset} is not whole blocks "
                         f"inside device {vsite.device} ({io.size} bytes of {io.block_size})")


class DeviceVolume:
    """A volume read through a BlockIO at an offset (what volume analysis reads)."""

    def __init__(self, io: Any, offset: int, size: int):
        self.io, self.offset, self._size = io, offset, size

    @property
    def size(self) -> int:
        return self._size

    def read(self, offset: int, length: int) -> bytes:
        return self.io.read(self.offset + offset, length)


def progress_printer(quiet: bool):
    """Wrap a driver's execute with one line per data-moving operation on stderr."""
    def wrap(execute):
        def run(op: Operation):
            result = execute(op)
            if not quiet:
                name = type(op).__name__
                if name in ("CopyBatches", "LanFreeWrite", "LanSend", "LanFreeRead", "LanReceive"):
                    failure = getattr(result, "failure", None)
                    print(f"  {name} {getattr(op, 'mover', '') or ''} "
                          f"{'failed: ' + failure.describe() if failure else 'done'}", file=sys.stderr)
            return result
        return run
    return wrap


def build(model, **fields):
    """Construct a pydantic spec, turning a validation error into one line naming the field."""
    from pydantic import ValidationError

    try:
        return model(**fields)
    except ValidationError as exc:
        e = exc.errors()[0]
        where = ".".join(str(x) for x in e["loc"]) or model.__name__
        raise ValueError(f"{model.__name__}: {where}: {str(e['msg']).removeprefix('Value error, ')}") from None


def print_report(report: JobReport, as_json: bool) -> int:
    if as_json:
        print(json.dumps(report.as_dict(), default=str))
    else:
        print(report.summary())
    return 0 if report.ok else 1


# -- backup ------------------------------------------------------------------------------------
def run(args: argparse.Namespace) -> int:
    """One volume (VOLUME), or every domain.image volume when VOLUME is left out, as dsmc does."""
    from orchestrator.options import options_from_args

    options = options_from_args(args)
    if args.volume is not None:
        return print_report(backup_volume(args, options, args.volume), args.json)
    volumes = options.domain_volumes()
    if not volumes:
        raise ValueError("no VOLUME given and domain.image names no volume to back up "
                         "(give VOLUME, or list volumes with domain.image in the options file)")
    for v in dict.fromkeys(options.domain_image):
        if options.for_volume(v).excluded:
            print(f"skipped {v} (excluded by exclude.image at {options.for_volume(v).excluded_by})",
                  file=sys.stderr)
    status, reports = 0, []
    for volume in volumes:
        try:
            report = backup_volume(args, options, volume)
        except (ValueError, LookupError, OSError) as exc:  # one bad volume does not stop the others
            print(f"serverfree: error: backup of {volume} not started: {exc}", file=sys.stderr)
            status = 2
            continue
        reports.append(report)
        if not args.json:
            print(report.summary())
        status = max(status, 0 if report.ok else 1)
    if args.json:
        print(json.dumps([r.as_dict() for r in reports], default=str))
    return status


def backup_volume(args: argparse.Namespace, options: Any, volume: str) -> JobReport:
    """Back up one volume; bad input raises ValueError/LookupError/OSError."""
    from orchestrator.volume import read_layout

    vopts = options.for_volume(volume)
    if vopts.excluded:
        raise ValueError(f"volume {volume} is excluded from image backup by exclude.image at "
                         f"{vopts.excluded_by}")
    site = load_site(args.site)
    if site.pool is None:  # the backup server owns catalogue and pools (`serverfree server`)
        from orchestrator.server import node_jobs

        return node_jobs.backup_volume(args, options, volume, build, DeviceVolume, progress_printer(args.json))
    server = lan_server(site, options)
    vsite = site.volume(volume)
    with OpenSite(site) as opened, open_catalogue(site, options) as cat:
        # in-process volumes get copy-on-write snapshots (imagetype snapshot); others back up offline
        snaps = CowSnapshots.wrap(opened.luns, opened.devices) if opened.luns else None
        driver = RealDriver(cat, opened.movers, opened.devices, snapshots=snaps)
        io = driver.io(vsite.device)
        check_volume_bounds(args.site, volume, vsite, io)
        size = vsite.size or (io.size - vsite.offset)
        layout = read_layout(DeviceVolume(io, vsite.offset, size), volume)
        fs = vsite.filesystem or layout.filesystem.value
        verdict, movers = topology_verdict(site, volume, vsite.topology_volume, server)
        elig = decide(enableserverfree=vopts.enableserverfree, file_system=fs, encryption=vopts.encrypted,
                      verdict=verdict, movers=movers, pool_nonblocked=site.pool.nonblocked,
                      lan_available=bool(server), enablelanfree=vopts.enablelanfree)
        elig = tape_limits(site.pool.is_tape and site.pool.block_mode == "fixed", elig)
        if elig.start == PathKind.LAN and site.pool.is_tape and \
                not any(v.device == site.pool.lan_drive for v in site.pool.volumes):
            check_lan_drive(args.site, site, [v.device for v in site.pool.volumes], "every pool volume is in")
        gap = vopts.gap_size("serverfree" if elig.server_free else
                             "lanfree" if elig.start == PathKind.LAN_FREE else "lan")
        extents = [(int(a), int(b)) for a, b in layout.extents(gap).tolist()]
        pool_desig = pool_designators(site, opened, driver) if elig.server_free else {}
        source = DeviceSpec(name=vsite.device, designator=io.designator() if elig.server_free else "",
                            block_size=io.block_size)
        base_id, digests, coverage = None, {}, []
        mode = str(vopts.mode)
        if mode == "incremental":
            from orchestrator.catalogue import CatalogueError

            try:
                chain = cat.restore_chain(options.node, volume, incremental=True)
            except CatalogueError:
                # dsmc: an incremental image backup with no full image yet takes a full one, and says so
                print(f"serverfree: no full image backup of {volume} yet: taking a full (selective) image "
                      "backup instead of an incremental one", file=sys.stderr)
                mode, chain = "selective", []
        if mode == "incremental":
            base_id, digests = chain[0].id, cat.digests(chain)
            coverage = view_coverage([o.pieces for o in chain], BackupSpec.model_fields["chunk_size"].default)
        paths = build(PathPlan, start=elig.start, reasons=elig.reasons, notes=elig.notes, movers=elig.movers,
                      lan_free=elig.lan_free and site.lan_free, lan=elig.lan, server=server,
                      pool_designators=pool_desig, batch_mb=options.serverfreebatchsize,
                      tape=site.pool.tape_plan())
        spec = build(BackupSpec, node=options.node, filespace=volume, source=source,
                     volume_offset=vsite.offset, volume_size=size, file_system=fs, extents=extents,
                     mode=mode, image_type=str(vopts.imagetype), management_class=vopts.mgmtclass,
                     pool=site.pool.name, compression=vopts.compression,
                     presnapshotcmd=vopts.presnapshotcmd or "", postsnapshotcmd=vopts.postsnapshotcmd or "",
                     snapshot_cache_size=vopts.snapshotcachesize,
                     snapshot_cache_location=vopts.snapshotcachelocation or "",
                     snapshot_fsidle_retries=vopts.snapshotfsidleretries,
                     snapshot_fsidle_wait=vopts.snapshotfsidlewait, base_object_id=base_id,
                     base_digests=digests, base_coverage=coverage, paths=paths)
        return run_job(backup_job(spec), progress_printer(args.json)(driver.execute))
