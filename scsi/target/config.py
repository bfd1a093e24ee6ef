"""The data mover's target configuration (YAML, validated with pydantic before anything listens).

Example::

    portal: 127.0.0.1:3260
    target: iqn.2026-11.org.serverfree:dm1
    chap: {username: alice, secret: alicesecret12}        # optional, target-wide
    luns:
      - {id: 0, path: /srv/client.img}
      - {id: 1, path: /srv/pool.img, serial: POOL0001, accepts_xcopy: true}
    remote:                                               # optional: devices reached as an initiator
      - name: client
        url: iscsi://192.0.2.10:3260/iqn.2026-11.org.example:disks/1   # or /dev/sgN
        designator: 6001405a1b2c3d4e5f60718293a4b5c6     # optional: NAA the device must report
        chap: {username: dm1, secret: dm1secret1234}       # optional (mutual_* for the device's account)
        sessions: 4
    acl:
      - {initiator: iqn.2026-11.org.serverfree:client, luns: [0], remote: [client]}
      - {initiator: "*", luns: all}                        # luns: all also reaches every remote device

Remote devices are never served as LUNs: only EXTENDED COPY descriptors
(E4h, by the designators in their VPD 83h) can name them, and only for an
initiator whose ACL entry lists them (``remote:``; by default every remote
device when ``luns: all``, none otherwise).
"""
from __future__ import annotations

import logging
import os
import re
import stat
from pathlib import Path
from typing import Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from scsi.copymgr.config import MoverLimits
from scsi.copymgr.faults import parse_fault
from scsi.designators import parse_wwn
from scsi.devices.iscsi_url import parse_iscsi_url

log = logging.getLogger(__name__)

IQN_RE = re.compile(r"^(iqn\.\d{4}-\d{2}(\.[A-Za-z0-9-]+)+(:[^\s]+)?|eui\.[0-9A-Fa-f]{16}|naa\.[0-9A-Fa-f]{16,32})$")


def check_iscsi_name(name: str, what: str) -> str:
    if len(name) > 223 or not IQN_RE.match(name):
        raise ValueError(f"{what} {name!r} is not an iSCSI name (iqn.YYYY-MM.reversed.domain[:id], "
                         f"eui.<16 hex> or naa.<hex>)")
    return name.lower() if name.startswith("iqn.") else name


