"""`serverfree admin -id=NAME -password=PW -tcpserveraddress=HOST -tcpport=PORT "COMMAND"`: dsmadmc.

With a command: run it and print the answer.  ``MACRO file`` runs every
statement of a macro file (``/* */`` comments, ``-`` continuations).  With no
command: an interactive prompt (``quit`` ends).  The password may come from
SERVERFREE_PASSWORD, else a prompt on a terminal.  Exit status: 0 every
command accepted, 1 one was refused, 2 bad input or no session.
"""
from __future__ import annotations

import argparse
import getpass
import os
import sys
from pathlib import Path


def register(sub) -> None:  # type: ignore[no-untyped-def]
    p = sub.add_parser("admin", help="administrative client (dsmadmc): define, register, query",
                       description="Send administrative commands to the backup server, dsmadmc style.")
    p.add_argument("--id", required=True, metavar="NAME", help="administrator name")
    p.add_argument("--password", metavar="PW", help="else SERVERFREE_PASSWORD, else a prompt")
    p.add_argument("--tcpserveraddress", default="127.0.0.1", metavar="HOST")
    p.add_argument("--tcpport", default="1500", metavar="PORT")
    p.add_argument("--tlsfingerprint", metavar="SHA256", help="use TLS and trust only this server certificate")
    p.add_argument("command", nargs=argparse.REMAINDER, metavar="COMMAND",
                   help="one command (quote it), or MACRO FILE; none: interactive")
    p.set_defaults(func=run)


def statements(path: str) -> list[str]:
    from topology.tsm_syntax import logical_lines

    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"MACRO {path}: cannot read it: {exc}") from None
    return [s for _, s in logical_lines(text)]


def expand(command: str) -> list[str]:
    """A command, or the statements of the file a ``MACRO file`` command names."""
    words = command.split(None, 1)
    if words and words[0].upper() in ("MACRO", "MACR", "MAC") and len(words) == 2:
        return statements(words[1].strip().strip('"'))
    return [command]


def run(args: argparse.Namespace) -> int:
    from orchestrator.server.client import ServerSession

    password = args.password or os.environ.get("SERVERFREE_PASSWORD")
    if not password and sys.stdin.isatty():
        password = getpass.getpass(f"password for {args.id}: ")
    command = " ".join(args.command).strip()
    todo = expand(command) if command else None
    status = 0
    try:
        session = ServerSession(args.tcpserveraddress, args.tcpport, role="admin", name=args.id,
                                password=password or "", tls_fingerprint=args.tlsfingerprint)
    except (ConnectionError, TimeoutError, OSError) as exc:  # exit 2: no session (unreachable, TLS, refused)
        print(f"serverfree: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    with session:
        if todo is not None:
            for text in todo:
                ok, out = session.command(text)
                print(out)
                status = max(status, 0 if ok else 1)
            return status
        while True:
            try:
                line = input("serverfree> ").strip()
            except EOFError:
                break
            if line.lower() in ("quit", "exit"):
                break
            if not line:
                continue
            try:
                for text in expand(line):
                    ok, out = session.command(text)
                    print(out)
                    status = max(status, 0 if ok else 1)
            except ValueError as exc:
                print(f"serverfree: error: {exc}", file=sys.stderr)
    return status
