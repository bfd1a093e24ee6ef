"""One iSCSI connection (= one session, MaxConnections=1): login, then full feature phase.

Commands run concurrently as asyncio tasks; the SCSI handler itself runs in
the server's thread pool so file I/O never blocks the event loop and other
sessions keep going.  Sequence numbers follow RFC 7143: CmdSN/ExpCmdSN/
MaxCmdSN per session, StatSN per connection, DataSN and R2TSN per task.
"""
from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from scsi.iscsi.login import CMD_WINDOW, Login
from scsi.iscsi.node import TargetNode
from scsi.iscsi.pdu import (NO_TAG, Op, Pdu, PduError, Reject, decode_lun, extended_cdb, make,
                            read_pdu)
from scsi.iscsi.tasks import Task, sn_add, sn_lt
from scsi.iscsi.textkeys import TextError, encode_pairs, negotiate_operational, parse_pairs
from scsi.result import Nexus, ScsiResult, Status

if TYPE_CHECKING:
    from scsi.iscsi.server import IscsiServer

log = logging.getLogger(__name__)

LOGIN_TIMEOUT = 30.0
MAX_EDTL = 64 * 1024 * 1024
MAX_TASKS = 2 * CMD_WINDOW  # per connection
MAX_PENDING_WRITE_BYTES = 256 * 1024 * 1024  # write buffers held per connection


class TmfResponse:
    COMPLETE = 0
    NO_TASK = 1
    NO_LUN = 2
    NOT_SUPPORTED = 5


