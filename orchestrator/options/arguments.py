"""Command-line overrides for any subcommand: ``--options FILE`` plus ``--NAME VALUE`` per option.

The CLI already rewrites dsmc spelling (``-imagegapsize=64k``) to ``--imagegapsize=64k``,
so a subcommand that calls `add_option_arguments` accepts both, and
`options_from_args` validates them with the same messages as the file
("command line: imagegapsize: ...").
"""
from __future__ import annotations

import argparse

from orchestrator.options.model import ClientOptions
from orchestrator.options.parser import load_options

#: Options that may be given on the command line (list options stay in dsm.opt).
OVERRIDABLE: tuple[str, ...] = (
    "enableserverfree", "enablelanfree", "imagegapsize", "serverfreegapsize", "imagetype", "mode",
    "compression", "encryptkey", "snapshotcachesize", "snapshotcachelocation", "snapshotfsidleretries",
    "snapshotfsidlewait", "presnapshotcmd", "postsnapshotcmd", "catalog", "tcpserveraddress", "tcpport",
    "nodename", "serverfreebatchsize", "password", "passwordaccess", "tlsfingerprint",
)


def add_option_arguments(parser: argparse.ArgumentParser, names: tuple[str, ...] = OVERRIDABLE) -> None:
    """Add ``--options``/``--optfile`` and one ``--NAME VALUE`` override per option name."""
    unknown = set(names) - set(OVERRIDABLE)
    if unknown:
        raise ValueError(f"not command-line options: {sorted(unknown)}")
    group = parser.add_argument_group("client options (dsm.opt; dsmc spelling -name=value works too)")
    group.add_argument("--options", "--optfile", dest="options", metavar="DSM.OPT",
                       help="dsm.opt-style options file")
    for name in names:
        group.add_argument(f"--{name}", dest=name, metavar="VALUE", default=None, help="overrides dsm.opt")


def options_from_args(args: argparse.Namespace) -> ClientOptions:
    """Load the options file named by ``--options`` (if any) with the given overrides."""
    overrides = {name: getattr(args, name) for name in OVERRIDABLE if getattr(args, name, None) is not None}
    return load_options(getattr(args, "options", None), overrides)
