"""Where things are at one site: the YAML that maps the job's names to real devices.

The job speaks of devices by name ("disk0", "pool0", mover "DM1"); the site
file says what each name is -- an ``iscsi://`` URL, a ``/dev/sg*`` device,
or a file (an image file or block device, served in-process through the
project's own block LUN emulation) -- and which copy managers move data::

    catalogue: /var/lib/serverfree/catalog.sqlite   # optional, else dsm.opt 'catalog'
    lan_pool:                                        # local mode's LAN path: the pool as the server sees it
      volumes: {VOL1: /srv/pool/vol1.img}            # pool volume name -> file or block device
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

A tape pool (``kind: tape``) names its drives (devices, in failover order) and
the record format; its volumes are cartridges in those drives::

    pool:
      name: TAPEPOOL
      kind: tape
      record_size: 256k          # bytes per record (variable) or per WRITE (fixed)
      block_mode: variable       # or fixed, with block_length: the drives' block length
      drives: [drv1, {device: drv2, designator: "600140511111..."}]   # designator: else VPD 83h
      lan_drive: drv1            # optional: the one drive the LAN path reaches (lan_pool.tapes: {drv1: ...})
      volumes: [{name: VOL001, device: drv1, capacity: 800g}]

Without a topology no server-free path counts as verified, unless
``verified_without_topology: true`` says the operator checked it by hand
(recorded as a reason-free note in the report).

This module reads and checks the file as a whole; its parts live beside it:
``pool:`` in :mod:`.pool_site`, ``lan_pool:`` in :mod:`.lan_pool_site`, sizes
and error lines in :mod:`.site_values`, and the devices opened in
:mod:`.open_site`.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

from orchestrator.drivers.lan_pool_site import RETIRED_LAN_SERVER, LanPoolSite, check_lan_pool
from orchestrator.drivers.pool_site import PoolSite, check_pool, check_pool_capacity
from orchestrator.drivers.site_values import size_value, validated

log = logging.getLogger(__name__)


class VolumeSite(BaseModel):
    model_config = ConfigDict(extra="forbid")
    device: str
    offset: int = Field(0, ge=0, description="byte offset of the volume on its device (whole blocks)")
    size: int | None = Field(None, gt=0)
    filesystem: str | None = None  # detected from the bytes when absent
    topology_volume: str | None = None

    _s = field_validator("offset", "size", mode="before")(lambda v: None if v is None else size_value(v))

    @field_validator("filesystem")
    @classmethod
    def _known_filesystem(cls, v: str | None) -> str | None:
        """A declared file system decides the extents (raw: every block), so it must be one we know."""
        from orchestrator.volume.filesystem import FileSystem

        if v is None:
            return v
        if v.lower() not in {f.value for f in FileSystem}:
            raise ValueError(f"{v!r} is not one of {', '.join(f.value for f in FileSystem)}")
        return v.lower()


#: Seconds before a silent data mover counts as hung.  An EXTENDED COPY list is a
#: few MiB (serverfreebatchsize), seconds at worst on a working SAN; 15 s, then
#: failover, keeps a hung mover well under a minute of a job.
DEFAULT_MOVER_TIMEOUT = 15.0


class MoverSite(BaseModel):
    """A data mover with its own command timeout: ``DM1: {url: iscsi://..., command_timeout: 10}``."""

    model_config = ConfigDict(extra="forbid")
    url: str
    command_timeout: float | None = Field(None, gt=0, le=3600)


class SiteConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    catalogue: str | None = None
    lan_server: Any = Field(None, exclude=True)  # retired: refused with the way out
    lan_pool: LanPoolSite | None = None
    lan_free: bool = True
    topology: str | None = None
    verified_without_topology: bool = False
    devices: dict[str, str]
    movers: dict[str, str | MoverSite] = Field(default_factory=dict)
    mover_timeout: float = Field(DEFAULT_MOVER_TIMEOUT, gt=0, le=3600,
                                 description="seconds a data mover may take to answer one command")
    pool: PoolSite | None = None  # none when the backup server owns the pools (client of `serverfree server`)
    storage_agent: dict[str, str] = Field(default_factory=dict)  # server pool volume -> device (LAN-free)
    volumes: dict[str, VolumeSite]
    base_dir: Path = Path(".")

    @field_validator("lan_server")
    @classmethod
    def _retired(cls, v: Any) -> Any:
        if v is not None:
            raise ValueError(RETIRED_LAN_SERVER)
        return v

    def volume(self, name: str) -> VolumeSite:
        for key, v in self.volumes.items():
            if key.lower().rstrip("\\/") == name.lower().rstrip("\\/"):
                return v
        raise LookupError(f"volume {name!r} is not in the site file (known: {', '.join(self.volumes)})")

    def mover_url(self, name: str) -> str:
        ref = self.movers[name]
        return ref.url if isinstance(ref, MoverSite) else ref

    def command_timeout(self, name: str) -> float:
        """The mover's own command_timeout, else the site's mover_timeout."""
        ref = self.movers[name]
        return ref.command_timeout if isinstance(ref, MoverSite) and ref.command_timeout else self.mover_timeout

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
    if "lan_server" in data:
        raise ValueError(f"{p}: {RETIRED_LAN_SERVER}")
    site = validated(lambda: SiteConfig(**data, base_dir=p.parent), p)
    pool_refs = [v.device for v in site.pool.volumes] + site.pool.drive_names() if site.pool else []
    for ref in [v.device for v in site.volumes.values()] + pool_refs + list(site.storage_agent.values()):
        if ref not in site.devices:
            raise ValueError(f"{p}: device {ref!r} is used but not listed under devices")
    if site.pool is not None:
        check_pool(site.pool, p)
        check_lan_pool(site.lan_pool, site.pool, p)
        if not site.pool.is_tape:
            for i, v in enumerate(site.pool.volumes):
                check_pool_capacity(f"{p}: pool.volumes[{i}].capacity", v, _local_size(site.path(site.devices[v.device])))
    return site


def _local_size(target: str) -> int | None:
    """Bytes of an image file or block device named by path; None for a URL, /dev/sg*, or what cannot be opened
    (opening it later reports that, naming the device)."""
    if "://" in target or target.startswith("/dev/sg") or target == "inprocess":
        return None
    try:
        with open(target, "rb") as f:
            return f.seek(0, 2)
    except OSError:
        return None
