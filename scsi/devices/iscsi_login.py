"""Logging in to an iSCSI target with libiscsi: the context's settings, CHAP, and plain words for failures.

libiscsi reports an unreachable portal and a refused login in its own terms;
here they become :class:`DeviceConnectionError` and :class:`DeviceLoginError`
naming the URL, the initiator and the CHAP user, so one line tells an
operator which of the three to fix.
"""
from __future__ import annotations

import socket
from typing import Any

from scsi.devices import libiscsi_ffi as L
from scsi.devices.errors import DeviceConnectionError, DeviceLoginError
from scsi.devices.iscsi_url import ChapCredentials, IscsiUrl

#: header_digest spellings -> libiscsi's enum (RFC 7143 13.1: HeaderDigest, the initiator's preference first)
DIGESTS = {"none": L.ISCSI_HEADER_DIGEST_NONE, "crc32c": L.ISCSI_HEADER_DIGEST_CRC32C,
           "none,crc32c": L.ISCSI_HEADER_DIGEST_NONE_CRC32C,
           "crc32c,none": L.ISCSI_HEADER_DIGEST_CRC32C_NONE}


def chap_account(value: ChapCredentials | tuple[str, str] | None) -> ChapCredentials | None:
    if value is None or isinstance(value, ChapCredentials):
        return value
    user, secret = value
    return ChapCredentials(username=user, secret=secret)


def portal_problem(u: IscsiUrl, timeout: float) -> str | None:
    """libiscsi's words for an unreachable portal are cryptic; say it plainly."""
    try:
        with socket.create_connection((u.host, u.port), timeout=min(timeout, 5.0)):
            return None
    except OSError as exc:
        return f"cannot reach portal {u.portal}: {exc.strerror or exc}"


def login(lib: Any, u: IscsiUrl, initiator_iqn: str, chap: ChapCredentials | None,
          mutual_chap: ChapCredentials | None, header_digest: str, timeout: float) -> Any:
    """A logged-in libiscsi context for ``u`` (a normal session to its LUN), or the error why not."""
    ctx = lib.iscsi_create_context(initiator_iqn.encode())
    if ctx == L.ffi.NULL:
        raise DeviceConnectionError(f"libiscsi could not create a context for initiator {initiator_iqn!r}")

    def error_text() -> str:
        return L.ffi.string(lib.iscsi_get_error(ctx)).decode(errors="replace")

    try:
        checks = [
            ("target name", lib.iscsi_set_targetname(ctx, u.target.encode())),
            ("session type", lib.iscsi_set_session_type(ctx, L.ISCSI_SESSION_NORMAL)),
            ("header digest", lib.iscsi_set_header_digest(ctx, DIGESTS[header_digest])),
            ("timeout", lib.iscsi_set_timeout(ctx, max(1, int(timeout + 0.999)))),
        ]
        if chap is not None:
            checks.append(("CHAP account", lib.iscsi_set_initiator_username_pwd(
                ctx, chap.username.encode(), chap.secret.encode())))
        if mutual_chap is not None:
            checks.append(("mutual CHAP account", lib.iscsi_set_target_username_pwd(
                ctx, mutual_chap.username.encode(), mutual_chap.secret.encode())))
        for what, rc in checks:
            if rc != 0:
                raise DeviceConnectionError(f"{u.display()}: setting {what} failed: {error_text()}")
        # A lost session must surface as an error, not as endless silent reconnects.
        lib.iscsi_set_noautoreconnect(ctx, 1)
        if lib.iscsi_full_connect_sync(ctx, u.portal.encode(), u.lun) != 0:
            text = error_text().strip()
            lowered = text.lower()
            cls = DeviceLoginError if "log in" in lowered or "auth" in lowered else DeviceConnectionError
            if cls is DeviceConnectionError:
                text = portal_problem(u, timeout) or text
            raise cls(f"{u.display()} as {initiator_iqn}"
                      f"{' with CHAP user ' + chap.username if chap else ''}: {text}")
    except BaseException:
        lib.iscsi_destroy_context(ctx)  # nothing is in flight before login: no callbacks to reap
        raise
    return ctx
