"""Calibration of the simulated devices: the numbers a scenario file may carry.

Every field has a documented default.  Where the topology model already
carries a figure (link speed, mover throughput and concurrency, tape native
rate, array rate) the topology wins; these defaults fill in what it lacks.
Each default's docstring names its source (a vendor data sheet or the TSM
performance guide); figures marked *assumed* have no published TSM measurement and are
order-of-magnitude choices, to be replaced by site measurements.
"""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

MB = 1_000_000
MiB = 1 << 20


class PathCpu(BaseModel):
    """CPU milliseconds per MiB moved, per data path (server-free's offload is measured, not assumed)."""

    model_config = ConfigDict(extra="forbid")
    server_free: float = Field(0.0, ge=0, description="no data touches the host")
    lan_free: float = Field(4.0, ge=0, description="host reads its disk and writes the SAN tape (assumed)")
    lan: float = Field(6.0, ge=0, description="disk read + TCP send, or TCP receive + tape write (assumed)")

    def per_byte(self, path: str) -> float:
        """CPU seconds per byte on ``path`` ("server-free", "lan-free" or "lan")."""
        return {"server-free": self.server_free, "lan-free": self.lan_free, "lan": self.lan}[path] / 1000 / MiB


class Calibration(BaseModel):
    """Device behaviour the topology does not describe.  Units are in the field names."""

    model_config = ConfigDict(extra="forbid")

    # disks
    disk_mb_s: float = Field(200.0, gt=0, description="sequential LUN rate when the topology has none")
    disk_positioning_ms: float = Field(
        8.0, ge=0, description="seek + rotation paid once per extent (non-contiguous segment): gaps cost time")
    disk_command_ms: float = Field(
        0.0, ge=0, description="per READ/WRITE command latency beyond the transfer; a queue of commands hides "
                               "it (the mover's io depth), a synchronous stream pays it in full")
    lun_max_transfer_kib: int = Field(
        0, ge=0, description="Block Limits VPD MAXIMUM TRANSFER LENGTH of the LUNs (0: not reported)")
    lun_optimal_transfer_kib: int = Field(
        0, ge=0, description="Block Limits VPD OPTIMAL TRANSFER LENGTH of the LUNs (0: not reported)")
    # links
    fc_mb_s_per_gbit: float = Field(
        100.0, gt=0, description="payload MB/s per Gbit/s of FC line rate (8b/10b: 2 Gb FC ~ 200 MB/s)")
    lan_efficiency: float = Field(0.9, gt=0, le=1, description="TCP payload share of the LAN line rate")
    # data movers
    mover_mb_s: float = Field(100.0, gt=0, description="copy throughput when the topology has none")
    mover_concurrency: int = Field(4, ge=1, description="concurrent EXTENDED COPY commands (topology wins)")
    mover_buffer_mib: float = Field(16.0, ge=0, description="mover buffer, smooths the feed to tape")
    mover_command_ms: float = Field(
        5.0, ge=0, description="per EXTENDED COPY handshake (RECEIVE COPY RESULTS polling included; assumed)")
    mover_reset_s: float = Field(60.0, ge=0, description="a reset mover is unavailable this long")
    mover_io_depth: int = Field(
        16, ge=1, le=64, description="READ/WRITE commands the mover keeps in flight per copy on each device "
                                     "(datamover serve's io_depth)")
    mover_chunk_kib: int = Field(
        2048, ge=4, description="bytes per READ/WRITE the mover asks for (chunk_bytes) before the LUNs' Block "
                                "Limits lower or round it")
    verify_mb_s: float = Field(
        0.0, ge=0, description="rate at which the backup server reads an object back from the pool and digests "
                               "it, on the pool device's time (0: the device's own rate)")
    # tape drives
    tape_native_mb_s: float = Field(15.0, gt=0, description="LTO-1 class native rate (15-20 MB/s)")
    tape_compression: float = Field(
        1.0, ge=1, description="drive compression ratio of the data written (1 = incompressible)")
    tape_min_streaming_fraction: float = Field(
        0.5, gt=0, le=1, description="slowest speed-matched rate as a fraction of native; below it: shoe-shine")
    tape_buffer_mib: float = Field(64.0, gt=0, description="drive buffer emptied per start/stop cycle")
    tape_reposition_s: float = Field(2.5, ge=0, description="back-hitch time of one start/stop cycle")
    tape_mount_s: float = Field(0.0, ge=0, description="mount + position time before a session writes")
    tape_command_ms: float = Field(
        0.0, ge=0, description="per WRITE/READ command latency of a drive or disk-pool device (as disk_command_ms)")
    # hosts, LAN-free, LAN
    host_cpu_cores: float = Field(2.0, gt=0, description="CPU seconds per second of a client or server")
    storage_agent_mb_s: float = Field(80.0, gt=0, description="storage agent throughput (assumed)")
    client_cpu_ms_per_mib: PathCpu = Field(default_factory=PathCpu)
    server_cpu_ms_per_mib: PathCpu = Field(default_factory=lambda: PathCpu(server_free=0.05, lan_free=0.05))
    # SCSI timing
    scsi_timeout_s: float = Field(300.0, gt=0, description="initiator timeout for one EXTENDED COPY")

    # -- derived -------------------------------------------------------------------
    def fc_bytes_s(self, gbit: float) -> float:
        return gbit * self.fc_mb_s_per_gbit * MB

    def lan_bytes_s(self, gbit: float) -> float:
        return gbit * 1e9 / 8 * self.lan_efficiency

    def mover_chunk(self, block: int = 512) -> int:
        """Bytes per READ/WRITE of the mover: ``mover_chunk_kib`` lowered to the LUNs' maximum transfer and
        rounded down to their optimal one (Block Limits VPD, SBC-3 r22 6.5.3), as scsi/copymgr/blockcopy.py
        ``chunk_size`` does."""
        size = self.mover_chunk_kib * 1024
        if self.lun_max_transfer_kib:
            size = min(size, self.lun_max_transfer_kib * 1024)
        optimal = self.lun_optimal_transfer_kib * 1024
        if optimal and size > optimal:
            size -= size % optimal
        return max(block, size - size % block)
