"""The server assembled: sessions, the pools and catalogue behind them, and optional metrics."""
from __future__ import annotations

from pathlib import Path

from orchestrator.server.service import BackupServer


def open_server(data: str | Path, host: str = "127.0.0.1", port: int = 0, *, tls: bool = False,
                admin: str = "ADMIN", admin_password: str | None = None,
                metrics_port: int | None = None) -> BackupServer:
    """A ready (not yet serving) server over ``data``."""
    return BackupServer(data, host, port, tls=tls, admin=admin, admin_password=admin_password)