def parse_portal(text: str) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` -> (host, port)."""
    m = re.match(r"^\[([0-9A-Fa-f:.]+)\]:(\d+)$", text) or re.match(r"^([^:\s]+):(\d+)$", text)
    if not m:
        raise ValueError(f"portal {text!r} is not HOST:PORT")
    port = int(m.group(2))
    if not 0 <= port <= 65535:
        raise ValueError(f"portal {text!r}: port {port} outside 0..65535")
    return m.group(1), port


class ChapConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str = Field(min_length=1)
    secret: str = Field(min_length=1, max_length=255)
    mutual_username: str | None = None
    mutual_secret: str | None = None

    @model_validator(mode="after")
    def _mutual_pair(self) -> "ChapConfig":
        if (self.mutual_username is None) != (self.mutual_secret is None):
            raise ValueError("mutual CHAP needs both mutual_username and mutual_secret")
        if self.mutual_secret is not None and self.mutual_secret == self.secret:
            raise ValueError("the mutual secret must differ from the initiator's secret (RFC 7143 12.1.3)")
        for who, secret in ((self.username, self.secret), (self.mutual_username, self.mutual_secret)):
            if secret is not None and len(secret) < 12:
                log.warning("CHAP secret of %s is %d bytes; RFC 7143 asks for at least 12", who, len(secret))
        return self


class LunConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: int = Field(ge=0, le=16383)
    path: Path
    kind: Literal["block", "tape"] = "block"
    block_size: int = 512
    serial: str | None = Field(default=None, min_length=1, max_length=64, pattern=r"^[\x21-\x7e]+$")
    read_only: bool = False
    accepts_xcopy: bool = True
    naa: str | None = None  # NAA designator to report in VPD 83h (default: derived from the serial)

    @field_validator("naa")
    @classmethod
    def _naa(cls, v: str | None) -> str | None:
        return None if v is None else parse_wwn(v).hex()

    @field_validator("block_size")
    @classmethod
    def _power_of_two(cls, v: int) -> int:
        if v < 512 or v > 65536 or v & (v - 1):
            raise ValueError(f"block_size {v} must be a power of two between 512 and 65536")
        return v

    create: bool = False  # tape only: start an empty tape file when it does not exist

    @model_validator(mode="after")
    def _exists(self) -> "LunConfig":
        v = self.path
        if self.create and self.kind != "tape":
            raise ValueError("create: true is only for tape LUNs")
        if self.create and not v.exists():
            if not v.parent.is_dir():
                raise ValueError(f"path {v}: directory {v.parent} does not exist")
            return self
        try:
            st = os.stat(v)
        except OSError as e:
            raise ValueError(f"path {v}: {e.strerror}") from None
        if not (stat.S_ISREG(st.st_mode) or (stat.S_ISBLK(st.st_mode) and self.kind == "block")):
            raise ValueError(f"path {v} is neither a regular file nor a block device")
        return self


REMOTE_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")
LOCAL_LUN_NAME_RE = re.compile(r"^lun\d+$")  # the names open_luns gives served LUNs


def local_lun_name(lun_id: int) -> str:
    """The copy manager's name for served LUN ``lun_id`` (remote device names must differ)."""
    return f"lun{lun_id}"


class RemoteConfig(BaseModel):
    """A copy device the mover reaches as an initiator (not served; only EXTENDED COPY names it)."""

    model_config = ConfigDict(extra="forbid")
    name: str
    url: str
    chap: ChapConfig | None = None  # username/secret: the mover's account; mutual_*: the device's
    designator: str | None = None  # NAA the device must report in VPD 83h (checked at start)
    sessions: int = Field(default=2, ge=1, le=32)
    initiator: str | None = None  # the mover's initiator name towards this device
    timeout: float = Field(default=30.0, gt=0, le=3600)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not REMOTE_NAME_RE.match(v):
            raise ValueError(f"remote name {v!r} must start with a letter and hold only letters, digits, "
                             "'_', '.', '-' (at most 64)")
        if LOCAL_LUN_NAME_RE.match(v):
            raise ValueError(f"remote name {v!r} is reserved for served LUNs (lun<N>)")
        return v

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if v.startswith("iscsi://"):
            parse_iscsi_url(v)
        elif not re.match(r"^/dev/sg\d+$", v):
            raise ValueError(f"url {v!r} is neither iscsi://HOST[:PORT]/IQN/LUN nor /dev/sgN")
        return v

    @field_validator("designator")
    @classmethod
    def _designator(cls, v: str | None) -> str | None:
        return None if v is None else parse_wwn(v).hex()

    @field_validator("initiator")
    @classmethod
    def _initiator(cls, v: str | None) -> str | None:
        return None if v is None else check_iscsi_name(v, "initiator")

    @model_validator(mode="after")
    def _iscsi_only(self) -> RemoteConfig:
        if not self.url.startswith("iscsi://"):
            if self.chap is not None or self.initiator is not None:
                raise ValueError(f"remote {self.name}: chap and initiator apply to iscsi:// URLs only")
        elif self.chap is not None and parse_iscsi_url(self.url).chap is not None:
            raise ValueError(f"remote {self.name}: CHAP given both in the URL and in chap:")
        return self

    @property
    def display_url(self) -> str:
        """The URL without credentials (for logs and messages)."""
        return parse_iscsi_url(self.url).display() if self.url.startswith("iscsi://") else self.url


class AclEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    initiator: str
    luns: list[int] | Literal["all"] = "all"
    remote: list[str] | Literal["all"] | None = None  # None: all when luns is "all", else none
    chap: ChapConfig | None = None

    def remote_names(self, configured: list[str]) -> list[str]:
        """Remote device names this initiator's EXTENDED COPY may name."""
        wanted = self.remote if self.remote is not None else ("all" if self.luns == "all" else [])
        return list(configured) if wanted == "all" else list(wanted)

    @field_validator("initiator")
    @classmethod
    def _name(cls, v: str) -> str:
        return v if v == "*" else check_iscsi_name(v, "initiator")


class TargetConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    portal: str = "127.0.0.1:3260"
    target: str
    alias: str = ""
    chap: ChapConfig | None = None
    luns: list[LunConfig] = Field(min_length=1)
    remote: list[RemoteConfig] = Field(default_factory=list)
    acl: list[AclEntry] = Field(default_factory=lambda: [AclEntry(initiator="*")])
    io_threads: int = Field(default=8, ge=1, le=256)
    # CRC32C digests (RFC 7143 13.1): "allowed" follows the initiator's preference, "required"
    # refuses a session without them (the key is answered Reject), "off" never uses them.
    header_digest: Literal["allowed", "required", "off"] = "allowed"
    data_digest: Literal["allowed", "required", "off"] = "allowed"
    limits: MoverLimits = Field(default_factory=MoverLimits)  # the copy manager's (OPERATING PARAMETERS)
    faults: list[str] = Field(default_factory=list)  # fault injection rules, see scsi.copymgr.faults

    @field_validator("faults")
    @classmethod
    def _faults(cls, v: list[str]) -> list[str]:
        for rule in v:
            parse_fault(rule)  # FaultError (a ValueError) names the rule and the part
        return v

    @field_validator("portal")
    @classmethod
    def _portal(cls, v: str) -> str:
        parse_portal(v)
        return v

    @field_validator("target")
    @classmethod
    def _target(cls, v: str) -> str:
        return check_iscsi_name(v, "target")

    @model_validator(mode="after")
    def _consistent(self) -> "TargetConfig":
        ids = [lun.id for lun in self.luns]
        dup = sorted({i for i in ids if ids.count(i) > 1})
        if dup:
            raise ValueError(f"LUN id(s) {dup} configured more than once")
        names: dict[str, int] = {}
        urls: dict[str, int] = {}
        for n, r in enumerate(self.remote):
            if r.name in names:
                raise ValueError(f"remote.{n}: name {r.name} already used by remote.{names[r.name]}")
            if r.display_url in urls:
                raise ValueError(f"remote.{n} ({r.name}): url {r.display_url} already used by "
                                 f"remote.{urls[r.display_url]}")
            names[r.name], urls[r.display_url] = n, n
        if self.remote and not any(lun.accepts_xcopy for lun in self.luns):
            raise ValueError("remote devices are reached only through EXTENDED COPY, but no LUN has "
                             "accepts_xcopy: true")
        seen: set[str] = set()
        for n, entry in enumerate(self.acl):
            if entry.initiator in seen:
                raise ValueError(f"acl.{n}: initiator {entry.initiator} listed twice")
            seen.add(entry.initiator)
            if entry.luns != "all":
                missing = sorted(set(entry.luns) - set(ids))
                if missing:
                    raise ValueError(f"acl.{n} ({entry.initiator}): LUN(s) {missing} are not configured")
            if isinstance(entry.remote, list):
                unknown = sorted(set(entry.remote) - set(names))
                if unknown:
                    known = ", ".join(names) or "none configured"
                    raise ValueError(f"acl.{n} ({entry.initiator}): remote device(s) {', '.join(unknown)} "
                                     f"are not in remote: ({known})")
        return self

    @property
    def host_port(self) -> tuple[str, int]:
        return parse_portal(self.portal)

    def acl_entry(self, initiator: str) -> AclEntry | None:
        name = initiator.lower() if initiator.startswith("iqn.") else initiator
        for entry in self.acl:
            if entry.initiator == name:
                return entry
        return next((e for e in self.acl if e.initiator == "*"), None)

    def remote_for(self, initiator: str) -> list[str]:
        """Names of the remote devices ``initiator`` (name, or port name ``iqn,i,0x<ISID>``) may reach."""
        entry = self.acl_entry(initiator.split(",", 1)[0])
        return [] if entry is None else entry.remote_names([r.name for r in self.remote])


def pydantic_message(error: dict) -> str:
    """A pydantic error's text without the "Value error, " prefix its wrapper adds to our own ValueErrors."""
    return str(error["msg"]).removeprefix("Value error, ")


def format_validation_error(source: str, err: ValidationError) -> str:
    """Every problem as ``SOURCE: field.path: message (got value)``; secrets are never shown."""
    lines = []
    for e in err.errors():
        where = ".".join(str(p) for p in e["loc"]) or "(top level)"
        value = e.get("input")
        secret = bool(e["loc"]) and (str(e["loc"][-1]).endswith("secret")
                                     or (e["loc"][-1] == "url" and "@" in str(value)))
        shown = "" if isinstance(value, (dict, list)) or value is None or secret else f" (got {value!r})"
        lines.append(f"{source}: {where}: {pydantic_message(e)}{shown}")
    return "; ".join(lines)


def load_config(path: str | os.PathLike[str]) -> TargetConfig:
    """Read and validate a YAML config; LUN paths are relative to the file. Raises ValueError."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise ValueError(f"{p}: {e.strerror}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1} column {mark.column + 1}" if mark else ""
        raise ValueError(f"{p}{where}: not valid YAML: {getattr(e, 'problem', e)}") from None
    if not isinstance(raw, dict):
        raise ValueError(f"{p}: expected a mapping with portal, target, luns, acl")
    for lun in raw.get("luns") or []:
        if isinstance(lun, dict) and isinstance(lun.get("path"), str) and not os.path.isabs(lun["path"]):
            lun["path"] = str(p.parent / lun["path"])
    return parse_config(raw, str(p))


def parse_config(raw: dict, source: str = "config") -> TargetConfig:
    try:
        return TargetConfig.model_validate(raw)
    except ValidationError as e:
        raise ValueError(format_validation_error(source, e)) from None
