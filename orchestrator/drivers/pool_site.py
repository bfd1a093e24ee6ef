"""The site file's ``pool:``: a disk pool's volumes or a tape pool's drives, record format and cartridges.

Split from site.py: the pool a job in local mode writes, and the checks that
refuse an inconsistent one (tape keys on a disk pool, a volume in no drive, a
volume larger than its device) before any job starts.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from orchestrator.drivers.site_values import size_value, validated
from orchestrator.job.spec import TapePlan


class PoolVolumeSite(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    device: str
    capacity: int

    _c = field_validator("capacity", mode="before")(size_value)


class TapeDriveSite(BaseModel):
    """One drive of a tape pool: a device name, and its designator when VPD 83h should not be asked."""

    model_config = ConfigDict(extra="forbid")
    device: str = Field(min_length=1)
    designator: str | None = None

    @field_validator("designator", mode="before")
    @classmethod
    def _quoted(cls, v: Any) -> Any:
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            raise ValueError("YAML read the designator as a number: write it in quotes (designator: \"6001...\")")
        return v

    @field_validator("designator")
    @classmethod
    def _hex(cls, v: str | None) -> str | None:
        if v is None:
            return None
        h = v.lower().removeprefix("naa.").removeprefix("0x").replace(":", "")
        if not h or len(h) % 2 or any(c not in "0123456789abcdef" for c in h):
            raise ValueError(f"{v!r} is not an even number of hex digits")
        return h


TAPE_KEYS = ("record_size", "block_mode", "block_length", "drives", "lan_drive")


class PoolSite(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = "POOL1"
    kind: Literal["disk", "tape"] = "disk"
    nonblocked: bool = True
    volumes: list[PoolVolumeSite] = Field(min_length=1)
    # tape pools only (kind: tape)
    record_size: int | None = Field(None, gt=0)
    block_mode: Literal["variable", "fixed"] | None = None
    block_length: int | None = Field(None, ge=0)
    drives: list[TapeDriveSite] | None = None
    lan_drive: str | None = None

    _r = field_validator("record_size", "block_length", mode="before")(lambda v: None if v is None else size_value(v))

    @field_validator("drives", mode="before")
    @classmethod
    def _short(cls, v: Any) -> Any:
        """``drives: [drv1, drv2]`` is short for ``[{device: drv1}, {device: drv2}]``."""
        if isinstance(v, list):
            return [{"device": d} if isinstance(d, str) else d for d in v]
        return v

    @property
    def is_tape(self) -> bool:
        return self.kind == "tape"

    def drive_names(self) -> list[str]:
        return [d.device for d in self.drives or []]

    def tape_plan(self) -> TapePlan | None:
        """The job's TapePlan (every drive, in order: the job tries the object's own drive first)."""
        if not self.is_tape:
            return None
        return TapePlan(record_bytes=self.record_size or TapePlan.model_fields["record_bytes"].default,
                        fixed=self.block_mode == "fixed", block_length=self.block_length or 0,
                        drives=self.drive_names())


def check_pool_capacity(where: str, vol: PoolVolumeSite, device_bytes: int | None) -> None:
    """A disk-pool volume cannot hold more than its device: refused before any object is placed past the end."""
    if device_bytes is not None and vol.capacity > device_bytes:
        raise ValueError(f"{where}: {vol.capacity} bytes is larger than device {vol.device} ({device_bytes} bytes)")


def check_pool(pool: PoolSite, p: Path) -> None:
    """Tape keys only on a tape pool; a tape pool's drives, volumes and record format consistent."""
    if not pool.is_tape:
        for key in TAPE_KEYS:
            if getattr(pool, key) is not None:
                raise ValueError(f"{p}: pool.{key}: only a tape pool has it (add kind: tape, or remove {key})")
        return
    drives = pool.drive_names()
    if not drives:
        raise ValueError(f"{p}: pool.drives: a tape pool needs at least one drive (a device name)")
    for i, name in enumerate(drives):
        if name in drives[:i]:
            raise ValueError(f"{p}: pool.drives[{i}]: drive {name!r} is listed twice")
    for i, v in enumerate(pool.volumes):
        if v.device not in drives:
            raise ValueError(f"{p}: pool.volumes[{i}].device: {v.device!r} is not one of the pool's drives "
                             f"({', '.join(drives)})")
    if pool.lan_drive is not None and pool.lan_drive not in drives:
        raise ValueError(f"{p}: pool.lan_drive: {pool.lan_drive!r} is not one of the pool's drives "
                         f"({', '.join(drives)})")
    if pool.block_mode == "fixed" and not pool.block_length:
        raise ValueError(f"{p}: pool.block_length: block_mode fixed needs the drives' block length")
    if pool.block_mode != "fixed" and pool.block_length:
        raise ValueError(f"{p}: pool.block_length: only for block_mode fixed (block_mode is "
                         f"{pool.block_mode or 'variable'})")
    # a TapePlan field is the pool key of the same name, except its record (the pool's record_size)
    validated(pool.tape_plan, p, lambda loc: "pool." + ("block_length" if loc[:1] == ("block_length",)
                                                         else "record_size"))
