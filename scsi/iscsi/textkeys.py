"""iSCSI text keys (RFC 7143 sections 6 and 13): key=value pairs and their negotiation.

Login and Text PDUs carry ``key=value`` pairs separated by NUL bytes.  The
target answers each operational key with the negotiated value following the
key's rule (minimum, maximum, boolean AND/OR, list choice, declarative), and
remembers the results in :class:`SessionParams`.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

log = logging.getLogger(__name__)

MAX_KEY_LEN = 63
MAX_VALUE_LEN = 8192


class TextError(ValueError):
    """Malformed key=value data (login answers it with initiator error 0200h)."""


def parse_pairs(data: bytes) -> list[tuple[str, str]]:
    """``key=value`` pairs in order; a trailing partial pair (no NUL) is still accepted."""
    out: list[tuple[str, str]] = []
    offset = 0
    for chunk in data.split(b"\0"):
        if not chunk:
            offset += 1
            continue
        try:
            text = chunk.decode("utf-8")
        except UnicodeDecodeError as e:
            raise TextError(f"text data at byte {offset + e.start} is not UTF-8") from None
        key, sep, value = text.partition("=")
        if not sep or not key:
            raise TextError(f"text data at byte {offset}: {text[:40]!r} is not key=value")
        if len(key) > MAX_KEY_LEN or len(value) > MAX_VALUE_LEN:
            raise TextError(f"text data at byte {offset}: key or value of {key[:40]!r} too long")
        out.append((key, value))
        offset += len(chunk) + 1
    return out


def encode_pairs(pairs: list[tuple[str, str]]) -> bytes:
    return b"".join(f"{k}={v}".encode("utf-8") + b"\0" for k, v in pairs)


@dataclass
class SessionParams:
    """Negotiated operational parameters (RFC 7143 defaults until negotiated)."""

    max_connections: int = 1
    initial_r2t: bool = True
    immediate_data: bool = True
    max_recv_data_segment_length: int = 8192  # what the initiator can receive (we send at most this)
    max_burst_length: int = 262144
    first_burst_length: int = 65536
    default_time2wait: int = 2
    default_time2retain: int = 20
    max_outstanding_r2t: int = 1
    data_pdu_in_order: bool = True
    data_sequence_in_order: bool = True
    error_recovery_level: int = 0
    header_digest: str = "None"
    data_digest: str = "None"


@dataclass(frozen=True)
class TargetLimits:
    """What this target offers; the negotiated values never exceed these."""

    max_recv_data_segment_length: int = 262144  # what we accept in one PDU
    max_burst_length: int = 1048576
    first_burst_length: int = 262144
    max_outstanding_r2t: int = 1
    max_connections: int = 1
    initial_r2t: bool = False
    immediate_data: bool = True
    header_digests: tuple[str, ...] = ("CRC32C", "None")  # HeaderDigest values we accept
    data_digests: tuple[str, ...] = ("CRC32C", "None")  # DataDigest values we accept


DIGEST_POLICIES = {"allowed": ("CRC32C", "None"), "required": ("CRC32C",), "off": ("None",)}


def _number(key: str, value: str, lo: int, hi: int) -> int:
    try:
        n = int(value, 0)
    except ValueError:
        raise TextError(f"{key}={value!r}: not a number") from None
    if not lo <= n <= hi:
        raise TextError(f"{key}={value}: outside {lo}..{hi}")
    return n


def _bool(key: str, value: str) -> bool:
    if value not in ("Yes", "No"):
        raise TextError(f"{key}={value!r}: must be Yes or No")
    return value == "Yes"


def _yn(b: bool) -> str:
    return "Yes" if b else "No"


DECLARATIVE_ECHO = {"InitiatorName", "InitiatorAlias", "SessionType", "TargetName"}


def negotiate_operational(pairs: list[tuple[str, str]], params: SessionParams, limits: TargetLimits,
                          discovery: bool) -> list[tuple[str, str]]:
    """Answer operational keys and update ``params``; security and identity keys are skipped.

    Unknown keys get ``NotUnderstood``; irrelevant ones for discovery get ``Irrelevant``.
    """
    answers: list[tuple[str, str]] = []
    for key, value in pairs:
        if key in ("InitiatorName", "InitiatorAlias", "SessionType", "TargetName", "AuthMethod") \
                or key.startswith("CHAP_"):
            continue
        if key == "HeaderDigest" or key == "DataDigest":
            # A list: the first value we support wins, the initiator's order is its preference
            # (RFC 7143 6.2); none we support is answered Reject (13.1: CRC32C and None).
            offered = [v.strip() for v in value.split(",")]
            ours = limits.header_digests if key == "HeaderDigest" else limits.data_digests
            choice = next((v for v in offered if v in ours), None)
            if choice is None:
                answers.append((key, "Reject"))
                continue
            setattr(params, "header_digest" if key == "HeaderDigest" else "data_digest", choice)
            answers.append((key, choice))
        elif key == "MaxConnections":
            n = _number(key, value, 1, 65535)
            params.max_connections = min(n, limits.max_connections)
            answers.append((key, str(params.max_connections)))
        elif key == "InitialR2T":
            params.initial_r2t = _bool(key, value) or limits.initial_r2t
            answers.append((key, _yn(params.initial_r2t)))
        elif key == "ImmediateData":
            params.immediate_data = _bool(key, value) and limits.immediate_data
            answers.append((key, _yn(params.immediate_data)))
        elif key == "MaxRecvDataSegmentLength":
            params.max_recv_data_segment_length = _number(key, value, 512, 16777215)
            # declarative: we announce ours separately (see target_declarations)
        elif key == "MaxBurstLength":
            params.max_burst_length = min(_number(key, value, 512, 16777215), limits.max_burst_length)
            answers.append((key, str(params.max_burst_length)))
        elif key == "FirstBurstLength":
            params.first_burst_length = min(_number(key, value, 512, 16777215), limits.first_burst_length)
            answers.append((key, str(params.first_burst_length)))
        elif key == "DefaultTime2Wait":
            params.default_time2wait = max(_number(key, value, 0, 3600), 0)
            answers.append((key, str(params.default_time2wait)))
        elif key == "DefaultTime2Retain":
            params.default_time2retain = min(_number(key, value, 0, 3600), 0)
            answers.append((key, str(params.default_time2retain)))
        elif key == "MaxOutstandingR2T":
            params.max_outstanding_r2t = min(_number(key, value, 1, 65535), limits.max_outstanding_r2t)
            answers.append((key, str(params.max_outstanding_r2t)))
        elif key == "DataPDUInOrder":
            params.data_pdu_in_order = True  # OR with our Yes
            _bool(key, value)
            answers.append((key, "Yes"))
        elif key == "DataSequenceInOrder":
            params.data_sequence_in_order = True
            _bool(key, value)
            answers.append((key, "Yes"))
        elif key == "ErrorRecoveryLevel":
            _number(key, value, 0, 2)
            params.error_recovery_level = 0
            answers.append((key, "0"))
        elif key in ("IFMarker", "OFMarker"):
            answers.append((key, "No"))
        elif key in ("OFMarkInt", "IFMarkInt"):
            answers.append((key, "Irrelevant"))
        elif key in ("TargetAlias", "TargetAddress", "TargetPortalGroupTag"):
            raise TextError(f"{key} may only be sent by a target")
        elif key == "SendTargets":
            continue  # answered by the text handler in full feature phase
        else:
            answers.append((key, "NotUnderstood"))
    if discovery:
        # Session-wide data transfer keys mean nothing in a discovery session.
        answers = [(k, "Irrelevant" if k in ("MaxBurstLength", "FirstBurstLength", "InitialR2T",
                                             "ImmediateData", "MaxOutstandingR2T", "DataPDUInOrder",
                                             "DataSequenceInOrder") else v) for k, v in answers]
    return answers
