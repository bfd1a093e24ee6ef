"""Device designators: INQUIRY VPD 83h, choosing the LU's NAA, E4h CSCDs, WWN/WWPN strings.

A parameter list names its LUNs by designator (E4h) or by FC port name (E0h);
both come from here: the VPD 83h page a device reports (SPC-4 r36f 7.8.6) or the
WWPN an administrator typed.
"""
from __future__ import annotations

import logging
from typing import Any

from pydantic import BaseModel, ConfigDict, Field as PField

from scsi.layout import LayoutError
from scsi.vpd import DESIGNATION_HEADER, VPD_HEADER
from scsi.xcopy.cscd import BLOCK_PDTS, IdentificationCscd

log = logging.getLogger(__name__)

DESIGNATOR_TYPES = {0: "vendor specific", 1: "T10 vendor ID", 2: "EUI-64", 3: "NAA", 4: "relative target port",
                    5: "target port group", 6: "logical unit group", 7: "MD5 logical unit identifier",
                    8: "SCSI name string", 9: "protocol specific port identifier", 0xA: "UUID"}
ASSOCIATIONS = {0: "logical unit", 1: "target port", 2: "target device", 3: "reserved"}
# Preference for the E4h CSCD: NAA over EUI-64 over T10 vendor ID over vendor specific (SPC-4 r36f 7.8.6, 6.4.5.6).
E4_PREFERENCE = (3, 2, 1, 0)


class DesignatorError(LayoutError):
    """A malformed VPD 83h page or WWN string."""


class Designator(BaseModel):
    """One designation descriptor of VPD page 83h; ``designator`` is hex."""

    model_config = ConfigDict(frozen=True)
    protocol_id: int = PField(default=0, ge=0, le=15)
    code_set: int = PField(default=1, ge=0, le=15)
    piv: bool = False
    association: int = PField(default=0, ge=0, le=3)
    designator_type: int = PField(default=3, ge=0, le=15)
    designator: str

    @property
    def type_name(self) -> str:
        return DESIGNATOR_TYPES.get(self.designator_type, f"reserved type {self.designator_type:X}h")

    @property
    def naa(self) -> int | None:
        """The NAA format nibble for NAA designators."""
        return int(self.designator[0], 16) if self.designator_type == 3 and self.designator else None

    def encode(self) -> bytes:
        body = bytes.fromhex(self.designator)
        return DESIGNATION_HEADER.encode(protocol_id=self.protocol_id, code_set=self.code_set, piv=int(self.piv),
                                         association=self.association, designator_type=self.designator_type,
                                         designator_length=len(body)) + body

    def __str__(self) -> str:
        return f"{ASSOCIATIONS[self.association]} {self.type_name}: {self.designator}"


def parse_vpd83(page: bytes | bytearray | memoryview) -> list[Designator]:
    """All designation descriptors of a Device Identification VPD page (83h)."""
    page = bytes(page)
    try:
        head = VPD_HEADER.decode(page[:4])
    except LayoutError as err:
        raise DesignatorError(f"VPD page of {len(page)} bytes is shorter than its 4-byte header",
                              field="page_length", offset=len(page), layout=VPD_HEADER.name) from err
    if head["page_code"] != 0x83:
        raise DesignatorError(f"page code is {head['page_code']:02X}h, expected 83h (Device Identification)",
                              field="page_code", offset=1, layout=VPD_HEADER.name)
    end = 4 + head["page_length"]
    if end > len(page):
        raise DesignatorError(f"page length {head['page_length']} runs past the {len(page)} bytes returned "
                              f"(allocation length too small?)", field="page_length", offset=2,
                              layout=VPD_HEADER.name)
    out: list[Designator] = []
    pos = 4
    while pos < end:
        if pos + 4 > end:
            raise DesignatorError(f"designation descriptor header needs 4 bytes, only {end - pos} left",
                                  field="designator_length", offset=pos, layout=DESIGNATION_HEADER.name)
        d = DESIGNATION_HEADER.unpack_from(page, pos, strict=False)
        n = d["designator_length"]
        if pos + 4 + n > end:
            raise DesignatorError(f"designator of {n} bytes runs past the end of the page (byte {end})",
                                  field="designator_length", offset=pos + 3, layout=DESIGNATION_HEADER.name)
        out.append(Designator(protocol_id=d["protocol_id"], code_set=d["code_set"], piv=bool(d["piv"]),
                              association=d["association"], designator_type=d["designator_type"],
                              designator=page[pos + 4:pos + 4 + n].hex()))
        pos += 4 + n
    return out


