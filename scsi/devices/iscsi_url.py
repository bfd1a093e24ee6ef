"""iSCSI URLs and CHAP credentials, validated at the boundary.

URL form (as libiscsi and qemu write it)::

    iscsi://[<user>[%<password>]@]<host>[:<port>]/<target-iqn>/<lun>

The target name may be percent-encoded (``%3A`` for ``:``).
"""
from __future__ import annotations

from urllib.parse import unquote, urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

DEFAULT_PORT = 3260


class ChapCredentials(BaseModel):
    """One CHAP account: the name and the secret."""

    model_config = ConfigDict(frozen=True)

    username: str = Field(min_length=1, max_length=255)
    secret: str = Field(min_length=1, max_length=255)

    def __repr__(self) -> str:  # never print secrets
        return f"ChapCredentials(username={self.username!r}, secret=***)"

    __str__ = __repr__


class IscsiUrl(BaseModel):
    """A parsed ``iscsi://`` URL."""

    model_config = ConfigDict(frozen=True)

    host: str = Field(min_length=1)
    port: int = Field(default=DEFAULT_PORT, ge=1, le=65535)
    target: str = Field(min_length=1, max_length=223)
    lun: int = Field(default=0, ge=0, le=16383)
    chap: ChapCredentials | None = None

    @field_validator("target")
    @classmethod
    def _target_name(cls, v: str) -> str:
        if any(c.isspace() for c in v):
            raise ValueError(f"target name {v!r} contains white space")
        return v

    @property
    def portal(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def display(self) -> str:
        """The URL without credentials (safe for logs and messages)."""
        return f"iscsi://{self.portal}/{self.target}/{self.lun}"


def parse_iscsi_url(url: str) -> IscsiUrl:
    """Parse an ``iscsi://`` URL; raise ``ValueError`` naming what is wrong."""
    if not isinstance(url, str) or not url.startswith("iscsi://"):
        raise ValueError(f"not an iSCSI URL (must start with iscsi://): {url!r}")
    rest = url[len("iscsi://"):]
    creds = None
    if "@" in rest.split("/", 1)[0]:
        userinfo, rest = rest.split("@", 1)
        user, _, secret = userinfo.partition("%")
        if not user or not secret:
            raise ValueError("iSCSI URL credentials must be <user>%<password>@")
        creds = ChapCredentials(username=unquote(user), secret=unquote(secret))
    parts = urlsplit("iscsi://" + rest)
    try:
        port = parts.port or DEFAULT_PORT
    except ValueError as exc:
        raise ValueError(f"iSCSI URL {_shown(rest)}: bad port ({exc})") from None
    if not parts.hostname:
        raise ValueError(f"iSCSI URL {_shown(rest)}: missing host")
    path = parts.path.strip("/").split("/")
    if len(path) != 2 or not path[0]:
        raise ValueError(f"iSCSI URL {_shown(rest)}: path must be /<target-iqn>/<lun>")
    target, lun_text = unquote(path[0]), path[1]
    if not lun_text.isdigit():
        raise ValueError(f"iSCSI URL {_shown(rest)}: LUN {lun_text!r} is not a number")
    return IscsiUrl(host=parts.hostname, port=port, target=target, lun=int(lun_text), chap=creds)


def _shown(rest: str) -> str:
    return repr("iscsi://" + rest)
