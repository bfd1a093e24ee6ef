"""What verification answers: per-volume verdicts and the domain summary (pydantic, JSON-ready)."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, computed_field

PathKind = Literal["server-free", "lan-free", "lan"]


class Problem(BaseModel):
    """The first broken rule of a missing path, and the objects it involves."""

    rule: str
    message: str
    objects: list[str] = Field(default_factory=list)


class Route(BaseModel):
    """One working server-free route: array port -> mover port, mover, mover port -> device port."""

    array_port: str
    mover_in: str
    mover: str
    mover_out: str
    device_port: str
    device: str


class VolumeVerdict(BaseModel):
    volume: str
    client: str
    mount: str
    filesystem: str
    lun: str
    pool: str | None = None
    server_free: bool
    lan_free: bool
    lan: bool
    path: PathKind | None
    components: list[str] = Field(default_factory=list, description="LUN -> mover -> device, or client -> ...")
    route: Route | None = None
    reasons: dict[str, Problem] = Field(default_factory=dict, description="missing path -> first broken rule")
    disjoint_paths: int | None = None
    single_points_of_failure: list[str] = Field(default_factory=list)

    @property
    def reason(self) -> Problem | None:
        """Why the best path is not server-free (None when it is)."""
        return self.reasons.get("server-free")


class DomainReport(BaseModel):
    topology: str
    failed: list[str] = Field(default_factory=list)
    volumes: list[VolumeVerdict] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def all_server_free(self) -> bool:
        return all(v.server_free for v in self.volumes)

    def volume(self, volume_id: str) -> VolumeVerdict:
        for v in self.volumes:
            if v.volume == volume_id:
                return v
        raise LookupError(f"no volume {volume_id!r} in this report")
