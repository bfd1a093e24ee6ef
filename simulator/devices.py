"""Device models: how each SAN component turns bytes into resource work.

Each device owns one resource of the flow network and says, for a given
transfer, what weight the transfer carries on it (work per byte):

* a disk LUN pays a positioning time per extent, so a fragmented read costs
  more disk time per byte than a sequential one (``weight > 1``), and a
  latency per READ/WRITE command that a queue of commands hides: the data
  mover keeps ``mover_io_depth`` commands of ``mover_chunk`` bytes in flight
  on each device, its reads and writes overlapped (:func:`queued_commands`);
* a tape drive writes ``1 / compression`` native bytes per byte and must be
  fed at its slowest streaming speed, or it shoe-shines (:class:`Streaming`);
* a data mover pays a command handshake per EXTENDED COPY and limits how many
  copies run at once;
* a CPU is charged CPU seconds per byte according to the data path.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import simpy

from simulator.calibration import MiB, Calibration
from simulator.flows import Resource, Streaming


def _overhead_weight(nbytes: float, overhead_s: float, rate: float) -> float:
    """Work per byte moved: 1 + ``overhead_s`` of fixed cost at ``rate`` spread over ``nbytes``."""
    if nbytes <= 0:
        return 1.0
    return 1.0 + overhead_s * rate / nbytes


def queued_commands(nbytes: float, chunk: int, depth: int, extents: int = 1) -> float:
    """Command latencies a stream of ``nbytes`` pays in full when ``depth`` commands of at most ``chunk``
    bytes are in flight: each extent is cut into chunks, and a queue of ``depth`` overlaps their latencies
    (the mover's pipelined reads and writes, scsi/copymgr/blockcopy.py; depth 1: a synchronous stream)."""
    if nbytes <= 0:
        return 0.0
    commands = math.ceil(nbytes / max(1, chunk)) + max(extents, 1) - 1  # a chunk per extent may be short
    return commands / max(1, depth)


@dataclass(eq=False, slots=True)  # one per client: no per-instance dict
class DiskLun:
    name: str
    resource: Resource
    positioning_s: float
    command_s: float = 0.0  # per READ/WRITE latency beyond the transfer (hidden by a queue)
    ready: bool = True
    sense: bytes = b""  # what the LUN answers while not ready

    def weight(self, nbytes: float, extents: int, commands: float = 0.0) -> float:
        """Disk work per byte: 1 + the positioning time and the unhidden command latencies (``commands``,
        see :func:`queued_commands`) expressed in bytes not transferred."""
        return _overhead_weight(nbytes, max(extents, 1) * self.positioning_s + commands * self.command_s,
                                self.resource.nominal)


@dataclass(eq=False)
class DataMover:
    name: str
    resource: Resource
    slots: simpy.Resource
    buffer: float
    command_s: float
    state: str = "ok"  # "ok", "hung", "resetting"
    hang_since: float = 0.0
    # called when the mover hangs: exact-mode copies in progress stop their I/O (a hung mover moves nothing)
    on_hang: list[Callable[[], Any]] = field(default_factory=list)

    def weight(self, nbytes: float, commands: int) -> float:
        """Mover work per byte: 1 + the EXTENDED COPY handshakes expressed in bytes."""
        return _overhead_weight(nbytes, commands * self.command_s, self.resource.nominal)


@dataclass(eq=False)
class TapeDrive:
    name: str
    resource: Resource  # capacity in native bytes/s
    compression: float
    min_streaming: float  # native bytes/s
    buffer: float
    reposition_s: float
    mount: simpy.Resource  # one writing session at a time
    command_s: float = 0.0  # per WRITE/READ latency beyond the transfer (a disk-pool LUN's; hidden by a queue)
    failed: bool = False
    sense: bytes = b""  # what the drive answers while failed

    @property
    def weight(self) -> float:
        return 1.0 / self.compression

    def stream_weight(self, nbytes: float, commands: float = 0.0) -> float:
        """Native work per flow byte: ``1 / compression`` + the unhidden command latencies in native bytes."""
        if nbytes <= 0 or commands <= 0 or self.command_s <= 0:
            return self.weight
        return self.weight + commands * self.command_s * self.resource.nominal / nbytes

    def streaming(self, upstream_buffer: float = 0.0) -> Streaming:
        """Feed requirement in *flow* bytes/s; upstream buffers (the mover's) add to the drive's."""
        return Streaming(min_rate=self.min_streaming * self.compression, buffer=self.buffer + upstream_buffer,
                         reposition_s=self.reposition_s, device=self.name)


@dataclass(eq=False, slots=True)  # one per client: no per-instance dict
class Host:
    """A client, the backup server or a storage-agent host: CPU and a LAN port."""

    name: str
    cpu: Resource  # CPU seconds per second
    nic: Resource | None = None
    online: bool = True


@dataclass(eq=False, slots=True)  # one per client: no per-instance dict
class StorageAgent:
    name: str
    resource: Resource
    host: str
    up: bool = True


@dataclass(eq=False)
class Lan:
    name: str
    resource: Resource
    up: bool = True


@dataclass
class Components:
    """Every device of a simulated SAN, by name."""

    disks: dict[str, DiskLun] = field(default_factory=dict)
    movers: dict[str, DataMover] = field(default_factory=dict)
    drives: dict[str, TapeDrive] = field(default_factory=dict)
    hosts: dict[str, Host] = field(default_factory=dict)
    agents: dict[str, StorageAgent] = field(default_factory=dict)
    lans: dict[str, Lan] = field(default_factory=dict)


def tape_drive(env: simpy.Environment, name: str, resource: Resource, cal: Calibration) -> TapeDrive:
    native = resource.nominal
    return TapeDrive(name, resource, cal.tape_compression, native * cal.tape_min_streaming_fraction,
                     cal.tape_buffer_mib * MiB, cal.tape_reposition_s, simpy.Resource(env, capacity=1),
                     command_s=cal.tape_command_ms / 1000)
