"""The server's pool volumes and their space, behind the catalogue: clients never choose an offset.

``DEFINE VOLUME pool path CAPacity=size`` makes (or adopts) a file or block
device as a pool volume.  A node's BEGIN asks for an object; the catalogue
reserves its slot on a volume of the destination pool that the node's policy
binds, and the session gets a *grant*: that object's image range, nothing
else.  PUTs are checked against the grant and recorded; COMMIT is accepted
only when every stored byte it names was granted and written in this session.
Each session thread opens its own catalogue connection (SQLite WAL with
BEGIN IMMEDIATE serialises the allocations); objects left pending by a
session that ends, or by a server that died, are swept to abandoned.
"""
from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

from orchestrator.catalogue import Catalogue
from orchestrator.options.values import parse_size


class Pools:
    def __init__(self, data: Path, store: Any):
        self.path = data / "catalogue.sqlite"
        self.store = store
        self._processes: dict[int, dict] = {}
        self._lock = threading.Lock()
        with self.catalogue() as cat:
            swept = cat.sweep_pending()
        if swept:
            store.log("ANR1341I", f"{swept} pending object(s) of jobs that did not finish swept to abandoned "
                                  "on start.")
        self.reclaim()

    def catalogue(self) -> Catalogue:
        return Catalogue(self.path)

    def close(self) -> None:
        pass

    # -- volumes -------------------------------------------------------------------------------
    def define_volume(self, pos: list[str], params: dict) -> str:
        if len(pos) != 2:
            raise ValueError("DEFINE VOLUME needs POOL PATH (and CAPACITY= for a new file)")
        pool, path = pos[0].upper(), Path(pos[1])
        if not self.store.defined("STGPOOL", pool):
            raise LookupError(f"storage pool {pool} is not defined (DEFINE STGPOOL {pool} DEVCLASS)")
        from orchestrator.server.tape import tape_pool

        tp = tape_pool(self.store, pool)
        if tp is not None:
            return self._define_cartridge(tp, pos[1].upper(), params)
        if "DRIVE" in params:
            raise ValueError(f"DRIVE={params['DRIVE']}: storage pool {pool} is a disk pool; DRIVE= names the "
                             "drive a tape pool's cartridge sits in")
        if not path.is_absolute():
            raise ValueError(f"volume {path}: give an absolute path on the server")
        if "CAPACITY" in params:
            capacity = parse_size(params["CAPACITY"], default_unit="m")
            if not path.exists():
                with open(path, "wb") as f:
                    f.truncate(capacity)
        elif path.exists():
            with open(path, "rb") as f:
                capacity = f.seek(0, os.SEEK_END)
        else:
            raise ValueError(f"volume {path} does not exist; give CAPACITY= to create it")
        designator = params.get("DESIGNATOR", "").lower()
        if designator and (len(designator) not in (16, 32) or any(c not in "0123456789abcdef" for c in designator)):
            raise ValueError(f"DESIGNATOR={params['DESIGNATOR']}: give the volume's NAA designator as the data "
                             "mover sees it (VPD page 83h), 16 or 32 hex digits")
        with self.catalogue() as cat:
            if cat.db.execute("SELECT 1 FROM pool_volumes WHERE name=?", (str(path),)).fetchone():
                raise ValueError(f"volume {path} is already defined")
            cat.add_pool_volume(pool, str(path), str(path), capacity)
        if designator:  # server-free copies name this volume by it in their target descriptors
            self.store.set_setting(f"designator:{path}", designator)
        return f"ANR2206I Volume {path} defined in storage pool {pool} ({capacity} bytes)."

    def _define_cartridge(self, tp: Any, name: str, params: dict) -> str:
        """A tape pool's volume: a cartridge in one of the pool's drives (a manual library)."""
        drive = params.get("DRIVE", "").upper()
        if not drive:
            raise ValueError(f"volume {name} of tape pool {tp.name}: give DRIVE= (the drive it sits in: "
                             f"{', '.join(tp.drives)})")
        if drive not in tp.drives:
            raise LookupError(f"DRIVE={drive}: not a drive of tape pool {tp.name} with an online PATH from the "
                              f"server ({', '.join(tp.drives)})")
        capacity = parse_size(params.get("CAPACITY", "800g"), default_unit="m")
        with self.catalogue() as cat:
            if cat.db.execute("SELECT 1 FROM pool_volumes WHERE name=?", (name,)).fetchone():
                raise ValueError(f"volume {name} is already defined")
            if cat.db.execute("SELECT 1 FROM pool_volumes WHERE device=?", (drive,)).fetchone():
                raise ValueError(f"drive {drive} already holds a volume")
            cat.add_pool_volume(tp.name, name, drive, capacity)
        return f"ANR2206I Volume {name} defined in tape storage pool {tp.name} (in drive {drive}, {capacity} bytes)."

    def volumes(self) -> list[dict]:
        with self.catalogue() as cat:
            return [dict(r, used=r["next_offset"]) for r in
                    cat.db.execute("SELECT name, pool, capacity, next_offset FROM pool_volumes ORDER BY id")]

    def reclaim(self) -> int:
        """Give back the space abandoned objects hold at the end of each volume; returns bytes reclaimed.

        A volume's allocation point moves back to the end of its last object
        that is pending, active or inactive (in one IMMEDIATE transaction, so
        a concurrent allocation is either counted or waits).  Recomputing is
        idempotent: the same space is never given back twice.
        """
        total = 0
        with self.catalogue() as cat:
            cat.db.execute("BEGIN IMMEDIATE")
            try:
                for vol in cat.db.execute("SELECT id, name, next_offset FROM pool_volumes").fetchall():
                    row = cat.db.execute("SELECT max(pool_offset + image_size) AS e FROM objects WHERE "
                                         "pool_volume_id=? AND state != 'abandoned'", (vol["id"],)).fetchone()
                    end = row["e"] or 0
                    if end < vol["next_offset"]:
                        cat.db.execute("UPDATE pool_volumes SET next_offset=? WHERE id=?", (end, vol["id"]))
                        self.store.log("ANR1342I", f"{vol['next_offset'] - end} bytes of abandoned objects "
                                                   f"reclaimed on volume {vol['name']}.")
                        total += vol["next_offset"] - end
                cat.db.execute("COMMIT")
            except BaseException:
                cat.db.execute("ROLLBACK")
                raise
        return total

    # -- objects -------------------------------------------------------------------------------
    def objects_of(self, node: str) -> list:
        with self.catalogue() as cat:
            return cat.query(node, inactive=True)

    def occupancy(self, node: str | None) -> list[dict]:
        with self.catalogue() as cat:
            sql = ("SELECT n.name AS node, f.name AS filespace, v.pool AS pool, count(*) AS objects,"
                   " sum(o.stored_size) AS stored FROM objects o JOIN filespaces f ON f.id = o.filespace_id"
                   " JOIN nodes n ON n.id = f.node_id JOIN pool_volumes v ON v.id = o.pool_volume_id"
                   " WHERE o.state IN ('active', 'inactive') AND (? IS NULL OR n.name = ? COLLATE NOCASE)"
                   " GROUP BY n.name, f.name, v.pool ORDER BY n.name, f.name")
            return [dict(r) for r in cat.db.execute(sql, (node, node))]

    # -- processes (sessions moving data) ------------------------------------------------------
    def process_started(self, key: int, description: str) -> None:
        with self._lock:
            self._processes[key] = {"id": key, "description": description, "status": "running"}

    def process_status(self, key: int, status: str) -> None:
        with self._lock:
            if key in self._processes:
                self._processes[key]["status"] = status

    def process_ended(self, key: int) -> None:
        with self._lock:
            self._processes.pop(key, None)

    def processes(self) -> list[dict]:
        with self._lock:
            return [dict(p) for p in self._processes.values()]
