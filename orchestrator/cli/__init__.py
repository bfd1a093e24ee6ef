"""The `serverfree` command line: the one place that composes all four packages.

Each subcommand lives in its own module that exposes ``register(subparsers)``
and is listed in COMMAND_MODULES; those modules import the heavy layers
(simulator, target, libiscsi) inside their handlers, so ``--help`` stays fast.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import re
import sys
from collections.abc import Iterator

# One line per subcommand module; each adds its parsers with set_defaults(func=...).
COMMAND_MODULES = [
    "orchestrator.cli.xcopy_cmd",
    "orchestrator.cli.sense_cmd",
    "orchestrator.cli.demo_cmd",
    "orchestrator.cli.datamover_cmd",
    "orchestrator.cli.paths_cmd",
    "orchestrator.cli.image_cmd",
    "orchestrator.cli.backup_cmd", "orchestrator.cli.restore_cmd", "orchestrator.cli.query_cmd",
    "orchestrator.cli.sim_cmd",
    "orchestrator.cli.scenario_cmd",
    "orchestrator.cli.server_cmd", "orchestrator.cli.admin_cmd",
    "orchestrator.cli.report_cmd",
]

_DSMC_OPTION = re.compile(r"^-([a-z][a-z0-9_.]+)(=.*)?$", re.IGNORECASE)


def long_option_names(parser: argparse.ArgumentParser) -> set[str]:
    """Every ``--name`` (without dashes) of ``parser`` and its subcommands, and every dsm.opt option name."""
    from orchestrator.options import KNOWN_OPTIONS

    names = {n.lower() for n in KNOWN_OPTIONS}
    for parser_ in _all_parsers(parser):
        names.update(o[2:].lower() for o in parser_._option_string_actions if o.startswith("--"))
    return names


def _short_flags(parser: argparse.ArgumentParser) -> set[str]:
    return {o[1] for p in _all_parsers(parser) for o in p._option_string_actions
            if len(o) == 2 and o[0] == "-" and o[1] != "-"}


def _all_parsers(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    """``parser`` and every subcommand parser below it (aliases share one parser)."""
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):
                yield from _all_parsers(child)


def normalise_dsmc_args(argv: list[str], known: set[str] | None = None,
                        short_flags: set[str] | None = None) -> list[str]:
    """Accept dsmc spelling (``-mode=incremental``, ``-incremental``) beside ``--mode incremental``.

    Only single-dash words that are real long options are rewritten: ``-name=value``,
    or ``-name`` when ``--name`` is (or abbreviates) a known long option or dsm.opt
    option name.  Short flag clusters such as ``-vv`` stay as they are, so argparse
    counts them.  ``known``/``short_flags`` default to those of the full parser.
    """
    if known is None or short_flags is None:
        parser = build_parser()
        known = long_option_names(parser) if known is None else known
        short_flags = _short_flags(parser) if short_flags is None else short_flags
    out = []
    for i, arg in enumerate(argv):
        if arg == "--":  # everything after it is positional
            return out + argv[i:]
        m = _DSMC_OPTION.match(arg)
        if m is None:
            out.append(arg)
            continue
        name, value = m.group(1).lower(), m.group(2)
        if set(name) <= short_flags:  # -vv, -vh: a cluster of short flags
            out.append(arg)
        elif value is not None or any(k == name or k.startswith(name) for k in known):
            out.append(f"--{name}{value or ''}")
        else:
            out.append(arg)
    return out


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="serverfree",
        description="SAN server-free image backup: verify paths, move data with EXTENDED COPY, fail over.",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (repeatable)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    _add_verbose_everywhere(parser)
    return parser


def _add_verbose_everywhere(parser: argparse.ArgumentParser) -> None:
    """Let ``-v`` follow the subcommand too (``serverfree paths -v t.yaml``).

    Each nesting level counts into its own ``_verbose<depth>`` (a subparser's
    namespace overwrites its parent's keys), and `total_verbosity` adds them up.
    """
    def walk(p: argparse.ArgumentParser, depth: int) -> None:
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                for child in dict.fromkeys(action.choices.values()):
                    if "-v" not in child._option_string_actions and "--verbose" not in child._option_string_actions:
                        child.add_argument("-v", "--verbose", action="count", default=0,
                                           dest=f"_verbose{depth + 1}", help="more logging (repeatable)")
                    walk(child, depth + 1)
    walk(parser, 0)


def total_verbosity(args: argparse.Namespace) -> int:
    """``-v`` given before and after the subcommand(s), added up."""
    return sum(v for k, v in vars(args).items() if k == "verbose" or k.startswith("_verbose"))


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("serverfree")
    except PackageNotFoundError:  # running from a source tree without installing
        return "unknown (not installed)"


def _is_bad_input(exc: BaseException) -> bool:
    """Exit 2 is for what the user gave (options, files, names); device and network trouble is a failed job."""
    from scsi.devices.errors import DeviceError

    if isinstance(exc, (DeviceError, ConnectionError, TimeoutError)):
        return False
    if isinstance(exc, OSError):
        import errno

        return exc.errno in (errno.ENOENT, errno.EISDIR, errno.ENOTDIR, errno.EACCES, errno.EPERM,
                             errno.EEXIST, errno.ENAMETOOLONG, errno.EROFS, None)
    return isinstance(exc, (ValueError, LookupError))


def _file_error(parser: argparse.ArgumentParser, args: argparse.Namespace, exc: OSError) -> str:
    """'--site x.yaml: No such file or directory': name the option (or argument) that gave the file."""
    from pathlib import Path

    name = str(exc.filename)
    what = exc.strerror or str(exc)

    def same(value: object) -> bool:
        try:
            return isinstance(value, (str, Path)) and (str(value) == name or
                                                       Path(value).resolve() == Path(name).resolve())
        except OSError:
            return False

    for dest, value in vars(args).items():
        if any(same(v) for v in (value if isinstance(value, list) else [value])):
            for p in _all_parsers(parser):
                for action in p._actions:
                    if action.dest == dest:
                        longs = [o for o in action.option_strings if o.startswith("--")]
                        label = longs[0] if longs else (action.metavar or dest.upper())
                        return f"{label} {name}: {what}"
    return f"{name}: {what}"


def main(argv: list[str] | None = None) -> int:
    """Exit status: 0 done, 1 the job failed, 2 bad input, 130 interrupted (SIGINT).

    No traceback reaches a user: anything unexpected is one line (``-vv`` logs the traceback).
    """
    parser = build_parser()
    parser.add_argument("--version", action="version", version=f"serverfree {_version()}")
    argv = normalise_dsmc_args(list(sys.argv[1:] if argv is None else argv),
                               long_option_names(parser), _short_flags(parser))
    args = parser.parse_args(argv)
    args.verbose = total_verbosity(args)
    logging.basicConfig(
        level=logging.WARNING - 10 * min(args.verbose, 2),
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:
        # `serverfree ... | head`: the reader is gone; say nothing more (and keep Python quiet at exit)
        import os

        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except OSError:
            pass
        return 0
    except KeyboardInterrupt:
        print("serverfree: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the top-level guard
        text = " ".join(str(exc).split()) or type(exc).__name__
        if isinstance(exc, OSError) and exc.filename is not None and _is_bad_input(exc):
            text = _file_error(parser, args, exc)
        if _is_bad_input(exc):
            # Validation, decoding and missing files are the user's to act on: one clear line.
            print(f"serverfree: error: {text}", file=sys.stderr)
            return 2
        logging.getLogger("serverfree").debug("traceback", exc_info=True)
        kind = "" if isinstance(exc, (OSError, RuntimeError)) else f"{type(exc).__name__}: "
        print(f"serverfree: failed: {kind}{text}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
