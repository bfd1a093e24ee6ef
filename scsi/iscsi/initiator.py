"""A minimal asyncio iSCSI initiator, for probing the target in tests and tools.

It speaks just enough of RFC 7143 to log in (optionally with CHAP), send SCSI
commands with Data-Out answering R2Ts, NOP, task management and logout, and
to push raw PDUs at a target (the fuzz tests).  Production I/O goes through
libiscsi (scsi.devices); this is not a replacement for it.
"""
from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field

from scsi.iscsi.chap import chap_response, decode_binary
from scsi.iscsi.pdu import BHS_LEN, DIGEST_LEN, NO_TAG, Op, Pdu, digest, encode_lun, make, parse_header
from scsi.iscsi.textkeys import encode_pairs, parse_pairs


class InitiatorError(RuntimeError):
    """The target refused or answered something this initiator cannot handle."""


@dataclass
class Response:
    status: int
    data: bytes = b""
    sense: bytes = b""
    residual: int = 0
    r2ts: int = 0


@dataclass
class Initiator:
    host: str
    port: int
    name: str = "iqn.2026-11.org.serverfree:test-initiator"
    isid: bytes = field(default_factory=lambda: b"\x80" + os.urandom(5))
    reader: asyncio.StreamReader | None = None
    writer: asyncio.StreamWriter | None = None
    cmdsn: int = 1
    expstatsn: int = 0
    itt: int = 0x10
    max_burst: int = 262144
    first_burst: int = 65536
    target_mrdsl: int = 8192
    immediate_data: bool = True
    initial_r2t: bool = False
    login_status: int = 0
    negotiated: dict[str, str] = field(default_factory=dict)
    header_digest: bool = False  # CRC32C digests in force (after the final Login Response)
    data_digest: bool = False

    async def connect(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            try:
                await self.writer.wait_closed()
            except (ConnectionError, OSError):
                pass

    def next_itt(self) -> int:
        self.itt += 1
        return self.itt

    async def send(self, pdu: Pdu | bytes) -> None:
        assert self.writer is not None
        self.writer.write(pdu if isinstance(pdu, bytes) else
                          pdu.encode(header_digest=self.header_digest, data_digest=self.data_digest))
        await self.writer.drain()

    async def recv(self, timeout: float = 10.0) -> Pdu:
        assert self.reader is not None
        header = await asyncio.wait_for(self.reader.readexactly(BHS_LEN), timeout)
        opcode = header[0] & 0x3F
        from scsi.iscsi.pdu import LAYOUTS
        if opcode not in LAYOUTS:
            raise InitiatorError(f"unknown opcode {opcode:#x} from target")
        fields = LAYOUTS[opcode].unpack_from(header, strict=False)
        pdu = Pdu(opcode, fields, raw_header=header)
        if fields["total_ahs"]:
            pdu.ahs = await self.reader.readexactly(fields["total_ahs"] * 4)
        if self.header_digest and await self.reader.readexactly(DIGEST_LEN) != digest(header, pdu.ahs):
            raise InitiatorError(f"header digest error on {pdu.name} from the target")
        dsl = fields["dsl"]
        if dsl:
            padded = await self.reader.readexactly(dsl + (-dsl) % 4)
            if self.data_digest and await self.reader.readexactly(DIGEST_LEN) != digest(padded):
                raise InitiatorError(f"data digest error on {pdu.name} from the target")
            pdu.data = padded[:dsl]
        if "statsn" in fields and opcode not in (Op.R2T, Op.REJECT) and \
                not (opcode == Op.DATA_IN and not fields.get("has_status")):
            self.expstatsn = (fields["statsn"] + 1) & 0xFFFFFFFF
        return pdu

    # -- login ------------------------------------------------------------------------
    async def login(self, target: str | None, *, chap: tuple[str, str] | None = None,
                    mutual: tuple[str, str] | None = None, operational: dict[str, str] | None = None) -> None:
        """Log in (Discovery when ``target`` is None); raise InitiatorError with the status on failure."""
        keys = [("InitiatorName", self.name),
                ("SessionType", "Discovery" if target is None else "Normal")]
        if target is not None:
            keys.append(("TargetName", target))
        itt = self.next_itt()
        if chap is not None:
            resp = await self._login_pdu(itt, 0, 1, False, keys + [("AuthMethod", "CHAP,None")])
            resp = await self._login_pdu(itt, 0, 1, False, [("CHAP_A", "5")])
            got = dict(parse_pairs(resp.data))
            ident, challenge = int(got["CHAP_I"]), decode_binary("CHAP_C", got["CHAP_C"])
            answer = [("CHAP_N", chap[0]),
                      ("CHAP_R", "0x" + chap_response(ident, chap[1].encode(), challenge).hex())]
            my_challenge = os.urandom(16)
            if mutual is not None:
                answer += [("CHAP_I", "7"), ("CHAP_C", "0x" + my_challenge.hex())]
            resp = await self._login_pdu(itt, 0, 1, True, answer)
            if mutual is not None:
                got = dict(parse_pairs(resp.data))
                expect = chap_response(7, mutual[1].encode(), my_challenge)
                if got.get("CHAP_N") != mutual[0] or decode_binary("CHAP_R", got.get("CHAP_R", "0x")) != expect:
                    raise InitiatorError("target failed mutual CHAP")
        else:
            keys.append(("AuthMethod", "None"))
            await self._login_pdu(itt, 0, 1, True, keys)
        ops = {"HeaderDigest": "None", "DataDigest": "None", "MaxRecvDataSegmentLength": "262144",
               "InitialR2T": "No", "ImmediateData": "Yes", "MaxBurstLength": "262144",
               "FirstBurstLength": "65536", "ErrorRecoveryLevel": "0"}
        ops.update(operational or {})
        resp = await self._login_pdu(itt, 1, 3, True, list(ops.items()))
        self.negotiated = dict(parse_pairs(resp.data))
        n = self.negotiated
        self.target_mrdsl = int(n.get("MaxRecvDataSegmentLength", "8192"))
        self.header_digest = n.get("HeaderDigest") == "CRC32C"  # from the next PDU on (RFC 7143 13.1)
        self.data_digest = n.get("DataDigest") == "CRC32C"
        if target is None:
            return  # discovery: data transfer keys are Irrelevant
        self.max_burst = int(n.get("MaxBurstLength", self.max_burst))
        self.first_burst = int(n.get("FirstBurstLength", self.first_burst))
        self.immediate_data = n.get("ImmediateData", "Yes") == "Yes"
        self.initial_r2t = n.get("InitialR2T", "No") == "Yes"

    async def _login_pdu(self, itt: int, csg: int, nsg: int, transit: bool,
                         keys: list[tuple[str, str]]) -> Pdu:
        await self.send(make(Op.LOGIN_REQ, encode_pairs(keys), immediate=1, transit=int(transit), csg=csg,
                             nsg=nsg if transit else 0, isid=self.isid, tsih=0, itt=itt, cid=0,
                             cmdsn=self.cmdsn, expstatsn=self.expstatsn))
        resp = await self.recv()
        if resp.opcode != Op.LOGIN_RSP:
            raise InitiatorError(f"expected a Login Response, got {resp.name}")
        self.login_status = (resp["status_class"] << 8) | resp["status_detail"]
        if self.login_status:
            raise InitiatorError(f"login failed with status {self.login_status:04x}")
        return resp

    # -- full feature phase --------------------------------------------------------------------
    def scsi_pdu(self, cdb: bytes, *, lun: int = 0, read_len: int = 0, write_data: bytes = b"",
                 immediate_data: bool | None = None) -> tuple[Pdu, int]:
        itt = self.next_itt()
        imm = self.immediate_data if immediate_data is None else immediate_data
        immediate = write_data[:min(self.first_burst, self.target_mrdsl)] if imm else b""
        edtl = read_len or len(write_data)
        pdu = make(Op.SCSI_CMD, immediate, final=1, read=int(read_len > 0), write=int(bool(write_data)),
                   attr=1, lun=encode_lun(lun), itt=itt, edtl=edtl, cmdsn=self.cmdsn,
                   expstatsn=self.expstatsn, cdb=cdb.ljust(16, b"\0"))
        self.cmdsn = (self.cmdsn + 1) & 0xFFFFFFFF
        return pdu, itt

    async def command(self, cdb: bytes, *, lun: int = 0, read_len: int = 0, write_data: bytes = b"",
                      immediate_data: bool | None = None) -> Response:
        """Run one SCSI command to completion, answering R2Ts with the write data."""
        pdu, itt = self.scsi_pdu(cdb, lun=lun, read_len=read_len, write_data=write_data,
                                 immediate_data=immediate_data)
        await self.send(pdu)
        return await self.finish(itt, write_data)

    async def finish(self, itt: int, write_data: bytes = b"") -> Response:
        data = bytearray()
        r2ts = 0
        while True:
            p = await self.recv()
            if p.get("itt") != itt and p.opcode != Op.REJECT:
                continue
            if p.opcode == Op.R2T:
                r2ts += 1
                await self.data_out(itt, p["ttt"], write_data, p["buffer_offset"], p["desired_length"])
            elif p.opcode == Op.DATA_IN:
                data[p["buffer_offset"]:p["buffer_offset"] + len(p.data)] = p.data
                if p["has_status"]:
                    return Response(p["status"], bytes(data), residual=p["residual"], r2ts=r2ts)
            elif p.opcode == Op.SCSI_RSP:
                sense = p.data[2:2 + int.from_bytes(p.data[:2], "big")] if len(p.data) >= 2 else b""
                return Response(p["status"], bytes(data), sense, p["residual"], r2ts)
            elif p.opcode == Op.REJECT:
                raise InitiatorError(f"target rejected a PDU, reason {p['reason']:#x}")
            else:
                raise InitiatorError(f"unexpected {p.name}")

    async def data_out(self, itt: int, ttt: int, data: bytes, offset: int, length: int) -> None:
        end = offset + length
        datasn = 0
        while offset < end:
            chunk = data[offset:min(end, offset + self.target_mrdsl)]
            await self.send(make(Op.DATA_OUT, chunk, final=int(offset + len(chunk) >= end), itt=itt, ttt=ttt,
                                 expstatsn=self.expstatsn, datasn=datasn, buffer_offset=offset))
            offset += len(chunk)
            datasn += 1

    async def nop(self, payload: bytes = b"") -> Pdu:
        itt = self.next_itt()
        await self.send(make(Op.NOP_OUT, payload, immediate=1, final=1, itt=itt, ttt=NO_TAG,
                             cmdsn=self.cmdsn, expstatsn=self.expstatsn))
        return await self.recv()

    async def task_management(self, function: int, *, lun: int = 0, rtt: int = NO_TAG,
                              refcmdsn: int = 0) -> int:
        itt = self.next_itt()
        await self.send(make(Op.TMF_REQ, immediate=1, final=1, function=function, lun=encode_lun(lun),
                             itt=itt, rtt=rtt, cmdsn=self.cmdsn, expstatsn=self.expstatsn, refcmdsn=refcmdsn))
        while True:
            p = await self.recv()
            if p.opcode == Op.TMF_RSP and p["itt"] == itt:
                return p["response"]

    async def text(self, keys: list[tuple[str, str]]) -> list[tuple[str, str]]:
        itt = self.next_itt()
        await self.send(make(Op.TEXT_REQ, encode_pairs(keys), immediate=1, final=1, itt=itt, ttt=NO_TAG,
                             cmdsn=self.cmdsn, expstatsn=self.expstatsn))
        p = await self.recv()
        if p.opcode != Op.TEXT_RSP:
            raise InitiatorError(f"expected a Text Response, got {p.name}")
        return parse_pairs(p.data)

    async def logout(self) -> int:
        itt = self.next_itt()
        await self.send(make(Op.LOGOUT_REQ, immediate=1, final=1, reason=0, itt=itt, cid=0,
                             cmdsn=self.cmdsn, expstatsn=self.expstatsn))
        p = await self.recv()
        return p["response"]


__all__ = ["Initiator", "InitiatorError", "Response", "parse_header"]
