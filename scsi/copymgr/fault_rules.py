"""Fault injection rules: ``ACTION[=ARG][@COND,...]`` parsed and validated (see scsi/copymgr/faults.py).

A bad rule is a :class:`FaultError` naming the rule and the part that is wrong,
on one line, so ``datamover serve --fault`` and the config's ``faults:`` list
fail before anything listens.
"""
from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from scsi.sense import SenseKey

Action = Literal["copy-aborted", "check", "busy", "task-set-full", "drop", "stall"]
CommandKind = Literal["xcopy", "rcr-op", "rcr", "io", "any"]
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


class FaultError(ValueError):
    """A fault rule that cannot be understood; the message names the rule and the part."""


class FaultRule(BaseModel):
    """One rule; ``text`` is how it was written (for logs and errors)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    action: Action
    sense: tuple[int, int, int] | None = None  # key, ASC, ASCQ
    seconds: float = Field(0.0, ge=0, le=3600)
    command: CommandKind = "xcopy"
    list: int | None = Field(None, ge=1)
    segment: int | None = Field(None, ge=0, le=0xFFFF)
    bytes: int | None = Field(None, ge=0)
    times: int = Field(1, ge=1)
    text: str = ""

    @model_validator(mode="after")
    def _consistent(self) -> "FaultRule":
        if self.action in ("busy", "task-set-full", "stall") and self.seconds <= 0:
            raise ValueError(f"{self.action} needs a duration, e.g. {self.action}=5s")
        if self.action in ("copy-aborted", "check") and self.sense is None:
            raise ValueError(f"{self.action} needs a sense code, e.g. copy-aborted=0D/02 or check=02/04/01")
        if self.action in ("busy", "task-set-full") and (self.segment is not None or self.bytes is not None):
            raise ValueError(f"{self.action} answers commands: trigger it with list= or command=, "
                             "not segment= or bytes=")
        if (self.segment is not None or self.bytes is not None) and self.command != "xcopy":
            raise ValueError("segment= and bytes= strike inside an EXTENDED COPY: they need command=xcopy")
        if self.action == "check" and (self.segment is not None or self.bytes is not None):
            raise ValueError("a copy that fails mid-way answers COPY ABORTED: use copy-aborted=ASC/ASCQ "
                             "with segment= or bytes=")
        return self

    @property
    def in_copy(self) -> bool:
        """Strikes between the I/O batches of a running copy (not instead of a command)."""
        return self.segment is not None or self.bytes is not None

    def label(self) -> str:
        return self.text or self.model_dump_json(exclude_defaults=True)


def _number(text: str, what: str, rule: str) -> int:
    m = re.fullmatch(r"(\d+)\s*([kKmMgG]?)(i?[bB])?", text.strip())
    if not m:
        raise FaultError(f"fault {rule!r}: {what} {text!r} is not a number (suffixes k, M, G allowed)")
    return int(m.group(1)) * _UNITS[m.group(2).lower()]


def _seconds(text: str, rule: str) -> float:
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(ms|s)?", text.strip())
    if not m:
        raise FaultError(f"fault {rule!r}: duration {text!r} is not like 5s, 0.5s or 300ms")
    return float(m.group(1)) / (1000 if m.group(2) == "ms" else 1)


def _hex_codes(text: str, count: int, rule: str) -> list[int]:
    parts = [p.strip().removesuffix("h").removesuffix("H") for p in re.split(r"[/,:]", text)]
    try:
        values = [int(p, 16) for p in parts]
    except ValueError:
        values = []
    if len(values) != count or not all(0 <= v <= 0xFF for v in values):
        shape = "ASC/ASCQ such as 0D/02" if count == 2 else "KEY/ASC/ASCQ such as 02/04/01"
        raise FaultError(f"fault {rule!r}: {text!r} is not {shape} (hex)")
    return values


def parse_fault(text: str) -> FaultRule:
    """``ACTION[=ARG][@COND,...]`` -> FaultRule; FaultError naming the part that is wrong."""
    rule = text.strip()
    head, _, conds = rule.partition("@")
    action, _, arg = head.partition("=")
    action = action.strip().lower()
    values: dict[str, Any] = {"action": action, "text": rule}
    if action == "copy-aborted":
        asc, ascq = _hex_codes(arg, 2, rule)
        values["sense"] = (int(SenseKey.COPY_ABORTED), asc, ascq)
    elif action == "check":
        values["sense"] = tuple(_hex_codes(arg, 3, rule))
    elif action in ("busy", "task-set-full", "stall"):
        values["seconds"] = _seconds(arg, rule) if arg else 0.0
    elif action == "drop":
        if arg:
            raise FaultError(f"fault {rule!r}: drop takes no value (use drop@bytes=B)")
    else:
        raise FaultError(f"fault {rule!r}: unknown action {action!r} (copy-aborted, check, busy, "
                         "task-set-full, drop, stall)")
    for cond in filter(None, (c.strip() for c in conds.split(","))):
        key, eq, value = cond.partition("=")
        key = key.strip().lower()
        if not eq:
            raise FaultError(f"fault {rule!r}: condition {cond!r} is not KEY=VALUE")
        if key in ("list", "segment", "times"):
            values[key] = _number(value, key, rule)
        elif key == "bytes":
            values["bytes"] = _number(value, key, rule)
        elif key == "command":
            values["command"] = value.strip().lower()
        else:
            raise FaultError(f"fault {rule!r}: unknown condition {key!r} (list, segment, bytes, command, times)")
    try:
        return FaultRule(**values)
    except ValueError as e:  # pydantic: keep the first message, on one line
        errors = getattr(e, "errors", None)
        msg = errors()[0]["msg"] if callable(errors) else str(e)
        loc = errors()[0].get("loc", ()) if callable(errors) else ()
        where = f" ({'.'.join(str(x) for x in loc)})" if loc else ""
        raise FaultError(f"fault {rule!r}{where}: {msg.removeprefix('Value error, ')}") from None


def rule_from_config(item: Any) -> FaultRule:
    """A config ``faults:`` entry: the rule string, or a mapping of FaultRule fields."""
    if isinstance(item, FaultRule):
        return item
    if isinstance(item, str):
        return parse_fault(item)
    if isinstance(item, dict):
        return FaultRule(**item)
    raise FaultError(f"fault {item!r}: give a rule string such as 'drop@bytes=4M'")


def command_kind(cdb: bytes) -> str:
    if not cdb:
        return "io"
    if cdb[0] == 0x83:
        return "xcopy"
    if cdb[0] == 0x84:
        return "rcr-op" if cdb[1] & 0x1F == 0x03 else "rcr"
    return "io"


def matches(rule: FaultRule, kind: str) -> bool:
    if rule.command == "any":
        return True
    if rule.command == "rcr":
        return kind in ("rcr", "rcr-op")
    return rule.command == kind