class Connection:
    def __init__(self, server: IscsiServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
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

    def nexus(self, lun: int) -> Nexus:
        return Nexus(initiator=self.initiator, target=self.node.name if self.node else "", lun=lun)

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
        finally:
            await self.close()

    async def close(self) -> None:
        if self.closing:
            return
        self.closing = True
        for task in list(self.tasks.values()):
            self._abort(task)
        self.server.forget(self)
        try:
            self.writer.close()
            await asyncio.wait_for(self.writer.wait_closed(), 2.0)
        except (ConnectionError, asyncio.TimeoutError, OSError):
            pass

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
                self.server.register(self)
                log.info("%s session from %s (%s) on %s", self.login.session_type, self.initiator,
                         self.peer, self.node.name if self.node else "discovery")
                return True

    async def _full_feature_phase(self) -> None:
        limit = self.server.limits.max_recv_data_segment_length
        while not self.closing:
            try:
                pdu = await read_pdu(self.reader, limit)
            except PduError as e:
                await self._reject(e.reason, e.header)
                if e.fatal:
                    raise
                continue
            try:
                if await self._dispatch(pdu) is False:
                    return
            except PduError as e:
                log.info("connection %s: %s", self.peer, e)
                await self._reject(e.reason, e.header or pdu.raw_header)
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

    # -- sending ----------------------------------------------------------------------------
    async def _write(self, pdu: Pdu) -> None:
        self.writer.write(pdu.encode())
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
        others = [(k, v) for k, v in pairs if k != "SendTargets"]
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
                log.info("LUN RESET of LUN %d on %s by %s: %d task(s) aborted", lun, self.node.name,
                         self.initiator, count)
                response = TmfResponse.COMPLETE
        else:
            response = TmfResponse.NOT_SUPPORTED
        await self._send(make(Op.TMF_RSP, final=1, response=response, itt=pdu["itt"]))

    # -- SCSI commands -----------------------------------------------------------------------
    async def _scsi_command(self, pdu: Pdu) -> None:
        if self.node is None:
            raise PduError("SCSI Command in a discovery session", reason=Reject.PROTOCOL_ERROR,
                           header=pdu.raw_header)
        itt = pdu["itt"]
        if itt in self.tasks or itt == NO_TAG:
            raise PduError(f"Initiator Task Tag {itt:#x} (bytes 16-19) is already in use",
                           reason=Reject.TASK_IN_PROGRESS if itt != NO_TAG else Reject.INVALID_PDU_FIELD,
                           header=pdu.raw_header)
        cdb = pdu["cdb"] + extended_cdb(pdu.ahs)
        edtl = pdu["edtl"]
        task = Task(itt=itt, lun=decode_lun(pdu["lun"]), lun_field=pdu["lun"], cdb=cdb, edtl=edtl,
                    read=bool(pdu["read"]), write=bool(pdu["write"]), cmdsn=pdu["cmdsn"])
        if edtl > MAX_EDTL:
            await self._respond(task, ScsiResult(status=Status.CHECK_CONDITION, sense=_sense_invalid_cdb()))
            return
        pending = sum(t.edtl for t in self.tasks.values() if t.write)
        if len(self.tasks) >= MAX_TASKS or (task.write and pending + edtl > MAX_PENDING_WRITE_BYTES):
            log.info("connection %s: task set full (%d tasks, %d write bytes pending)", self.peer,
                     len(self.tasks), pending)
            await self._respond(task, ScsiResult(status=Status.TASK_SET_FULL))
            return
        if task.write:
            task.buffer = bytearray(edtl)
            if pdu.data:
                if not self.params.immediate_data or len(pdu.data) > min(edtl, self.params.first_burst_length):
                    raise PduError(f"immediate data of {len(pdu.data)} bytes not allowed here",
                                   reason=Reject.PROTOCOL_ERROR, header=pdu.raw_header)
                task.take_data(0, pdu.data, pdu.raw_header)
            task.unsolicited_open = not pdu["final"] and not self.params.initial_r2t \
                and task.received < min(edtl, self.params.first_burst_length)
        elif pdu.data:
            raise PduError("data segment on a command without the W bit", reason=Reject.PROTOCOL_ERROR,
                           header=pdu.raw_header)
        self.tasks[itt] = task
        task.runner = asyncio.create_task(self._run_task(task))

    def _data_out(self, pdu: Pdu) -> None:
        task = self.tasks.get(pdu["itt"])
        if task is None or not task.write:
            raise PduError(f"Data-Out for unknown task {pdu['itt']:#x} (bytes 16-19)",
                           reason=Reject.INVALID_PDU_FIELD, header=pdu.raw_header)
        ttt = pdu["ttt"]
        if ttt == NO_TAG and not task.unsolicited_open:
            raise PduError(f"unsolicited Data-Out for task {task.itt:#x} not allowed",
                           reason=Reject.PROTOCOL_ERROR, header=pdu.raw_header)
        if ttt != NO_TAG and ttt != task.ttt:
            raise PduError(f"Data-Out Target Transfer Tag {ttt:#x} (bytes 20-23) matches no R2T",
                           reason=Reject.INVALID_PDU_FIELD, header=pdu.raw_header)
        task.take_data(pdu["buffer_offset"], pdu.data, pdu.raw_header)
        if pdu["final"]:
            if ttt == NO_TAG:
                task.unsolicited_open = False
            else:
                task.ttt = NO_TAG
            task.data_event.set()

    async def _collect_write_data(self, task: Task) -> None:
        while task.unsolicited_open:
            task.data_event.clear()
            await task.data_event.wait()
        while task.received < task.edtl and not task.aborted:
            offset = task.received
            length = min(self.params.max_burst_length, task.edtl - offset)
            task.ttt = self.next_ttt
            self.next_ttt = (self.next_ttt % 0xFFFFFFFE) + 1
            task.data_event.clear()
            await self._send(make(Op.R2T, final=1, lun=task.lun_field, itt=task.itt, ttt=task.ttt,
                                  r2tsn=task.r2tsn, buffer_offset=offset, desired_length=length), status=False)
            task.r2tsn += 1
            await task.data_event.wait()

    async def _run_task(self, task: Task) -> None:
        try:
            if task.write and task.edtl:
                await self._collect_write_data(task)
            if task.aborted:
                return
            loop = asyncio.get_running_loop()
            result = await loop.run_in_executor(self.server.executor, self._execute, task)
            if not task.aborted:
                await self._respond(task, result)
        except asyncio.CancelledError:
            pass
        except (ConnectionError, OSError) as e:
            log.debug("connection %s: task %#x: %s", self.peer, task.itt, e)
        except Exception:  # a handler bug must not take the connection down
            log.exception("task %#x (CDB %s) failed", task.itt, task.cdb.hex())
            if not task.aborted:
                try:
                    await self._respond(task, ScsiResult(status=Status.CHECK_CONDITION,
                                                         sense=_sense_target_failure()))
                except (ConnectionError, OSError):
                    pass
        finally:
            if self.tasks.get(task.itt) is task:
                del self.tasks[task.itt]

    def _execute(self, task: Task) -> ScsiResult:
        assert self.node is not None
        data_out = bytes(task.buffer) if task.write else b""
        return self.node.handler.execute(self.nexus(task.lun), task.cdb, data_out, task.edtl)

    async def _respond(self, task: Task, result: ScsiResult) -> None:
        data = result.data if task.read else b""
        residual, under, over = 0, 0, 0
        if len(data) > task.edtl:
            residual, over, data = len(data) - task.edtl, 1, data[:task.edtl]
        elif task.read and len(data) < task.edtl:
            residual, under = task.edtl - len(data), 1
        elif task.write and not task.read and task.received < task.edtl:
            residual, under = task.edtl - task.received, 1
        good = result.status == Status.GOOD and not result.sense
        seg = max(512, min(self.params.max_recv_data_segment_length, self.params.max_burst_length))
        offset, datasn = 0, 0
        while offset < len(data):
            chunk = data[offset:offset + seg]
            last = offset + len(chunk) >= len(data)
            fields = dict(final=int(last or (offset + len(chunk)) % self.params.max_burst_length == 0),
                          lun=task.lun_field, itt=task.itt, ttt=NO_TAG, datasn=datasn, buffer_offset=offset)
            if last and good:
                fields.update(final=1, has_status=1, status=result.status, overflow=over,
                              underflow=under, residual=residual)
                self.tasks.pop(task.itt, None)  # before sending: the initiator may reuse the tag at once
                await self._send(make(Op.DATA_IN, chunk, **fields), status=True)
                return
            await self._send(make(Op.DATA_IN, chunk, **fields), status=False)
            offset += len(chunk)
            datasn += 1
        sense = b""
        if result.sense:
            sense = len(result.sense).to_bytes(2, "big") + result.sense
        self.tasks.pop(task.itt, None)
        await self._send(make(Op.SCSI_RSP, sense, final=1, response=0, status=result.status, itt=task.itt,
                              expdatasn=datasn, overflow=over, underflow=under, residual=residual))


def _sense_invalid_cdb() -> bytes:
    from scsi.sense import illegal_request
    return illegal_request(0x24, 0x00).encode()


def _sense_target_failure() -> bytes:
    from scsi.sense import SenseKey, sense_for
    return sense_for(SenseKey.HARDWARE_ERROR, 0x44, 0x00).encode()
