"""Human-readable rendering of a DomainReport: one row per volume, then redundancy notes."""
from __future__ import annotations

from topology.report import DomainReport, VolumeVerdict


def _flags(v: VolumeVerdict) -> str:
    return " ".join(name if ok else "-" * len(name) for name, ok in
                    (("SF", v.server_free), ("LF", v.lan_free), ("LAN", v.lan)))


def _reason(v: VolumeVerdict) -> str:
    for kind in ("server-free", "lan-free", "lan"):
        if kind in v.reasons:
            return f"{kind}: {v.reasons[kind].message}"
    return ""


def format_report(report: DomainReport) -> str:
    """A fixed-width table; the reason column carries the first broken rule of the best missing path."""
    head = ["VOLUME", "VERDICT", "PATH", "VIA", "DISJOINT", "REASON"]
    rows = []
    for v in report.volumes:
        rows.append([v.volume, _flags(v), v.path or "NONE", " -> ".join(c for c in v.components if c),
                     "" if v.disjoint_paths is None else str(v.disjoint_paths), _reason(v)])
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head) - 1)]
    lines = []
    if report.failed:
        lines.append(f"with failed: {', '.join(report.failed)}")
    for r in [head, *rows]:
        lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) + "  " + r[-1])
    for v in report.volumes:
        if v.server_free and v.single_points_of_failure:
            lines.append(f"{v.volume}: single points of failure: {', '.join(v.single_points_of_failure)}")
    for w in report.warnings:
        lines.append(f"warning: {w}")
    n = sum(v.server_free for v in report.volumes)
    lines.append(f"{n} of {len(report.volumes)} volume(s) can be backed up server-free")
    return "\n".join(line.rstrip() for line in lines)
