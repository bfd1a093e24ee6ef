"""The server's TCP front door: one thread per session, authentication first, then dispatch.

A session starts with HELLO (role, name, client nonce), the server's
CHALLENGE (salt, scrypt cost, server nonce), the client's PROOF and the
server's WELCOME carrying its own signature (:mod:`orchestrator.server.auth`).
Until then frames are limited to a few kilobytes and nothing but those three
messages is accepted.  Every refusal -- no credentials, a wrong or replayed
proof, a malformed or oversized frame, a request outside the session's rights
-- is answered with one ERROR, written to the activity log, and ends the
session; nothing is written to a pool on the way.
"""
from __future__ import annotations

import itertools
import logging
import socket
import socketserver
import ssl
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from orchestrator.server import auth, messages, wire
from orchestrator.server.commands import run_command
from orchestrator.server.context import AdminContext, CommandError
from orchestrator.server.store import ServerStore

log = logging.getLogger(__name__)

PRE_AUTH_LIMIT = 4096


class Refused(Exception):
    """End the session: ``msgno``/``text`` go to the activity log, ``answer`` to the client.

    ``server_fault``: the server's own trouble (a pool volume it cannot open, a drive another job holds), not the
    request's: the client reports a failed job (exit 1), not bad input."""

    def __init__(self, msgno: str, text: str, answer: str | None = None, *, server_fault: bool = False):
        super().__init__(text)
        self.msgno, self.text, self.answer = msgno, text, answer or text
        self.server_fault = server_fault


@dataclass
class Session:
    id: int
    address: str
    method: str
    role: str = ""
    name: str = ""
    state: str = "Start"
    sent: int = 0
    received: int = 0
    sock: Any = None
    cancelled: bool = False
    extra: dict = field(default_factory=dict)
    thread: Any = None  # the handler thread serving it: close() joins it before the store closes

    def as_row(self) -> dict:
        return {"id": self.id, "method": self.method, "state": self.state, "sent": self.sent,
                "received": self.received, "role": self.role or "-", "name": self.name}


