"""`serverfree sense decode HEX`: name a sense buffer's key, ASC/ASCQ and field pointer."""
from __future__ import annotations

import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # scsi.sense's tables load when a sense command runs, not for every command's parser
    from scsi.sense import Sense


def register(sub) -> None:
    p = sub.add_parser("sense", help="decode SCSI sense data")
    ssub = p.add_subparsers(dest="sense_command", metavar="ACTION")
    ssub.required = True
    d = ssub.add_parser("decode", help="fixed (70h/71h) or descriptor (72h/73h) sense as hex")
    d.add_argument("hex", nargs="+", help="sense bytes as hex (spaces and ':' allowed)")
    d.add_argument("--json", action="store_true", help="print JSON")
    d.set_defaults(func=run_decode)


def describe(s: Sense) -> list[str]:
    from scsi.asc import asc_name
    from scsi.sense import FieldPointer, SegmentPointer

    fmt = "descriptor" if s.descriptor_format else "fixed"
    lines = [
        f"response code: {s.response_code:02X}h ({fmt}, {'deferred' if s.deferred else 'current'})",
        f"sense key:     {int(s.key):X}h {s.key.label}",
        f"ASC/ASCQ:      {s.asc:02X}h/{s.ascq:02X}h {asc_name(s.asc, s.ascq)}",
    ]
    if isinstance(s.sks, FieldPointer):
        lines.append(f"field pointer: {s.sks.describe()}")
    elif isinstance(s.sks, SegmentPointer):
        rel = "the failing segment descriptor" if s.sks.sd else "the parameter list"
        bit = f" bit {s.sks.bit}" if s.sks.bit is not None else ""
        lines.append(f"field pointer: byte {s.sks.byte}{bit} of {rel}")
    elif s.sks is not None:
        lines.append(f"sense-key specific: {s.sks.hex}")
    if s.segment is not None:
        lines.append(f"segment:       {s.segment}")
    lines.append(f"information:   {s.information:#x}" if s.information is not None else "information:   (not valid)")
    lines.append(f"command-specific information: {s.command_specific:#010x}")
    flags = [n for n in ("filemark", "eom", "ili") if getattr(s, n)]
    if flags:
        lines.append("flags:         " + " ".join(f.upper() for f in flags))
    for role, (status, inner) in s.forwarded().items():
        lines.append(f"{role} device: status {status:02X}h, {inner}")
    lines.append(f"summary:       {s}")
    return lines


def run_decode(args) -> int:
    from scsi.asc import asc_name
    from scsi.sense import Sense, SenseError
    from scsi.xcopy.hexfield import hex_to_bytes

    data = hex_to_bytes(" ".join(args.hex), "sense hex")
    try:
        s = Sense.decode(data)
    except SenseError as err:
        raise ValueError(f"sense data: {err}") from None
    if args.json:
        doc = s.model_dump(mode="json")
        doc.update(key_name=s.key.label, asc_name=asc_name(s.asc, s.ascq), segment=s.segment, summary=str(s))
        print(json.dumps(doc, indent=2))
    else:
        print("\n".join(describe(s)))
    return 0
