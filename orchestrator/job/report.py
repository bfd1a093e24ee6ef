"""What a finished job tells its caller: path used, bytes per path, failovers and why."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class FailoverEvent:
    """One step down the failover ladder (or to the next data mover)."""

    from_path: str
    to_path: str
    reason: str
    image_offset: int  # image bytes known on the destination when it happened
    mover: str = ""


@dataclass
class JobReport:
    kind: str  # "backup" or "restore"
    node: str
    filespace: str
    outcome: str = "running"  # "completed" | "failed"
    message: str = ""
    object_id: int | None = None
    start_path: str = ""
    reasons: list[str] = field(default_factory=list)  # why the job did not start server-free
    failovers: list[FailoverEvent] = field(default_factory=list)
    bytes_by_path: dict[str, int] = field(default_factory=dict)
    movers_used: list[str] = field(default_factory=list)
    image_size: int = 0
    stored_size: int = 0
    compressed: bool = False
    warnings: list[str] = field(default_factory=list)
    elapsed: float = 0.0  # driver-reported seconds (simulated or real)

    @property
    def ok(self) -> bool:
        return self.outcome == "completed"

    @property
    def path_used(self) -> str:
        """The paths that moved data, in order, e.g. ``server-free+lan-free``.

        A job that moved nothing reports the path it started on, unless it
        failed: then no path carried the image and it says ``none``.
        """
        moved = "+".join(p for p, n in self.bytes_by_path.items() if n)
        return moved or (self.start_path if self.outcome != "failed" else "none")

    def add_bytes(self, path: str, n: int) -> None:
        self.bytes_by_path[path] = self.bytes_by_path.get(path, 0) + n

    def as_dict(self) -> dict:
        d = asdict(self)
        d["path_used"] = self.path_used
        return d

    def summary(self) -> str:
        """A few lines for a storage engineer."""
        head = (f"{self.kind} {self.node}:{self.filespace} {self.outcome}"
                + (f" (object {self.object_id})" if self.object_id is not None else ""))
        lines = [head, f"  path: {self.path_used}; image {self.image_size} bytes"
                 + ("; compressed" if self.compressed else "")]
        for p, n in self.bytes_by_path.items():
            lines.append(f"  {p}: {n} bytes")
        for r in self.reasons:
            lines.append(f"  not server-free: {r}")
        for f in self.failovers:
            mover = f" ({f.mover})" if f.mover else ""
            lines.append(f"  failover {f.from_path}{mover} -> {f.to_path} at image byte "
                         f"{f.image_offset}: {f.reason}")
        for w in self.warnings:
            lines.append(f"  warning: {w}")
        if self.message and self.outcome != "completed":
            lines.append(f"  error: {self.message}")
        return "\n".join(lines)