class BackupServer:
    """``serverfree server``: owns the store (and, with pools, the catalogue); serves sessions."""

    def __init__(self, data: str | Path, host: str = "127.0.0.1", port: int = 0, *, tls: bool = False,
                 admin: str = "ADMIN", admin_password: str | None = None,
                 node_handler: Callable[["BackupServer", Session], Any] | None = None):
        self.data = Path(data)
        self.data.mkdir(parents=True, exist_ok=True)
        self.store = ServerStore(self.data / "server.sqlite")
        if not self.store.has_admin():
            if not admin_password:
                self.store.close()
                raise ValueError("first start: no administrator yet; give SERVERFREE_ADMIN_PASSWORD or "
                                 "--admin-password-file")
            try:
                self.store.register_admin(admin, admin_password)
            except ValueError as exc:
                self.store.close()
                raise ValueError(f"administrator password: {exc}") from None
            self.store.log("ANR2068I", f"Administrator {admin.upper()} registered on first start.")
        self._decoy = bytes.fromhex(self.store.setting("decoy_secret"))
        self.tls_context: ssl.SSLContext | None = None
        self.tls_fingerprint = ""
        if tls:
            from orchestrator.server import tls as tlsmod

            self.tls_context = tlsmod.server_context(self.data)
            self.tls_fingerprint = tlsmod.fingerprint(self.data / tlsmod.CERT_FILE)
        self.node_handler = node_handler
        self.pools: Any = None
        self.drives: Any = None  # orchestrator.server.tape.Drives: which job holds which tape drive
        self.metrics: Any = None
        self.serverfree: Any = None  # orchestrator.server.serverfree.ServerFree when movers are configured
        self.sessions: dict[int, Session] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._tcp = _Tcp((host, port), _Handler)
        self._tcp.owner = self
        self._thread: threading.Thread | None = None
        self._served = False
        self._closed = False
        self.store.log("ANR0916I", f"serverfree server ready on {self.address}"
                                   f"{' (TLS)' if tls else ''}.")

    @property
    def address(self) -> str:
        host, port = self._tcp.server_address[:2]
        return f"{host}:{port}"

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> "BackupServer":
        self._served = True
        self._thread = threading.Thread(target=self._tcp.serve_forever, name="backup-server", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._served = True
        self._tcp.serve_forever()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._served:  # shutdown() waits for a serve_forever loop that must have run
            self._tcp.shutdown()
        self._tcp.server_close()
        sessions = list(self.sessions.values())
        for s in sessions:
            self._kill(s)
        if self._thread:
            self._thread.join(5)
        for s in sessions:  # a session still logging must finish before the store closes under it
            if s.thread is not None and s.thread is not threading.current_thread():
                s.thread.join(5)
        if self.pools is not None:
            self.pools.close()
        if self.metrics is not None:
            self.metrics.close()
        self.store.close()

    def __enter__(self) -> "BackupServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- sessions ------------------------------------------------------------------------------
    def new_session(self, sock: Any, address: str) -> Session:
        with self._lock:
            s = Session(next(self._ids), address, "TLS" if self.tls_context else "Tcp/Ip", sock=sock,
                        thread=threading.current_thread())
            self.sessions[s.id] = s
        return s

    def end_session(self, s: Session) -> None:
        with self._lock:
            self.sessions.pop(s.id, None)

    def cancel(self, sid: int) -> bool:
        s = self.sessions.get(sid)
        if s is None:
            return False
        s.cancelled = True
        self.store.log("ANR0483W", f"Session {s.id} for {s.role} {s.name} terminated - forced by administrator.",
                       s.id)
        self._kill(s)
        return True

    @staticmethod
    def _kill(s: Session) -> None:
        try:
            s.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def admin_context(self, s: Session) -> AdminContext:
        return AdminContext(self.store, s.name, s.id, sessions=lambda: [x.as_row() for x in self.sessions.values()],
                            cancel=self.cancel, processes=lambda: self.pools.processes() if self.pools else [],
                            pools=self.pools, extra={"status": {"TLS fingerprint (SHA-256)": self.tls_fingerprint
                                                                or "TLS off"},
                                                     "drives": self.drives.held() if self.drives else {}})

    # -- authentication ------------------------------------------------------------------------
    def authenticate(self, s: Session, sock: Any) -> None:
        hello, _ = self.read(s, sock, PRE_AUTH_LIMIT, 0, pre_auth=True)
        if not isinstance(hello, messages.Hello):
            raise Refused("ANR0440W", f"Session {s.id} ({s.address}) refused - no credentials: the first "
                          f"message was {type(hello).__name__.lower()}, not hello.", "authentication required")
        s.role, s.name = hello.role, hello.name.upper()
        v = self.store.verifier(hello.role, hello.name)
        salt, n, r, p = (v.salt, v.n, v.r, v.p) if v else (auth.decoy_salt(self._decoy, hello.name),
                                                             auth.SCRYPT_N, auth.SCRYPT_R, auth.SCRYPT_P)
        server_nonce = auth.new_nonce()
        self.send(s, sock, {"type": "challenge", "salt": auth.b64(salt), "n": n, "r": r, "p": p,
                            "server_nonce": server_nonce})
        proof, _ = self.read(s, sock, PRE_AUTH_LIMIT, 0, pre_auth=True)
        who = f"Session {s.id} for {hello.role} {s.name} ({s.address})"
        if not isinstance(proof, messages.Proof):
            raise Refused("ANR0440W", f"{who} refused - expected a proof, got {type(proof).__name__.lower()}.",
                          "authentication required")
        message = auth.auth_message(hello.role, hello.name, hello.client_nonce, server_nonce)
        try:
            raw = auth.unb64(proof.proof, "proof", 32)
        except ValueError:
            raw = b""
        signature = auth.verify_proof(v, message, raw) if v else None
        if signature is None:
            reason = "invalid password submitted" if v else "unknown or locked name"
            raise Refused("ANR0424W", f"{who} refused - {reason}.", "authentication failed")
        s.state = "Run"
        if self.metrics is not None:
            self.metrics.sessions.labels(s.role).inc()
        self.store.log("ANR0406I", f"{who} started.", s.id)
        self.send(s, sock, {"type": "welcome", "session": s.id, "server_signature": auth.b64(signature)})

    # -- framing -------------------------------------------------------------------------------
    def read(self, s: Session, sock: Any, max_message: int = wire.MAX_MESSAGE, max_data: int = wire.MAX_DATA,
             *, pre_auth: bool = False) -> tuple[Any, bytes]:
        try:
            f = wire.read_frame(sock, max_message=max_message, max_data=max_data,
                                max_paged=0 if pre_auth else wire.MAX_PAGED)
        except wire.FrameError as exc:
            raise Refused("ANR0440W", f"Session {s.id} ({s.address}{', ' + s.name if s.name and not pre_auth else ''})"
                          f" refused - protocol error: {exc}.") from None
        s.received += wire.HEADER.size + len(f.data)
        try:
            declared = messages.bulk_of(f.message)
            if declared and pre_auth:
                raise ValueError("rows before login")
            req = messages.parse_request(f.message)
        except ValueError as exc:
            raise Refused("ANR0440W", f"Session {s.id} ({s.address}) refused - {exc}.") from None
        if f.data and not isinstance(req, messages.Put):
            raise Refused("ANR0440W", f"Session {s.id} ({s.address}) refused - data on a "
                          f"{type(req).__name__.lower()} message.")
        if declared:  # its rows follow: the handler reads them as it goes (wire.RowReader)
            return req, wire.RowReader(sock, declared)
        return req, f.data

    def send(self, s: Session, sock: Any, message: dict, data: Any = b"") -> None:
        """One answer; ``data`` is its bytes, or its rows (field -> (layout, count, pages), sent as produced)."""
        if isinstance(data, dict):
            s.sent += wire.send_bulk(sock, message, data)
            return
        frame = wire.encode(message, data)
        sock.sendall(frame)
        s.sent += len(frame)

    # -- after authentication ------------------------------------------------------------------
    def serve_session(self, s: Session, sock: Any) -> None:
        self.authenticate(s, sock)
        node_ops = self.node_handler(self, s) if (s.role == "node" and self.node_handler) else None
        try:
            while not s.cancelled:
                try:
                    req, data = self.read(s, sock)
                except EOFError:
                    return
                if isinstance(req, messages.Bye):
                    return
                if isinstance(req, (messages.Hello, messages.Proof)):
                    raise Refused("ANR0440W", f"Session {s.id} ({s.name}) refused - authentication repeated.")
                if s.role == "admin":
                    if not isinstance(req, messages.Command):
                        raise Refused("ANR0440W", f"Session {s.id} refused - administrator {s.name} sent "
                                      f"{req.type}; administrators send commands, nodes move data.")
                    self._command(s, sock, req.text)
                    continue
                if isinstance(req, messages.Command):
                    raise Refused("ANR0425W", f"Session {s.id} refused - node {s.name} issued an administrative "
                                  "command without administrator authority.", "not authorized")
                if node_ops is None:
                    raise Refused("ANR0440W", f"Session {s.id} refused - this server keeps no backup objects.")
                message, payload = self._handle(s, node_ops, req, data)
                self.send(s, sock, message, payload)
        finally:
            if node_ops is not None:
                node_ops.close()

    def _handle(self, s: Session, node_ops: Any, req: Any, data: Any) -> tuple[dict, Any]:
        """A node request; its rows (if any) are read as the handler consumes them and must all be read (a
        handler that answers without them, e.g. a refusal, leaves them to be skipped here)."""
        from orchestrator.server.piece_rows import MalformedRows

        rows = data if isinstance(data, wire.RowReader) else None
        try:
            answer = node_ops.handle(req, data)
            if rows is not None:
                rows.drain()
        except wire.FrameError as exc:
            raise Refused("ANR0440W", f"Session {s.id} ({s.address}, {s.name}) refused - protocol error: {exc}.") \
                from None
        except MalformedRows as exc:
            self._skip(rows)
            raise Refused("ANR0440W", f"Session {s.id} ({s.address}) refused - {exc}.") from None
        except Refused:
            self._skip(rows)
            raise
        finally:
            if rows is not None:
                s.received += rows.received
        return answer

    @staticmethod
    def _skip(rows: Any) -> None:
        """Read (and drop) the rows left of a refused request, so that the client, still sending them, reads the
        refusal rather than a reset connection; a broken frame among them ends that at once."""
        if rows is None:
            return
        try:
            rows.drain()
        except (wire.FrameError, OSError, EOFError):
            pass

    def _command(self, s: Session, sock: Any, text: str) -> None:
        try:
            out = run_command(self.admin_context(s), text)
            self.send(s, sock, {"type": "result", "ok": True, "text": out})
        except CommandError as exc:
            self.store.log(str(exc).split()[0] if str(exc)[:3] == "ANR" else "ANR2000E",
                           f"{s.name}: {str(exc)[9:]}", s.id)
            self.send(s, sock, {"type": "result", "ok": False, "text": str(exc)})


class _Tcp(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    owner: BackupServer


class _Handler(socketserver.BaseRequestHandler):
    server: _Tcp

    def handle(self) -> None:
        owner = self.server.owner
        raw: socket.socket = self.request
        raw.settimeout(120)
        address = f"{self.client_address[0]}:{self.client_address[1]}"
        s = owner.new_session(raw, address)
        sock: Any = raw
        try:
            if owner.tls_context is not None:
                sock = owner.tls_context.wrap_socket(raw, server_side=True)
                s.sock = sock
            owner.serve_session(s, sock)
        except Refused as exc:
            owner.store.log(exc.msgno, exc.text, s.id)
            if owner.metrics is not None:
                owner.metrics.refusals.labels(exc.msgno).inc()
            log.warning("%s", exc.text)
            try:
                owner.send(s, sock, messages.error(exc.answer, server_fault=exc.server_fault))
            except OSError:
                pass
        except (OSError, EOFError, ssl.SSLError) as exc:
            if not s.cancelled:
                owner.store.log("ANR0480W", f"Session {s.id} for {s.role or 'client'} {s.name or '?'} "
                                            f"({address}) ended: {exc or type(exc).__name__}.", s.id)
        finally:
            if s.state == "Run" and not s.cancelled:
                owner.store.log("ANR0403I", f"Session {s.id} ended for {s.role} {s.name} ({address}).", s.id)
            if s.state == "Run" and owner.metrics is not None:
                owner.metrics.sessions.labels(s.role).dec()
            owner.end_session(s)
