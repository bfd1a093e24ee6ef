"""One iSCSI connection (= one session, MaxConnections=1): login, then full feature phase.

Commands run concurrently as asyncio tasks; the SCSI handler itself runs in
the server's thread pool so file I/O never blocks the event loop and other
sessions keep going.  Sequence numbers follow RFC 7143: CmdSN/ExpCmdSN/
MaxCmdSN per session, StatSN per connection, DataSN and R2TSN per task.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any

from scsi.iscsi.login import CMD_WINDOW, Login
from scsi.iscsi.node import TargetNode
from scsi.iscsi.pdu import NO_TAG, Op, Pdu, PduError, Reject, decode_lun, make, read_pdu
from scsi.iscsi.scsitasks import ScsiTaskMixin
from scsi.iscsi.tasks import Task, sn_add, sn_lt
from scsi.iscsi.textkeys import TextError, encode_pairs, negotiate_operational, parse_pairs
from scsi.result import Nexus

log = logging.getLogger(__name__)


def initiator_port_name(iqn: str, isid: bytes) -> str:
    """SPC's iSCSI initiator port identifier: the name, ``,i,0x`` and the 6-byte ISID in hex."""
    return f"{iqn},i,0x{bytes(isid).hex()}"

LOGIN_TIMEOUT = 30.0


class TmfResponse:
    COMPLETE = 0
    NO_TASK = 1
    NO_LUN = 2
    NOT_SUPPORTED = 5


