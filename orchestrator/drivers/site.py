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
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from orchestrator.drivers.lazy_mover import LazyMover  # re-exported: the server opens movers from here
from orchestrator.job.spec import TapePlan

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

    _r = field_validator("record_size", "block_length", mode="before")(lambda v: None if v is None else _size(v))

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


class VolumeSite(BaseModel):
    model_config = ConfigDict(extra="forbid")
    device: str
    offset: int = Field(0, ge=0, description="byte offset of the volume on its device (whole blocks)")
    size: int | None = Field(None, gt=0)
    filesystem: str | None = None  # detected from the bytes when absent
    topology_volume: str | None = None

    _s = field_validator("offset", "size", mode="before")(lambda v: None if v is None else _size(v))

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


class LanPoolSite(BaseModel):
    """Local mode's LAN path: the pool volumes and tape drives as the backup server opens them.

    In local mode the process running the job is client and server in one; its LAN path writes these
    (in-process, no network listener: :mod:`orchestrator.lan.local_pool`), not the client's SAN path.
    """

    model_config = ConfigDict(extra="forbid")
    volumes: dict[str, str] = Field(default_factory=dict)  # pool volume name -> file or block device
    tapes: dict[str, str] = Field(default_factory=dict)  # tape drive name -> emulated tape file or device URL


RETIRED_LAN_SERVER = ("lan_server: the open LAN data process is retired (anything reaching its port could write "
                      "any pool volume); in local mode give lan_pool: {volumes: {VOLUME: PATH}} (this process "
                      "writes the pool itself), or leave out pool: and use the backup server (serverfree server)")


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
    site = _validated(lambda: SiteConfig(**data, base_dir=p.parent), p)
    pool_refs = [v.device for v in site.pool.volumes] + site.pool.drive_names() if site.pool else []
    for ref in [v.device for v in site.volumes.values()] + pool_refs + list(site.storage_agent.values()):
        if ref not in site.devices:
            raise ValueError(f"{p}: device {ref!r} is used but not listed under devices")
    if site.pool is not None:
        _check_pool(site.pool, p)
        lan_drive = site.pool.lan_drive
        if lan_drive is not None and site.lan_pool is not None and lan_drive not in site.lan_pool.tapes:
            raise ValueError(f"{p}: pool.lan_drive: {lan_drive!r} is not in lan_pool.tapes (the drive as the "
                             "LAN path opens it)")
        _check_lan_pool(site, p)
        if not site.pool.is_tape:
            for i, v in enumerate(site.pool.volumes):
                check_pool_capacity(f"{p}: pool.volumes[{i}].capacity", v, _local_size(site.path(site.devices[v.device])))
    return site


def _check_lan_pool(site: SiteConfig, p: Path) -> None:
    """lan_pool names the site's own pool volumes (disk) or drives (tape): an unknown name, or a disk volume the
    LAN path could not reach, is refused before any job starts."""
    if site.lan_pool is None or site.pool is None:
        return
    names = {v.name for v in site.pool.volumes}
    for key, known in (("volumes", names), ("tapes", set(site.pool.drive_names()))):
        for name in getattr(site.lan_pool, key):
            if name not in known:
                raise ValueError(f"{p}: lan_pool.{key}.{name}: not one of the pool's "
                                 f"{'volumes' if key == 'volumes' else 'drives'} ({', '.join(sorted(known)) or 'none'})")
    if not site.pool.is_tape:
        missing = sorted(names - set(site.lan_pool.volumes))
        if missing:
            raise ValueError(f"{p}: lan_pool.volumes: no path for pool volume {', '.join(missing)} (the LAN path "
                             "could not reach an image placed there)")


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


def check_pool_capacity(where: str, vol: PoolVolumeSite, device_bytes: int | None) -> None:
    """A disk-pool volume cannot hold more than its device: refused before any object is placed past the end."""
    if device_bytes is not None and vol.capacity > device_bytes:
        raise ValueError(f"{where}: {vol.capacity} bytes is larger than device {vol.device} ({device_bytes} bytes)")


def _check_pool(pool: PoolSite, p: Path) -> None:
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
    _validated(pool.tape_plan, p, lambda loc: "pool." + ("block_length" if loc[:1] == ("block_length",)
                                                         else "record_size"))


def _validated(build: Callable[[], Any], p: Path, where: Callable[[tuple], str] | None = None) -> Any:
    """``build()``; a pydantic error becomes the site file's one line "FILE: field.path: message"."""
    try:
        return build()
    except ValidationError as exc:
        e = exc.errors()[0]
        loc = tuple(e["loc"])
        field = where(loc) if where else ".".join(str(x) for x in loc) or "(top level)"
        raise ValueError(f"{p}: {field}: {str(e['msg']).removeprefix('Value error, ')}") from None


def _is_tape_file(path: str) -> bool:
    """An emulated tape file (its header's magic), served as a tape even when no pool names it a drive."""
    from scsi.luns.tape_format import MAGIC

    try:
        with open(path, "rb") as f:
            return f.read(len(MAGIC)) == MAGIC
    except OSError:
        return False


