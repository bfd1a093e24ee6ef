"""CSCD (target) descriptors: E0h, E1h, E2h (FC) and E4h (identification), SPC-4 r36f 6.4.5
(E4h: 6.4.5.6; E0h-E2h: 7.6.3.2-7.6.3.4).

Every descriptor is 32 bytes: a common 4-byte header, type-specific bytes 4-27
and device-type-specific parameters in bytes 28-31 whose meaning depends on the
PERIPHERAL DEVICE TYPE (block: PAD + DISK BLOCK LENGTH; sequential access: PAD,
FIXED + STREAM BLOCK LENGTH).  Decoding is strict (reserved bytes must be zero)
so that ``encode(decode(b)) == b`` for every accepted list.
"""
from __future__ import annotations

from typing import Annotated, ClassVar, Literal, Union

from pydantic import BaseModel, ConfigDict, Field as PField, model_validator

from scsi.layout import Field, Layout, LayoutError, bits, flag, raw, reserved
from scsi.xcopy.errors import UNSUPPORTED_TARGET_DESCRIPTOR_TYPE, ParameterListError
from scsi.xcopy.hexfield import Hex, fixed_hex

CSCD_SIZE = 32
BLOCK_PDTS = frozenset({0x00, 0x04, 0x05, 0x07, 0x0E})
STREAM_PDT = 0x01
PROCESSOR_PDT = 0x03


def _common(code: int) -> list[Field]:
    return [
        Field("type_code", 0, const=code),
        bits("lu_id_type", 1, 6, 2),
        flag("nul", 1, 5),
        bits("pdt", 1, 0, 5),
        Field("ripi", 2, size=2),
    ]


_DEV = raw("device_params", 28, 4)

E0_LAYOUT = Layout("CSCD E0h (FC N_Port_Name)", CSCD_SIZE, _common(0xE0) + [
    raw("lu_identifier", 4, 8), raw("n_port_name", 12, 8), reserved(20, 8), _DEV])
E1_LAYOUT = Layout("CSCD E1h (FC N_Port_ID)", CSCD_SIZE, _common(0xE1) + [
    raw("lu_identifier", 4, 8), reserved(12, 13), Field("n_port_id", 25, size=3), _DEV])
E2_LAYOUT = Layout("CSCD E2h (FC N_Port_ID + N_Port_Name)", CSCD_SIZE, _common(0xE2) + [
    raw("lu_identifier", 4, 8), raw("n_port_name", 12, 8), reserved(20, 5), Field("n_port_id", 25, size=3), _DEV])
E4_LAYOUT = Layout("CSCD E4h (identification)", CSCD_SIZE, _common(0xE4) + [
    reserved(4, bit=4, width=4), bits("code_set", 4, 0, 4),
    reserved(5, bit=6, width=2), bits("association", 5, 4, 2), bits("designator_type", 5, 0, 4),
    reserved(6), Field("designator_length", 7), raw("designator", 8, 20), _DEV])

# Device-type-specific parameters (bytes 28-31), by PDT family (SPC-4 r36f 6.4.5.3-6.4.5.5).
BLOCK_PARAMS = Layout("block device parameters", 4, [
    reserved(0, bit=3, width=5), flag("pad", 0, 2), reserved(0, bit=0, width=2), Field("block_length", 1, size=3)])
STREAM_PARAMS = Layout("sequential-access device parameters", 4, [
    reserved(0, bit=3, width=5), flag("pad", 0, 2), reserved(0, bit=1), flag("fixed", 0, 0),
    Field("block_length", 1, size=3)])
PROCESSOR_PARAMS = Layout("processor device parameters", 4, [
    reserved(0, bit=3, width=5), flag("pad", 0, 2), reserved(0, bit=0, width=2), reserved(1, 3)])
OTHER_PARAMS = Layout("device parameters", 4, [reserved(0, 4)])


def device_params_layout(pdt: int) -> Layout:
    if pdt in BLOCK_PDTS:
        return BLOCK_PARAMS
    if pdt == STREAM_PDT:
        return STREAM_PARAMS
    if pdt == PROCESSOR_PDT:
        return PROCESSOR_PARAMS
    return OTHER_PARAMS


