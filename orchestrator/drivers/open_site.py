"""A site file's devices opened as pyscsi devices: iSCSI, /dev/sg*, or files served in-process.

Split from site.py: the site file says what each name is (site.py); this
opens them, with the movers (logged in to on first use) and local mode's
in-process LAN pool, and closes them together.
"""
from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from orchestrator.drivers.lazy_mover import LazyMover
from orchestrator.drivers.site import SiteConfig


def _is_tape_file(path: str) -> bool:
    """An emulated tape file (its header's magic), served as a tape even when no pool names it a drive."""
    from scsi.luns.tape_format import MAGIC

    try:
        with open(path, "rb") as f:
            return f.read(len(MAGIC)) == MAGIC
    except OSError:
        return False


class OpenSite:
    """The devices of a site opened as pyscsi devices (closed together).

    File devices are served in-process: block images through the block LUN
    emulation, and a tape pool's file drives through the tape LUN emulation
    (an emulated tape file; it must already exist).  A device named in
    ``optional`` (a storage agent's way to the pool, when the backup server is
    the other way) that cannot be opened is left out, its reason kept in
    ``unavailable``: the job then does without it instead of failing.
    """

    def __init__(self, site: SiteConfig, optional: Iterable[str] = ()):
        from scsi.devices import InProcessDevice, open_device
        from scsi.luns.file import FileBlockLun
        from scsi.target.blockdev import BlockLunDevice

        self.site = site
        self.luns: dict[str, Any] = {}  # in-process block LUNs (snapshots apply to these)
        self.tape_luns: dict[str, Any] = {}  # in-process tape LUNs
        self.devices: dict[str, Any] = {}
        self.unavailable: dict[str, str] = {}  # optional device -> why it could not be opened
        self.movers: dict[str, Any] = {}
        self._copy_manager = None
        self.lan: Any = None  # local mode's in-process LAN pool (lan_pool in the site file)
        drives = set(site.pool.drive_names()) if site.pool else set()
        try:
            if site.lan_pool is not None:
                from orchestrator.lan.local_pool import LocalPool

                self.lan = LocalPool({n: site.path(v) for n, v in site.lan_pool.volumes.items()},
                                     {n: site.path(t) for n, t in site.lan_pool.tapes.items()})
            for name, ref in site.devices.items():
                target = site.path(ref)
                if "://" in target or target.startswith("/dev/sg"):
                    try:
                        self.devices[name] = open_device(target)
                    except Exception as exc:  # noqa: BLE001 - any failure to open an optional device is reported
                        if name not in optional:
                            raise
                        self.unavailable[name] = " ".join(str(exc).split()) or type(exc).__name__
                elif name in drives or _is_tape_file(target):
                    self.devices[name] = InProcessDevice(self._file_tape(name, target))
                else:
                    lun = FileBlockLun(name, target)
                    self.luns[name] = lun
                    self.devices[name] = InProcessDevice(BlockLunDevice(lun))
            for name in site.movers:
                ref = site.mover_url(name)
                if ref == "inprocess":
                    self.movers[name] = InProcessDevice(self.copy_manager())
                else:  # logged in to on first use: a mover that is down fails the job over, not the start
                    self.movers[name] = LazyMover(name, site.path(ref), site.command_timeout(name))
        except BaseException:
            self.close()
            raise

    def _file_tape(self, name: str, path: str):
        from scsi.luns import TapeLun
        from scsi.target.tapedev import TapeLunDevice

        if not Path(path).is_file():
            raise ValueError(f"tape drive {name!r}: {path} is not an emulated tape file (create one with "
                             "scsi.luns.TapeLun(..., create=True) or name an iscsi:// / /dev/sg device)")
        try:
            lun = TapeLun(name, path)
        except (ValueError, OSError) as exc:
            raise ValueError(f"tape drive {name!r}: {path}: {exc}") from None
        self.tape_luns[name] = lun
        return TapeLunDevice(lun)

    def tape_designators(self, names: list[str] | None = None) -> dict[str, str]:
        """Drive -> designator hex (default: the tape pool's drives): the site file's, else the drive's VPD 83h."""
        from pyscsi.pyscsi.scsi import SCSI

        from scsi.designators import choose_lu_designator, parse_vpd83, read_vpd83
        from scsi.luns.remote import UnitAttentionRetry

        given = {d.device: d.designator for d in self.site.pool.drives or []}
        out: dict[str, str] = {}
        for name in self.site.pool.drive_names() if names is None else names:
            if given.get(name):
                out[name] = given[name]  # type: ignore[assignment]
                continue
            if name not in self.devices:
                raise LookupError(f"tape drive {name!r} is not a device in the site file "
                                  f"(known: {', '.join(self.devices) or 'none'})")
            try:
                scsi = SCSI(UnitAttentionRetry(self.devices[name], name))
                out[name] = choose_lu_designator(parse_vpd83(read_vpd83(scsi))).designator
            except Exception as exc:  # noqa: BLE001 - reported with the drive's name
                raise OSError(f"tape drive {name!r}: cannot read its designator (VPD 83h): {exc}; give it in "
                              "the site file as pool.drives: [{device: NAME, designator: HEX}]") from None
        return out

    def copy_manager(self):
        from scsi.copymgr import CopyManager

        if self._copy_manager is None:
            if not self.luns and not self.tape_luns:
                raise ValueError("an in-process data mover needs file devices in the site file")
            self._copy_manager = CopyManager({**self.luns, **self.tape_luns}, name="in-process data mover")
        return self._copy_manager

    @property
    def lan_address(self) -> str:
        """What the job's LAN operations name (``local:N``), or "" without ``lan_pool``."""
        return self.lan.address if self.lan is not None else ""

    def close(self) -> None:
        if self.lan is not None:
            self.lan.close()
        for d in list(self.devices.values()) + list(self.movers.values()):
            try:
                d.close()
            except Exception:  # closing is best effort
                pass
        for lun in list(self.luns.values()) + list(self.tape_luns.values()):
            lun.close()
        cm_close = getattr(self._copy_manager, "close", None)
        if cm_close:
            cm_close()

    def __enter__(self) -> OpenSite:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
