"""`serverfree server --data DIR --listen HOST:PORT`: the backup server, one long-running process.

First start: the administrator (``--admin``, default ADMIN) is created from
SERVERFREE_ADMIN_PASSWORD or ``--admin-password-file``.  Prints ``listening
HOST:PORT`` (and ``tls-fingerprint HEX`` with ``--tls``) once ready; stops on
SIGTERM or Ctrl-C.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path


def register(sub) -> None:  # type: ignore[no-untyped-def]
    p = sub.add_parser("server", help="run the backup server (catalogue, pools, movers, nodes)",
                       description="Run the backup server: it owns the catalogue, the pool volumes, the "
                                   "definitions and the nodes, and authenticates every session.")
    p.add_argument("--data", required=True, metavar="DIR", help="the server's directory (SQLite databases, "
                                                                "TLS certificate)")
    p.add_argument("--listen", default="127.0.0.1:1500", metavar="HOST:PORT",
                   help="where sessions connect (port 0 = any free port; default 127.0.0.1:1500)")
    p.add_argument("--admin", default="ADMIN", metavar="NAME", help="first administrator's name (first start)")
    p.add_argument("--admin-password-file", metavar="FILE",
                   help="first administrator's password (first start; else SERVERFREE_ADMIN_PASSWORD)")
    p.add_argument("--tls", action="store_true", help="TLS on the session port (self-signed certificate made "
                                                      "in DIR on first start; clients pin its fingerprint)")
    p.add_argument("--metrics-port", type=int, metavar="PORT", help="serve Prometheus metrics on this port")
    p.add_argument("--fabric", metavar="TOPOLOGY.YAML",
                   help="the SAN as `serverfree paths` reads it (cabling, zoning, masking, volumes); with it every "
                        "server-free copy is verified on the fabric plus the server's definitions")
    p.add_argument("--mover", action="append", default=[], metavar="NAME=URL",
                   help="how the server reaches DATAMOVER NAME: iscsi://[user%%secret@]host[:port]/IQN/LUN (CHAP "
                        "when the URL carries an account) or /dev/sgN; repeatable")
    p.add_argument("--mover-timeout", type=float, metavar="SECONDS",
                   help="seconds a data mover may take to answer one command before the copy fails over "
                        "(default 60)")
    p.set_defaults(func=run)


def admin_password(args: argparse.Namespace) -> str | None:
    if args.admin_password_file:
        try:
            return Path(args.admin_password_file).read_text().strip()
        except OSError as exc:
            raise ValueError(f"--admin-password-file: {exc.strerror}: {args.admin_password_file}") from None
    return os.environ.get("SERVERFREE_ADMIN_PASSWORD") or None


def listen_address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"--listen {text!r} is not HOST:PORT")
    return host.strip("[]"), int(port)


def run(args: argparse.Namespace) -> int:
    from orchestrator.server.app import open_server, serve_until_stopped

    host, port = listen_address(args.listen)
    if args.fabric and not Path(args.fabric).is_file():
        raise FileNotFoundError(f"--fabric {args.fabric}: no such file")
    if args.mover_timeout is not None and not 0 < args.mover_timeout <= 3600:
        raise ValueError(f"--mover-timeout {args.mover_timeout:g}: give seconds between 0 and 3600")
    movers = {}
    for m in args.mover:
        name, sep, url = m.partition("=")
        if not sep or not name or not url.startswith(("iscsi://", "/dev/sg")):
            raise ValueError(f"--mover {m!r} must be NAME=iscsi://... or NAME=/dev/sgN")
        movers[name.upper()] = url
    server = open_server(args.data, host, port, tls=args.tls, admin=args.admin,
                         admin_password=admin_password(args), metrics_port=args.metrics_port, movers=movers,
                         fabric=args.fabric, mover_timeout=args.mover_timeout)
    print(f"listening {server.address}", flush=True)
    if server.tls_fingerprint:
        print(f"tls-fingerprint {server.tls_fingerprint}", flush=True)
    if server.metrics is not None:
        print(f"metrics {server.metrics.address}", flush=True)
    serve_until_stopped(server)
    return 0

