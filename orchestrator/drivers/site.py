"""Where things are at one site: the YAML that maps the job's names to real devices.

The job speaks of devices by name ("disk0", "pool0", mover "DM1"); the site
file says what each name is -- an ``iscsi://`` URL, a ``/dev/sg*`` device,
or a file (an image file or block device, served in-process through the
project's own block LUN emulation) -- and which copy managers move data::

    catalogue: /var/lib/serverfree/catalog.sqlite   # optional, else dsm.opt 'catalog'
    lan_server: 127.0.0.1:1500                       # the LAN backup server (lanserver.py)
    lan_free: true                                   # the client may write the pool devices itself
    topology: san.yaml                               # optional: verifies server-free paths
    devices:
      disk0: iscsi://127.0.0.1:3260/iqn.2026-01.example:disks/0
      pool0: /srv/pool/vol1.img
    movers:                                          # tried in this order
      DM1: iscsi://127.0.0.1:3261/iqn.2026-01.example:mover/0
      DM2: inprocess                                 # a copy manager over this site's file devices
    pool:
      name: POOL1
      volumes: [{name: VOL1, device: pool0, capacity: 1g}]
    volumes:
      "E:": {device: disk0, offset: 0, size: 512m, filesystem: ntfs, topology_volume: "C1:E:"}

Without a topology no server-free path counts as verified, unless
``verified_without_topology: true`` says the operator checked it by hand
(recorded as a reason-free note in the report).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

log = logging.getLogger(__name__)

_UNITS = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def _size(v: Any) -> int:
    if isinstance(v, int):
        return v
    s = str(v).strip().lower()
    if s and s[-1] in _UNITS and s[:-1].isdigit():
        return int(s[:-1]) * _UNITS[s[-1]]
    if s.isdigit():
        return int(s)
    raise ValueError(f"{v!r} is not a size (bytes, or a number with k/m/g/t)")


class PoolVolumeSite(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    device: str
    capacity: int

    _c = field_validator("capacity", mode="before")(_size)


class PoolSite(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = "POOL1"
    nonblocked: bool = True
    volumes: list[PoolVolumeSite] = Field(min_length=1)


class VolumeSite(BaseModel):
    model_config = ConfigDict(extra="forbid")
    device: str
    offset: int = 0
    size: int | None = None
    filesystem: str | None = None  # detected from the bytes when absent
    topology_volume: str | None = None

    _s = field_validator("offset", "size", mode="before")(lambda v: None if v is None else _size(v))


class SiteConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    catalogue: str | None = None
    lan_server: str = ""
    lan_free: bool = True
    topology: str | None = None
    verified_without_topology: bool = False
    devices: dict[str, str]
    movers: dict[str, str] = Field(default_factory=dict)
    pool: PoolSite
    volumes: dict[str, VolumeSite]
    base_dir: Path = Path(".")

    def volume(self, name: str) -> VolumeSite:
        for key, v in self.volumes.items():
            if key.lower().rstrip("\\/") == name.lower().rstrip("\\/"):
                return v
        raise LookupError(f"volume {name!r} is not in the site file (known: {', '.join(self.volumes)})")

    def path(self, value: str) -> str:
        """A file path relative to the site file, or a URL unchanged."""
        if "://" in value or value.startswith("/") or value == "inprocess":
            return value
        return str((self.base_dir / value).resolve())


def load_site(path: str | Path) -> SiteConfig:
    """Read and validate a site file; errors name the file and the offending key."""
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as exc:
        raise ValueError(f"{p}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{p}: expected a mapping at the top level")
    try:
        site = SiteConfig(**data, base_dir=p.parent)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(x) for x in first["loc"])
        raise ValueError(f"{p}: {where}: {first['msg']}") from None
    for ref in [v.device for v in site.volumes.values()] + [v.device for v in site.pool.volumes]:
        if ref not in site.devices:
            raise ValueError(f"{p}: device {ref!r} is used but not listed under devices")
    return site


class OpenSite:
    """The devices of a site opened as pyscsi devices (closed together)."""

    def __init__(self, site: SiteConfig):
        from scsi.devices import InProcessDevice, open_device
        from scsi.luns.file import FileBlockLun
        from scsi.target.blockdev import BlockLunDevice

        self.site = site
        self.luns: dict[str, Any] = {}
        self.devices: dict[str, Any] = {}
        self.movers: dict[str, Any] = {}
        self._copy_manager = None
        for name, ref in site.devices.items():
            target = site.path(ref)
            if "://" in target or target.startswith("/dev/sg"):
                self.devices[name] = open_device(target)
            else:
                lun = FileBlockLun(name, target)
                self.luns[name] = lun
                self.devices[name] = InProcessDevice(BlockLunDevice(lun))
        for name, ref in site.movers.items():
            if ref == "inprocess":
                self.movers[name] = InProcessDevice(self.copy_manager())
            else:
                self.movers[name] = open_device(site.path(ref))

    def copy_manager(self):
        from scsi.copymgr import CopyManager

        if self._copy_manager is None:
            if not self.luns:
                raise ValueError("an in-process data mover needs file devices in the site file")
            self._copy_manager = CopyManager(self.luns, name="in-process data mover")
        return self._copy_manager

    def close(self) -> None:
        for d in list(self.devices.values()) + list(self.movers.values()):
            try:
                d.close()
            except Exception:  # closing is best effort
                pass
        for lun in self.luns.values():
            lun.close()
        cm_close = getattr(self._copy_manager, "close", None)
        if cm_close:
            cm_close()

    def __enter__(self) -> "OpenSite":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
