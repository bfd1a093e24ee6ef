"""The login phase of one connection as a sans-I/O state machine (RFC 7143 section 6).

:meth:`Login.step` takes a Login Request PDU and returns the Login Response
to send.  When the response moves the connection to full feature phase,
``complete`` is set and ``initiator``, ``node``, ``params`` say what was
agreed; when it carries a failure status, ``failed`` is set and the caller
closes the connection after sending it.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Callable

from scsi.iscsi.chap import ChapError, ChapExchange, ChapSecrets
from scsi.iscsi.node import TargetNode
from scsi.iscsi.pdu import Op, Pdu, make
from scsi.iscsi.textkeys import (SessionParams, TargetLimits, TextError, encode_pairs,
                                 negotiate_operational, parse_pairs)

log = logging.getLogger(__name__)

SECURITY, OPERATIONAL, FULL_FEATURE = 0, 1, 3
CMD_WINDOW = 64


class LoginStatus:
    SUCCESS = 0x0000
    INITIATOR_ERROR = 0x0200
    AUTH_FAILED = 0x0201
    FORBIDDEN = 0x0202
    NOT_FOUND = 0x0203
    UNSUPPORTED_VERSION = 0x0205
    TOO_MANY_CONNECTIONS = 0x0206
    MISSING_PARAMETER = 0x0207
    SESSION_TYPE_UNSUPPORTED = 0x0209
    NO_SESSION = 0x020A
    INVALID_DURING_LOGIN = 0x020B
    TARGET_ERROR = 0x0300


class LoginFailure(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclass
class Login:
    """Target side of one connection's login."""

    lookup: Callable[[str], TargetNode | None]
    limits: TargetLimits = field(default_factory=TargetLimits)
    tpgt: int = 1
    new_tsih: Callable[[], int] = lambda: 1
    statsn: int = 0
    params: SessionParams = field(default_factory=SessionParams)
    initiator: str = ""
    session_type: str = "Normal"
    node: TargetNode | None = None
    isid: bytes = b""
    tsih: int = 0
    cid: int = 0
    cmdsn: int = 0
    complete: bool = False
    failed: bool = False
    failure_reason: str = ""
    _first: bool = True
    _stage: int = SECURITY
    _chap_required: ChapSecrets | None = None
    _chap: ChapExchange | None = None
    _chap_agreed: bool = False
    _authenticated: bool = False
    _declared: bool = False
    _pending: bytes = b""

    @property
    def discovery(self) -> bool:
        return self.session_type == "Discovery"

    def step(self, pdu: Pdu) -> Pdu:
        if pdu.opcode != Op.LOGIN_REQ:
            return self._fail(pdu, LoginStatus.INVALID_DURING_LOGIN,
                              f"{pdu.name} received before login completed")
        try:
            return self._step(pdu)
        except LoginFailure as e:
            return self._fail(pdu, e.status, str(e))
        except (TextError, ChapError) as e:
            status = LoginStatus.AUTH_FAILED if isinstance(e, ChapError) else LoginStatus.INITIATOR_ERROR
            return self._fail(pdu, status, str(e))

    # -- internals ------------------------------------------------------------------
    def _step(self, pdu: Pdu) -> Pdu:
        if pdu["version_min"] > 0:
            raise LoginFailure(LoginStatus.UNSUPPORTED_VERSION,
                               f"login version-min {pdu['version_min']} (byte 3) is not supported")
        csg, nsg, transit = pdu["csg"], pdu["nsg"], pdu["transit"]
        if self._first:
            self.isid, self.tsih, self.cid, self.cmdsn = pdu["isid"], pdu["tsih"], pdu["cid"], pdu["cmdsn"]
            self.itt = pdu["itt"]
        elif pdu["isid"] != self.isid:
            raise LoginFailure(LoginStatus.INITIATOR_ERROR, "ISID changed during login (bytes 8-13)")
        if csg in (2, FULL_FEATURE):
            raise LoginFailure(LoginStatus.INITIATOR_ERROR, f"CSG {csg} (byte 1 bits 3-2) is not a login stage")
        if csg < self._stage:
            raise LoginFailure(LoginStatus.INITIATOR_ERROR, f"CSG {csg} goes back to an earlier stage")
        if transit and (nsg == 2 or nsg <= csg):
            raise LoginFailure(LoginStatus.INITIATOR_ERROR, f"NSG {nsg} (byte 1 bits 1-0) is not a valid next stage")
        if pdu["cont"]:
            self._pending += pdu.data
            if len(self._pending) > 65536:
                raise LoginFailure(LoginStatus.INITIATOR_ERROR, "login text longer than 64 KiB")
            return self._response(pdu, csg, 0, False, b"")
        data, self._pending = self._pending + pdu.data, b""
        pairs = parse_pairs(data)
        keys = dict(pairs)
        answers: list[tuple[str, str]] = []
        if self._first:
            self._identify(keys)
            self._first = False
            if not self.discovery:
                answers.append(("TargetPortalGroupTag", str(self.tpgt)))
                if self.node is not None and self.node.alias:
                    answers.append(("TargetAlias", self.node.alias))
        self._stage = csg
        if csg == SECURITY:
            answers += self._security(keys)
            can_leave = self._authenticated or self._chap_required is None
        else:
            if self._chap_required is not None and not self._authenticated:
                raise LoginFailure(LoginStatus.AUTH_FAILED,
                                   f"initiator {self.initiator} must authenticate with CHAP first")
            can_leave = True
        answers += negotiate_operational(pairs, self.params, self.limits, self.discovery)
        if csg == OPERATIONAL and not self._declared:
            answers.append(("MaxRecvDataSegmentLength", str(self.limits.max_recv_data_segment_length)))
            self._declared = True
        go = bool(transit and can_leave)
        if go and nsg == FULL_FEATURE:
            self._check_required_digests()
            self.complete = True
            self.tsih = self.new_tsih()
            if not self._declared:
                # Skipping the operational stage: defaults apply, ours must still be sent.
                answers.append(("MaxRecvDataSegmentLength", str(self.limits.max_recv_data_segment_length)))
                self._declared = True
        if go:
            self._stage = nsg
        return self._response(pdu, csg, nsg if go else 0, go, encode_pairs(answers))

    def _check_required_digests(self) -> None:
        """A target that requires a CRC32C digest does not let a session start without it."""
        for key, value, ours in (("HeaderDigest", self.params.header_digest, self.limits.header_digests),
                                 ("DataDigest", self.params.data_digest, self.limits.data_digests)):
            if value not in ours:
                raise LoginFailure(LoginStatus.INITIATOR_ERROR,
                                   f"{key}={value}: this target requires {' or '.join(ours)}")

    def _identify(self, keys: dict[str, str]) -> None:
        self.initiator = keys.get("InitiatorName", "")
        if not self.initiator:
            raise LoginFailure(LoginStatus.MISSING_PARAMETER, "InitiatorName missing in the first login request")
        self.session_type = keys.get("SessionType", "Normal")
        if self.session_type not in ("Normal", "Discovery"):
            raise LoginFailure(LoginStatus.SESSION_TYPE_UNSUPPORTED, f"SessionType={self.session_type!r}")
        if self.tsih:
            raise LoginFailure(LoginStatus.NO_SESSION,
                               f"TSIH {self.tsih} (bytes 14-15): adding connections to a session is not supported")
        if self.discovery:
            return
        target = keys.get("TargetName")
        if not target:
            raise LoginFailure(LoginStatus.MISSING_PARAMETER, "TargetName missing for a normal session")
        self.node = self.lookup(target)
        if self.node is None:
            raise LoginFailure(LoginStatus.NOT_FOUND, f"target {target!r} is not served here")
        if not self.node.allows(self.initiator):
            raise LoginFailure(LoginStatus.FORBIDDEN,
                               f"initiator {self.initiator} is not in the ACL of {self.node.name}")
        self._chap_required = self.node.chap_for(self.initiator)

    def _security(self, keys: dict[str, str]) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        if "AuthMethod" in keys:
            methods = [m.strip() for m in keys["AuthMethod"].split(",")]
            if self._chap_required is not None:
                if "CHAP" not in methods:
                    raise LoginFailure(LoginStatus.AUTH_FAILED,
                                       f"target {self.node.name if self.node else ''} requires CHAP; "
                                       f"initiator offered AuthMethod={keys['AuthMethod']}")
                out.append(("AuthMethod", "CHAP"))
                self._chap_agreed = True
            else:
                if "None" not in methods:
                    raise LoginFailure(LoginStatus.AUTH_FAILED,
                                       f"AuthMethod={keys['AuthMethod']} but no CHAP secret is configured")
                out.append(("AuthMethod", "None"))
        if self._chap_required is None:
            return out
        if not self._chap_agreed:
            raise LoginFailure(LoginStatus.AUTH_FAILED, f"target requires CHAP but {self.initiator} "
                               "did not offer AuthMethod=CHAP")
        if "CHAP_A" in keys:
            self._chap = ChapExchange(self._chap_required)
            out += self._chap.offer(keys["CHAP_A"])
        elif "CHAP_R" in keys or "CHAP_N" in keys:
            if self._chap is None:
                raise ChapError("CHAP_R before CHAP_A")
            out += self._chap.verify(keys)
            self._authenticated = True
            log.info("CHAP%s authentication of %s succeeded", " (mutual)" if out else "", self.initiator)
        return out

    def _response(self, pdu: Pdu, csg: int, nsg: int, transit: bool, data: bytes) -> Pdu:
        resp = make(Op.LOGIN_RSP, data, transit=int(transit), cont=0, csg=csg, nsg=nsg, version_max=0,
                    version_active=0, isid=self.isid or pdu.get("isid", b"\0" * 6),
                    tsih=self.tsih if self.complete else 0, itt=pdu["itt"], statsn=self.statsn,
                    expcmdsn=self.cmdsn, maxcmdsn=(self.cmdsn + CMD_WINDOW - 1) & 0xFFFFFFFF,
                    status_class=0, status_detail=0)
        self.statsn = (self.statsn + 1) & 0xFFFFFFFF
        return resp

    def _fail(self, pdu: Pdu, status: int, message: str) -> Pdu:
        self.failed = True
        self.failure_reason = message
        log.warning("login from %s refused (%04x): %s", self.initiator or "?", status, message)
        resp = make(Op.LOGIN_RSP, b"", version_max=0, version_active=0,
                    isid=pdu.get("isid", b"\0" * 6) if pdu.opcode == Op.LOGIN_REQ else b"\0" * 6,
                    itt=pdu.get("itt", 0), statsn=self.statsn, expcmdsn=self.cmdsn,
                    maxcmdsn=self.cmdsn, status_class=status >> 8, status_detail=status & 0xFF)
        return resp
