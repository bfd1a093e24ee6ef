"""Where local mode's in-process pools are found by the address a LAN operation names (``local:N``).

A registry, not a listener: an address resolves only inside the process
that opened the pool (:class:`orchestrator.lan.local_pool.LocalPool`).
"""
from __future__ import annotations

import socket
import threading
from typing import Any

_open: dict[str, Any] = {}
_guard = threading.Lock()


def register(address: str, pool: Any) -> None:
    with _guard:
        _open[address] = pool


def unregister(address: str) -> None:
    with _guard:
        _open.pop(address, None)


def connect(address: str, timeout: float) -> socket.socket:
    """A session with the pool open at ``address`` in this process."""
    with _guard:
        pool = _open.get(address)
    if pool is None:
        raise ConnectionRefusedError(
            f"LAN pool {address!r} is not open in this process (local mode's LAN path is the site file's "
            "lan_pool; over the network, data moves only through the backup server, serverfree server)")
    return pool.connect(timeout)
