"""The `serverfree` command line: the one place that composes all four packages.

Each subcommand lives in its own module that exposes ``register(subparsers)``;
modules are imported lazily here so that a broken optional layer cannot stop
the others from working, and so that ``--help`` stays fast.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import re
import sys

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
]

_DSMC_OPTION = re.compile(r"^-([a-z][a-z0-9_.]+)(=.*)?$", re.IGNORECASE)


def normalise_dsmc_args(argv: list[str]) -> list[str]:
    """Accept dsmc spelling (``-mode=incremental``) beside ``--mode incremental``."""
    out = []
    for arg in argv:
        m = _DSMC_OPTION.match(arg)
        out.append(f"--{m.group(1)}{m.group(2) or ''}" if m else arg)
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
    return parser


class UsageError(ValueError):
    """Raised by subcommands for bad arguments; printed without a traceback."""


def main(argv: list[str] | None = None) -> int:
    argv = normalise_dsmc_args(list(sys.argv[1:] if argv is None else argv))
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING - 10 * min(args.verbose, 2),
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args) or 0)
    except (ValueError, LookupError, OSError) as exc:
        # Validation, decoding and I/O problems are the user's to act on: one clear line.
        print(f"serverfree: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("serverfree: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
