"""SCSI tasks on a connection: command intake, write data (immediate, unsolicited, R2T), execution, response.

Kept apart from :mod:`scsi.iscsi.connection` (login, sequence numbers, NOP,
text, logout, task management); :class:`ScsiTaskMixin` is one of
:class:`~scsi.iscsi.connection.Connection`'s bases and uses its ``_send``.
"""
from __future__ import annotations

import asyncio
import logging
from concurrent.futures import Executor

from scsi.iscsi.pdu import NO_TAG, Op, Pdu, PduError, Reject, decode_lun, extended_cdb, make
from scsi.iscsi.tasks import Task
from scsi.result import ScsiResult, Status

log = logging.getLogger(__name__)

MAX_EDTL = 64 * 1024 * 1024
MAX_TASKS = 128  # per connection (twice the command window)
MAX_PENDING_WRITE_BYTES = 256 * 1024 * 1024  # write buffers held per connection


class ScsiTaskMixin:
    """SCSI Command / Data-Out handling; expects the attributes a Connection has."""

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
        if task.data_error:
            return  # the task already failed; the rest of its data is dropped
        if pdu["datasn"] != task.datasn_out:
            # ERL 0 cannot recover the sequence: fail this command (DATA PHASE ERROR), keep the session.
            task.data_error = (f"Data-Out for task {task.itt:#x}: DataSN {pdu['datasn']} (bytes 36-39), "
                               f"expected {task.datasn_out}")
            task.unsolicited_open = False
            task.data_event.set()
            raise PduError(task.data_error, reason=Reject.PROTOCOL_ERROR, header=pdu.raw_header)
        task.datasn_out += 1
        if pdu.data_digest_error:  # already rejected: the burst counts as come, the task will fail
            task.skip_data(pdu["buffer_offset"], pdu["dsl"], pdu.raw_header)
        else:
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
        while task.received < task.edtl and not task.aborted and not task.data_error:
            offset = task.received
            length = min(self.params.max_burst_length, task.edtl - offset)
            task.ttt = self.next_ttt
            self.next_ttt = (self.next_ttt % 0xFFFFFFFE) + 1
            task.data_event.clear()
            task.datasn_out = 0  # each R2T starts a new Data-Out sequence
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
            if task.data_error:
                await self._respond(task, ScsiResult(status=Status.CHECK_CONDITION, sense=_sense_data_phase()))
                return
            if task.digest_error:  # RFC 7143 7.8 option b: all data is in, end with PROTOCOL SERVICE CRC ERROR
                await self._respond(task, ScsiResult(status=Status.CHECK_CONDITION, sense=_sense_crc_error()))
                return
            # EXTENDED COPY can run for minutes: it gets its own threads so reads/writes never queue behind it.
            pool = self.server.copy_executor if task.cdb[:1] == b"\x83" else self.server.executor
            result = await self._in_handler(pool, task)
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

    async def _in_handler(self, pool: Executor, task: Task) -> ScsiResult:
        """Run the SCSI handler for ``task`` in ``pool``, counted in ``handler_calls`` until the thread is done.

        Cancelling the task (abort, connection loss) cannot stop a handler call that has started: a
        RESERVE(6) or an EXTENDED COPY still takes effect for its I_T nexus, so the nexus may only be
        declared lost (:meth:`_handler_calls_done`) after the last such call has returned.
        """
        loop = asyncio.get_running_loop()
        self.handler_calls += 1

        def done(_: object) -> None:
            try:
                loop.call_soon_threadsafe(self._handler_call_done)
            except RuntimeError:  # the loop is closed: the server is gone, nothing is left to end
                pass

        work = pool.submit(self._execute, task)
        work.add_done_callback(done)
        return await asyncio.wrap_future(work)

    def _handler_call_done(self) -> None:
        self.handler_calls -= 1
        if self.handler_calls == 0 and self.nexus_end_pending:
            self.nexus_end_pending = False
            self.server.ending.discard(self)
            self._end_nexus()

    def _data_out_length(self, task: Task) -> int | None:
        """Bytes the CDB itself asks to transfer out, when the handler can tell (for residuals)."""
        ask = getattr(self.node.handler, "data_out_length", None) if self.node else None
        try:
            return ask(self.nexus(task.lun), task.cdb) if ask is not None else None
        except Exception:  # noqa: BLE001 - residual reporting must not fail a command
            return None

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
        elif task.write and not task.read:
            wanted = self._data_out_length(task)
            if wanted is not None and wanted > task.edtl:
                residual, over = wanted - task.edtl, 1
            elif wanted is not None and wanted < task.edtl:
                residual, under = task.edtl - wanted, 1
            elif wanted is None and task.received < task.edtl:
                residual, under = task.edtl - task.received, 1
        good = result.status == Status.GOOD and not result.sense
        seg = max(512, min(self.params.max_recv_data_segment_length, self.params.max_burst_length))
        offset, datasn = 0, 0
        view = memoryview(data)
        while offset < len(data):
            chunk = view[offset:offset + seg]
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


def _sense_data_phase() -> bytes:
    from scsi.sense import SenseKey, sense_for
    return sense_for(SenseKey.ABORTED_COMMAND, 0x4B, 0x00).encode()  # DATA PHASE ERROR


def _sense_crc_error() -> bytes:
    from scsi.sense import SenseKey, sense_for
    return sense_for(SenseKey.ABORTED_COMMAND, 0x47, 0x05).encode()  # PROTOCOL SERVICE CRC ERROR (RFC 7143 11.4.7.2)


def _sense_target_failure() -> bytes:
    from scsi.sense import SenseKey, sense_for
    return sense_for(SenseKey.HARDWARE_ERROR, 0x44, 0x00).encode()
