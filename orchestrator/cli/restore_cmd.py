"""`serverfree restore image VOLUME [DEST] [-incremental] [-deletefiles] [-pitdate=...]`.

Restores the active full image of VOLUME (or the one in force at -pitdate)
onto DEST (a device name from the site file; default: the volume's own
device), server-free when the path allows, else LAN-free or LAN.  With
-incremental the image incrementals follow the full image in order;
-deletefiles is accepted and, as the seed says, ignored after image + image
incremental.  Exit status: 0 completed, 1 failed, 2 bad input.
"""
from __future__ import annotations

import argparse
import sys
from datetime import datetime, timezone

from orchestrator.cli.backup_cmd import (check_lan_drive, lan_path, open_catalogue, print_report,
                                         progress_printer, site_start)


def register(sub) -> None:  # type: ignore[no-untyped-def]
    from orchestrator.options import add_option_arguments

    p = sub.add_parser("restore", help="restore an image (server-free, LAN-free or LAN)")
    what = p.add_subparsers(dest="restore_command", metavar="WHAT")
    what.required = True
    img = what.add_parser("image", help="restore a volume image",
                          description="Restore VOLUME's image onto DEST.  dsmc spelling works: -incremental.")
    img.add_argument("volume", metavar="VOLUME", help="the volume backed up, as the site file names it (e.g. E:)")
    img.add_argument("dest", metavar="DEST", nargs="?",
                     help="destination device name from the site file (default: the volume's own device, "
                          "which needs -replace=yes)")
    img.add_argument("--site", required=True, metavar="SITE.YAML",
                     help="devices, data movers, pool and volumes (docs/backup-restore.md)")
    img.add_argument("--replace", choices=("yes", "no", "prompt"), default="prompt",
                     help="restoring over the source volume itself: yes does it, no refuses, prompt (default) "
                          "asks on a terminal and refuses otherwise (dsmc's -replace)")
    img.add_argument("--incremental", "--incre", action="store_true", help="apply image incrementals too")
    img.add_argument("--deletefiles", "--del", action="store_true",
                     help="accepted; ignored after image + image incremental")
    img.add_argument("--pitdate", metavar="DATE", help="point in time (ISO date, e.g. 2026-11-30T10:00)")
    img.add_argument("--json", action="store_true", help="print the job report as JSON")
    add_option_arguments(img)
    img.set_defaults(func=run)


def parse_pitdate(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"-pitdate {text!r} is not an ISO date such as 2026-11-30 or 2026-11-30T10:00") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    if len(text) == 10:  # a bare date means the end of that day
        when = when.replace(hour=23, minute=59, second=59, microsecond=999999)
    return when


def confirm_replace(volume: str, device: str, replace: str) -> None:
    """Restoring over the volume that was backed up destroys it: only with -replace=yes or a 'yes' typed."""
    if replace == "yes":
        return
    what = f"restore image {volume} would overwrite the volume itself (device {device})"
    if replace == "prompt" and sys.stdin.isatty():
        answer = input(f"{what}. Replace it? [y/N] ").strip().lower()
        if answer in ("y", "yes"):
            return
    raise ValueError(f"{what}: give a destination device (DEST), or -replace=yes to overwrite it")


def tape_locations(chain: list) -> list:
    """Where the chain's tape objects lie (TapeLocation; the drive filled in from the pool volume if unset)."""
    from orchestrator.plan.tape_position import TapeLocation

    out = []
    for o in chain:
        if o.tape_location:
            loc = TapeLocation.decode(o.tape_location, f"catalogue object {o.id} on {o.pool_volume}")
            out.append(loc if loc.drive else loc.model_copy(update={"drive": o.pool_device}))
    return out


def run(args: argparse.Namespace) -> int:
    from orchestrator import compose
    from orchestrator.cli.progress import ProgressLine
    from orchestrator.drivers.real import RealDriver
    from orchestrator.drivers.open_site import OpenSite
    from orchestrator.drivers.site import load_site
    from orchestrator.job import DeviceSpec, restore_job, run_job
    from orchestrator.ops import PathKind
    from orchestrator.options import options_from_args

    options = options_from_args(args)
    pit = parse_pitdate(args.pitdate)
    site = load_site(args.site)
    server = lan_path(site, options)
    vsite = site.volume(args.volume)
    dest_name = args.dest or vsite.device
    if dest_name not in site.devices:
        raise LookupError(f"destination {dest_name!r} is not a device in the site file")
    if dest_name == vsite.device:
        confirm_replace(args.volume, dest_name, args.replace)
    if site.pool is None:  # the backup server owns catalogue and pools (`serverfree server`)
        from orchestrator.server import node_jobs

        return print_report(node_jobs.restore(args, options, site, dest_name, progress_printer(args.json), pit),
                            args.json)
    with OpenSite(site) as opened, open_catalogue(site, options) as cat:
        # the pieces stay in the catalogue: the job reads them block by block while it runs
        chain = cat.restore_chain(options.node, args.volume, pitdate=pit, incremental=args.incremental, stream=True)
        driver = RealDriver(cat, opened.movers, opened.devices)
        io = driver.io(dest_name)
        locations = tape_locations(chain)
        _, elig = site_start(args.site, site, options.for_volume(args.volume), args.volume,
                             chain[0].file_system, server, fixed_tape=any(loc.fixed for loc in locations),
                             encryption=False)
        sf = elig.server_free
        drives = list(dict.fromkeys(loc.drive for loc in locations))
        if elig.start == PathKind.LAN:
            check_lan_drive(args.site, site, drives, "the image lies on")
        pool_desig = {}
        if sf:
            pool_desig = {o.pool_device: driver.io(o.pool_device).designator()
                          for o in chain if not o.tape_location}
            pool_desig.update(opened.tape_designators(drives) if drives else {})
        plan = compose.path_plan(elig, server=opened.lan_address, pool_designators=pool_desig,
                                 batch_mb=options.serverfreebatchsize, tape=site.pool.tape_plan(),
                                 lan_free=site.lan_free)
        offset = vsite.offset if dest_name == vsite.device else 0
        dest = DeviceSpec(name=dest_name, designator=io.designator() if sf else "", block_size=io.block_size)
        spec = compose.restore_spec(node=options.node, filespace=args.volume, chain=chain, destination=dest,
                                    destination_offset=offset, destination_size=io.size - offset,
                                    incremental=args.incremental, deletefiles=args.deletefiles, paths=plan)
        line = ProgressLine.for_terminal(f"restore {args.volume}", sum(o.image_size for o in chain), args.json)
        driver.on_progress = line
        try:
            report = run_job(restore_job(spec), progress_printer(args.json, line)(driver.execute))
        finally:
            if line is not None:
                line.close()
    return print_report(report, args.json)
