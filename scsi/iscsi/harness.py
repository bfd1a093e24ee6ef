"""Run an :class:`IscsiServer` on its own event loop in a background thread.

For tests, benchmarks and tools that need a live target while the calling
thread blocks on subprocesses (iscsi-test-cu, qemu-img)::

    with ThreadedTarget([node]) as t:      # listens on 127.0.0.1, a free port
        subprocess.run(["iscsi-inq", f"iscsi://127.0.0.1:{t.port}/{node.name}/0"])

Leaving the block cancels the server and joins the thread.
"""
from __future__ import annotations

import asyncio
import threading
from typing import Any, Coroutine, Iterable, TypeVar

from scsi.iscsi.node import TargetNode
from scsi.iscsi.server import IscsiServer

T = TypeVar("T")


class ThreadedTarget:
    def __init__(self, nodes: Iterable[TargetNode], host: str = "127.0.0.1", port: int = 0, **kw: Any):
        self.server = IscsiServer(nodes, host, port, **kw)
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="iscsi-target", daemon=True)
        self._started = threading.Event()
        self._error: BaseException | None = None

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def host(self) -> str:
        return self.server.host

    def url(self, target: str, lun: int) -> str:
        return f"iscsi://{self.host}:{self.port}/{target}/{lun}"

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self.server.start())
        except BaseException as e:  # noqa: BLE001 - reported to the starting thread
            self._error = e
            self._started.set()
            return
        self._started.set()
        self.loop.run_forever()
        self.loop.run_until_complete(self.server.close())
        self.loop.close()

    def start(self) -> "ThreadedTarget":
        self._thread.start()
        self._started.wait(30)
        if self._error is not None:
            raise self._error
        return self

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        """Run a coroutine on the target's loop (e.g. an in-process Initiator) and wait for it."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        if self._thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(30)

    def __enter__(self) -> "ThreadedTarget":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