class Connection(ScsiTaskMixin):
    def __init__(self, server: Any, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.server = server
        self.reader = reader
        self.writer = writer
        peer = writer.get_extra_info("peername") or ("?", 0)
        self.peer = f"{peer[0]}:{peer[1]}"
        self.login = Login(lookup=server.lookup, limits=server.limits, tpgt=server.tpgt,
                           new_tsih=server.new_tsih)
        self.node: TargetNode | None = None
        self.statsn = 0
        self.expcmdsn = 0
        self.tasks: dict[int, Task] = {}
        self.held: dict[int, Pdu] = {}  # commands that arrived ahead of ExpCmdSN
        self.next_ttt = 1
        self.closing = False
        self.handler_calls = 0  # SCSI handler calls running in a thread (see ScsiTaskMixin._in_handler)
        self.nexus_end_pending = False  # the session ended while handler_calls > 0
        # CRC32C digests (RFC 7143 13.1) start with the first PDU after the final Login Response.
        self.header_digest = False
        self.data_digest = False

    # -- identity -----------------------------------------------------------------------
    @property
    def initiator(self) -> str:
        return self.login.initiator

    @property
    def params(self):
        return self.login.params

    @property
    def key(self) -> tuple[str, bytes]:
        return (self.login.initiator, self.login.isid)

    @property
    def port_name(self) -> str:
        """The SCSI initiator port name (SPC: ``iqn,i,0x<ISID>``): each session is its own I_T nexus."""
        return initiator_port_name(self.login.initiator, self.login.isid)

    def nexus(self, lun: int) -> Nexus:
        return Nexus(initiator=self.port_name, target=self.node.name if self.node else "", lun=lun)

    # -- main loop ----------------------------------------------------------------------
    async def run(self) -> None:
        try:
            if await self._login_phase():
                await self._full_feature_phase()
        except (asyncio.IncompleteReadError, ConnectionError):
            log.debug("connection %s closed by peer", self.peer)
        except PduError as e:
            log.warning("connection %s: %s; closing", self.peer, e)
        except asyncio.TimeoutError:
            log.warning("connection %s: login not completed in %.0f s; closing", self.peer, LOGIN_TIMEOUT)
        except asyncio.CancelledError:
            raise
        except Exception:  # a bug in one connection must not take the server down
            log.exception("connection %s: internal error; closing", self.peer)
        finally:
            await self.close()

    async def close(self) -> None:
        if self.closing:
            return
        self.closing = True
        for task in list(self.tasks.values()):
            self._abort(task)
        self.server.forget(self)
        if self.handler_calls:
            self.nexus_end_pending = True  # after the handler calls already running (their effects are this nexus's)
            self.server.ending.add(self)
        else:
            self._end_nexus()
        try:
            self.writer.close()
            await asyncio.wait_for(self.writer.wait_closed(), 2.0)
        except (ConnectionError, asyncio.TimeoutError, OSError):
            pass

    def _end_nexus(self) -> None:
        """The session's last connection is gone: its I_T nexus ends (RESERVE(6), unit attentions, copy results)."""
        if self.node is not None and self.login.complete and not any(
                c is not self and c.node is self.node and c.key == self.key
                for c in self.server.connections):
            try:
                self.node.session_closed(self.port_name)
            except Exception:  # noqa: BLE001 - cleanup must not fail the close
                log.exception("session-closed hook of %s failed", self.node.name)

    async def _login_phase(self) -> bool:
        while True:
            pdu = await asyncio.wait_for(read_pdu(self.reader, 65536), LOGIN_TIMEOUT)
            resp = self.login.step(pdu)
            await self._write(resp)
            if self.login.failed:
                return False
            if self.login.complete:
                self.statsn = self.login.statsn
                self.expcmdsn = self.login.cmdsn
                self.node = self.login.node
                self.header_digest = self.params.header_digest == "CRC32C"
                self.data_digest = self.params.data_digest == "CRC32C"
                for kind, on in (("header", self.header_digest), ("data", self.data_digest)):
                    if on:
                        self.server.counters[f"digest.{kind}_sessions"] += 1
                self.server.register(self)
                log.info("%s session from %s (%s) on %s", self.login.session_type, self.initiator,
                         self.peer, self.node.name if self.node else "discovery")
                return True

    async def _full_feature_phase(self) -> None:
        limit = self.server.limits.max_recv_data_segment_length
        while not self.closing:
            try:
                pdu = await read_pdu(self.reader, limit, header_digest=self.header_digest,
                                     data_digest=self.data_digest)
            except PduError as e:
                if e.answer:
                    await self._reject(e.reason, e.header)
                else:
                    self.server.counters["digest.header_errors"] += 1
                if e.fatal:
                    raise
                continue
            if pdu.data_digest_error and not await self._data_digest_error(pdu):
                continue
            try:
                if await self._dispatch(pdu) is False:
                    return
            except PduError as e:
                log.info("connection %s: %s", self.peer, e)
                await self._reject(e.reason, e.header or pdu.raw_header)
                if e.fatal:  # ERL 0: a sequence error fails the connection
                    raise
            except (TextError, ValueError) as e:
                log.info("connection %s: %s", self.peer, e)
                await self._reject(Reject.INVALID_PDU_FIELD, pdu.raw_header)

    async def _dispatch(self, pdu: Pdu) -> bool | None:
        op = pdu.opcode
        if op == Op.DATA_OUT:
            self._data_out(pdu)
        elif op in (Op.SCSI_CMD, Op.NOP_OUT, Op.TEXT_REQ, Op.TMF_REQ, Op.LOGOUT_REQ):
            if not self._accept_cmdsn(pdu):
                return None
            result = await self._command(pdu)
            while self.expcmdsn in self.held and result is not False:
                held = self.held.pop(self.expcmdsn)
                self.expcmdsn = sn_add(self.expcmdsn, 1)
                result = await self._command(held)
            return result
        elif op == Op.SNACK:
            await self._reject(Reject.COMMAND_NOT_SUPPORTED, pdu.raw_header)
        else:
            raise PduError(f"{pdu.name} is not allowed in full feature phase",
                           reason=Reject.PROTOCOL_ERROR, header=pdu.raw_header)
        return None

    def _accept_cmdsn(self, pdu: Pdu) -> bool:
        """Immediate PDUs pass; others must carry ExpCmdSN (ahead within the window: held)."""
        if pdu.immediate:
            return True
        cmdsn = pdu["cmdsn"]
        if cmdsn == self.expcmdsn:
            self.expcmdsn = sn_add(self.expcmdsn, 1)
            return True
        maxcmdsn = sn_add(self.expcmdsn, CMD_WINDOW - 1)
        if sn_lt(self.expcmdsn, cmdsn) and not sn_lt(maxcmdsn, cmdsn) and len(self.held) < CMD_WINDOW:
            self.held[cmdsn] = pdu
        else:
            log.info("connection %s: CmdSN %d outside window %d..%d, PDU dropped", self.peer, cmdsn,
                     self.expcmdsn, maxcmdsn)
        return False

    async def _command(self, pdu: Pdu) -> bool | None:
        op = pdu.opcode
        if op == Op.SCSI_CMD:
            await self._scsi_command(pdu)
        elif op == Op.NOP_OUT:
            await self._nop_out(pdu)
        elif op == Op.TEXT_REQ:
            await self._text(pdu)
        elif op == Op.TMF_REQ:
            await self._task_management(pdu)
        elif op == Op.LOGOUT_REQ:
            return await self._logout(pdu)
        return None

    async def _data_digest_error(self, pdu: Pdu) -> bool:
        """RFC 7143 7.8: Reject (Data-Digest-Error) and drop the data; True when the PDU still goes on.

        A Data-Out goes on without its data: the task counts the burst as arrived and ends in
        CHECK CONDITION, PROTOCOL SERVICE CRC ERROR once all its data is in.  Any other PDU (a
        command with immediate data, a NOP-Out, a Text Request) is discarded whole, so a command's
        CmdSN is not consumed and the initiator may send it again.
        """
        self.server.counters["digest.data_errors"] += 1
        log.warning("connection %s: data digest error on %s (ITT %#x); PDU data discarded", self.peer,
                    pdu.name, pdu.get("itt", 0))
        await self._reject(Reject.DATA_DIGEST, pdu.raw_header)
        return pdu.opcode == Op.DATA_OUT

    # -- sending ----------------------------------------------------------------------------
    async def _write(self, pdu: Pdu) -> None:
        self.writer.writelines(pdu.encode_parts(header_digest=self.header_digest, data_digest=self.data_digest))
        await self.writer.drain()

    async def _send(self, pdu: Pdu, *, status: bool = True) -> None:
        """Fill in the sequence numbers at the moment of sending (StatSN advances when ``status``)."""
        pdu.fields["expcmdsn"] = self.expcmdsn
        pdu.fields["maxcmdsn"] = sn_add(self.expcmdsn, CMD_WINDOW - 1)
        if status:
            pdu.fields["statsn"] = self.statsn
            self.statsn = sn_add(self.statsn, 1)
        elif pdu.opcode in (Op.R2T, Op.REJECT):
            pdu.fields["statsn"] = self.statsn
        if self.closing:
            return
        await self._write(pdu)

    async def _reject(self, reason: int, header: bytes) -> None:
        log.info("connection %s: rejecting PDU (reason %#04x)", self.peer, reason)
        await self._send(make(Op.REJECT, bytes(header[:48]).ljust(48, b"\0"), final=1, reason=reason,
                              itt=NO_TAG, datasn=0), status=False)

    # -- NOP, text, logout ------------------------------------------------------------------
    async def _nop_out(self, pdu: Pdu) -> None:
        if pdu["itt"] == NO_TAG:
            return  # answer to our ping, or a ping that wants no answer
        await self._send(make(Op.NOP_IN, pdu.data, final=1, lun=pdu["lun"], itt=pdu["itt"], ttt=NO_TAG))

    async def _text(self, pdu: Pdu) -> None:
        pairs = parse_pairs(pdu.data)
        answers: list[tuple[str, str]] = []
        for key, value in pairs:
            if key == "SendTargets":
                answers += self.server.send_targets(self, value)
        # Digests are fixed at login (IO keys, RFC 7143 13.1): not renegotiated here.
        answers += [(k, "Reject") for k, _ in pairs if k in ("HeaderDigest", "DataDigest")]
        others = [(k, v) for k, v in pairs if k not in ("SendTargets", "HeaderDigest", "DataDigest")]
        if others:
            answers += negotiate_operational(others, self.params, self.server.limits, self.login.discovery)
        data = encode_pairs(answers)[:self.params.max_recv_data_segment_length]
        await self._send(make(Op.TEXT_RSP, data, final=1, cont=0, lun=pdu["lun"], itt=pdu["itt"], ttt=NO_TAG))

    async def _logout(self, pdu: Pdu) -> bool:
        reason = pdu["reason"]
        response = 0
        if reason == 1 and pdu["cid"] != self.login.cid:
            response = 1
        elif reason == 2:
            response = 2
        await self._send(make(Op.LOGOUT_RSP, final=1, response=response, itt=pdu["itt"],
                              time2wait=0, time2retain=0))
        log.info("logout of %s (%s), reason %d", self.initiator, self.peer, reason)
        return response != 0

    # -- task management ----------------------------------------------------------------------
    def _abort(self, task: Task) -> None:
        task.aborted = True
        self.tasks.pop(task.itt, None)
        if task.runner is not None and not task.runner.done():
            task.runner.cancel()
        task.data_event.set()

    def abort_all(self) -> int:
        tasks = list(self.tasks.values())
        for task in tasks:
            self._abort(task)
        return len(tasks)

    def abort_lun(self, lun: int) -> int:
        tasks = [t for t in self.tasks.values() if t.lun == lun]
        for task in tasks:
            self._abort(task)
        return len(tasks)

    async def _task_management(self, pdu: Pdu) -> None:
        function, lun = pdu["function"], decode_lun(pdu["lun"])
        if function == 1:  # ABORT TASK
            task = self.tasks.get(pdu["rtt"])
            if task is not None and task.lun == lun:
                self._abort(task)
                response = TmfResponse.COMPLETE
                log.info("ABORT TASK %#x from %s", pdu["rtt"], self.initiator)
            else:
                # Already completed (its CmdSN is behind us) counts as done; otherwise unknown.
                done = sn_lt(pdu["refcmdsn"], self.expcmdsn)
                response = TmfResponse.COMPLETE if done else TmfResponse.NO_TASK
        elif function in (2, 4):  # ABORT TASK SET, CLEAR TASK SET
            self.abort_lun(lun)
            response = TmfResponse.COMPLETE
        elif function == 5:  # LOGICAL UNIT RESET
            if self.node is None or not self.node.lun_exists(lun):
                response = TmfResponse.NO_LUN
            else:
                count = self.server.reset_lun(self.node.name, lun)
                # SAM: every other I_T nexus that used the LU sees 29h/03h on its next command
                notify = getattr(self.node.handler, "lun_reset", None)
                if notify is not None:
                    notify(self.nexus(lun))
                log.info("LUN RESET of LUN %d on %s by %s: %d task(s) aborted", lun, self.node.name,
                         self.initiator, count)
                self.server.counters["tmf.lun_reset"] += 1
                response = TmfResponse.COMPLETE
        elif function in (6, 7) and self.node is not None \
                and getattr(self.node.handler, "target_reset", None) is not None:
            # TARGET WARM / COLD RESET (RFC 7143 11.5.1, SAM-5 7.8): every task of the target is
            # aborted and every LU reset (unit attention, RESERVE(6) released); a cold reset then
            # also ends every session of the target, after this response.
            count = self.server.reset_target(self.node.name)
            self.node.handler.target_reset(self.nexus(0))
            log.warning("TARGET %s RESET of %s by %s: %d task(s) aborted", "COLD" if function == 7 else "WARM",
                        self.node.name, self.initiator, count)
            self.server.counters["tmf.target_cold_reset" if function == 7 else "tmf.target_warm_reset"] += 1
            response = TmfResponse.COMPLETE
        else:
            response = TmfResponse.NOT_SUPPORTED
        await self._send(make(Op.TMF_RSP, final=1, response=response, itt=pdu["itt"]))
        if function == 7 and response == TmfResponse.COMPLETE:
            for conn in [c for c in self.server.connections if c.node is self.node]:
                conn.writer.close()
