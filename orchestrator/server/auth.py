"""Passwords at rest and on the wire: salted scrypt, then SCRAM's challenge-response (RFC 5802).

At rest the server keeps, per user, the salt, the scrypt cost and two keys
derived from ``SaltedPassword = scrypt(password, salt)`` (RFC 7914):
``StoredKey = SHA-256(HMAC(SaltedPassword, "Client Key"))`` and
``ServerKey = HMAC(SaltedPassword, "Server Key")`` -- neither lets anyone log
in without the password (RFC 5802 section 3).

On the wire the password never travels, nor anything replayable: the client
sends its name and a fresh nonce, the server answers with the salt, the cost
and its own fresh nonce; the client proves it knows ``ClientKey`` with
``ClientProof = ClientKey XOR HMAC(StoredKey, AuthMessage)`` where
AuthMessage binds role, name and both nonces, and the server proves its own
knowledge back with ``HMAC(ServerKey, AuthMessage)``.  A proof recorded from
one session is worthless in the next, whose server nonce differs.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass

SCRYPT_N, SCRYPT_R, SCRYPT_P = 1 << 14, 8, 1   # 16 MiB, ~50 ms per derivation
NONCE_BYTES = 24
MIN_PASSWORD = 8


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def unb64(text: str, what: str, size: int | None = None) -> bytes:
    try:
        raw = base64.b64decode(text.encode(), validate=True)
    except (ValueError, UnicodeEncodeError):
        raise ValueError(f"{what} is not base64") from None
    if size is not None and len(raw) != size:
        raise ValueError(f"{what} is {len(raw)} bytes, expected {size}")
    return raw


def _hmac(key: bytes, msg: bytes) -> bytes:
    return hmac.new(key, msg, hashlib.sha256).digest()


def salted_password(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    if not 2 <= n <= 1 << 20 or n & (n - 1) or not 1 <= r <= 32 or not 1 <= p <= 16:
        raise ValueError(f"scrypt cost n={n} r={r} p={p} is outside what this client accepts")
    return hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, maxmem=256 << 20, dklen=32)


def check_password_rules(password: str, what: str = "password") -> None:
    if len(password) < MIN_PASSWORD:
        raise ValueError(f"{what} must have at least {MIN_PASSWORD} characters")
    if len(password) > 256 or any(c in password for c in "\r\n\0"):
        raise ValueError(f"{what} must be at most 256 characters on one line")


@dataclass(frozen=True)
class Verifier:
    """What the server stores for one user (never the password, never a login-equivalent)."""

    salt: bytes
    n: int
    r: int
    p: int
    stored_key: bytes
    server_key: bytes

    @classmethod
    def create(cls, password: str, *, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P) -> "Verifier":
        check_password_rules(password)
        salt = secrets.token_bytes(16)
        sp = salted_password(password, salt, n, r, p)
        return cls(salt, n, r, p, hashlib.sha256(_hmac(sp, b"Client Key")).digest(), _hmac(sp, b"Server Key"))

    def to_text(self) -> str:
        return "$".join(["scrypt-scram", str(self.n), str(self.r), str(self.p), b64(self.salt),
                         b64(self.stored_key), b64(self.server_key)])

    @classmethod
    def from_text(cls, text: str) -> "Verifier":
        kind, n, r, p, salt, stored, server = text.split("$")
        if kind != "scrypt-scram":
            raise ValueError(f"unknown verifier kind {kind!r}")
        return cls(unb64(salt, "salt"), int(n), int(r), int(p), unb64(stored, "stored key", 32),
                   unb64(server, "server key", 32))


def auth_message(role: str, name: str, client_nonce: str, server_nonce: str) -> bytes:
    return f"r={role},n={name.upper()},c={client_nonce},s={server_nonce}".encode()


def new_nonce() -> str:
    return b64(secrets.token_bytes(NONCE_BYTES))


def client_proof(password: str, salt: bytes, n: int, r: int, p: int, message: bytes) -> tuple[bytes, bytes]:
    """(ClientProof, expected ServerSignature) for one AuthMessage."""
    sp = salted_password(password, salt, n, r, p)
    client_key = _hmac(sp, b"Client Key")
    signature = _hmac(hashlib.sha256(client_key).digest(), message)
    proof = bytes(a ^ b for a, b in zip(client_key, signature))
    return proof, _hmac(_hmac(sp, b"Server Key"), message)


def verify_proof(v: Verifier, message: bytes, proof: bytes) -> bytes | None:
    """The ServerSignature when ``proof`` is right for ``message``, else None (constant time)."""
    if len(proof) != 32:
        return None
    signature = _hmac(v.stored_key, message)
    client_key = bytes(a ^ b for a, b in zip(proof, signature))
    if not hmac.compare_digest(hashlib.sha256(client_key).digest(), v.stored_key):
        return None
    return _hmac(v.server_key, message)


def decoy_salt(secret: bytes, name: str) -> bytes:
    """The salt shown for an unknown name: stable per name, so a probe cannot tell who exists."""
    return _hmac(secret, b"decoy salt " + name.upper().encode())[:16]
