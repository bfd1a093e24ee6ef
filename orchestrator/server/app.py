"""The server assembled: sessions, the pools and catalogue behind them, and optional metrics."""
from __future__ import annotations

import signal
from pathlib import Path

from orchestrator.server.metrics import ServerMetrics
from orchestrator.server.node_ops import NodeOps
from orchestrator.server.pools import Pools
from orchestrator.server.serverfree import ServerFree
from orchestrator.server.tape import Drives
from orchestrator.server.tls import CERT_FILE, KEY_FILE
from orchestrator.server.service import BackupServer


def open_server(data: str | Path, host: str = "127.0.0.1", port: int = 0, *, tls: bool = False,
                admin: str = "ADMIN", admin_password: str | None = None,
                metrics_port: int | None = None, movers: dict[str, str] | None = None,
                fabric: str | None = None, mover_timeout: float | None = None) -> BackupServer:
    """A ready (not yet serving) server over ``data``: pending objects of an earlier run are swept first.

    ``mover_timeout``: seconds a data mover may take to answer one command before the copy fails over
    (default :data:`orchestrator.server.serverfree.MOVER_TIMEOUT`)."""
    server = BackupServer(data, host, port, tls=tls, admin=admin, admin_password=admin_password,
                          node_handler=NodeOps)
    try:
        server.pools = Pools(server.data, server.store)
        server.drives = Drives()
        server.serverfree = ServerFree(server, movers or {}, fabric, mover_timeout)
        if metrics_port is not None:
            cert = (str(server.data / CERT_FILE), str(server.data / KEY_FILE)) if tls else None
            server.metrics = ServerMetrics().serve(metrics_port, host, cert)
    except BaseException:
        server.close()
        raise
    return server


def serve_until_stopped(server: BackupServer) -> None:
    """Serve until SIGTERM or Ctrl-C, then close the server (its sessions joined, its store closed)."""
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt))
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
