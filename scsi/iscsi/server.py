"""The asyncio iSCSI server: listens on a portal, serves target nodes, tracks sessions.

Use::

    server = IscsiServer([node], host="127.0.0.1", port=3260)
    await server.start()          # listening; server.port is the bound port
    ...
    await server.close()          # stops listening, drops sessions, joins the thread pool

or ``await server.serve_forever()`` from a CLI.
"""
from __future__ import annotations

import asyncio
import itertools
import logging
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Iterable

from scsi.iscsi.connection import Connection
from scsi.iscsi.node import TargetNode
from scsi.iscsi.textkeys import TargetLimits

log = logging.getLogger(__name__)


class IscsiServer:
    def __init__(self, nodes: Iterable[TargetNode], host: str = "127.0.0.1", port: int = 3260, *,
                 limits: TargetLimits | None = None, tpgt: int = 1, io_threads: int = 8,
                 copy_threads: int = 8):
        self.nodes = {n.name: n for n in nodes}
        self.host = host
        self.port = port
        self.limits = limits or TargetLimits()
        self.tpgt = tpgt
        self.executor = ThreadPoolExecutor(max_workers=io_threads, thread_name_prefix="iscsi-io")
        self.copy_executor = ThreadPoolExecutor(max_workers=copy_threads, thread_name_prefix="iscsi-xcopy")
        self.sessions: dict[tuple[str, bytes], Connection] = {}
        self.connections: set[Connection] = set()
        # Closed connections whose I_T nexus ends only when their running SCSI handler calls return.
        self.ending: set[Connection] = set()
        self.counters: Counter[str] = Counter()
        self._tsih = itertools.count(1)
        self._server: asyncio.base_events.Server | None = None
        self._handlers: set[asyncio.Task] = set()

    # -- lifecycle ----------------------------------------------------------------------
    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, self.host, self.port, reuse_address=True)
        sock = self._server.sockets[0]
        self.port = sock.getsockname()[1]
        log.info("iSCSI target listening on %s:%d (%s)", self.host, self.port, ", ".join(self.nodes))

    async def serve_forever(self) -> None:
        if self._server is None:
            await self.start()
        assert self._server is not None
        try:
            await self._server.serve_forever()
        finally:
            await self.close()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for conn in list(self.connections):
            await conn.close()
        for task in list(self._handlers):
            task.cancel()
        if self._handlers:
            await asyncio.gather(*self._handlers, return_exceptions=True)
        self.executor.shutdown(wait=False, cancel_futures=True)
        self.copy_executor.shutdown(wait=False, cancel_futures=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = Connection(self, reader, writer)
        self.connections.add(conn)
        self.counters["connections"] += 1
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
        try:
            await conn.run()
        finally:
            self.connections.discard(conn)
            if task is not None:
                self._handlers.discard(task)

    def drop_all(self) -> int:
        """Close every connection at once (a cut cable; fault injection).  Call on the server's loop."""
        conns = list(self.connections)
        for conn in conns:
            transport = conn.writer.transport
            if transport is not None:
                transport.abort()
        log.warning("dropped %d iSCSI connection(s)", len(conns))
        return len(conns)

    def drop_all_threadsafe(self, loop: asyncio.AbstractEventLoop, timeout: float = 10) -> int:
        """:meth:`drop_all` from another thread (a copy worker); waits until it is done."""
        async def _drop() -> int:
            return self.drop_all()
        return asyncio.run_coroutine_threadsafe(_drop(), loop).result(timeout)

    # -- used by connections ------------------------------------------------------------------
    def lookup(self, name: str) -> TargetNode | None:
        return self.nodes.get(name)

    def new_tsih(self) -> int:
        tsih = next(self._tsih) % 0xFFFF
        return tsih or next(self._tsih)

    def register(self, conn: Connection) -> None:
        """Full feature phase reached; an older session with the same I_T nexus is reinstated."""
        old = self.sessions.get(conn.key)
        if old is not None and old is not conn:
            log.info("session reinstatement for %s: closing the old connection %s", conn.initiator, old.peer)
            asyncio.ensure_future(old.close())
        self.sessions[conn.key] = conn
        self.counters["sessions"] += 1

    def forget(self, conn: Connection) -> None:
        if self.sessions.get(conn.key) is conn:
            del self.sessions[conn.key]

    def reset_lun(self, target: str, lun: int) -> int:
        """LOGICAL UNIT RESET: abort the LUN's tasks in every session of this target."""
        return sum(c.abort_lun(lun) for c in list(self.connections) if c.node is not None and c.node.name == target)

    def reset_target(self, target: str) -> int:
        """TARGET WARM/COLD RESET: abort every task in every session of this target."""
        return sum(c.abort_all() for c in list(self.connections) if c.node is not None and c.node.name == target)

    def send_targets(self, conn: Connection, value: str) -> list[tuple[str, str]]:
        """SendTargets answer: the targets this initiator may log in to, at the portal it used."""
        sock = conn.writer.get_extra_info("sockname") or (self.host, self.port)
        host = sock[0]
        address = f"[{host}]:{sock[1]},{self.tpgt}" if ":" in host else f"{host}:{sock[1]},{self.tpgt}"
        if value == "All":
            if not conn.login.discovery and conn.node is None:
                return []
            names = [n for n, node in self.nodes.items() if node.allows(conn.initiator)]
        elif value == "":
            names = [conn.node.name] if conn.node else []
        else:
            names = [value] if value in self.nodes and self.nodes[value].allows(conn.initiator) else []
        out: list[tuple[str, str]] = []
        for name in names:
            out += [("TargetName", name), ("TargetAddress", address)]
        return out
