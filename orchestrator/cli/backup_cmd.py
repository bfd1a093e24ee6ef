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
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the layers load when a command runs, not when the parser is built (`--help`, other commands)
    from orchestrator.catalogue import Catalogue
    from orchestrator.cli.progress import ProgressLine
    from orchestrator.drivers.real import RealDriver
    from orchestrator.drivers.open_site import OpenSite
    from orchestrator.drivers.site import SiteConfig
    from orchestrator.job import JobReport
    from orchestrator.ops import Operation

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
    from orchestrator.catalogue import Catalogue

    if site.pool is None:
        raise ValueError("the site file names no pool: give one, or back up through the backup server "
                         "(tcpserveraddress, tcpport, nodename and password)")
    cat = Catalogue(site.catalogue or options.catalog)
    for v in site.pool.volumes:
        cat.add_pool_volume(site.pool.name, v.name, v.device, v.capacity)
    swept = cat.sweep_orphans()
    if swept:
        print(f"serverfree: {swept} unfinished image object(s) of an interrupted job marked abandoned",
              file=sys.stderr)
    return cat


def lan_path(site: SiteConfig, options: Any = None) -> str:
    """Local mode's LAN path, when the site file has ``lan_pool`` ("lan_pool"), else "" (no LAN path).

    Eligibility needs only whether there is one; the job names the in-process pool OpenSite opened
    (``opened.lan_address``).  Over the network, data moves only through the backup server.
    """
    return "lan_pool" if site.lan_pool is not None else ""


def topology_verdict(site: SiteConfig, volume: str, topology_volume: str | None,
                     server: str | None = None) -> Any:
    """The volume's :class:`~orchestrator.compose.VolumePaths` from the site's topology, movers limited to
    the site's; a verdict-like object for a site verified without a topology; None without either.

    ``server`` says whether the LAN path is there (default: the site's ``lan_pool``).
    """
    if site.topology is None:
        if site.verified_without_topology:
            server = lan_path(site) if server is None else server
            return SimpleNamespace(server_free=bool(site.movers), lan_free=site.lan_free, lan=bool(server),
                                   reasons={}, route=None, movers=list(site.movers))
        return None
    from orchestrator import compose
    from topology.load import load_topology

    where = site.path(site.topology)
    if not Path(where).is_file():
        raise ValueError(f"the site file's topology: {where} does not exist (or is not a file)")
    paths = compose.volume_paths(load_topology(where), topology_volume or volume)
    return replace(paths, movers=[m for m in paths.movers if m in site.movers])


def movers_of(paths: Any) -> list[str] | None:
    return None if paths is None else list(paths.movers)


def site_start(site_file: str, site: SiteConfig, vopts: Any, volume: str, file_system: str, server: str,
               *, fixed_tape: bool = False, encryption: bool | None = None) -> tuple[Any, Any]:
    """(paths, eligibility) of one volume at this site, through the composition root.

    With a topology, the volume's management class names its destination pool: it must be the site's
    pool (the one whose devices the site file lists), else the job would write where the class does not send it.
    """
    from orchestrator import compose

    paths = topology_verdict(site, volume, site.volume(volume).topology_volume, server)
    pool = getattr(paths, "pool", None)
    if isinstance(paths, compose.VolumePaths) and pool is not None and pool.name != site.pool.name:
        raise ValueError(f"{site_file}: pool.name is {site.pool.name}, but the management class of volume "
                         f"{paths.verdict.volume} in the topology sends it to storage pool {pool.name}; "
                         "name the site's pool after it")
    elig = compose.start_path(vopts, file_system=file_system, paths=paths, movers=movers_of(paths),
                              pool_nonblocked=site.pool.nonblocked, lan_available=bool(server),
                              fixed_tape=fixed_tape, encryption=encryption)
    return paths, elig


def pool_designators(site_file: str, site: SiteConfig, opened: OpenSite, driver: RealDriver) -> dict[str, str]:
    """Pool device -> designator for the data mover's target descriptors (a tape pool: every drive).

    A remote pool LUN's size is known only now: its capacity is checked here (files were at load time)."""
    from orchestrator.drivers.pool_site import check_pool_capacity

    if site.pool.is_tape:
        return opened.tape_designators()
    for i, v in enumerate(site.pool.volumes):
        check_pool_capacity(f"{site_file}: pool.volumes[{i}].capacity", v, driver.io(v.device).size)
    return {v.device: driver.io(v.device).designator() for v in site.pool.volumes}


def check_lan_drive(site_file: str, site: SiteConfig, drives: list[str], what: str) -> None:
    """A job starting on the LAN path reaches tape only through the drive of ``lan_pool.tapes`` (pool.lan_drive)."""
    want = site.pool.lan_drive
    other = sorted(set(drives) - {want}) if want is not None and drives else []
    if other:
        raise ValueError(f"{site_file}: pool.lan_drive: the LAN path reaches drive {want!r}, but {what} drive "
                         f"{', '.join(other)}; the LAN path cannot reach it")


@contextmanager
def device_trouble(what: str):
    """A device that cannot be read before the job starts: one line naming it (exit 1, not bad input)."""
    from pyscsi.pyscsi.scsi_sense import SCSICheckCondition

    from scsi.devices.errors import DeviceError

    try:
        yield
    except (DeviceError, SCSICheckCondition) as exc:
        text = " ".join(str(exc).split())
        raise RuntimeError(f"{what} cannot be used: {text}") from None


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


