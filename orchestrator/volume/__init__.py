"""Volume analysis: file system, used clusters, and the extents an image backup moves."""
from orchestrator.volume.analysis import Eligibility, PathPlan, VolumeReport, analyze_volume, report_for
from orchestrator.volume.extents import bitmap_to_extents, coalesce, total_bytes, used_runs
from orchestrator.volume.filesystem import FileSystem
from orchestrator.volume.layout import VolumeLayout, read_layout
from orchestrator.volume.source import BytesVolume, FileVolume, ReaderStream, VolumeError, VolumeReader, open_volume

__all__ = [
    "BytesVolume", "Eligibility", "FileSystem", "FileVolume", "PathPlan", "ReaderStream", "VolumeError",
    "VolumeLayout", "VolumeReader", "VolumeReport", "analyze_volume", "bitmap_to_extents", "coalesce",
    "open_volume", "read_layout", "report_for", "total_bytes", "used_runs",
]
