"""Client options as pydantic models, and their per-volume resolution.

`ClientOptions` holds what a dsm.opt file plus command-line overrides say;
`ClientOptions.for_volume(name)` folds include.image / exclude.image rules into
the `VolumeOptions` one image backup job runs with.  Defaults follow
the TSM 5.1 Backup-Archive Client guide; a default it does not state is an
ordinary option the user can change.
"""
from __future__ import annotations

import fnmatch
import socket
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from orchestrator.options.values import KIB, MIB

#: imagegapsize default for LAN and LAN-free image backup: 32k (TSM 5.1 Backup-Archive Client guide, imagegapsize).
DEFAULT_GAPSIZE_LAN = 32 * KIB
#: Server-free default: 5m per the TSM 5.1 Backup-Archive Client guide; the
#: administrator's guide says 0 instead, hence `serverfreegapsize`.
DEFAULT_GAPSIZE_SERVERFREE = 5 * MIB

DataPath = Literal["serverfree", "lanfree", "lan"]
DATA_PATHS: tuple[str, ...] = ("serverfree", "lanfree", "lan")


class ImageType(StrEnum):
    """Offline (``static``, volume locked), online (``snapshot``, copy-on-write) or ``dynamic`` (neither)."""

    STATIC = "static"
    SNAPSHOT = "snapshot"
    DYNAMIC = "dynamic"


class Mode(StrEnum):
    """``selective`` = full image; ``incremental`` = files changed since the last full image."""

    SELECTIVE = "selective"
    INCREMENTAL = "incremental"


class ImageRule(BaseModel):
    """One include.image or exclude.image line; ``order`` is its position among all rules."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["include", "exclude"]
    pattern: str
    mgmtclass: str | None = None
    imagegapsize: int | None = Field(default=None, ge=0)
    imagetype: ImageType | None = None
    snapshotcachesize: int | None = Field(default=None, ge=1, le=100)
    snapshotcachelocation: str | None = None
    snapshotfsidlewait: float | None = Field(default=None, ge=0, le=999)
    snapshotfsidleretries: int | None = Field(default=None, ge=0)
    presnapshotcmd: str | None = None
    postsnapshotcmd: str | None = None
    order: int = 0
    where: str = ""

    def matches(self, volume: str) -> bool:
        return fnmatch.fnmatchcase(normalise_volume(volume), normalise_volume(self.pattern))


#: Option fields an include.image line may set for its volume.
PER_VOLUME_FIELDS = (
    "imagegapsize", "imagetype", "snapshotcachesize", "snapshotcachelocation",
    "snapshotfsidlewait", "snapshotfsidleretries", "presnapshotcmd", "postsnapshotcmd",
)


def normalise_volume(name: str) -> str:
    """Case-folded volume name without a trailing separator (``H:\\`` and ``h:`` are one volume)."""
    name = name.strip()
    if len(name) > 1:
        name = name.rstrip("\\/") or name[0]
    return name.lower()


class VolumeOptions(BaseModel):
    """Everything an image job needs to know about one volume's options."""

    model_config = ConfigDict(frozen=True)

    volume: str
    excluded: bool = False
    excluded_by: str | None = Field(default=None, description="file:line of the exclude.image rule")
    included_by: str | None = Field(default=None, description="file:line of the include.image rule")
    in_domain: bool = False
    mgmtclass: str = "DEFAULT"
    imagegapsize: int | None = Field(default=None, description="explicit gap size in bytes, None = per-path default")
    serverfreegapsize: int = DEFAULT_GAPSIZE_SERVERFREE
    imagetype: ImageType = ImageType.SNAPSHOT
    mode: Mode = Mode.SELECTIVE
    compression: bool = False
    encrypted: bool = False
    enableserverfree: bool = False
    enablelanfree: bool = False
    snapshotcachesize: int = 100
    snapshotcachelocation: str | None = None
    snapshotfsidlewait: float = 1.0
    snapshotfsidleretries: int = 10
    presnapshotcmd: str | None = None
    postsnapshotcmd: str | None = None

    def gap_size(self, path: DataPath) -> int:
        """imagegapsize in bytes for a data path: the explicit value, else that path's default."""
        if path not in DATA_PATHS:
            raise ValueError(f"unknown data path {path!r} (expected one of {', '.join(DATA_PATHS)})")
        if self.imagegapsize is not None:
            return self.imagegapsize
        return self.serverfreegapsize if path == "serverfree" else DEFAULT_GAPSIZE_LAN