def progress_printer(quiet: bool, line: ProgressLine | None = None):
    """Wrap a driver's execute with one line per data-moving operation on stderr (above the progress line)."""
    def wrap(execute):
        def run(op: Operation):
            result = execute(op)
            if not quiet:
                name = type(op).__name__
                if name in ("CopyBatches", "LanFreeWrite", "LanSend", "LanFreeRead", "LanReceive"):
                    failure = getattr(result, "failure", None)
                    text = f"  {name} {getattr(op, 'mover', '') or ''} " \
                           f"{'failed: ' + failure.describe() if failure else 'done'}"
                    if line is not None:
                        line.note(text)
                    else:
                        print(text, file=sys.stderr)
            return result
        return run
    return wrap


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
    from orchestrator.drivers.site import load_site

    vopts = options.for_volume(volume)
    if vopts.excluded:
        raise ValueError(f"volume {volume} is excluded from image backup by exclude.image at "
                         f"{vopts.excluded_by}")
    site = load_site(args.site)
    if site.pool is None:  # the backup server owns catalogue and pools (`serverfree server`)
        from orchestrator.server import node_jobs

        return node_jobs.backup_volume(args, options, volume, site, DeviceVolume, progress_printer(args.json))
    # local mode: this process is client and server in one (its layers load only here)
    from orchestrator import compose
    from orchestrator.cli.progress import ProgressLine
    from orchestrator.drivers.open_site import OpenSite
    from orchestrator.drivers.real import RealDriver
    from orchestrator.drivers.snapshot import CowSnapshots
    from orchestrator.job import BackupSpec, DeviceSpec, backup_job, run_job
    from orchestrator.job.incremental import coverage_stream
    from orchestrator.ops import PathKind
    from orchestrator.volume import read_used_extents
    server = lan_path(site, options)
    vsite = site.volume(volume)
    with OpenSite(site) as opened, open_catalogue(site, options) as cat:
        # in-process volumes get copy-on-write snapshots (imagetype snapshot); others back up offline
        snaps = CowSnapshots.wrap(opened.luns, opened.devices) if opened.luns else None
        driver = RealDriver(cat, opened.movers, opened.devices, snapshots=snaps)
        with device_trouble(f"volume {volume} (device {vsite.device})"):
            io = driver.io(vsite.device)
        check_volume_bounds(args.site, volume, vsite, io)
        size = vsite.size or (io.size - vsite.offset)
        with device_trouble(f"volume {volume} (device {vsite.device})"):
            layout = read_used_extents(DeviceVolume(io, vsite.offset, size), volume, vsite.filesystem)
        fs = vsite.filesystem or layout.filesystem.value
        _, elig = site_start(args.site, site, vopts, volume, fs, server,
                             fixed_tape=site.pool.is_tape and site.pool.block_mode == "fixed")
        if elig.start == PathKind.LAN and site.pool.is_tape and \
                not any(v.device == site.pool.lan_drive for v in site.pool.volumes):
            check_lan_drive(args.site, site, [v.device for v in site.pool.volumes], "every pool volume is in")
        extents = layout.extents(compose.gap_size(vopts, elig))  # (n, 2) int64: the job streams it
        with device_trouble(f"pool {site.pool.name}"):
            pool_desig = pool_designators(args.site, site, opened, driver) if elig.server_free else {}
        source = DeviceSpec(name=vsite.device, designator=io.designator() if elig.server_free else "",
                            block_size=io.block_size)
        base_id, digests, coverage = None, {}, []
        mode = str(vopts.mode)
        if mode == "incremental":
            from orchestrator.catalogue import CatalogueError

            try:
                chain = cat.restore_chain(options.node, volume, incremental=True, stream=True)
            except CatalogueError:
                # dsmc: an incremental image backup with no full image yet takes a full one, and says so
                print(f"serverfree: no full image backup of {volume} yet: taking a full (selective) image "
                      "backup instead of an incremental one", file=sys.stderr)
                mode, chain = "selective", []
        if mode == "incremental":
            # the base's digests and coverage stream from the catalogue (open for the whole job)
            base_id, digests = chain[0].id, cat.digest_runs(chain)
            coverage = coverage_stream([o.pieces for o in chain], BackupSpec.model_fields["chunk_size"].default)
        plan = compose.path_plan(elig, server=opened.lan_address, pool_designators=pool_desig,
                                 batch_mb=options.serverfreebatchsize, tape=site.pool.tape_plan(),
                                 lan_free=site.lan_free)
        spec = compose.backup_spec(node=options.node, filespace=volume, vopts=vopts, elig=elig, source=source,
                                   volume_offset=vsite.offset, volume_size=size, file_system=fs, extents=extents,
                                   pool=site.pool.name, paths=plan, base_object_id=base_id, base_digests=digests,
                                   base_coverage=coverage, mode=mode)
        line = ProgressLine.for_terminal(f"backup {volume}", int(extents[:, 1].sum()) if len(extents) else 0, args.json)
        driver.on_progress = line
        try:
            return run_job(backup_job(spec), progress_printer(args.json, line)(driver.execute))
        finally:
            if line is not None:
                line.close()
