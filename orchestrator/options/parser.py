"""Reading dsm.opt-style option files and command-line overrides.

One option per line, ``name value``; lines whose first non-blank character is
``*`` are comments; names are case-insensitive.  Every problem is reported as
``FILE:LINE: option: what is wrong`` so the user can go straight to it.
"""
from __future__ import annotations

import difflib
import logging
import shlex
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from orchestrator.options.model import PER_VOLUME_FIELDS, ClientOptions, ImageRule
from orchestrator.options.values import parse_bool, parse_choice, parse_int, parse_size, parse_wait

log = logging.getLogger(__name__)

COMMAND_LINE = "command line"


class OptionsError(ValueError):
    """A bad option, with where it was written (file and line, or the command line)."""

    def __init__(self, where: str, option: str | None, problem: str):
        self.where = where
        self.option = option
        self.problem = problem
        super().__init__(f"{where}: {option + ': ' if option else ''}{problem}")


def _text(value: str) -> str:
    """A free-text value, without one pair of surrounding quotes."""
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        value = value[1:-1]
    if not value:
        raise ValueError("needs a value")
    return value


def _percent(value: str) -> int:
    return parse_int(value.strip().rstrip("%"), 1, 100)


_IMAGETYPES = ("static", "snapshot", "dynamic")

#: Scalar options: dsm.opt name -> (model field, converter).
_SCALARS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "enableserverfree": ("enableserverfree", parse_bool),
    "enablelanfree": ("enablelanfree", parse_bool),
    "imagegapsize": ("imagegapsize", parse_size),
    "serverfreegapsize": ("serverfreegapsize", parse_size),
    "imagetype": ("imagetype", lambda v: parse_choice(v, _IMAGETYPES)),
    "mode": ("mode", lambda v: parse_choice(v, ("selective", "incremental"))),
    "compression": ("compression", parse_bool),
    "encryptkey": ("encryptkey", lambda v: parse_choice(v, ("save", "prompt", "generate"))),
    "snapshotcachesize": ("snapshotcachesize", _percent),
    "snapshotcachelocation": ("snapshotcachelocation", _text),
    "snapshotfsidlewait": ("snapshotfsidlewait", parse_wait),
    "snapshotfsidleretries": ("snapshotfsidleretries", lambda v: parse_int(v, 0, 999)),
    "presnapshotcmd": ("presnapshotcmd", _text),
    "postsnapshotcmd": ("postsnapshotcmd", _text),
    "catalog": ("catalog", _text),
    "catalogue": ("catalog", _text),
    "tcpserveraddress": ("tcpserveraddress", _text),
    "tcpport": ("tcpport", lambda v: parse_int(v, 1, 65535)),
    "nodename": ("nodename", _text),
    "password": ("password", _text),
    "passwordaccess": ("passwordaccess", lambda v: parse_choice(v, ("prompt", "generate"))),
    "tlsfingerprint": ("tlsfingerprint", _text),
    "serverfreebatchsize": ("serverfreebatchsize", lambda v: parse_int(v.strip().lower().rstrip("mb"), 10, 1000)),
}
_LISTS = ("domain.image", "include.image", "exclude.image")
KNOWN_OPTIONS: tuple[str, ...] = tuple(sorted([*_SCALARS, *_LISTS]))

#: Converters for the ``name=value`` words an include.image line may carry.
_PER_VOLUME: dict[str, Callable[[str], Any]] = {name: _SCALARS[name][1] for name in PER_VOLUME_FIELDS}


def _canonical(name: str) -> str:
    """Lower-case option name; ``include_image`` (argparse spelling) becomes ``include.image``."""
    key = name.strip().lower()
    dotted = key.replace("_", ".")
    return dotted if dotted in _LISTS else key