def choose_lu_designator(designators: list[Designator]) -> Designator:
    """The LU designator an E4h CSCD should carry: association 0, at most 20 bytes, NAA > EUI-64 > T10 > vendor.

    Among designators of the same type the first listed wins (as sg_xcopy/ddpt do).
    """
    usable = [d for d in designators if d.association == 0 and 0 < len(d.designator) // 2 <= 20]
    for wanted in E4_PREFERENCE:
        for d in usable:
            if d.designator_type == wanted:
                return d
    listed = ", ".join(str(d) for d in designators) or "none"
    raise LookupError(f"no logical-unit designator usable in an E4h descriptor (NAA, EUI-64, T10 or vendor, "
                      f"at most 20 bytes); the page lists: {listed}")


def cscd_for(designator: Designator, *, pdt: int = 0, block_length: int = 0, pad: bool = False,
             fixed: bool = False) -> IdentificationCscd:
    """An E4h CSCD naming ``designator`` (PROTOCOL IDENTIFIER and PIV are not carried, SPC-4 r36f 6.4.5.6)."""
    return IdentificationCscd(code_set=designator.code_set, association=designator.association,
                              designator_type=designator.designator_type, designator=designator.designator,
                              pdt=pdt, block_length=block_length, pad=pad, fixed=fixed)


def cscd_from_vpd83(page: bytes, *, pdt: int = 0, block_length: int = 0, pad: bool = False) -> IdentificationCscd:
    return cscd_for(choose_lu_designator(parse_vpd83(page)), pdt=pdt, block_length=block_length, pad=pad)


def read_vpd83(scsi: Any, alloclen: int = 255) -> bytes:
    """INQUIRY EVPD=1 page 83h through a pyscsi ``SCSI`` object; asks again if the page is longer."""
    from pyscsi.pyscsi.scsi_cdb_inquiry import Inquiry
    from pyscsi.pyscsi.scsi_enum_command import spc

    opcode = getattr(getattr(scsi.device, "opcodes", None), "INQUIRY", spc.INQUIRY)
    for _ in range(2):
        cmd = Inquiry(opcode, evpd=1, page_code=0x83, alloclen=alloclen)
        scsi.execute(cmd)
        data = bytes(cmd.datain)
        if len(data) >= 4 and 4 + int.from_bytes(data[2:4], "big") > alloclen and alloclen < 0xFFFF:
            alloclen = min(0xFFFF, 4 + int.from_bytes(data[2:4], "big"))
            continue
        break
    log.debug("VPD 83h: %s", data.hex())
    return data


def read_capacity(scsi: Any) -> tuple[int, int]:
    """(logical block length, number of blocks) from READ CAPACITY(16) through a pyscsi ``SCSI`` object."""
    from pyscsi.pyscsi.scsi_cdb_readcapacity16 import ReadCapacity16
    from pyscsi.pyscsi.scsi_enum_command import sbc
    from pyscsi.utils.converter import get_opcode

    cmd = ReadCapacity16(next(get_opcode(sbc, "9E")), alloclen=32)  # SBC's opcode table, whatever the PDT
    scsi.execute(cmd)
    cmd.unmarshall()
    return int(cmd.result["block_length"]), int(cmd.result["returned_lba"]) + 1

def cscd_for_device(scsi: Any, *, pdt: int | None = None, block_length: int | None = None,
                    pad: bool = False) -> IdentificationCscd:
    """Read VPD 83h from a device (pyscsi ``SCSI``) and build the E4h CSCD that names its LU.

    ``block_length=None`` asks a block device with READ CAPACITY(16); other
    device types get 0 (the copy manager finds it).
    """
    page = read_vpd83(scsi)
    if pdt is None:
        pdt = page[0] & 0x1F if page else 0
    if block_length is None:
        block_length = read_capacity(scsi)[0] if pdt in BLOCK_PDTS else 0
    return cscd_from_vpd83(page, pdt=pdt, block_length=block_length, pad=pad)


# -- WWN / WWPN strings ------------------------------------------------------------------
def parse_wwn(text: str) -> bytes:
    """A WWN/WWPN from the usual notations: ``21:00:00:e0:8b:05:05:04``, ``210000e08b050504``,
    ``0x210000e08b050504``, ``naa.6001405...`` (8 bytes, or 16 for NAA 6h).
    """
    if not isinstance(text, str):
        raise DesignatorError(f"WWN must be a string, got {type(text).__name__}")
    original = text
    s = text.strip()
    start = len(text) - len(text.lstrip())
    for prefix in ("naa.", "0x", "wwn-0x", "eui."):
        if s.lower().startswith(prefix):
            s = s[len(prefix):]
            start += len(prefix)
            break
    if not s:
        raise DesignatorError(f"WWN {original!r} has no hex digits")
    if ":" in s or "-" in s:
        sep = ":" if ":" in s else "-"
        groups = s.split(sep)
        pos = start
        for g in groups:
            if len(g) != 2:
                raise DesignatorError(f"WWN {original!r}: group {g!r} at character {pos + 1} must be two hex "
                                      f"digits between '{sep}' separators")
            pos += len(g) + 1
        digits = "".join(groups)
        positions = [start + 3 * (i // 2) + i % 2 for i in range(len(digits))]
    else:
        digits = s
        positions = [start + i for i in range(len(digits))]
    for ch, pos in zip(digits, positions):
        if ch.lower() not in "0123456789abcdef":
            raise DesignatorError(f"WWN {original!r}: {ch!r} at character {pos + 1} is not a hex digit")
    if len(digits) not in (16, 32):
        raise DesignatorError(f"WWN {original!r} has {len(digits)} hex digits; a WWN has 16 (8 bytes) "
                              f"or 32 (16-byte NAA 6h)")
    value = bytes.fromhex(digits)
    naa = value[0] >> 4
    if len(value) == 8 and naa not in (1, 2, 3, 5):
        raise DesignatorError(f"WWN {original!r}: NAA format {naa:X}h (first digit) is not an 8-byte WWN "
                              f"format (1h, 2h, 3h or 5h)")
    if len(value) == 16 and naa != 6:
        raise DesignatorError(f"WWN {original!r}: a 16-byte WWN must be NAA 6h, the first digit is {naa:X}h")
    return value


def format_wwn(value: bytes | str) -> str:
    """Colon notation (``21:00:00:e0:8b:05:05:04``) of a WWN given as bytes or hex."""
    raw = bytes.fromhex(value) if isinstance(value, str) else bytes(value)
    return ":".join(f"{b:02x}" for b in raw)
