"""Turn a validated :class:`TargetConfig` into LUN objects, a SCSI target and an iSCSI node.

Everything that can fail (opening files, logging in to remote devices and
checking their designators) happens here, before the server listens.  The
copy manager, when given, is shared by the LUNs that accept EXTENDED COPY; it
is built from :func:`open_luns`, :func:`open_remotes` and the config's ACL so
it sees the same LUNs and the same access rules.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable

from scsi.copymgr.faults import FaultInjector, FaultPlan, parse_fault
from scsi.iscsi.chap import ChapSecrets
from scsi.iscsi.node import TargetNode
from scsi.luns.base import Lun
from scsi.luns.file import FileBlockLun
from scsi.luns.tape import TapeLun
from scsi.result import CommandHandler
from scsi.target.blockdev import BlockLunDevice
from scsi.target.config import ChapConfig, RemoteConfig, TargetConfig, local_lun_name
from scsi.target.scsitarget import ScsiTarget
from scsi.target.tapedev import TapeLunDevice

log = logging.getLogger(__name__)


@dataclass
class BuiltTarget:
    config: TargetConfig
    luns: dict[int, Lun]
    devices: dict[int, BlockLunDevice | TapeLunDevice]
    scsi: ScsiTarget
    node: TargetNode
    copy_manager: CommandHandler | None = None
    remotes: dict[str, Lun] = field(default_factory=dict)
    faults: FaultPlan | None = None  # armed fault injection (datamover serve --fault / faults:)

    def counters(self) -> dict[str, int]:
        """Target, per-LUN and copy manager counters, flat (for logs and status output)."""
        out: dict[str, int] = dict(self.scsi.counters)
        for n, device in self.devices.items():
            out.update({f"lun{n}.{k}": v for k, v in device.counters.items()})
        cm = getattr(self.copy_manager, "counters", None)
        if isinstance(cm, dict):
            out.update({f"xcopy.{k}": v for k, v in cm.items()})
        if self.faults is not None:
            out["faults.fired"] = len(self.faults.fired)
        return out

    def close(self) -> None:
        close_cm = getattr(self.copy_manager, "close", None)
        if close_cm is not None:
            close_cm()
        for device in self.devices.values():
            device.close()
        for lun in [*self.luns.values(), *self.remotes.values()]:
            lun.close()


def make_copy_manager(cfg: TargetConfig, luns: dict[int, Lun],
                      remotes: dict[str, Lun] | None = None) -> CommandHandler | None:
    """The EXTENDED COPY engine over the served LUNs and the remote devices, with the config's ACL.

    None if no LUN accepts EXTENDED COPY (then remote devices are refused by the config).
    """
    if not any(lc.accepts_xcopy for lc in cfg.luns):
        return None
    from scsi.copymgr import CopyManager

    remotes = remotes or {}
    every: dict[str, Lun] = {lun.name: lun for lun in luns.values()}
    every.update(remotes)
    check_distinct_naa(every)
    local = acl_function(cfg)

    def reach(initiator: str) -> list[str]:
        numbers = local(initiator)
        served = [lun.name for n, lun in luns.items() if numbers is None or n in numbers]
        return served + [name for name in cfg.remote_for(initiator) if name in remotes]

    return CopyManager(every, acl=reach, limits=cfg.limits, name=f"copy manager of {cfg.target}")


def check_distinct_naa(luns: dict[str, Lun]) -> None:
    """Two LUNs with one NAA designator would make an E4h descriptor ambiguous: refuse before serving."""
    owner: dict[bytes, str] = {}
    for name, lun in luns.items():
        naa = getattr(lun, "naa", None)
        if naa is None:
            continue
        if naa in owner:
            raise ValueError(f"{owner[naa]} and {name} both report NAA designator {naa.hex()}; an EXTENDED COPY "
                             "descriptor could not tell them apart (is a remote URL pointing at a served LUN?)")
        owner[naa] = name


def open_remote(rc: RemoteConfig, opener: Callable[..., Any] | None = None) -> Lun:
    """Log in to one remote device and check it is the one configured; ValueError otherwise."""
    from scsi.devices import DeviceError, open_device
    from scsi.luns.remote import RemoteLun

    opts: dict[str, Any] = {"timeout": rc.timeout}
    if rc.url.startswith("iscsi://"):
        if rc.initiator is not None:
            opts["initiator_iqn"] = rc.initiator
        if rc.chap is not None:
            opts["chap"] = (rc.chap.username, rc.chap.secret)
            if rc.chap.mutual_username is not None:
                opts["mutual_chap"] = (rc.chap.mutual_username, rc.chap.mutual_secret)
    where = f"remote {rc.name} ({rc.display_url})"
    try:
        lun = RemoteLun(rc.name, rc.url, sessions=rc.sessions, opener=opener or open_device, **opts)
    except (DeviceError, OSError, LookupError) as e:
        raise ValueError(f"{where}: cannot be reached: {e}") from None
    except ValueError as e:
        raise ValueError(f"{where}: {e}") from None
    if rc.designator is not None:
        naas = [d.value.hex() for d in lun.designators() if d.type == 3]
        if rc.designator not in naas:
            lun.close()
            reported = ", ".join(naas) or "no NAA designator"
            raise ValueError(f"{where}: expected NAA designator {rc.designator}, the device reports {reported}; "
                             "is the URL pointing at the right LUN?")
    log.info("%s: reached, %d blocks of %d bytes, designator %s, %d session(s)", where, lun.num_blocks,
             lun.block_size, lun.designators()[0].value.hex(), rc.sessions)
    return lun


def open_remotes(cfg: TargetConfig, opener: Callable[..., Any] | None = None) -> dict[str, Lun]:
    """Every configured remote device, reached and checked (all or nothing: ValueError on the first bad one)."""
    remotes: dict[str, Lun] = {}
    try:
        for rc in cfg.remote:
            remotes[rc.name] = open_remote(rc, opener)
    except BaseException:
        for lun in remotes.values():
            lun.close()
        raise
    return remotes


def open_luns(cfg: TargetConfig) -> dict[int, Lun]:
    luns: dict[int, Lun] = {}
    try:
        for lc in cfg.luns:
            naa = bytes.fromhex(lc.naa) if lc.naa is not None else None
            if lc.kind == "tape":
                luns[lc.id] = TapeLun(local_lun_name(lc.id), lc.path, create=lc.create, serial=lc.serial,
                                      naa=naa, read_only=lc.read_only)
            else:
                luns[lc.id] = FileBlockLun(local_lun_name(lc.id), lc.path, block_size=lc.block_size,
                                           serial=lc.serial, naa=naa, read_only=lc.read_only)
    except Exception:
        for lun in luns.values():
            lun.close()
        raise
    return luns


def acl_function(cfg: TargetConfig) -> Callable[[str], frozenset[int] | None]:
    """initiator -> LUN numbers it may reach (None: all); an initiator with no entry reaches none.

    Commands name the initiator *port* (``iqn,i,0x<ISID>``, one per session);
    the ACL lists initiator names, so the ISID part is dropped before matching
    (an iSCSI name cannot contain a comma).
    """
    def allowed(initiator: str) -> frozenset[int] | None:
        entry = cfg.acl_entry(initiator.split(",", 1)[0])
        if entry is None:
            return frozenset()
        return None if entry.luns == "all" else frozenset(entry.luns)
    return allowed


def _secrets(c: ChapConfig | None) -> ChapSecrets | None:
    if c is None:
        return None
    return ChapSecrets(c.username, c.secret, c.mutual_username, c.mutual_secret)


def build_target(cfg: TargetConfig, *, luns: dict[int, Lun] | None = None,
                 copy_manager: CommandHandler | None = None, with_copy_manager: bool = False,
                 remotes: dict[str, Lun] | None = None) -> BuiltTarget:
    """LUN devices, SCSI target and iSCSI node for ``cfg``.

    ``with_copy_manager`` builds the EXTENDED COPY engine over the same LUNs
    and the ``remotes`` (from :func:`open_remotes`; unless a manager is passed
    in ``copy_manager``).  The result owns and closes ``luns`` and ``remotes``.
    """
    luns = luns if luns is not None else open_luns(cfg)
    remotes = remotes or {}
    if copy_manager is None and with_copy_manager:
        copy_manager = make_copy_manager(cfg, luns, remotes)
    by_id = {lc.id: lc for lc in cfg.luns}
    devices: dict[int, BlockLunDevice | TapeLunDevice] = {}
    for n, lun in luns.items():
        kind = TapeLunDevice if lun.is_stream else BlockLunDevice
        devices[n] = kind(lun, copy_manager=copy_manager, accepts_xcopy=by_id[n].accepts_xcopy)
    acl = acl_function(cfg)
    scsi = ScsiTarget(cfg.target, devices, acl)

    def allows(initiator: str) -> bool:
        return cfg.acl_entry(initiator) is not None

    def chap_for(initiator: str) -> ChapSecrets | None:
        entry = cfg.acl_entry(initiator)
        return _secrets(entry.chap if entry is not None and entry.chap is not None else cfg.chap)

    def session_closed(initiator: str) -> None:
        """Forget the copy results of the I_T nexus that ended (``initiator`` is its port name)."""
        forget = getattr(copy_manager, "forget_nexus", None)
        if forget is not None:
            forget((initiator, cfg.target))
        for device in devices.values():
            lost = getattr(device, "nexus_lost", None)
            attentions = getattr(device, "attentions", None)
            if lost is not None:
                lost(initiator)
            elif attentions is not None:
                attentions.forget(initiator)

    handler: CommandHandler = scsi
    faults = None
    if cfg.faults:
        faults = FaultPlan([parse_fault(rule) for rule in cfg.faults])
        handler = FaultInjector(faults, scsi)
        if copy_manager is not None and hasattr(copy_manager, "faults"):
            copy_manager.faults = faults
        log.warning("fault injection armed: %s", "; ".join(cfg.faults))
    node = TargetNode(name=cfg.target, handler=handler, allows=allows, chap_for=chap_for, alias=cfg.alias,
                      lun_exists=lambda n: n in devices, session_closed=session_closed)
    return BuiltTarget(cfg, luns, devices, scsi, node, copy_manager, remotes, faults)
