"""Reading a TSM administrative macro: statements, abbreviations, KEY=value parameters.

TSM writes each keyword with its minimum abbreviation in capitals
(``DEFine DATAMover``, ``SRCType``); a keyword matches when it is a prefix of
the full word at least as long as the capitals. Macros may carry ``/* */``
comments and continue a line with a trailing ``-`` or ``+``.
"""
from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field

from topology.errors import TopologyError

_COMMENT = re.compile(r"/\*.*?\*/", re.DOTALL)


@dataclass
class Statement:
    line: int
    verb: str
    noun: str
    positional: list[str]
    params: dict[str, str] = field(default_factory=dict)
    text: str = ""


class Keyword:
    """A TSM keyword written in mixed case: capitals give the minimum abbreviation."""

    def __init__(self, spelled: str) -> None:
        self.full = spelled.upper()
        self.minimum = len(spelled) - len(spelled.lstrip("ABCDEFGHIJKLMNOPQRSTUVWXYZ"))
        self.minimum = max(self.minimum, 1)

    def matches(self, token: str) -> bool:
        t = token.upper()
        return len(t) >= self.minimum and self.full.startswith(t)


def match_keyword(token: str, spellings: list[str]) -> str | None:
    """Full upper-case keyword that ``token`` abbreviates, or None."""
    for s in spellings:
        k = Keyword(s)
        if k.matches(token):
            return k.full
    return None


def logical_lines(text: str) -> list[tuple[int, str]]:
    """(first line number, statement text) after removing comments and joining continuations."""
    text = _COMMENT.sub(lambda m: "\n" * m.group(0).count("\n"), text)
    out: list[tuple[int, str]] = []
    pending, start = "", 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if not pending:
            start = number
        if line.endswith(("-", "+")) and not line.endswith(("=-", "=+")):
            pending += line[:-1].rstrip() + " "
            continue
        out.append((start, pending + line))
        pending = ""
    if pending.strip():
        out.append((start, pending.strip()))
    return out


def tokenize(text: str, *, file: str, line: int) -> list[str]:
    lexer = shlex.shlex(text, posix=True)
    lexer.whitespace_split = True
    lexer.escape = ""  # Windows paths keep their backslashes
    lexer.commenters = ""
    try:
        return list(lexer)
    except ValueError as exc:
        raise TopologyError(f"cannot split the command: {exc}", file=file, location=f"line {line}",
                            value=text) from None


def split_params(tokens: list[str]) -> tuple[list[str], list[tuple[str, str]]]:
    """Positional words, then KEY=value pairs in their written order."""
    positional, params = [], []
    for tok in tokens:
        if "=" in tok:
            key, _, value = tok.partition("=")
            params.append((key, value))
        else:
            positional.append(tok)
    return positional, params
