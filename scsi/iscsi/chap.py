"""CHAP for iSCSI login (RFC 7143 section 12.1.3, RFC 1994), MD5 only (CHAP_A=5).

One-way: the target challenges the initiator.  Mutual: the initiator also
sends CHAP_I/CHAP_C and the target answers with its own name and response.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

CHAP_MD5 = 5
CHALLENGE_LEN = 16


class ChapError(ValueError):
    """Authentication failed or the CHAP exchange was malformed."""


@dataclass(frozen=True)
class ChapSecrets:
    """What the target checks (username/secret) and, for mutual CHAP, answers with."""

    username: str
    secret: str
    mutual_username: str | None = None
    mutual_secret: str | None = None

    @property
    def mutual(self) -> bool:
        return bool(self.mutual_username and self.mutual_secret)


def chap_response(identifier: int, secret: bytes, challenge: bytes) -> bytes:
    return hashlib.md5(bytes([identifier & 0xFF]) + secret + challenge).digest()


def decode_binary(key: str, value: str) -> bytes:
    """CHAP binary values: 0x-hex or 0b-base64."""
    try:
        if value[:2] in ("0x", "0X"):
            return bytes.fromhex(value[2:])
        if value[:2] in ("0b", "0B"):
            import base64
            return base64.b64decode(value[2:], validate=True)
    except ValueError:
        pass
    raise ChapError(f"{key}={value[:40]!r} is not a 0x-hex or 0b-base64 value")


class ChapExchange:
    """Target side of one CHAP exchange."""

    def __init__(self, creds: ChapSecrets):
        self.creds = creds
        self.identifier = secrets.randbelow(256)
        self.challenge = secrets.token_bytes(CHALLENGE_LEN)
        self.challenged = False

    def offer(self, algorithms: str) -> list[tuple[str, str]]:
        """Answer CHAP_A with MD5 and our challenge."""
        if str(CHAP_MD5) not in [a.strip() for a in algorithms.split(",")]:
            raise ChapError(f"CHAP_A={algorithms}: only MD5 (5) is supported")
        self.challenged = True
        return [("CHAP_A", str(CHAP_MD5)), ("CHAP_I", str(self.identifier)),
                ("CHAP_C", "0x" + self.challenge.hex())]

    def verify(self, keys: dict[str, str]) -> list[tuple[str, str]]:
        """Check CHAP_N/CHAP_R; for mutual CHAP answer the initiator's CHAP_I/CHAP_C."""
        if not self.challenged:
            raise ChapError("CHAP_R before the target sent its challenge")
        name, resp = keys.get("CHAP_N"), keys.get("CHAP_R")
        if name is None or resp is None:
            raise ChapError("CHAP_N and CHAP_R are required")
        expected = chap_response(self.identifier, self.creds.secret.encode(), self.challenge)
        got = decode_binary("CHAP_R", resp)
        if name != self.creds.username or not hmac.compare_digest(got, expected):
            raise ChapError(f"CHAP authentication failed for user {name!r}")
        if "CHAP_I" not in keys and "CHAP_C" not in keys:
            if self.creds.mutual:
                raise ChapError("this target requires mutual CHAP: CHAP_I/CHAP_C missing")
            return []
        if not self.creds.mutual:
            raise ChapError("initiator asked for mutual CHAP but no target secret is configured")
        try:
            ident = int(keys.get("CHAP_I", ""), 0)
        except ValueError:
            raise ChapError(f"CHAP_I={keys.get('CHAP_I')!r} is not a number") from None
        if not 0 <= ident <= 255:
            raise ChapError(f"CHAP_I={ident} outside 0..255")
        challenge = decode_binary("CHAP_C", keys.get("CHAP_C", ""))
        if challenge == self.challenge or not challenge:
            raise ChapError("initiator's CHAP_C repeats the target's challenge or is empty")
        assert self.creds.mutual_secret and self.creds.mutual_username
        answer = chap_response(ident, self.creds.mutual_secret.encode(), challenge)
        return [("CHAP_N", self.creds.mutual_username), ("CHAP_R", "0x" + answer.hex())]
