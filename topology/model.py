"""The SAN as data: pydantic models for a topology file (YAML or JSON).

Names are the keys other objects refer to. Ports are referred to by WWPN;
switch ports by ``SWITCH/INDEX``; LUNs by ``ARRAY:NUMBER`` (or their NAA
designator). Cross-references are checked by :mod:`topology.references`.

Calibration fields used by the simulator, with their defaults:

=========================  ==========  =============================================
field                      default     meaning
=========================  ==========  =============================================
Link.speed_gbit            2.0         FC link speed, Gbit/s (2G FC, the TSM 5.x era)
Lan.speed_gbit             1.0         LAN speed, Gbit/s
Host.lan_speed_gbit        1.0         host NIC speed, Gbit/s
DataMover.throughput_mb_s  100.0       copy throughput, MB/s
DataMover.concurrency      4           concurrent EXTENDED COPY commands
Drive.native_mb_s          15.0        tape native rate, MB/s (LTO-1: 15-20 MB/s)
Array.read_mb_s            200.0       LUN read/write rate, MB/s
=========================  ==========  =============================================
"""
from __future__ import annotations

from enum import Enum
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    field_validator,
)

from topology.units import parse_size
from topology.wwn import parse_naa, parse_wwpn

Wwpn = Annotated[str, BeforeValidator(parse_wwpn)]
Naa = Annotated[str, BeforeValidator(parse_naa)]
Size = Annotated[int, BeforeValidator(parse_size)]
Name = Annotated[str, Field(min_length=1, max_length=64)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False, populate_by_name=True)


class Role(str, Enum):
    client = "client"
    server = "server"
    storage_agent = "storage_agent"


class FileSystem(str, Enum):
    NTFS = "NTFS"
    FAT = "FAT"
    FAT32 = "FAT32"
    RAW = "RAW"
    EXT3 = "EXT3"
    OTHER = "OTHER"

    @classmethod
    def _missing_(cls, value):  # accept "ntfs", "raw"
        if isinstance(value, str):
            for member in cls:
                if member.value == value.upper():
                    return member
        return None


class DataFormat(str, Enum):
    NATIVE = "NATIVE"
    NONBLOCK = "NONBLOCK"

    @classmethod
    def _missing_(cls, value):
        if isinstance(value, str):
            for member in cls:
                if member.value == value.upper():
                    return member
        return None


class HbaPort(_Strict):
    wwpn: Wwpn
    online: bool = True


class Host(_Strict):
    """A client, the backup server or a storage agent host."""

    name: Name
    roles: list[Role] = Field(default_factory=lambda: [Role.client])
    lan_address: str | None = None
    lan_speed_gbit: float = Field(1.0, gt=0)
    hba_ports: list[HbaPort] = Field(default_factory=list)
    online: bool = True


class Switch(_Strict):
    name: Name
    port_count: int = Field(64, ge=1, le=4096)
    online: bool = True


class Link(_Strict):
    """A cable: N_port to switch port, or switch port to switch port (an ISL)."""

    name: Name | None = None
    a: str
    b: str
    speed_gbit: float = Field(2.0, gt=0)
    online: bool = True


class Zone(_Strict):
    name: Name
    members: list[str] = Field(min_length=1)


class ZoneSet(_Strict):
    name: Name
    zones: list[str]


class Lun(_Strict):
    number: int = Field(ge=0, le=16383)
    naa: Naa
    serial: str = ""
    size: Size = 0
    name: str | None = None


class Masking(_Strict):
    """Which LUN numbers an initiator sees (through all, or only the listed, array ports)."""

    initiator: Wwpn
    luns: list[int]
    target_ports: list[Wwpn] | None = None


class Array(_Strict):
    name: Name
    ports: list[HbaPort] = Field(min_length=1)
    luns: list[Lun] = Field(default_factory=list)
    masking: list[Masking] = Field(default_factory=list)
    online: bool = True
    read_mb_s: float = Field(200.0, gt=0)


class DataMover(_Strict):
    """A copy manager that executes EXTENDED COPY (TSM ``DEFINE DATAMOVER TYPE=SCSI``)."""

    name: Name
    ports: list[HbaPort] = Field(min_length=1)
    naa: Naa | None = None
    serial: str = ""
    online: bool = True
    dataformat: DataFormat = DataFormat.NONBLOCK
    throughput_mb_s: float = Field(100.0, gt=0)
    concurrency: int = Field(4, ge=1)
    max_segment_bytes: Size | None = None
    max_descriptors: int | None = Field(None, ge=1)