class CscdBase(BaseModel):
    """Fields every CSCD descriptor has; ``pad``/``fixed``/``block_length`` are bytes 28-31."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    LAYOUT: ClassVar[Layout]
    TYPE_FIELDS: ClassVar[tuple[str, ...]] = ()
    lu_id_type: int = PField(default=0, ge=0, le=3)
    nul: bool = False
    pdt: int = PField(default=0, ge=0, le=0x1F, description="peripheral device type of the addressed LU")
    ripi: int = PField(default=0, ge=0, le=0xFFFF, description="relative initiator port identifier")
    pad: bool = False
    fixed: bool = False
    block_length: int = PField(default=0, ge=0, le=0xFFFFFF,
                               description="disk block length (block) or stream block length (tape)")

    @model_validator(mode="after")
    def _params_fit_pdt(self):
        layout = device_params_layout(self.pdt)
        names = set(layout.names())
        for name in ("pad", "fixed", "block_length"):
            if getattr(self, name) and name not in names:
                raise ValueError(f"{name} is not defined for peripheral device type {self.pdt:02X}h")
        return self

    @property
    def is_block(self) -> bool:
        return self.pdt in BLOCK_PDTS

    @property
    def is_stream(self) -> bool:
        return self.pdt == STREAM_PDT

    def encode(self) -> bytes:
        params_layout = device_params_layout(self.pdt)
        params = params_layout.encode({n: int(getattr(self, n)) for n in params_layout.names()})
        values = {"lu_id_type": self.lu_id_type, "nul": int(self.nul), "pdt": self.pdt, "ripi": self.ripi,
                  "device_params": params}
        values.update(self._type_values())
        return self.LAYOUT.encode(values)

    def _type_values(self) -> dict:
        out = {}
        for name in self.TYPE_FIELDS:
            value = getattr(self, name)
            out[name] = bytes.fromhex(value) if isinstance(value, str) else value
        return out

    @classmethod
    def decode_at(cls, data: bytes, base: int, index: int) -> "CscdBase":
        """Decode the descriptor at ``data[base:base+32]`` (offsets in errors are list offsets)."""
        try:
            v = cls.LAYOUT.unpack_from(data, base)
            params_layout = device_params_layout(v["pdt"])
            p = params_layout.unpack_from(data, base + 28)
        except LayoutError as err:
            raise ParameterListError.from_layout(err, cscd=index) from None
        fields = {k: (x.hex() if isinstance(x, bytes) else x) for k, x in v.items()
                  if k in cls.TYPE_FIELDS}
        fields.update(cls._decode_extra(v, data, base, index))
        return cls(lu_id_type=v["lu_id_type"], nul=bool(v["nul"]), pdt=v["pdt"], ripi=v["ripi"],
                   pad=bool(p.get("pad", 0)), fixed=bool(p.get("fixed", 0)),
                   block_length=p.get("block_length", 0), **fields)

    @classmethod
    def _decode_extra(cls, v: dict, data: bytes, base: int, index: int) -> dict:
        return {}


class LunAddressed:
    """Helpers for descriptors that carry an 8-byte LU IDENTIFIER (a SAM LUN)."""

    lu_identifier: str

    @property
    def lun(self) -> int | None:
        """Single-level LUN from peripheral (00h LL) or flat (40h|hi lo) addressing, else None."""
        b = bytes.fromhex(self.lu_identifier)
        if any(b[2:]):
            return None
        if b[0] >> 6 == 0:
            return b[1] if b[0] == 0 else None
        if b[0] >> 6 == 1:
            return ((b[0] & 0x3F) << 8) | b[1]
        return None


def lu_identifier_for(lun: int) -> str:
    """The 8-byte LU IDENTIFIER for a single-level LUN (peripheral < 256, flat up to 16383)."""
    if 0 <= lun < 256:
        return bytes([0, lun]).ljust(8, b"\0").hex()
    if lun < 0x4000:
        return bytes([0x40 | (lun >> 8), lun & 0xFF]).ljust(8, b"\0").hex()
    raise ValueError(f"LUN {lun} does not fit single-level flat addressing (max 16383)")


class FcPortNameCscd(LunAddressed, CscdBase):
    """E0h: the device behind FC port ``n_port_name`` (WWPN), LU ``lu_identifier``."""

    LAYOUT: ClassVar[Layout] = E0_LAYOUT
    TYPE_FIELDS: ClassVar[tuple[str, ...]] = ("lu_identifier", "n_port_name")
    type_code: Literal[0xE0] = 0xE0
    lu_identifier: fixed_hex(8) = "0" * 16
    n_port_name: fixed_hex(8)


class FcPortIdCscd(LunAddressed, CscdBase):
    """E1h: the device at FC address ``n_port_id`` (24-bit D_ID), LU ``lu_identifier``."""

    LAYOUT: ClassVar[Layout] = E1_LAYOUT
    TYPE_FIELDS: ClassVar[tuple[str, ...]] = ("lu_identifier", "n_port_id")
    type_code: Literal[0xE1] = 0xE1
    lu_identifier: fixed_hex(8) = "0" * 16
    n_port_id: int = PField(ge=0, le=0xFFFFFF)


class FcPortIdNameCscd(LunAddressed, CscdBase):
    """E2h: D_ID plus WWPN; the mover checks the D_ID still belongs to the WWPN."""

    LAYOUT: ClassVar[Layout] = E2_LAYOUT
    TYPE_FIELDS: ClassVar[tuple[str, ...]] = ("lu_identifier", "n_port_name", "n_port_id")
    type_code: Literal[0xE2] = 0xE2
    lu_identifier: fixed_hex(8) = "0" * 16
    n_port_name: fixed_hex(8)
    n_port_id: int = PField(ge=0, le=0xFFFFFF)


class IdentificationCscd(CscdBase):
    """E4h: a VPD 83h designator (code set, association, type, up to 20 designator bytes)."""

    LAYOUT: ClassVar[Layout] = E4_LAYOUT
    type_code: Literal[0xE4] = 0xE4
    code_set: int = PField(default=1, ge=0, le=0xF)
    association: int = PField(default=0, ge=0, le=3)
    designator_type: int = PField(default=3, ge=0, le=0xF)
    designator: Hex

    @model_validator(mode="after")
    def _designator_fits(self):
        if len(self.designator) > 40:
            raise ValueError(f"designator of {len(self.designator) // 2} bytes exceeds the 20 an E4h holds")
        return self

    def _type_values(self) -> dict:
        d = bytes.fromhex(self.designator)
        return {"code_set": self.code_set, "association": self.association,
                "designator_type": self.designator_type, "designator_length": len(d), "designator": d}

    @classmethod
    def _decode_extra(cls, v: dict, data: bytes, base: int, index: int) -> dict:
        n = v["designator_length"]
        if n > 20:
            raise ParameterListError.at(cls.LAYOUT, "designator_length", base,
                                        f"designator length {n} exceeds 20", cscd=index)
        body = v["designator"]
        for i in range(n, 20):
            if body[i]:
                raise ParameterListError(f"designator padding byte is {body[i]:02X}h, must be zero",
                                         field="designator", offset=base + 8 + i, layout=cls.LAYOUT.name,
                                         cscd=index)
        return {"code_set": v["code_set"], "association": v["association"],
                "designator_type": v["designator_type"], "designator": body[:n].hex()}


Cscd = Annotated[Union[FcPortNameCscd, FcPortIdCscd, FcPortIdNameCscd, IdentificationCscd],
                 PField(discriminator="type_code")]

CSCD_CLASSES: dict[int, type[CscdBase]] = {
    0xE0: FcPortNameCscd, 0xE1: FcPortIdCscd, 0xE2: FcPortIdNameCscd, 0xE4: IdentificationCscd}
# 64-byte forms, known so that a walk can name them precisely (still unsupported).
CSCD_SIZES = {code: 32 for code in range(0xE0, 0xFF)} | {0xEA: 64, 0xEB: 64}


def decode_cscd(data: bytes, base: int, index: int, supported: frozenset[int] | None = None) -> CscdBase:
    """Decode CSCD number ``index`` at list offset ``base``; unknown types raise 26h/07h."""
    code = data[base]
    cls = CSCD_CLASSES.get(code)
    if cls is None or (supported is not None and code not in supported):
        raise ParameterListError(f"unsupported CSCD descriptor type code {code:02X}h (descriptor {index})",
                                 asc_ascq=UNSUPPORTED_TARGET_DESCRIPTOR_TYPE, field="type_code",
                                 offset=base, layout="CSCD", cscd=index)
    return cls.decode_at(data, base, index)
