"""`serverfree image analyze VOLUME`: what an image backup of a volume would move.

Shows the file system, cluster size, used clusters, the extents and bytes each
data path would copy (each path has its own default imagegapsize), and whether
the volume may go server-free and, if not, why.  ``--json`` adds the extent
lists for machines.
"""
from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

from orchestrator.options import add_option_arguments, options_from_args
from orchestrator.options.values import format_size

if TYPE_CHECKING:  # volume analysis (dissect, numpy) loads when the command runs, not for the parser
    from orchestrator.volume import VolumeReport

_PATH_LABELS = {"serverfree": "server-free", "lanfree": "LAN-free", "lan": "LAN"}


def register(sub) -> None:  # type: ignore[no-untyped-def]
    image = sub.add_parser("image", help="image backup tools (analyze a volume)")
    image_sub = image.add_subparsers(dest="image_command", metavar="ACTION")
    image_sub.required = True
    p = image_sub.add_parser(
        "analyze", help="show what an image backup of VOLUME would move",
        description="Read VOLUME (an image file or block device) and show its file system, used clusters "
                    "and the extents each data path would copy.  dsmc spelling works: -imagegapsize=64k.")
    p.add_argument("volume", metavar="VOLUME", help="volume image file or block device")
    p.add_argument("--json", action="store_true", help="print the report, extents included, as JSON")
    add_option_arguments(p)  # --options FILE, --imagegapsize N (k/m/g; default per path), --compression ...
    p.set_defaults(func=run)


def _bytes(n: int | None) -> str:
    if n is None:
        return "-"
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit} ({n} bytes)"
    return f"{n} bytes"


def render(report: VolumeReport) -> str:
    """The human-readable report."""
    lines = [
        f"volume        {report.volume}  {_bytes(report.size)}",
        f"file system   {report.filesystem.label}"
        + (f", cluster size {report.cluster_size} bytes" if report.cluster_size else ""),
    ]
    if report.used_clusters is not None and report.total_clusters:
        pct = 100.0 * report.used_clusters / report.total_clusters
        lines.append(f"used clusters {report.used_clusters} of {report.total_clusters} ({pct:.1f} %), "
                     f"{_bytes(report.used_bytes)}")
    lines.append(f"mgmt class    {report.mgmtclass}")
    lines.append("")
    lines.append(f"{'path':<12} {'imagegapsize':>12} {'extents':>9}  bytes to move")
    for plan in report.paths:
        lines.append(f"{_PATH_LABELS[plan.path]:<12} {format_size(plan.imagegapsize):>12} "
                     f"{plan.extent_count:>9}  {_bytes(plan.bytes_to_move)}")
    lines.append("")
    verdict = report.eligibility
    lines.append("server-free eligible: " + ("yes" if verdict.serverfree else "no"))
    lines.extend(f"  why not: {reason}" for reason in verdict.reasons)
    lines.extend(f"  note: {note}" for note in verdict.notes)
    return "\n".join(lines)


def client_snapshot_reason(volume: str, imagetype: str) -> str | None:
    """Why `backup image` would leave server-free because of a client-side snapshot, or None.

    The same rule as `backup image`: with ``imagetype snapshot`` a volume on a
    file (an image file or block device, served in-process) gets a copy-on-write
    snapshot on the client, which no data mover can read, so the job starts
    LAN-free or LAN.  ``iscsi://`` and ``/dev/sg*`` volumes have no snapshot
    facility and back up an offline image instead, so they stay server-free.
    """
    if str(imagetype) != "snapshot" or "://" in volume or volume.startswith("/dev/sg"):
        return None
    return ("imagetype snapshot: backup image takes a copy-on-write snapshot of this volume on the client, "
            "which a data mover cannot read, so the job goes LAN-free or LAN; use -imagetype=static "
            "(an offline image) to go server-free")


def run(args: argparse.Namespace) -> int:
    from orchestrator.volume import analyze_volume

    options = options_from_args(args)
    volume_options = options.for_volume(args.volume)
    _, report = analyze_volume(args.volume, volume_options, with_extents=args.json)
    why = client_snapshot_reason(args.volume, volume_options.imagetype)
    if why:
        verdict = report.eligibility
        report = report.model_copy(update={"eligibility": verdict.model_copy(
            update={"serverfree": False, "reasons": [*verdict.reasons, why]})})
    if args.json:
        print(json.dumps(report.model_dump(mode="json"), separators=(",", ":")))  # one line: extents can be millions
    else:
        print(render(report))
    return 0
