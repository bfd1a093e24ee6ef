"""Eligibility: which path a job starts on, and why not server-free.

Server-free needs (as the TSM 5.1 client and administrator guides describe
it): enableserverfree yes, an NTFS or raw volume (never FAT/FAT32), a management class whose destination pool
is non-blocked, and a verified path disk -> data mover -> pool device (the
topology verdict).  Server-free data is never compressed or encrypted: TSM
goes server-free anyway and simply does not compress or
encrypt that data; the decision carries a note saying so, which the job
report repeats.  Otherwise the job starts LAN-free, else LAN, and every
reason is reported.
"""
from __future__ import annotations

from typing import Any, Iterable

from pydantic import BaseModel, Field

from orchestrator.ops import PathKind

SERVER_FREE_FILE_SYSTEMS = ("ntfs", "raw")


class NoPathError(ValueError):
    """Neither server-free, LAN-free nor LAN can move this volume."""


class Eligibility(BaseModel):
    start: PathKind
    reasons: list[str] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)
    movers: list[str] = Field(default_factory=list)
    lan_free: bool = False
    lan: bool = True

    @property
    def server_free(self) -> bool:
        return self.start == PathKind.SERVER_FREE


def _problem(verdict: Any, path: str) -> str:
    reasons = getattr(verdict, "reasons", {}) or {}
    p = reasons.get(path)
    if p is None:
        return f"no verified {path} path"
    return getattr(p, "message", str(p))


def _lan_free_cause(verdict: Any, enablelanfree: bool) -> str:
    """Why LAN-free is out: the option first (it is the user's to change), then the topology."""
    if not enablelanfree:
        return "LAN-free: enablelanfree is no"
    if verdict is None:
        return "LAN-free: no SAN topology was given, so no LAN-free path is verified"
    return "LAN-free: " + _problem(verdict, "lan-free")


def _lan_cause(verdict: Any, lan_available: bool) -> str:
    """Why the LAN is out: no server address to send to, else the topology's LAN problem."""
    if not lan_available:
        return ("LAN: no LAN path is configured (local mode: lan_pool in the site file; or leave out pool: and "
                "back up through the backup server, serverfree server)")
    return "LAN: " + _problem(verdict, "lan")


def decide(*, enableserverfree: bool, file_system: str, encryption: bool = False, verdict: Any = None,
           movers: Iterable[str] | None = None, pool_nonblocked: bool | None = None,
           lan_available: bool = True, enablelanfree: bool = True) -> Eligibility:
    """Decide the starting path.

    ``verdict`` is a topology VolumeVerdict (duck-typed: ``server_free``,
    ``lan_free``, ``lan``, ``reasons``, ``route``); None means no topology was
    given, so only the LAN is assumed.  ``movers`` lists the data movers that
    serve the volume in configured order (default: the verdict's route mover).
    LAN-free (the storage agent path, also the first failover target) needs
    ``enablelanfree`` as well as a verified client -> pool device path.
    """
    reasons: list[str] = []
    fs = (file_system or "unknown").lower()
    if not enableserverfree:
        reasons.append("enableserverfree is no")
    if fs not in SERVER_FREE_FILE_SYSTEMS:
        reasons.append(f"file system {fs.upper()} is not supported server-free (NTFS and raw volumes only)")
    if pool_nonblocked is False:
        reasons.append("the destination storage pool is not NONBLOCK")
    if verdict is None:
        reasons.append("no SAN topology was given, so no server-free path is verified")
    elif not getattr(verdict, "server_free", False):
        reasons.append(_problem(verdict, "server-free"))
    mover_list = list(movers) if movers is not None else []
    if movers is None and verdict is not None and getattr(verdict, "route", None) is not None:
        mover_list = [verdict.route.mover]
    if not reasons and not mover_list:
        reasons.append("no data mover serves the path")

    lan_free = bool(enablelanfree and verdict is not None and getattr(verdict, "lan_free", False))
    lan = bool(lan_available and (verdict is None or getattr(verdict, "lan", False)))
    if not reasons:
        start = PathKind.SERVER_FREE
    elif lan_free:
        start = PathKind.LAN_FREE
    elif lan:
        start = PathKind.LAN
        if not enablelanfree:
            reasons.append("LAN-free: enablelanfree is no")
        elif verdict is not None:
            reasons.append("LAN-free: " + _problem(verdict, "lan-free"))
    else:
        why = "; ".join(reasons + [_lan_free_cause(verdict, enablelanfree), _lan_cause(verdict, lan_available)])
        raise NoPathError(f"no path can move this volume: {why}")
    notes = []
    if encryption and start == PathKind.SERVER_FREE:
        notes.append("encryptkey is set, but server-free image data is never encrypted")
    return Eligibility(start=start, reasons=reasons, notes=notes, movers=mover_list, lan_free=lan_free, lan=lan)