class Drive(_Strict):
    name: Name
    wwpn: Wwpn
    lun: int = Field(0, ge=0)
    serial: str = ""
    naa: Naa | None = None
    online: bool = True
    native_mb_s: float = Field(15.0, gt=0)


class Library(_Strict):
    name: Name
    libtype: str = "SCSI"
    online: bool = True
    drives: list[Drive] = Field(default_factory=list)


class DevClass(_Strict):
    name: Name
    devtype: str = "LTO"
    library: str | None = None

    @field_validator("devtype")
    @classmethod
    def _upper(cls, v: str) -> str:
        return v.upper()


class StoragePool(_Strict):
    name: Name
    devclass: str
    dataformat: DataFormat = DataFormat.NATIVE
    disk_luns: list[str] = Field(default_factory=list)

    @property
    def non_blocked(self) -> bool:
        return self.dataformat is DataFormat.NONBLOCK


class MgmtClass(_Strict):
    name: Name
    destination: str


class StorageAgent(_Strict):
    name: Name
    host: str
    clients: list[str] = Field(default_factory=list)
    online: bool = True


class Volume(_Strict):
    """A client volume: where it lives on the SAN and where its image goes."""

    client: str
    mount: str = Field(min_length=1)
    filesystem: FileSystem
    lun: str
    offset: Size = 0
    size: Size
    mgmtclass: str

    @property
    def id(self) -> str:
        return f"{self.client}:{self.mount}"


class TsmDisk(_Strict):
    """``DEFINE DISK node disk WWN= SERIAL=``: a client disk known to the server."""

    node: str
    name: str
    naa: Naa | None = None
    serial: str = ""
    online: bool = True


class TsmPath(_Strict):
    """``DEFINE PATH source dest SRCTYPE= DESTTYPE= ...``: what the server believes a mover sees."""

    source: str
    destination: str
    srctype: Literal["DATAMOVER", "SERVER"]
    desttype: Literal["DISK", "DRIVE", "LIBRARY"]
    node: str | None = None
    library: str | None = None
    lun: int | None = None
    device: str | None = None
    online: bool = True


class Lan(_Strict):
    name: Name = "LAN"
    speed_gbit: float = Field(1.0, gt=0)
    online: bool = True


class Topology(_Strict):
    """One backup domain: the fabric, the devices, the policy and the client volumes."""

    name: str = "topology"
    lan: Lan = Field(default_factory=Lan)
    server: str | None = None
    hosts: list[Host] = Field(default_factory=list)
    switches: list[Switch] = Field(default_factory=list)
    links: list[Link] = Field(default_factory=list)
    zones: list[Zone] = Field(default_factory=list)
    zonesets: list[ZoneSet] = Field(default_factory=list)
    active_zonesets: list[str] = Field(default_factory=list)
    arrays: list[Array] = Field(default_factory=list)
    datamovers: list[DataMover] = Field(default_factory=list)
    datamover_order: list[str] = Field(default_factory=list)
    libraries: list[Library] = Field(default_factory=list)
    devclasses: list[DevClass] = Field(default_factory=list)
    stgpools: list[StoragePool] = Field(default_factory=list)
    mgmtclasses: list[MgmtClass] = Field(default_factory=list)
    storage_agents: list[StorageAgent] = Field(default_factory=list)
    volumes: list[Volume] = Field(default_factory=list)
    tsm_disks: list[TsmDisk] = Field(default_factory=list)
    tsm_paths: list[TsmPath] = Field(default_factory=list)
    _warnings: list[str] = PrivateAttr(default_factory=list)
    # The TopologyIndex built while checking references, reused by verification (see index.index_of).
    _index: object = PrivateAttr(default=None)

    @property
    def warnings(self) -> list[str]:
        """Suspicious but legal things found while loading (e.g. a zone member matching no port)."""
        return self._warnings

    def movers_in_order(self) -> list[DataMover]:
        """Data movers in the order a backup tries them (``datamover_order`` first)."""
        by_name = {m.name: m for m in self.datamovers}
        ordered = [by_name[n] for n in self.datamover_order if n in by_name]
        return ordered + [m for m in self.datamovers if m.name not in self.datamover_order]