def _unknown(name: str) -> str:
    close = difflib.get_close_matches(name.lower(), KNOWN_OPTIONS, n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    return f"unknown option{hint}; known options: {', '.join(KNOWN_OPTIONS)}"


def _words(value: str) -> list[str]:
    """Split on blanks, honouring quotes; backslashes stay literal (``m:\\mnt\\data`` is a volume name)."""
    lexer = shlex.shlex(value, posix=True)
    lexer.whitespace_split = True
    lexer.escape = ""
    lexer.commenters = ""
    try:
        return list(lexer)
    except ValueError as exc:  # unbalanced quotes
        raise ValueError(f"cannot split {value!r}: {exc}") from None


def _rule(kind: str, value: str, order: int, where: str) -> ImageRule:
    words = _words(value)
    if not words:
        raise ValueError("needs a volume name or pattern")
    fields: dict[str, Any] = {"kind": kind, "pattern": words[0], "order": order, "where": where}
    rest = words[1:]
    if kind == "exclude":
        if rest:
            raise ValueError(f"takes only a volume pattern, found extra words {rest}")
        return ImageRule(**fields)
    if rest and "=" not in rest[0]:
        fields["mgmtclass"] = rest.pop(0)
    for word in rest:
        key, eq, text = word.partition("=")
        key = key.lower()
        if not eq:
            raise ValueError(f"{word!r}: expected name=value after the management class")
        if key not in _PER_VOLUME:
            raise ValueError(f"{key!r} cannot be set per volume (allowed: {', '.join(PER_VOLUME_FIELDS)})")
        try:
            fields[key] = _PER_VOLUME[key](text)
        except ValueError as exc:
            raise ValueError(f"{key}={text}: {exc}") from None
    return ImageRule(**fields)


class _Collector:
    """Accumulates values and where each came from, then builds the model."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}
        self.sources: dict[str, str] = {}
        self.order = 0
        self.command_line: set[str] = set()

    def set(self, name: str, value: str, where: str) -> None:
        key = _canonical(name)
        try:
            if key in _LISTS:
                self._add_list(key, value, where)
                return
            if key not in _SCALARS:
                raise OptionsError(where, name, _unknown(name))
            field, convert = _SCALARS[key]
            if not value.strip():
                raise ValueError("needs a value")
            if field in self.sources and where != COMMAND_LINE:
                log.info("%s: %s overrides the value set at %s", where, key, self.sources[field])
            self.values[field] = convert(value)
            self.sources[field] = where
            if where == COMMAND_LINE:
                self.command_line.add(field)
        except OptionsError:
            raise
        except ValueError as exc:
            raise OptionsError(where, key, str(exc)) from None

    def _add_list(self, key: str, value: str, where: str) -> None:
        field = key.replace(".", "_")
        self.sources.setdefault(field, where)
        if key == "domain.image":
            words = [w for part in _words(value) for w in part.split(",") if w]
            if not words:
                raise ValueError("needs one or more volume names")
            self.values.setdefault(field, []).extend(words)
            return
        self.order += 1
        self.values.setdefault(field, []).append(_rule(key.split(".")[0], value, self.order, where))

    def build(self) -> ClientOptions:
        try:
            options = ClientOptions(**self.values)
        except ValidationError as exc:
            err = exc.errors()[0]
            field = str(err["loc"][0]) if err["loc"] else "options"
            raise OptionsError(self.sources.get(field, "options"), field, err["msg"]) from None
        options._sources.update(self.sources)
        options._command_line.update(self.command_line)
        return options


def _read_lines(collector: _Collector, text: str, source: str) -> None:
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("*"):
            continue
        parts = stripped.split(None, 1)
        name, value = (parts[0], parts[1]) if len(parts) == 2 else (parts[0], "")
        collector.set(name, value, f"{source}:{number}")


def parse_options(text: str, source: str = "dsm.opt",
                  overrides: Mapping[str, str | None] | None = None) -> ClientOptions:
    """Options from dsm.opt text (``source`` names it in errors) plus command-line overrides."""
    collector = _Collector()
    _read_lines(collector, text, source)
    for name, value in (overrides or {}).items():
        if value is not None:
            collector.set(name, str(value), COMMAND_LINE)
    return collector.build()


def load_options(path: str | Path | None = None,
                 overrides: Mapping[str, str | None] | None = None) -> ClientOptions:
    """Options from a dsm.opt file (or defaults when ``path`` is None) plus overrides.

    ``overrides`` maps option names (``imagegapsize``, ``include.image`` ...) to
    the text typed on the command line; ``None`` values are ignored so argparse
    namespaces can be passed through unchanged.
    """
    if path is None:
        return parse_options("", "defaults", overrides)
    path = Path(path)
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise OptionsError(f"{path}:{line}", None, f"not a text file (byte {exc.start} is not UTF-8)") from None
    return parse_options(text, str(path), overrides)
