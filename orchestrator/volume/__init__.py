"""Volume analysis: file system, used clusters, and the extents an image backup moves."""
from orchestrator.volume.analysis import Eligibility, PathPlan, VolumeReport, analyze_volume, report_for
from orchestrator.volume.extents import bitmap_to_extents, coalesce, total_bytes, used_runs
from orchestrator.volume.filesystem import FileSystem
from orchestrator.volume.used_extents import UsedExtents, read_used_extents
from orchestrator.volume.source import (
    BlockDevice,
    BytesVolume,
    FileVolume,
    LunVolume,
    ReaderStream,
    VolumeError,
    VolumeReader,
    open_volume,
)

__all__ = [
    "BlockDevice", "BytesVolume", "Eligibility", "FileSystem", "FileVolume", "LunVolume", "PathPlan",
    "ReaderStream", "VolumeError", "UsedExtents", "VolumeReader", "VolumeReport", "analyze_volume",
    "bitmap_to_extents", "coalesce", "open_volume", "read_used_extents", "report_for", "total_bytes", "used_runs",
]
