"""The client end of a server session: connect (TLS pinned when asked), prove the password, call.

Used by ``serverfree admin`` (role admin) and by the client commands (role
node).  The password is turned into a proof locally (:func:`auth.client_proof`)
and the server's signature is checked before anything else is sent, so the
client also knows it talks to a server that holds the verifier.
"""
from __future__ import annotations

import socket
from typing import Any

from orchestrator.server import auth, wire


class ServerRefused(PermissionError):
    """The server refused the session or a request (its message says why)."""


class ServerFailed(RuntimeError):
    """The server could not do what was asked for a reason of its own (a pool volume it cannot open)."""


def parse_address(host: str, port: int | str) -> tuple[str, int]:
    p = str(port)
    if not host or not p.isdigit() or not 0 < int(p) < 65536:
        raise ValueError(f"server address {host!r} port {p!r}: give tcpserveraddress and a tcpport of 1-65535")
    return host, int(p)


class ServerSession:
    def __init__(self, host: str, port: int | str, *, role: str, name: str, password: str,
                 tls_fingerprint: str | None = None, timeout: float = 120.0):
        if not name:
            raise ValueError(f"{'-id' if role == 'admin' else 'nodename'}: a name is needed to log in")
        if not password:
            raise ValueError("password: none given (option, SERVERFREE_PASSWORD, or the prompt)")
        addr = parse_address(host, port)
        try:
            raw = socket.create_connection(addr, timeout=timeout)
        except OSError as exc:
            raise ConnectionError(f"cannot reach the server at {addr[0]}:{addr[1]}: {exc}") from None
        self.sock: Any = raw
        try:
            if tls_fingerprint:
                from orchestrator.server.tls import wrap_client

                self.sock = wrap_client(raw, tls_fingerprint)
        except BaseException:
            raw.close()
            raise
        try:
            self.session = self._login(role, name, password)
        except ConnectionError as exc:  # reset or closed before a session: say what a plain client misses
            self.sock.close()
            hint = "" if tls_fingerprint else " (a server started with --tls answers only TLS: give tlsfingerprint)"
            raise ConnectionError(f"the server at {addr[0]}:{addr[1]} ended the connection before login: "
                                  f"{exc.strerror or exc}{hint}") from None
        except BaseException:
            self.sock.close()
            raise
        self.role, self.name = role, name.upper()

    def _login(self, role: str, name: str, password: str) -> int:
        nonce = auth.new_nonce()
        challenge, _ = self.call({"type": "hello", "role": role, "name": name, "client_nonce": nonce})
        if challenge.get("type") != "challenge":
            raise ServerRefused(f"server: expected a challenge, got {challenge.get('type')!r}")
        try:
            salt = auth.unb64(challenge["salt"], "salt")
            message = auth.auth_message(role, name, nonce, str(challenge["server_nonce"]))
            proof, expect = auth.client_proof(password, salt, int(challenge["n"]), int(challenge["r"]),
                                              int(challenge["p"]), message)
        except (KeyError, TypeError) as exc:
            raise ServerRefused(f"server: malformed challenge ({exc})") from None
        welcome, _ = self.call({"type": "proof", "proof": auth.b64(proof)})
        if welcome.get("type") != "welcome":
            raise ServerRefused(f"server: expected welcome, got {welcome.get('type')!r}")
        if auth.unb64(str(welcome.get("server_signature", "")), "server signature") != expect:
            raise ServerRefused("the server could not prove it knows this user's verifier; not trusting it")
        return int(welcome["session"])

    def call(self, message: dict, data: bytes = b"", bulk: dict | None = None) -> tuple[dict, Any]:
        """Send one request (with its rows: field -> (layout, count, pages)), return the answer; an ERROR answer
        raises ServerRefused.  An answer with rows comes as (message, wire.RowReader): read them before the next
        call."""
        try:
            wire.send_bulk(self.sock, message, bulk or {}, data)
        except (BrokenPipeError, ConnectionResetError):  # the server refused part way through the rows: its ERROR says why
            pass
        try:
            f = wire.read_frame(self.sock)
        except EOFError:
            raise ConnectionError("the server closed the session") from None
        if f.message.get("type") == "error":
            if f.message.get("fault") == "server":
                raise ServerFailed(f"server: {f.message.get('message', '')}")
            raise ServerRefused(f"server: {f.message.get('message', '')}")
        if "bulk" in f.message:
            from orchestrator.server.messages import bulk_of

            try:
                return f.message, wire.RowReader(self.sock, bulk_of(f.message))
            except ValueError as exc:
                raise ConnectionError(f"the server's answer is malformed: {exc}") from None
        return f.message, f.data

    def command(self, text: str) -> tuple[bool, str]:
        """An administrative command: (accepted, the server's answer)."""
        reply, _ = self.call({"type": "command", "text": text})
        return bool(reply.get("ok")), str(reply.get("text", ""))

    closed = False

    def close(self) -> None:
        self.closed = True
        try:
            wire.send(self.sock, {"type": "bye"})
        except OSError:
            pass
        self.sock.close()

    def __enter__(self) -> "ServerSession":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
