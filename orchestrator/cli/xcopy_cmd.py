"""`serverfree xcopy decode|encode`: EXTENDED COPY parameter lists for people reading captured traffic."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from pydantic import ValidationError

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # scsi.xcopy loads when an xcopy command runs, not for every command's parser
    from scsi.xcopy import ParameterList

SAMPLES = Path(__file__).resolve().parents[2] / "scenarios" / "samples"
HEX_TEXT_CHARS = set(b"0123456789abcdefABCDEFxX:,-# \t\r\n")


def register(sub) -> None:
    p = sub.add_parser("xcopy", help="decode or encode EXTENDED COPY (LID1) parameter lists")
    xsub = p.add_subparsers(dest="xcopy_command", metavar="ACTION")
    xsub.required = True
    d = xsub.add_parser("decode", help="parameter list (binary or hex file, or --hex) -> listing or JSON")
    d.add_argument("file", nargs="?", help="binary list or hex text ('#' comments allowed); '-' or none: stdin")
    d.add_argument("--hex", dest="hex_text", metavar="HEX", help="the list as hex digits on the command line")
    d.add_argument("--json", action="store_true", help="print JSON (every field; designators as hex)")
    d.set_defaults(func=run_decode)
    e = xsub.add_parser("encode", help="JSON (as printed by decode --json) -> parameter list bytes")
    e.add_argument("file", help="JSON file; '-' for stdin")
    e.add_argument("-o", "--output", help="write the list here (binary unless --hex); default: hex on stdout")
    e.add_argument("--hex", action="store_true", help="write hex text instead of binary")
    e.set_defaults(func=run_encode)


def _is_hex_text(raw: bytes) -> bool:
    if not raw:
        return False
    text_part = b"\n".join(line.split(b"#", 1)[0] for line in raw.splitlines())
    comments_ok = all(32 <= b < 127 or b in b"\t\r\n" for b in raw)
    return comments_ok and set(text_part) <= HEX_TEXT_CHARS


def read_list_bytes(file: str | None, hex_text: str | None) -> tuple[bytes, str]:
    """The list's bytes and a name for messages, from --hex, a file (binary or hex text) or stdin."""
    from scsi.xcopy.hexfield import hex_to_bytes

    if hex_text is not None:
        if file:
            raise ValueError("give either FILE or --hex, not both")
        return hex_to_bytes(hex_text, "--hex"), "--hex"
    if file in (None, "-"):
        if sys.stdin is None or sys.stdin.isatty():
            raise ValueError("no parameter list: give FILE, --hex HEX, or pipe the list into stdin")
        raw, name = sys.stdin.buffer.read(), "stdin"
    else:
        raw, name = Path(file).read_bytes(), file
    if _is_hex_text(raw):
        return hex_to_bytes(raw.decode("ascii"), name), name
    return raw, name


def decode_list(data: bytes, name: str) -> ParameterList:
    from scsi.xcopy import ParameterList, ParameterListError

    try:
        return ParameterList.decode(data)
    except ParameterListError as err:
        raise ValueError(f"{name}: {err.describe()}") from None


def list_to_json(pl: ParameterList) -> dict:
    """JSON-able dict with each descriptor's type code first (what ``xcopy encode`` reads back)."""
    doc = pl.model_dump(mode="json", by_alias=True)
    for key in ("cscds", "segments"):
        doc[key] = [{"type_code": d["type_code"], **d} for d in doc[key]]
    return doc


def run_decode(args) -> int:
    from scsi.xcopy.listing import describe_list

    data, name = read_list_bytes(args.file, args.hex_text)
    pl = decode_list(data, name)
    if args.json:
        print(json.dumps(list_to_json(pl), indent=2))
    else:
        print(describe_list(pl))
    return 0


def validation_message(err: ValidationError) -> str:
    """pydantic's errors on one line: ``cscds.0.designator: not a hex digit ...``."""
    parts = []
    for e in err.errors():
        loc = ".".join(str(x) for x in e["loc"]) or "(top level)"
        parts.append(f"{loc}: {e['msg'].removeprefix('Value error, ')}")
    return "; ".join(parts)


def run_encode(args) -> int:
    from scsi.xcopy import ParameterList

    name = args.file
    text = sys.stdin.read() if name == "-" else Path(name).read_text()
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"{name}: not JSON: {err.msg} at line {err.lineno} column {err.colno}") from None
    try:
        pl = ParameterList.model_validate(doc)
    except ValidationError as err:
        raise ValueError(f"{name}: {validation_message(err)}") from None
    data = pl.encode()
    if args.output:
        out = Path(args.output)
        if args.hex:
            out.write_text(data.hex() + "\n")
        else:
            out.write_bytes(data)
    else:
        print(data.hex())
    return 0


def demo_listing() -> str:
    """The bundled FC-era tape mover list, decoded into the readable listing."""
    from scsi.xcopy.hexfield import hex_to_bytes
    from scsi.xcopy.listing import describe_list

    sample = SAMPLES / "tape_mover.hex"
    data = hex_to_bytes(sample.read_text(), str(sample))
    return f"Sample: {sample.name}\n" + describe_list(decode_list(data, str(sample)))
