"""Who began a pending catalogue object (so a later start can sweep a dead job's leftovers), and the
BEGIN IMMEDIATE transaction every mutating catalogue call runs in."""
from __future__ import annotations

import os
import socket
import sqlite3


class Transaction:
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on any exception."""

    def __init__(self, db: sqlite3.Connection):
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.db.execute("COMMIT")
        else:
            self.db.execute("ROLLBACK")


def owner_note() -> str:
    """Who began a pending object: 'owner HOST pid N' (so a later start can tell a dead job from a live one)."""
    return f"owner {socket.gethostname()} pid {os.getpid()}"


def owner_alive(note: str | None) -> bool:
    parts = (note or "").split()
    if len(parts) != 4 or parts[0] != "owner" or parts[2] != "pid" or not parts[3].isdigit():
        return False
    if parts[1] != socket.gethostname():
        return True  # another host's job: not ours to judge
    try:
        os.kill(int(parts[3]), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
