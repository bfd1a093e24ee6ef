"""Synthetic dual-fabric domains of any size, for benchmarks and scale tests.

Each fabric has two core switches and edge switches with one ISL to each core;
clients have one HBA per fabric; arrays, data movers and tape drives are split
across both fabrics. Everything is zoned and masked correctly, so every volume
has server-free paths. Returns plain data (what a YAML file would hold).
"""
from __future__ import annotations


def _wwpn(prefix: int, n: int) -> str:
    raw = f"{prefix:02x}{n:014x}"
    return ":".join(raw[i:i + 2] for i in range(0, 16, 2))


def generate_domain(ports: int = 10_000, luns: int = 5_000, volumes: int = 2_000, *, arrays: int = 50,
                    ports_per_array: int = 8, movers: int = 20, drives: int = 40,
                    edge_ports: int = 128) -> dict:
    """A topology document with about ``ports`` N_ports, ``luns`` LUNs and ``volumes`` volumes."""
    fixed = arrays * ports_per_array + movers * 2 + drives + 2
    clients = max(volumes, (ports - fixed) // 2)
    fabrics = ("A", "B")
    doc: dict = {"name": f"synthetic-{ports}p", "server": "TSMSRV", "hosts": [], "switches": [], "links": [],
                 "zones": [], "zonesets": [], "active_zonesets": [], "arrays": [], "datamovers": [],
                 "libraries": [], "devclasses": [{"name": "LTOCLASS", "devtype": "LTO", "library": "LIB1"}],
                 "stgpools": [{"name": "SFPOOL", "devclass": "LTOCLASS", "dataformat": "NONBLOCK"}],
                 "mgmtclasses": [{"name": "SF1", "destination": "SFPOOL"}], "storage_agents": [], "volumes": []}
    zones = {f: [] for f in fabrics}
    free = {}  # fabric -> [edge switch index, next free port]

    def plug(fabric: str, wwpn: str) -> None:
        edge, port = free[fabric]
        if port >= edge_ports - 2:
            edge, port = edge + 1, 0
            add_edge(fabric, edge)
        doc["links"].append({"a": wwpn, "b": f"E{fabric}{edge}/{port}"})
        free[fabric] = [edge, port + 1]

    def add_edge(fabric: str, edge: int) -> None:
        name = f"E{fabric}{edge}"
        doc["switches"].append({"name": name, "port_count": edge_ports})
        for c in (0, 1):
            doc["links"].append({"name": f"ISL-{name}-C{fabric}{c}", "a": f"{name}/{edge_ports - 2 + c}",
                                 "b": f"C{fabric}{c}/{edge}"})

    for f in fabrics:
        for c in (0, 1):
            doc["switches"].append({"name": f"C{f}{c}", "port_count": 4096})
        free[f] = [0, 0]
        add_edge(f, 0)

    array_ports: dict[tuple[int, str], list[str]] = {}
    serial = 0
    for a in range(arrays):
        ports_a = []
        for k in range(ports_per_array):
            f = fabrics[k % 2]
            w = _wwpn(0x20, a * 100 + k)
            ports_a.append({"wwpn": w})
            array_ports.setdefault((a, f), []).append(w)
            plug(f, w)
        doc["arrays"].append({"name": f"ARR{a}", "ports": ports_a, "luns": [], "masking": []})
    mover_ports = {f: [] for f in fabrics}
    for m in range(movers):
        ports_m = []
        for k, f in enumerate(fabrics):
            w = _wwpn(0x21, m * 10 + k)
            ports_m.append({"wwpn": w})
            mover_ports[f].append(w)
            plug(f, w)
        doc["datamovers"].append({"name": f"DM{m}", "ports": ports_m, "serial": f"DM-{m:04d}"})
    drive_list = []
    for d in range(drives):
        f = fabrics[d % 2]
        w = _wwpn(0x50, d)
        plug(f, w)
        drive_list.append({"name": f"DRV{d}", "wwpn": w, "serial": f"LTO-{d:04d}"})
        zones[f].append(w)
    doc["libraries"].append({"name": "LIB1", "drives": drive_list})
    srv = {"name": "TSMSRV", "roles": ["server"], "lan_address": "10.0.0.2",
           "hba_ports": [{"wwpn": _wwpn(0x10, 0)}, {"wwpn": _wwpn(0x10, 1)}]}
    doc["hosts"].append(srv)
    for k, f in enumerate(fabrics):
        plug(f, srv["hba_ports"][k]["wwpn"])
    for k, f in enumerate(fabrics):
        mover_zone_members = mover_ports[f] + [w for (a, ff), ws in array_ports.items() if ff == f for w in ws] \
            + zones[f]
        doc["zones"].append({"name": f"Z{f}_MOVERS", "members": mover_zone_members})
        # the server writes the pool's drives itself on the LAN path
        doc["zones"].append({"name": f"Z{f}_SERVER", "members": [srv["hba_ports"][k]["wwpn"], *zones[f]]})
    client_zones = {f: [f"Z{f}_SERVER"] for f in fabrics}
    lun_owner: list[tuple[int, int, int]] = []  # (client, array, number)
    for c in range(clients):
        hba = [_wwpn(0x10, 1000 + c * 2 + k) for k in range(2)]
        doc["hosts"].append({"name": f"C{c}", "lan_address": f"10.{1 + c // 65000}.{(c // 250) % 256}.{c % 250}",
                             "hba_ports": [{"wwpn": w} for w in hba]})
        for k, f in enumerate(fabrics):
            plug(f, hba[k])
    all_mover_ports = mover_ports["A"] + mover_ports["B"]
    for n in range(luns):
        a, number = n % arrays, n // arrays
        c = n % clients
        serial += 1
        doc["arrays"][a]["luns"].append({"number": number, "naa": f"6{n:031x}", "serial": f"S{serial:08d}",
                                         "size": 100 * 2**30})
        lun_owner.append((c, a, number))
    for a in range(arrays):
        numbers = [lun["number"] for lun in doc["arrays"][a]["luns"]]
        doc["arrays"][a]["masking"] = [{"initiator": w, "luns": numbers} for w in all_mover_ports]
    per_client: dict[tuple[int, int], list[int]] = {}
    for c, a, number in lun_owner:
        per_client.setdefault((c, a), []).append(number)
    for (c, a), numbers in per_client.items():
        host = doc["hosts"][1 + c]
        for k, f in enumerate(fabrics):
            doc["arrays"][a]["masking"].append({"initiator": host["hba_ports"][k]["wwpn"], "luns": numbers})
            name = f"Z{f}_C{c}_ARR{a}"
            doc["zones"].append({"name": name, "members": [host["hba_ports"][k]["wwpn"], *array_ports[(a, f)]]})
            client_zones[f].append(name)
    for f in fabrics:
        doc["zonesets"].append({"name": f"ZS_{f}", "zones": [f"Z{f}_MOVERS", *client_zones[f]]})
        doc["active_zonesets"].append(f"ZS_{f}")
    for v in range(volumes):
        c, a, number = lun_owner[v]
        doc["volumes"].append({"client": f"C{c}", "mount": f"V{v}:", "filesystem": "NTFS",
                               "lun": f"ARR{a}:{number}", "size": 50 * 2**30, "mgmtclass": "SF1"})
    return doc


def count_ports(doc: dict) -> int:
    n = sum(len(h["hba_ports"]) for h in doc["hosts"]) + sum(len(a["ports"]) for a in doc["arrays"])
    n += sum(len(m["ports"]) for m in doc["datamovers"]) + sum(len(lib["drives"]) for lib in doc["libraries"])
    return n
