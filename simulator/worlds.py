"""Ready-made simulated SANs for capacity runs and demos (no topology file needed).

:func:`dual_fabric` builds the classic redundant layout: two independent
fabrics A and B, each an edge switch (arrays, clients) joined to a core switch
(movers, drives, server) by a trunk of ISLs; every array, mover, drive, client
and the server has one port on each fabric, so every route has two disjoint
alternatives.
"""
from __future__ import annotations

from dataclasses import dataclass

from simulator.calibration import Calibration
from simulator.san import SimSAN

FABRICS = ("A", "B")


@dataclass(frozen=True)
class DualFabricSpec:
    clients: int = 1000
    arrays: int = 10
    movers: int = 8
    drives: int = 16
    isls_per_fabric: int = 4
    port_gbit: float = 4.0
    isl_gbit: float = 8.0
    array_lun_mb_s: float = 200.0
    mover_mb_s: float = 400.0
    mover_concurrency: int = 4
    drive_native_mb_s: float = 120.0  # LTO-4 class
    lan_gbit: float = 10.0
    client_nic_gbit: float = 1.0


def dual_fabric(spec: DualFabricSpec = DualFabricSpec(), calibration: Calibration | None = None, *,
                record_rates: bool = True, detail: bool = True) -> SimSAN:
    """Clients ``C0000..`` with disks ``ARRk:i``, movers ``DM1..``, drives ``DRV01..``, server ``SRV``
    (``detail=False``: keep running totals, not per-flow and per-job records; see :class:`SimSAN`)."""
    san = SimSAN(calibration, record_rates=record_rates, detail=detail)
    fc = san.cal.fc_bytes_s
    for f in FABRICS:
        for i in range(spec.isls_per_fabric):
            san.add_link(f"ISL{f}{i}", fc(spec.isl_gbit), "isl")
        for a in range(spec.arrays):
            san.add_link(f"ARR{a}-{f}", fc(spec.port_gbit))
        for m in range(1, spec.movers + 1):
            san.add_link(f"DM{m}-{f}", fc(spec.port_gbit))
        for d in range(1, spec.drives + 1):
            san.add_link(f"DRV{d:02d}-{f}", fc(spec.port_gbit))
        san.add_link(f"SRV-{f}", fc(spec.port_gbit))
    san.add_lan("LAN", spec.lan_gbit)
    san.add_host("SRV", nic_gbit=spec.lan_gbit, server=True)
    movers = [san.add_mover(f"DM{m}", spec.mover_mb_s, spec.mover_concurrency).name
              for m in range(1, spec.movers + 1)]
    drives = [san.add_drive(f"DRV{d:02d}", spec.drive_native_mb_s).name for d in range(1, spec.drives + 1)]
    for m in movers:
        for d in drives:
            for f in FABRICS:
                san.add_route(m, d, [(f"{m}-{f}", True), (f"{d}-{f}", False)])
    for d in drives:
        for f in FABRICS:
            san.add_route("SRV", d, [(f"SRV-{f}", True), (f"{d}-{f}", False)])
    where: dict[str, tuple[int, int]] = {}  # client or disk -> (array, ISL index)
    for c in range(spec.clients):
        client = f"C{c:04d}"
        arr, isl = c % spec.arrays, c % spec.isls_per_fabric
        disk = f"ARR{arr}:{c // spec.arrays}"
        san.add_host(client, nic_gbit=spec.client_nic_gbit)
        san.add_disk(disk, spec.array_lun_mb_s, owner=client)
        for f in FABRICS:
            san.add_link(f"{client}-{f}", fc(spec.port_gbit))
        san.add_agent(f"SA-{client}", client, serves=[client])
        where[client] = where[disk] = (arr, isl)
    movers_set, drives_set = set(movers), set(drives)

    def routes(a: str, b: str) -> list[list[tuple[str, bool]]]:
        """Client-side routes on first use: one per fabric."""
        if a not in where:
            return []
        arr, isl = where[a]
        if a in san.dev.disks and b in movers_set:  # array -> edge -> ISL -> core -> mover
            return [[(f"ARR{arr}-{f}", True), (f"ISL{f}{isl}", True), (f"{b}-{f}", False)] for f in FABRICS]
        if a in san.dev.disks and san.owners.get(a) == b:  # array -> edge -> client HBA
            return [[(f"ARR{arr}-{f}", True), (f"{b}-{f}", False)] for f in FABRICS]
        if a in san.dev.hosts and b in drives_set:  # client HBA -> edge -> ISL -> core -> drive
            return [[(f"{a}-{f}", True), (f"ISL{f}{isl}", True), (f"{b}-{f}", False)] for f in FABRICS]
        return []

    san.route_factory = routes
    return san
