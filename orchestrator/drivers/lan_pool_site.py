"""The site file's ``lan_pool:``: local mode's LAN path, the pool as the backup server would open it.

Split from site.py.  In local mode the job's process is client and server in
one; its LAN path writes these paths itself (no listener).  The open LAN data
process that once served them is retired, and a site file naming it is
refused with the way out.
"""
from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from orchestrator.drivers.pool_site import PoolSite


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


def check_lan_pool(lan_pool: LanPoolSite | None, pool: PoolSite, p: Path) -> None:
    """lan_pool names the site's own pool volumes (disk) or drives (tape): an unknown name, or a disk volume the
    LAN path could not reach, or a tape pool's ``lan_drive`` it does not open, is refused before any job starts."""
    if pool.lan_drive is not None and lan_pool is not None and pool.lan_drive not in lan_pool.tapes:
        raise ValueError(f"{p}: pool.lan_drive: {pool.lan_drive!r} is not in lan_pool.tapes (the drive as the "
                         "LAN path opens it)")
    if lan_pool is None:
        return
    names = {v.name for v in pool.volumes}
    for key, known in (("volumes", names), ("tapes", set(pool.drive_names()))):
        for name in getattr(lan_pool, key):
            if name not in known:
                raise ValueError(f"{p}: lan_pool.{key}.{name}: not one of the pool's "
                                 f"{'volumes' if key == 'volumes' else 'drives'} ({', '.join(sorted(known)) or 'none'})")
    if not pool.is_tape:
        missing = sorted(names - set(lan_pool.volumes))
        if missing:
            raise ValueError(f"{p}: lan_pool.volumes: no path for pool volume {', '.join(missing)} (the LAN path "
                             "could not reach an image placed there)")
