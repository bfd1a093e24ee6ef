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


#: What each option does, for --help (dsmc's meaning; the value given here overrides dsm.opt).
OPTION_HELP: dict[str, tuple[str, str]] = {
    "enableserverfree": ("yes|no", "allow server-free data movement (EXTENDED COPY through a data mover)"),
    "enablelanfree": ("yes|no", "allow LAN-free movement (the client writes the SAN pool devices itself)"),
    "imagegapsize": ("SIZE", "free-space gaps shorter than this are copied with the data (e.g. 32k, 5m)"),
    "serverfreegapsize": ("SIZE", "the gap size for server-free copies (default 5m)"),
    "imagetype": ("snapshot|static", "back up a copy-on-write snapshot, or the volume offline"),
    "mode": ("selective|incremental", "a full image, or only the chunks changed since the last full one"),
    "compression": ("yes|no", "compress LAN-free and LAN data (server-free data is never compressed)"),
    "encryptkey": ("save|prompt|generate", "encrypt client-moved data (server-free data is never encrypted)"),
    "snapshotcachesize": ("PERCENT", "copy-on-write cache size, percent of the volume (1-100)"),
    "snapshotcachelocation": ("PATH", "where the snapshot's copy-on-write cache lives"),
    "snapshotfsidleretries": ("N", "times to wait for the file system to go idle before the snapshot"),
    "snapshotfsidlewait": ("SECONDS", "how long the file system must be idle before the snapshot"),
    "presnapshotcmd": ("COMMAND", "run before the snapshot is taken (a failure stops the backup)"),
    "postsnapshotcmd": ("COMMAND", "run after the snapshot is taken"),
    "catalog": ("FILE", "the SQLite catalogue of image objects (the site file's catalogue wins)"),
    "tcpserveraddress": ("HOST", "the backup server for the LAN path"),
    "tcpport": ("PORT", "the backup server's port (default 1500)"),
    "nodename": ("NAME", "this client's node name (default: the host name)"),
    "serverfreebatchsize": ("MB", "megabytes per batch of EXTENDED COPY lists (10-1000, default 80)"),
    "password": ("PW", "this node's password for the backup server (else SERVERFREE_PASSWORD, else a prompt)"),
    "passwordaccess": ("prompt|generate", "prompt for the node's password, or take it from SERVERFREE_PASSWORD"),
    "tlsfingerprint": ("SHA256", "use TLS to the backup server and trust only the certificate with this "
                                 "fingerprint"),
}


class Once(argparse.Action):
    """Store a value, refusing a second one for the same option (``--node`` and ``--nodename`` alike)."""

    def __call__(self, parser, namespace, values, option_string=None):  # type: ignore[no-untyped-def]
        seen = getattr(namespace, "_given", None)
        if seen is None:
            seen = {}
            setattr(namespace, "_given", seen)
        if self.dest in seen and seen[self.dest][1] != values:
            first, old = seen[self.dest]
            parser.error(f"{option_string} {values!r} conflicts with {first} {old!r} given before "
                         "(give the option once)")
        seen[self.dest] = (option_string, values)
        setattr(namespace, self.dest, values)


def add_option_arguments(parser: argparse.ArgumentParser, names: tuple[str, ...] = OVERRIDABLE) -> None:
    """Add ``--options``/``--optfile`` and one ``--NAME VALUE`` override per option name."""
    unknown = set(names) - set(OVERRIDABLE)
    if unknown:
        raise ValueError(f"not command-line options: {sorted(unknown)}")
    group = parser.add_argument_group("client options (dsm.opt; dsmc spelling -name=value works too)")
    group.add_argument("--options", "--optfile", dest="options", metavar="DSM.OPT", action=Once,
                       help="dsm.opt-style options file")
    for name in names:
        metavar, text = OPTION_HELP[name]
        group.add_argument(f"--{name}", dest=name, metavar=metavar, default=None, action=Once,
                           help=f"{text}; overrides dsm.opt")


def options_from_args(args: argparse.Namespace) -> ClientOptions:
    """Load the options file named by ``--options`` (if any) with the given overrides."""
    overrides = {name: getattr(args, name) for name in OVERRIDABLE if getattr(args, name, None) is not None}
    return load_options(getattr(args, "options", None), overrides)
