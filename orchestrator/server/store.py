"""The server's own database (SQLite in its directory): who may log in, policy, definitions, activity log.

Image objects and pool space stay in :class:`orchestrator.catalogue.Catalogue`
(its own file beside this one); this store keeps what TSM keeps in its
database besides them: administrators and nodes (salted scrypt verifiers,
:mod:`orchestrator.server.auth`), policy domains and management classes with
their destination pools, the SAN definitions as the TSM statements that made
them (replayed through the one macro parser), settings such as the server-free
batch size, and the activity log.  One connection, one lock: every call is one
transaction.
"""
from __future__ import annotations

import json
import logging
import secrets
import sqlite3
import threading
from datetime import datetime, timezone
from pathlib import Path

from orchestrator.server.auth import Verifier

SCHEMA = """
CREATE TABLE IF NOT EXISTS admins (
    name TEXT PRIMARY KEY COLLATE NOCASE, verifier TEXT NOT NULL, registered TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS nodes (
    name TEXT PRIMARY KEY COLLATE NOCASE, verifier TEXT NOT NULL, domain TEXT NOT NULL,
    locked INTEGER NOT NULL DEFAULT 0, contact TEXT NOT NULL DEFAULT '', registered TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS domains (
    name TEXT PRIMARY KEY COLLATE NOCASE, description TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS mgmtclasses (
    domain TEXT NOT NULL COLLATE NOCASE, name TEXT NOT NULL COLLATE NOCASE, destination TEXT NOT NULL,
    is_default INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (domain, name));
CREATE TABLE IF NOT EXISTS definitions (
    id INTEGER PRIMARY KEY, noun TEXT NOT NULL, name TEXT NOT NULL COLLATE NOCASE, verb TEXT NOT NULL,
    params TEXT NOT NULL, text TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS actlog (
    id INTEGER PRIMARY KEY, date TEXT NOT NULL, msgno TEXT NOT NULL, severity TEXT NOT NULL,
    session INTEGER, text TEXT NOT NULL);
"""