class OpenSite:
    """The devices of a site opened as pyscsi devices (closed together).

    File devices are served in-process: block images through the block LUN
    emulation, and a tape pool's file drives through the tape LUN emulation
    (an emulated tape file; it must already exist).
    """

    def __init__(self, site: SiteConfig):
        from scsi.devices import InProcessDevice, open_device
        from scsi.luns.file import FileBlockLun
        from scsi.target.blockdev import BlockLunDevice

        self.site = site
        self.luns: dict[str, Any] = {}  # in-process block LUNs (snapshots apply to these)
        self.tape_luns: dict[str, Any] = {}  # in-process tape LUNs
        self.devices: dict[str, Any] = {}
        self.movers: dict[str, Any] = {}
        self._copy_manager = None
        self.lan: Any = None  # local mode's in-process LAN pool (lan_pool in the site file)
        drives = set(site.pool.drive_names()) if site.pool else set()
        try:
            if site.lan_pool is not None:
                from orchestrator.lan.local_pool import LocalPool

                self.lan = LocalPool({n: site.path(v) for n, v in site.lan_pool.volumes.items()},
                                     {n: site.path(t) for n, t in site.lan_pool.tapes.items()})
            for name, ref in site.devices.items():
                target = site.path(ref)
                if "://" in target or target.startswith("/dev/sg"):
                    self.devices[name] = open_device(target)
                elif name in drives or _is_tape_file(target):
                    self.devices[name] = InProcessDevice(self._file_tape(name, target))
                else:
                    lun = FileBlockLun(name, target)
                    self.luns[name] = lun
                    self.devices[name] = InProcessDevice(BlockLunDevice(lun))
            for name in site.movers:
                ref = site.mover_url(name)
                if ref == "inprocess":
                    self.movers[name] = InProcessDevice(self.copy_manager())
                else:  # logged in to on first use: a mover that is down fails the job over, not the start
                    self.movers[name] = LazyMover(name, site.path(ref), site.command_timeout(name))
        except BaseException:
            self.close()
            raise

    def _file_tape(self, name: str, path: str):
        from scsi.luns import TapeLun
        from scsi.target.tapedev import TapeLunDevice

        if not Path(path).is_file():
            raise ValueError(f"tape drive {name!r}: {path} is not an emulated tape file (create one with "
                             "scsi.luns.TapeLun(..., create=True) or name an iscsi:// / /dev/sg device)")
        try:
            lun = TapeLun(name, path)
        except (ValueError, OSError) as exc:
            raise ValueError(f"tape drive {name!r}: {path}: {exc}") from None
        self.tape_luns[name] = lun
        return TapeLunDevice(lun)

    def tape_designators(self, names: list[str] | None = None) -> dict[str, str]:
        """Drive -> designator hex (default: the tape pool's drives): the site file's, else the drive's VPD 83h."""
        from pyscsi.pyscsi.scsi import SCSI

        from scsi.designators import choose_lu_designator, parse_vpd83, read_vpd83
        from scsi.luns.remote import UnitAttentionRetry

        given = {d.device: d.designator for d in self.site.pool.drives or []}
        out: dict[str, str] = {}
        for name in self.site.pool.drive_names() if names is None else names:
            if given.get(name):
                out[name] = given[name]  # type: ignore[assignment]
                continue
            if name not in self.devices:
                raise LookupError(f"tape drive {name!r} is not a device in the site file "
                                  f"(known: {', '.join(self.devices) or 'none'})")
            try:
                scsi = SCSI(UnitAttentionRetry(self.devices[name], name))
                out[name] = choose_lu_designator(parse_vpd83(read_vpd83(scsi))).designator
            except Exception as exc:  # noqa: BLE001 - reported with the drive's name
                raise OSError(f"tape drive {name!r}: cannot read its designator (VPD 83h): {exc}; give it in "
                              "the site file as pool.drives: [{device: NAME, designator: HEX}]") from None
        return out

    def copy_manager(self):
        from scsi.copymgr import CopyManager

        if self._copy_manager is None:
            if not self.luns and not self.tape_luns:
                raise ValueError("an in-process data mover needs file devices in the site file")
            self._copy_manager = CopyManager({**self.luns, **self.tape_luns}, name="in-process data mover")
        return self._copy_manager

    @property
    def lan_address(self) -> str:
        """What the job's LAN operations name (``local:N``), or "" without ``lan_pool``."""
        return self.lan.address if self.lan is not None else ""

    def close(self) -> None:
        if self.lan is not None:
            self.lan.close()
        for d in list(self.devices.values()) + list(self.movers.values()):
            try:
                d.close()
            except Exception:  # closing is best effort
                pass
        for lun in list(self.luns.values()) + list(self.tape_luns.values()):
            lun.close()
        cm_close = getattr(self._copy_manager, "close", None)
        if cm_close:
            cm_close()

    def __enter__(self) -> OpenSite:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
