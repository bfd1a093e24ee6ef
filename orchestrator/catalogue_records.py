"""What the catalogue answers: an image object as queries return it, and the error of a request it cannot honour."""
from __future__ import annotations

from dataclasses import dataclass, field

from orchestrator.ops import StoredPiece


class CatalogueError(LookupError):
    """A catalogue request that cannot be honoured (unknown object, no pool space, ...)."""


@dataclass
class ObjectRecord:
    """One image object as queries return it."""

    id: int
    node: str
    filespace: str
    mode: str
    image_type: str
    management_class: str
    state: str
    base_id: int | None
    pool: str
    pool_volume: str
    pool_device: str
    pool_offset: int
    image_size: int
    volume_size: int
    file_system: str
    path_used: str | None
    compressed: bool
    stored_size: int | None
    backup_date: str | None
    pieces: list[StoredPiece] = field(default_factory=list)
    tape_location: str | None = None  # tape pools: where the object lies (orchestrator.plan.tape_position)

    @property
    def active(self) -> bool:
        return self.state == "active"

    def as_dict(self) -> dict:
        d = {k: v for k, v in self.__dict__.items() if k != "pieces"}
        d["extents"] = [[p.volume_offset, p.length] for p in self.pieces]
        return d