DEFAULTS = {"serverfree_batchsize": "80", "serverfree_status": "ON"}


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class ServerStore:
    def __init__(self, path: str | Path):
        self.path = str(path)
        self.lock = threading.RLock()
        self.closed = False
        self.db = sqlite3.connect(self.path, isolation_level=None, timeout=30, check_same_thread=False)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode = WAL")
        self.db.execute("PRAGMA synchronous = FULL")
        self.db.executescript(SCHEMA)
        with self.lock:
            for k, v in DEFAULTS.items():
                self.db.execute("INSERT OR IGNORE INTO settings VALUES (?,?)", (k, v))
            self.db.execute("INSERT OR IGNORE INTO settings VALUES ('decoy_secret', ?)", (secrets.token_hex(32),))
            self.db.execute("INSERT OR IGNORE INTO domains VALUES ('STANDARD', 'created on first start')")

    def close(self) -> None:
        with self.lock:
            self.closed = True
            self.db.close()

    def _one(self, sql: str, args: tuple = ()) -> sqlite3.Row | None:
        with self.lock:
            return self.db.execute(sql, args).fetchone()

    def _all(self, sql: str, args: tuple = ()) -> list[sqlite3.Row]:
        with self.lock:
            return self.db.execute(sql, args).fetchall()

    def _run(self, sql: str, args: tuple = ()) -> int:
        with self.lock:
            return self.db.execute(sql, args).rowcount

    # -- settings ----------------------------------------------------------------------------
    def setting(self, key: str) -> str:
        row = self._one("SELECT value FROM settings WHERE key=?", (key,))
        if row is None:
            raise LookupError(f"no setting {key!r}")
        return row["value"]

    def setting_or(self, key: str, default: str = "") -> str:
        row = self._one("SELECT value FROM settings WHERE key=?", (key,))
        return default if row is None else row["value"]

    def set_setting(self, key: str, value: str) -> None:
        self._run("INSERT OR REPLACE INTO settings VALUES (?,?)", (key, value))

    # -- users -------------------------------------------------------------------------------
    def has_admin(self) -> bool:
        return self._one("SELECT 1 FROM admins LIMIT 1") is not None

    def verifier(self, role: str, name: str) -> Verifier | None:
        """The stored verifier of a user who may log in now (a locked node has none)."""
        table = "admins" if role == "admin" else "nodes"
        extra = "" if role == "admin" else " AND locked=0"
        row = self._one(f"SELECT verifier FROM {table} WHERE name=?{extra}", (name,))
        return Verifier.from_text(row["verifier"]) if row else None

    def register_admin(self, name: str, password: str) -> None:
        v = Verifier.create(password)
        with self.lock:
            if self.db.execute("SELECT 1 FROM admins WHERE name=?", (name,)).fetchone():
                raise ValueError(f"administrator {name.upper()} is already registered")
            self.db.execute("INSERT INTO admins VALUES (?,?,?)", (name.upper(), v.to_text(), now()))

    def admins(self) -> list[sqlite3.Row]:
        return self._all("SELECT name, registered FROM admins ORDER BY name")

    def register_node(self, name: str, password: str, domain: str = "STANDARD", contact: str = "") -> None:
        v = Verifier.create(password)
        with self.lock:
            if self.db.execute("SELECT 1 FROM nodes WHERE name=?", (name,)).fetchone():
                raise ValueError(f"node {name.upper()} is already registered")
            self._need_domain(domain)
            self.db.execute("INSERT INTO nodes(name, verifier, domain, contact, registered) VALUES (?,?,?,?,?)",
                            (name.upper(), v.to_text(), domain.upper(), contact, now()))

    def update_node(self, name: str, *, password: str | None = None, domain: str | None = None,
                    locked: bool | None = None, contact: str | None = None) -> None:
        with self.lock:
            if not self.db.execute("SELECT 1 FROM nodes WHERE name=?", (name,)).fetchone():
                raise LookupError(f"node {name.upper()} is not registered")
            if password is not None:
                self.db.execute("UPDATE nodes SET verifier=? WHERE name=?", (Verifier.create(password).to_text(), name))
            if domain is not None:
                self._need_domain(domain)
                self.db.execute("UPDATE nodes SET domain=? WHERE name=?", (domain.upper(), name))
            if locked is not None:
                self.db.execute("UPDATE nodes SET locked=? WHERE name=?", (int(locked), name))
            if contact is not None:
                self.db.execute("UPDATE nodes SET contact=? WHERE name=?", (contact, name))

    def remove_node(self, name: str) -> None:
        if not self._run("DELETE FROM nodes WHERE name=?", (name,)):
            raise LookupError(f"node {name.upper()} is not registered")

    def nodes(self, pattern: str = "*") -> list[sqlite3.Row]:
        return self._all("SELECT name, domain, locked, contact, registered FROM nodes WHERE name GLOB ? "
                         "ORDER BY name", (pattern.upper(),))

    def node(self, name: str) -> sqlite3.Row | None:
        return self._one("SELECT name, domain, locked FROM nodes WHERE name=?", (name,))

    # -- policy ------------------------------------------------------------------------------
    def _need_domain(self, domain: str) -> None:
        if not self.db.execute("SELECT 1 FROM domains WHERE name=?", (domain,)).fetchone():
            raise LookupError(f"policy domain {domain.upper()} is not defined (DEFINE DOMAIN {domain.upper()})")

    def define_domain(self, name: str, description: str = "") -> None:
        with self.lock:
            if self.db.execute("SELECT 1 FROM domains WHERE name=?", (name,)).fetchone():
                raise ValueError(f"policy domain {name.upper()} is already defined")
            self.db.execute("INSERT INTO domains VALUES (?,?)", (name.upper(), description))

    def domains(self) -> list[sqlite3.Row]:
        return self._all("SELECT * FROM domains ORDER BY name")

    def define_mgmtclass(self, domain: str, name: str, destination: str, default: bool) -> None:
        with self.lock:
            self._need_domain(domain)
            if default or not self.db.execute("SELECT 1 FROM mgmtclasses WHERE domain=?", (domain,)).fetchone():
                self.db.execute("UPDATE mgmtclasses SET is_default=0 WHERE domain=?", (domain,))
                default = True
            self.db.execute("INSERT OR REPLACE INTO mgmtclasses VALUES (?,?,?,?)",
                            (domain.upper(), name.upper(), destination.upper(), int(default)))

    def mgmtclasses(self) -> list[sqlite3.Row]:
        return self._all("SELECT * FROM mgmtclasses ORDER BY domain, name")

    def destination(self, node: str, mgmtclass: str | None) -> tuple[str, str]:
        """(management class, destination pool) bound for a node's backup."""
        row = self.node(node)
        if row is None:
            raise LookupError(f"node {node.upper()} is not registered")
        if mgmtclass:
            mc = self._one("SELECT * FROM mgmtclasses WHERE domain=? AND name=?", (row["domain"], mgmtclass))
            if mc is None:
                raise LookupError(f"management class {mgmtclass.upper()} is not defined in policy domain "
                                  f"{row['domain']}")
        else:
            mc = self._one("SELECT * FROM mgmtclasses WHERE domain=? AND is_default=1", (row["domain"],))
            if mc is None:
                raise LookupError(f"policy domain {row['domain']} has no management class (DEFINE MGMTCLASS "
                                  f"{row['domain']} STANDARD DESTINATION=POOL)")
        return mc["name"], mc["destination"]

    # -- SAN definitions ---------------------------------------------------------------------
    def add_definition(self, verb: str, noun: str, name: str, params: dict, text: str) -> None:
        self._run("INSERT INTO definitions(noun, name, verb, params, text) VALUES (?,?,?,?,?)",
                  (noun, name, verb, json.dumps(params), text))

    def delete_definition(self, noun: str, name: str) -> int:
        return self._run("DELETE FROM definitions WHERE noun=? AND name=?", (noun, name))

    def definitions(self, noun: str | None = None) -> list[sqlite3.Row]:
        if noun is None:
            return self._all("SELECT * FROM definitions ORDER BY id")
        return self._all("SELECT * FROM definitions WHERE noun=? ORDER BY id", (noun,))

    def defined(self, noun: str, name: str) -> bool:
        return self._one("SELECT 1 FROM definitions WHERE noun=? AND name=? AND verb='DEFINE'", (noun, name)) \
            is not None

    # -- activity log ------------------------------------------------------------------------
    def log(self, msgno: str, text: str, session: int | None = None) -> None:
        severity = {"I": "info", "W": "warning", "E": "error", "S": "severe"}.get(msgno[-1], "info")
        with self.lock:
            if self.closed:  # a session thread outliving close(): its last words go to the process log
                logging.getLogger(__name__).info("%s %s (activity log closed)", msgno, text)
                return
            self._run("INSERT INTO actlog(date, msgno, severity, session, text) VALUES (?,?,?,?,?)",
                      (now(), msgno, severity, session, text))

    def actlog(self, search: str = "", limit: int = 1000) -> list[sqlite3.Row]:
        return self._all("SELECT * FROM (SELECT * FROM actlog WHERE instr(upper(text), upper(?)) > 0 "
                         "OR instr(msgno, upper(?)) > 0 ORDER BY id DESC LIMIT ?) ORDER BY id",
                         (search, search, limit))
