"""A readable listing of a parameter list, for people reading captured traffic and logs."""
from __future__ import annotations

from scsi.xcopy.cscd import BLOCK_PDTS, PROCESSOR_PDT, STREAM_PDT, CscdBase
from scsi.xcopy.param_list import ParameterList
from scsi.xcopy.segments import SegmentBase

CSCD_NAMES = {0xE0: "FC N_Port_Name", 0xE1: "FC N_Port_ID", 0xE2: "FC N_Port_ID + N_Port_Name",
              0xE4: "identification"}
CODE_SETS = {1: "binary", 2: "ASCII", 3: "UTF-8"}
DESIGNATOR_TYPES = {0: "vendor", 1: "T10 vendor ID", 2: "EUI-64", 3: "NAA", 8: "SCSI name", 0xA: "UUID"}


def _colons(hexstr: str) -> str:
    return ":".join(hexstr[i:i + 2] for i in range(0, len(hexstr), 2))


def _pdt(c: CscdBase) -> str:
    if c.pdt in BLOCK_PDTS:
        return f"PDT {c.pdt:02X}h (block), pad {int(c.pad)}, disk block length {c.block_length}"
    if c.pdt == STREAM_PDT:
        mode = f"fixed {c.block_length}-byte blocks" if c.fixed else "variable blocks"
        return f"PDT 01h (sequential), pad {int(c.pad)}, {mode} (stream block length {c.block_length})"
    if c.pdt == PROCESSOR_PDT:
        return f"PDT 03h (processor), pad {int(c.pad)}"
    return f"PDT {c.pdt:02X}h"


def describe_cscd(c: CscdBase) -> str:
    code = c.type_code  # type: ignore[attr-defined]
    parts = [f"{code:02X}h {CSCD_NAMES.get(code, '')}"]
    if hasattr(c, "n_port_name"):
        parts.append(f"WWPN {_colons(c.n_port_name)}")
    if hasattr(c, "n_port_id"):
        parts.append(f"N_Port_ID {c.n_port_id:06x}")
    if hasattr(c, "lu_identifier"):
        lun = c.lun  # type: ignore[attr-defined]
        parts.append(f"LUN {lun}" if lun is not None else f"LU identifier {c.lu_identifier}")
    if hasattr(c, "designator"):
        parts.append(f"{CODE_SETS.get(c.code_set, f'code set {c.code_set}')} "
                     f"{DESIGNATOR_TYPES.get(c.designator_type, f'type {c.designator_type}')} "
                     f"designator {c.designator or '(empty)'} (association {c.association})")
    parts.append(_pdt(c))
    extras = [f"LU ID type {c.lu_id_type}" if c.lu_id_type else "", "NUL" if c.nul else "",
              f"relative initiator port {c.ripi}" if c.ripi else ""]
    return ", ".join(parts + [e for e in extras if e])


def describe_segment(s: SegmentBase) -> str:
    values = s.model_dump()
    code = values.pop("type_code")
    refs = []
    if "src" in values:
        refs.append(f"from CSCD {values.pop('src')}")
    if "dst" in values:
        refs.append(f"to CSCD {values.pop('dst')}")
    fields = ", ".join(f"{k.replace('_', ' ')} {int(v) if isinstance(v, bool) else v}" for k, v in values.items())
    return f"{code:02X}h {s.operation} {' '.join(refs)}: {fields}"


def describe_list(pl: ParameterList) -> str:
    """Multi-line listing with each descriptor's byte offset."""
    data_len = len(pl.encode())
    cscd_at, seg_at, inline_at = pl.offsets()
    h = pl.header
    lines = [
        f"EXTENDED COPY (LID1) parameter list, {data_len} bytes",
        f"header: list id {h.list_id}, STR {int(h.str_)}, list id usage {h.list_id_usage:02b}b"
        f"{' (NRCR)' if h.nrcr else ''}, priority {h.priority}; {len(pl.cscds)} CSCD descriptor(s), "
        f"{len(pl.segments)} segment descriptor(s), {len(pl.inline_data) // 2} inline byte(s)",
    ]
    for n, (c, at) in enumerate(zip(pl.cscds, cscd_at)):
        lines.append(f"  CSCD {n} @{at}: {describe_cscd(c)}")
    for n, (s, at) in enumerate(zip(pl.segments, seg_at)):
        lines.append(f"  segment {n} @{at}: {describe_segment(s)}")
    if pl.inline_data:
        lines.append(f"  inline data @{inline_at}: {pl.inline_data}")
    return "\n".join(lines)
