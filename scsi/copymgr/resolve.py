"""Turning CSCD descriptors into LUNs the requesting initiator may reach.

Step 6 of the validation order: each CSCD a segment names is resolved
against the LUNs the configuration lets *this initiator* reach -- E4h by
matching its designator against the LUNs' VPD 83h designators, E0h/E1h
through the configured FC port name/ID map.  A descriptor that names a LUN
outside that set (or nothing at all) ends the command with COPY ABORTED
0Dh/02h COPY TARGET DEVICE NOT REACHABLE, and the refusal is logged, so an
initiator masked to LUN A cannot read LUN B by naming it in a descriptor.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Mapping

from scsi import asc as A
from scsi.copymgr.errors import CopyAborted
from scsi.luns.base import BLOCK_PDTS, STREAM_PDTS, BlockLun, Lun
from scsi.xcopy import FcPortIdCscd, FcPortNameCscd, IdentificationCscd
from scsi.xcopy.cscd import CscdBase

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Target:
    """A resolved CSCD: the LUN plus the descriptor's device-type parameters."""

    index: int
    lun: Lun
    pad: bool
    block_size: int  # block LUNs: logical block size; streams: STREAM BLOCK LENGTH (fixed mode)
    fixed: bool

    @property
    def is_block(self) -> bool:
        return self.lun.is_block

    @property
    def is_stream(self) -> bool:
        return self.lun.is_stream


@dataclass(frozen=True)
class FcAddress:
    """One FC map entry: the LUN behind port WWPN/N_Port_ID and LU number."""

    lun_name: str
    lun_number: int
    wwpn: bytes | None = None  # 8 bytes
    port_id: int | None = None  # 24-bit D_ID


class Resolver:
    """Resolves CSCDs for one command, given the LUNs its initiator may reach."""

    def __init__(self, reachable: Mapping[str, Lun], all_luns: Mapping[str, Lun],
                 fc_map: tuple[FcAddress, ...], initiator: str):
        self.reachable = reachable
        self.all_luns = all_luns
        self.fc_map = fc_map
        self.initiator = initiator

    def _unreachable(self, index: int, at: int, segment: int, why: str) -> CopyAborted:
        message = f"CSCD {index} (list byte {at}): {why}"
        return CopyAborted.make(A.COPY_TARGET_DEVICE_NOT_REACHABLE, message, segment=segment,
                                field=at, sd=False)

    def _refuse(self, index: int, at: int, segment: int, lun: Lun) -> CopyAborted:
        log.warning("copy manager: initiator %s named LUN %s in CSCD %d but may not reach it; "
                    "refused with COPY TARGET DEVICE NOT REACHABLE", self.initiator, lun.name, index)
        return self._unreachable(index, at, segment, f"LUN {lun.name} is not reachable for initiator "
                                 f"{self.initiator}")

    def resolve(self, cscd: CscdBase, index: int, at: int, segment: int) -> Target:
        """The Target for descriptor ``index`` found at list offset ``at`` (first used by ``segment``)."""
        if cscd.nul:
            raise self._unreachable(index, at, segment, "names a null device (NUL=1)")
        lun = self._find(cscd, index, at, segment)
        if cscd.pdt != lun.pdt and not (cscd.pdt in BLOCK_PDTS and lun.pdt in BLOCK_PDTS):
            raise CopyAborted.make(A.INCORRECT_COPY_TARGET_DEVICE_TYPE,
                                   f"CSCD {index}: descriptor says device type {cscd.pdt:02X}h, LUN "
                                   f"{lun.name} is {int(lun.pdt):02X}h", segment=segment, field=at + 1,
                                   bit=4, sd=False)
        if isinstance(lun, BlockLun):
            size = lun.block_size
            if cscd.block_length and cscd.block_length != size:
                raise CopyAborted.make(A.INCORRECT_COPY_TARGET_DEVICE_TYPE,
                                       f"CSCD {index}: DISK BLOCK LENGTH {cscd.block_length} but LUN "
                                       f"{lun.name} has {size}-byte blocks", segment=segment,
                                       field=at + 29, sd=False)
        else:
            size = cscd.block_length
            if cscd.fixed and not size:
                raise CopyAborted.make(A.INCORRECT_COPY_TARGET_DEVICE_TYPE,
                                       f"CSCD {index}: FIXED set with a zero STREAM BLOCK LENGTH",
                                       segment=segment, field=at + 29, sd=False)
        return Target(index, lun, cscd.pad, size, bool(cscd.fixed) and cscd.pdt in STREAM_PDTS)

    def _find(self, cscd: CscdBase, index: int, at: int, segment: int) -> Lun:
        if isinstance(cscd, IdentificationCscd):
            value = bytes.fromhex(cscd.designator)
            key = (cscd.code_set, cscd.association, cscd.designator_type, value)
            for lun in self.reachable.values():
                if any(d.matches(*key) for d in lun.designators()):
                    return lun
            for lun in self.all_luns.values():
                if any(d.matches(*key) for d in lun.designators()):
                    raise self._refuse(index, at, segment, lun)
            raise self._unreachable(index, at, segment, f"no LUN has designator {value.hex()}")
        if isinstance(cscd, (FcPortNameCscd, FcPortIdCscd)):
            number = cscd.lun
            for entry in self.fc_map:
                if entry.lun_number != number:
                    continue
                if isinstance(cscd, FcPortNameCscd) and entry.wwpn != bytes.fromhex(cscd.n_port_name):
                    continue
                if isinstance(cscd, FcPortIdCscd) and entry.port_id != cscd.n_port_id:
                    continue
                lun = self.all_luns.get(entry.lun_name)
                if lun is None:
                    break
                if entry.lun_name not in self.reachable:
                    raise self._refuse(index, at, segment, lun)
                return lun
            port = cscd.n_port_name if isinstance(cscd, FcPortNameCscd) else f"{cscd.n_port_id:06x}"
            raise self._unreachable(index, at, segment, f"no LUN {number} behind FC port {port}")
        raise self._unreachable(index, at, segment, f"descriptor type {cscd.type_code:02X}h cannot be resolved")