class ClientOptions(BaseModel):
    """The client's options (dsm.opt plus command line), validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    enableserverfree: bool = False  # assumed default: off until the server side is configured
    enablelanfree: bool = False
    domain_image: list[str] = Field(default_factory=list)
    include_image: list[ImageRule] = Field(default_factory=list)
    exclude_image: list[ImageRule] = Field(default_factory=list)
    imagegapsize: int | None = Field(default=None, ge=0, description="bytes; None = path default")
    serverfreegapsize: int = Field(default=DEFAULT_GAPSIZE_SERVERFREE, ge=0)
    imagetype: ImageType = ImageType.SNAPSHOT  # assumed: online when a snapshot provider exists
    mode: Mode = Mode.SELECTIVE
    compression: bool = False  # TSM 5.1 client guide
    encryptkey: Literal["save", "prompt", "generate"] | None = None
    snapshotcachesize: int = Field(default=100, ge=1, le=100, description="percent of the volume")
    snapshotcachelocation: str | None = None  # None = the volume being backed up
    snapshotfsidlewait: float = Field(default=1.0, ge=0, le=999, description="seconds")  # TSM 5.1 client guide
    snapshotfsidleretries: int = Field(default=10, ge=0, le=999)  # assumed default
    presnapshotcmd: str | None = None
    postsnapshotcmd: str | None = None
    catalog: str = "serverfree-catalog.sqlite"
    tcpserveraddress: str = "127.0.0.1"
    tcpport: int = Field(default=1500, ge=1, le=65535)
    nodename: str | None = None
    password: str | None = None  # the node's password for the backup server (else SERVERFREE_PASSWORD or a prompt)
    passwordaccess: Literal["prompt", "generate"] = "prompt"
    tlsfingerprint: str | None = None  # SHA-256 of the server's certificate: use TLS and trust only it
    serverfreebatchsize: int = Field(default=80, ge=10, le=1000, description="MB per batch (SET SERVERFREE BATCHSIZE)")

    _sources: dict[str, str] = PrivateAttr(default_factory=dict)
    _command_line: set[str] = PrivateAttr(default_factory=set)

    @property
    def encrypted(self) -> bool:
        """True when an encryption key is configured (server-free never encrypts)."""
        return self.encryptkey is not None

    @property
    def node(self) -> str:
        """The node name, defaulting to the host name as dsmc does."""
        return (self.nodename or socket.gethostname()).upper()

    def source_of(self, name: str) -> str:
        """Where option ``name`` was set (``dsm.opt:12``, ``command line``) or ``default``."""
        return self._sources.get(name, "default")

    def domain_volumes(self) -> list[str]:
        """domain.image volumes in the order written, each once, minus those exclude.image excludes."""
        seen: dict[str, str] = {}
        for volume in self.domain_image:
            seen.setdefault(normalise_volume(volume), volume)
        return [v for v in seen.values() if not self.for_volume(v).excluded]

    def rules(self) -> list[ImageRule]:
        """include.image and exclude.image rules in the order they were written."""
        return sorted([*self.include_image, *self.exclude_image], key=lambda r: r.order)

    def for_volume(self, volume: str) -> VolumeOptions:
        """Resolve the options for one volume.

        The last matching include.image/exclude.image line wins, as in TSM's
        bottom-up include-exclude processing.  Command-line values beat
        per-volume include.image values, which beat the file's global ones.
        """
        if not volume or not volume.strip():
            raise ValueError("volume name is empty")
        rule = next((r for r in reversed(self.rules()) if r.matches(volume)), None)
        values = {name: getattr(self, name) for name in PER_VOLUME_FIELDS}
        if rule is not None and rule.kind == "include":
            for name in PER_VOLUME_FIELDS:
                per_volume = getattr(rule, name)
                if per_volume is not None and name not in self._command_line:
                    values[name] = per_volume
        domain = {normalise_volume(v) for v in self.domain_image}
        return VolumeOptions(
            volume=volume,
            excluded=rule is not None and rule.kind == "exclude",
            excluded_by=rule.where if rule is not None and rule.kind == "exclude" else None,
            included_by=rule.where if rule is not None and rule.kind == "include" else None,
            in_domain=normalise_volume(volume) in domain,
            mgmtclass=(rule.mgmtclass if rule is not None and rule.kind == "include" and rule.mgmtclass else "DEFAULT"),
            serverfreegapsize=self.serverfreegapsize,
            mode=self.mode,
            compression=self.compression,
            encrypted=self.encrypted,
            enableserverfree=self.enableserverfree,
            enablelanfree=self.enablelanfree,
            **values,
        )
