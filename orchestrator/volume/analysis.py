"""What an image backup of a volume would move, per data path, and whether server-free may run.

The result is a pydantic `VolumeReport` (the CLI prints it or dumps it as
JSON) plus the `UsedExtents` it came from, whose numpy extents the planner
uses directly.  Topology checks (non-blocked destination pool, verified SAN
path) are not made here: they need the SAN model and belong to planning.
"""
from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field

from orchestrator.options.model import DATA_PATHS, VolumeOptions
from orchestrator.volume.extents import total_bytes
from orchestrator.volume.filesystem import FileSystem
from orchestrator.volume.used_extents import UsedExtents, read_used_extents
from orchestrator.volume.source import BlockDevice, VolumeReader

SEED_FS_RULE = ("server-free image backup is only available for NTFS and raw volumes; "
                "FAT and FAT32 file systems are not supported (seed: Backup Image)")


class PathPlan(BaseModel):
    """The extents one data path would copy."""

    path: str = Field(description="serverfree, lanfree or lan")
    imagegapsize: int = Field(description="bytes")
    extent_count: int
    bytes_to_move: int
    extents: list[tuple[int, int]] | None = Field(default=None, description="[start, length] in bytes")


class Eligibility(BaseModel):
    """Volume- and option-level verdict on server-free; ``reasons`` say why not."""

    serverfree: bool
    reasons: list[str] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)


class VolumeReport(BaseModel):
    volume: str
    size: int
    filesystem: FileSystem
    cluster_size: int | None = None
    total_clusters: int | None = None
    used_clusters: int | None = None
    used_bytes: int | None = None
    whole_volume_copied: bool = Field(description="True when imagegapsize does not apply (not NTFS, or gap 0)")
    mgmtclass: str = "DEFAULT"
    paths: list[PathPlan]
    eligibility: Eligibility


def serverfree_eligibility(layout: UsedExtents, options: VolumeOptions) -> Eligibility:
    """Why server-free may or may not be tried for this volume with these options."""
    reasons: list[str] = []
    notes: list[str] = []
    if layout.filesystem.is_fat:
        reasons.append(f"{layout.filesystem.label} volume: {SEED_FS_RULE}")
    if not options.enableserverfree:
        reasons.append("enableserverfree is no (add 'enableserverfree yes' to dsm.opt)")
    if options.excluded:
        reasons.append(f"volume is excluded from image backup by exclude.image at {options.excluded_by}")
    if options.compression:
        notes.append("compression yes is not applied to server-free data, nor to data sent after a failover "
                     "from server-free (seed)")
    if options.encrypted:
        notes.append("encryptkey is set, but server-free image data is never encrypted (seed)")
    if not layout.uses_bitmap:
        notes.append(f"{layout.filesystem.label} volume: imagegapsize applies to NTFS only, every block is copied")
    notes.append(f"destination pool of management class {options.mgmtclass} and the SAN paths are verified "
                 "against the topology when the job is planned")
    return Eligibility(serverfree=not reasons, reasons=reasons, notes=notes)


def report_for(layout: UsedExtents, options: VolumeOptions, *, with_extents: bool = False) -> VolumeReport:
    """Summarise a layout for every data path, each with its own imagegapsize."""
    plans = []
    for path in DATA_PATHS:
        gap = options.gap_size(path)  # type: ignore[arg-type]
        count = moved = 0
        listed: list[tuple[int, int]] | None = [] if with_extents else None
        for batch in layout.iter_extents(gap):  # streamed: a 16 TiB volume's extents are never held at once
            count += int(batch.shape[0])
            moved += total_bytes(batch)
            if listed is not None:
                listed.extend((int(s), int(n)) for s, n in batch.tolist())
        plans.append(PathPlan(path=path, imagegapsize=gap, extent_count=count, bytes_to_move=moved, extents=listed))
    used_bytes = (layout.used_clusters * layout.cluster_size
                  if layout.used_clusters is not None and layout.cluster_size else None)
    return VolumeReport(
        volume=layout.name, size=layout.size, filesystem=layout.filesystem, cluster_size=layout.cluster_size,
        total_clusters=layout.total_clusters, used_clusters=layout.used_clusters, used_bytes=used_bytes,
        whole_volume_copied=not layout.uses_bitmap or options.imagegapsize == 0, mgmtclass=options.mgmtclass,
        paths=plans, eligibility=serverfree_eligibility(layout, options),
    )


def analyze_volume(source: str | Path | VolumeReader | BlockDevice, options: VolumeOptions | None = None,
                   *, name: str | None = None, with_extents: bool = False) -> tuple[UsedExtents, VolumeReport]:
    """Read a volume once and report what each data path would move."""
    layout = read_used_extents(source, name)
    opts = options or VolumeOptions(volume=layout.name)
    return layout, report_for(layout, opts, with_extents=with_extents)
