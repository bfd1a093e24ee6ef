"""Data files shipped with the orchestrator (the bundled NTFS sample image)."""
