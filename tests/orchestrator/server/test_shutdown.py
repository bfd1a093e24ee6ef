"""Closing the server while a session is open: the session thread ends before the activity log closes."""
from __future__ import annotations

import socket
import threading
import time

from orchestrator.server.app import open_server
from tests.fixtures.backup_server import ADMIN_PW


def test_close_with_a_session_open_joins_it_and_raises_nothing_in_its_thread(tmp_path, monkeypatch):
    errors: list = []
    monkeypatch.setattr(threading, "excepthook", lambda args: errors.append(args.exc_value))
    srv = open_server(tmp_path / "srv", admin_password=ADMIN_PW).start()
    host, port = srv.address.split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    try:
        deadline = time.monotonic() + 10
        while not srv.sessions and time.monotonic() < deadline:
            time.sleep(0.01)
        (session,) = srv.sessions.values()
        srv.close()
        assert not session.thread.is_alive()  # joined, not left running against a closed store
        srv.store.log("ANR0480W", "a late line after close")  # guarded: no sqlite3.ProgrammingError
    finally:
        sock.close()
    assert errors == []
