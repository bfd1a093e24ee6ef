"""The copy manager: EXTENDED COPY (83h) and RECEIVE COPY RESULTS (84h) over LUNs.

``CopyManager.execute`` implements :class:`scsi.result.CommandHandler`.  An
EXTENDED COPY returns when its copy is done, so a transport runs it on a
worker thread; RECEIVE COPY RESULTS from other threads meanwhile sees live
progress.  ``prepare()`` exposes the sans-I/O job for drivers (such as the
simulator) that want to carry the engine's I/O themselves.

What the manager implements follows its configuration: stream segment codes
only when it has sequential-access LUNs, E0h/E1h only with an FC map, held
data twins only with a held data limit -- and OPERATING PARAMETERS and VPD
8Fh report exactly that.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Generator, Iterable, Mapping, Protocol, Sequence, Union

from scsi import asc as A
from scsi.copymgr import answers, vpd
from scsi.copymgr.cdb import (EXTENDED_COPY, EXTENDED_COPY_CDB, RCR_SERVICE_ACTIONS, RECEIVE_COPY_RESULTS,
                              RECEIVE_COPY_RESULTS_CDB, SA_COPY_STATUS, SA_OPERATING_PARAMETERS,
                              SA_RECEIVE_DATA)
from scsi.copymgr.config import CopyLimits, FcMapEntry
from scsi.copymgr.engine import CopyEngine
from scsi.copymgr.errors import CopyAborted, CopyError, IllegalRequest
from scsi.copymgr.io import BlockCopy, IoRequest, IoResult
from scsi.copymgr.threaded import ThreadedDriver
from scsi.copymgr.prepare import build_steps, static_checks
from scsi.copymgr.records import Busy, CopyRecord, DuplicateListId, RecordStore
from scsi.copymgr.resolve import FcAddress, Resolver
from scsi.layout import LayoutError
from scsi.luns.base import Lun
from scsi.result import Nexus, ScsiResult, Status
from scsi.sense import illegal_request, sense_for
from scsi.xcopy import DecodeLimits, ParameterList, ParameterListError

log = logging.getLogger(__name__)

BLOCK_SEGMENTS = (0x02, 0x07, 0x0A)
STREAM_SEGMENTS = (0x00, 0x01, 0x03, 0x06, 0x10)
HELD_BLOCK, HELD_STREAM = (0x0D,), (0x0B, 0x0C, 0x0E, 0x0F)


AclFunction = Callable[[str], Union[Iterable[str], None]]


class Driver(Protocol):
    def run_batch(self, batch: Sequence[IoRequest]) -> list[IoResult]: ...


def _check(sense) -> ScsiResult:
    return ScsiResult(status=Status.CHECK_CONDITION, sense=sense.encode())


@dataclass
class CopyJob:
    """One accepted EXTENDED COPY: run ``steps()`` with a driver, then ``result``."""

    manager: "CopyManager"
    nexus: Nexus
    plist: ParameterList
    record: CopyRecord
    result: ScsiResult | None = None
    #: seconds per phase (resolve, block copy, flush), in the log line that ends the copy
    phases: dict = field(default_factory=dict)

    def run(self) -> Generator[list[IoRequest], list[IoResult], ScsiResult]:
        """Resolve, then yield I/O batches until the copy ends; returns the command's result."""
        m = self.manager
        t0 = time.perf_counter()
        try:
            steps = build_steps(self.plist, m.resolver_for(self.nexus), m.limits)
            self.phases["resolve"] = time.perf_counter() - t0
            engine = CopyEngine(steps, self.record.progress, inline=bytes.fromhex(self.plist.inline_data),
                                chunk=m.limits.chunk_bytes, depth=m.limits.io_depth,
                                held_limit=m.limits.held_data_limit,
                                block_copy=getattr(m.driver, "copies_blocks", False),
                                # a fault plan judges segment= rules between segments: keep them apart
                                merge_segments=m.faults is None)
            try:
                yield from engine.run()
            finally:
                self.phases.update(engine.phases)
        except CopyError as e:
            self.result = _check(e.sense)
            if isinstance(e, CopyAborted):
                log.warning("EXTENDED COPY list id %d from %s aborted: %s", self.plist.header.list_id,
                            self.nexus.initiator, e)
        except GeneratorExit:  # the driver gave up on the job (task aborted, simulation ended)
            self.result = _check(CopyAborted.make(A.THIRD_PARTY_TEMPORARY_INITIATOR_ERROR,
                                                  "copy abandoned by its driver", segment=None).sense)
            m._finish(self)
            raise
        except Exception as e:  # a bug must not kill the target: report it as the mover's failure
            log.exception("EXTENDED COPY list id %d: internal error", self.plist.header.list_id)
            self.result = _check(CopyAborted.make(A.THIRD_PARTY_TEMPORARY_INITIATOR_ERROR,
                                                  f"internal error: {e}", segment=None).sense)
        else:
            self.result = ScsiResult()
        m._finish(self)
        return self.result


class CopyManager:
    """A software copy manager over ``luns`` (name -> LUN).

    ``acl`` maps an initiator name (or "*") to the LUN names it may copy
    between, or is a function initiator -> LUN names (None: all); ``None``
    lets every initiator reach every LUN.  ``fc_map`` addresses LUNs by FC
    port name/ID for E0h/E1h descriptors.
    """

    def __init__(self, luns: Mapping[str, Lun], *,
                 acl: Mapping[str, Iterable[str]] | AclFunction | None = None,
                 limits: CopyLimits | None = None, fc_map: Iterable[FcMapEntry] = (),
                 driver: Driver | None = None, name: str = "copy manager"):
        self.luns = dict(luns)
        self.name = name
        self.limits = limits or CopyLimits()
        self.acl_function: AclFunction | None = acl if callable(acl) else None
        self.acl = None if acl is None or callable(acl) else {k: frozenset(v) for k, v in acl.items()}
        if self.acl is not None:
            for who, names in self.acl.items():
                unknown = sorted(set(names) - set(self.luns))
                if unknown:
                    raise ValueError(f"ACL for {who} names unknown LUN(s) {', '.join(unknown)}")
        entries = tuple(fc_map)
        for e in entries:
            if e.lun not in self.luns:
                raise ValueError(f"FC map names unknown LUN {e.lun}")
        self.fc_map = tuple(FcAddress(e.lun, e.lun_number, e.wwpn_bytes(), e.port_id) for e in entries)
        self._own_driver = driver is None
        self.driver: Driver = driver or ThreadedDriver(self.limits.io_workers, share_budget=2 * self.limits.io_depth,
                                                         flush_every=self.limits.flush_behind_bytes)
        self.records = RecordStore(self.limits.total_concurrent_copies, self.limits.max_concurrent_copies)
        self._lock = threading.Lock()
        self.counters = {"copies": 0, "completed": 0, "failed": 0, "rejected": 0, "refused": 0,
                         "bytes": 0, "segments": 0}
        self.faults: Any = None  # a scsi.copymgr.faults.FaultPlan when the mover injects faults
        self.has_streams = any(l.is_stream for l in self.luns.values())
        self.segment_codes, self.cscd_codes = self._implemented()

    # -- what this mover implements ---------------------------------------------------------
    def _implemented(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        seg = set(BLOCK_SEGMENTS)
        if self.limits.held_data_limit:
            seg |= set(HELD_BLOCK)
        if self.has_streams:
            seg |= set(STREAM_SEGMENTS)
            if self.limits.max_inline_length:
                seg.add(0x04)
            if self.limits.held_data_limit:
                seg |= set(HELD_STREAM)
        cscd = {0xE4}
        if any(e.wwpn is not None for e in self.fc_map):
            cscd.add(0xE0)
        if any(e.port_id is not None for e in self.fc_map):
            cscd.add(0xE1)
        return tuple(sorted(seg)), tuple(sorted(cscd))

    @property
    def implemented_descriptor_codes(self) -> list[int]:
        """Segment codes then CSCD codes, ascending (OPERATING PARAMETERS order)."""
        return list(self.segment_codes) + list(self.cscd_codes)

    @property
    def max_inline_length(self) -> int:
        return self.limits.max_inline_length if 0x04 in self.segment_codes else 0

    def decode_limits(self) -> DecodeLimits:
        return DecodeLimits(max_cscds=self.limits.max_cscds, max_segments=self.limits.max_segments,
                            max_descriptor_list_length=self.limits.max_descriptor_list_length,
                            max_inline_length=self.max_inline_length, cscd_types=frozenset(self.cscd_codes),
                            segment_types=frozenset(self.segment_codes), check_indexes=False,
                            allow_trailing=True)

    # -- access control ---------------------------------------------------------------------
    @classmethod
    def for_target(cls, cfg: Any, luns: Mapping[int, Lun],
                   acl: Callable[[str], Iterable[int] | None], **kw: Any) -> "CopyManager":
        """A manager for an iSCSI target's LUNs (numbered), its ACL giving LUN numbers (None: all)."""
        names = {n: lun.name for n, lun in luns.items()}

        def reach(initiator: str) -> list[str] | None:
            numbers = acl(initiator)
            return None if numbers is None else [names[n] for n in numbers if n in names]

        return cls({lun.name: lun for lun in luns.values()}, acl=reach,
                   name=f"copy manager of {getattr(cfg, 'target', 'target')}", **kw)

    def reachable(self, initiator: str) -> dict[str, Lun]:
        """LUNs ``initiator`` may name in a descriptor."""
        if self.acl_function is not None:
            for key in dict.fromkeys((initiator, initiator.split(",")[0])):
                names = self.acl_function(key)
                if names is None:
                    return dict(self.luns)
                found = {n: self.luns[n] for n in names if n in self.luns}
                if found:
                    return found
            return {}
        if self.acl is None:
            return dict(self.luns)
        for key in (initiator, initiator.split(",")[0], "*"):
            if key in self.acl:
                return {n: self.luns[n] for n in self.acl[key]}
        return {}

    def resolver_for(self, nexus: Nexus) -> Resolver:
        return _CountingResolver(self, self.reachable(nexus.initiator), self.luns, self.fc_map, nexus.initiator)

    # -- CommandHandler ---------------------------------------------------------------------------
    def execute(self, nexus: Nexus, cdb: bytes, data_out: bytes, data_in_len: int) -> ScsiResult:
        try:
            if cdb and cdb[0] == EXTENDED_COPY:
                job = self.prepare(nexus, cdb, data_out)
                if isinstance(job, ScsiResult):
                    return job
                return self.drive(job)
            if cdb and cdb[0] == RECEIVE_COPY_RESULTS:
                return self._receive_copy_results(nexus, cdb, data_in_len)
            return _check(illegal_request(*A.INVALID_COMMAND_OPERATION_CODE, field=0, in_cdb=True))
        except CopyError as e:
            return _check(e.sense)
        except Exception:  # never let a bug take the target down with it
            log.exception("copy manager: internal error on CDB %s", bytes(cdb[:16]).hex())
            return _check(sense_for(0x4, *A.INTERNAL_TARGET_FAILURE))

    def drive(self, job: CopyJob) -> ScsiResult:
        """Run a prepared job to completion with this manager's driver.

        With a fault plan (:mod:`scsi.copymgr.faults`), its in-copy rules are
        judged before each I/O batch (a COPY ABORTED is thrown into the copy)
        and inside a pipelined block copy (cut at the rule's segment or byte).
        """
        gen = job.run()
        watch = self.faults.watch(job.record.progress) if self.faults else None
        try:
            batch = next(gen)
            while True:
                abort = watch.before_batch() if watch is not None else None
                if abort is not None:
                    batch = gen.throw(abort)
                    continue
                if watch is not None:  # and before each chunk of a pipelined block copy
                    batch = [replace(r, check=watch.before_batch) if isinstance(r, BlockCopy) else r
                             for r in batch]
                try:
                    results = self.driver.run_batch(batch) if watch is None else \
                        watch.run_batch(self.driver.run_batch, batch)
                except Exception as e:  # a broken driver fails the copy, not the target
                    log.exception("copy manager driver failed on a batch of %d requests", len(batch))
                    results = [IoResult(error=e) for _ in batch]
                batch = gen.send(results)
        except StopIteration as stop:
            return stop.value
        finally:
            if watch is not None:
                watch.done()

    def prepare(self, nexus: Nexus, cdb: bytes, data_out: bytes) -> CopyJob | ScsiResult:
        """Validate an EXTENDED COPY (steps 1-5) and register it; a ScsiResult if it ends here."""
        c = self._cdb(EXTENDED_COPY_CDB, cdb)
        if c["service_action"] != 0:
            raise IllegalRequest.make(A.INVALID_FIELD_IN_CDB, f"service action {c['service_action']:02X}h "
                                      "(only LID1, 00h)", field=1, bit=4, in_cdb=True)
        length = c["parameter_list_length"]
        if length == 0:
            return ScsiResult()
        data = bytes(data_out[:length])
        try:
            plist = ParameterList.decode(data, self.decode_limits())
        except ParameterListError as e:
            self._count("rejected")
            log.info("EXTENDED COPY from %s rejected: %s", nexus.initiator, e.describe())
            return _check(e.to_sense())
        try:
            static_checks(plist, self.limits)
        except IllegalRequest as e:
            self._count("rejected")
            log.info("EXTENDED COPY from %s rejected: %s", nexus.initiator, e)
            return _check(e.sense)
        h = plist.header
        try:
            record = self.records.start(nexus.it, h.list_id, h.list_id_usage, len(plist.segments))
        except DuplicateListId:
            self._count("rejected")
            return _check(illegal_request(*A.OPERATION_IN_PROGRESS))
        except Busy as e:
            log.info("EXTENDED COPY from %s answered BUSY: %s", nexus.initiator, e)
            return ScsiResult(status=Status.BUSY)
        self._count("copies")
        return CopyJob(self, nexus, plist, record)

    def _finish(self, job: CopyJob) -> None:
        rec, result = job.record, job.result
        rec.finish(result.ok, result.sense)
        self.records.done(job.nexus.it, rec)
        segs, nbytes = rec.progress.snapshot()
        with self._lock:
            self.counters["completed" if result.ok else "failed"] += 1
            self.counters["bytes"] += nbytes
            self.counters["segments"] += segs
        took = " ".join(f"{name} {s:.3f} s," for name, s in job.phases.items()).rstrip(",")
        log.info("EXTENDED COPY list id %d from %s: %d/%d segments, %d bytes, %s in %.3f s (%s)", rec.list_id,
                 job.nexus.initiator, segs, rec.segments, nbytes, "GOOD" if result.ok else "CHECK CONDITION",
                 (rec.finished or rec.started) - rec.started, took or "not started")

    def _count(self, name: str) -> None:
        with self._lock:
            self.counters[name] += 1

    @staticmethod
    def _cdb(layout, cdb: bytes) -> dict:
        if len(cdb) < layout.size:
            raise IllegalRequest.make(A.INVALID_FIELD_IN_CDB, f"{layout.name} of {len(cdb)} bytes",
                                      field=0, in_cdb=True)
        try:
            return layout.decode(cdb[:layout.size])
        except LayoutError as e:
            raise IllegalRequest.make(A.INVALID_FIELD_IN_CDB, str(e), field=e.offset, bit=e.bit,
                                      in_cdb=True) from None

    # -- RECEIVE COPY RESULTS ----------------------------------------------------------------------
    def _receive_copy_results(self, nexus: Nexus, cdb: bytes, data_in_len: int) -> ScsiResult:
        c = self._cdb(RECEIVE_COPY_RESULTS_CDB, cdb)
        sa = c["service_action"]
        if sa not in RCR_SERVICE_ACTIONS:
            raise IllegalRequest.make(A.INVALID_FIELD_IN_CDB, f"service action {sa:02X}h", field=1, bit=4,
                                      in_cdb=True)
        if sa == SA_OPERATING_PARAMETERS:
            data = self.operating_parameters()
        else:
            rec = self.records.get(nexus.it, c["list_id"])
            if rec is None:
                raise IllegalRequest.make(A.INVALID_FIELD_IN_CDB, f"no copy results for list id {c['list_id']}",
                                          field=2, in_cdb=True)
            data = self._record_answer(sa, rec)
        return ScsiResult(data=data[:min(c["allocation_length"], data_in_len)])

    @staticmethod
    def _record_answer(sa: int, rec: CopyRecord) -> bytes:
        p = rec.progress
        if sa == SA_COPY_STATUS:
            segs, nbytes = p.snapshot()
            return answers.copy_status(rec.state, segs, nbytes, p.held_discarded)
        if sa == SA_RECEIVE_DATA:
            with p.lock:
                held = bytes(p.held) if not rec.running else b""
                if not rec.running:
                    p.held.clear()
            return answers.receive_data(held)
        # FAILED SEGMENT DETAILS: once, for a copy that ended with an error
        if rec.running or rec.status in (None, 0) or rec.details_taken:
            return answers.failed_segment_details(None, b"")
        rec.details_taken = True
        return answers.failed_segment_details(rec.status, rec.sense)

    def operating_parameters(self) -> bytes:
        L = self.limits
        return answers.operating_parameters(
            self.implemented_descriptor_codes, snlid=True, max_cscd_count=L.max_cscds,
            max_segment_count=L.max_segments, max_descriptor_list_length=L.max_descriptor_list_length,
            max_segment_length=L.max_segment_length, max_inline_data_length=self.max_inline_length,
            held_data_limit=L.held_data_limit,
            max_stream_device_transfer_size=L.max_stream_transfer if self.has_streams else 0,
            total_concurrent_copies=L.total_concurrent_copies, max_concurrent_copies=L.max_concurrent_copies,
            data_segment_granularity=L.data_segment_granularity,
            inline_data_granularity=L.inline_data_granularity,
            held_data_granularity=L.held_data_granularity)

    # -- VPD 8Fh --------------------------------------------------------------------------------
    def vpd_8f(self, pdt: int = 0) -> bytes:
        """The third-party copy VPD page describing this copy manager."""
        return vpd.third_party_copy_page(self.limits, self.implemented_descriptor_codes,
                                         commands={EXTENDED_COPY: (0x00,), RECEIVE_COPY_RESULTS: RCR_SERVICE_ACTIONS},
                                         max_inline_length=self.max_inline_length, streams=self.has_streams,
                                         pdt=pdt)

    # -- lifecycle --------------------------------------------------------------------------------
    def forget_nexus(self, it: tuple[str, str]) -> None:
        """Drop retained results of an I_T nexus (the target calls this at logout)."""
        self.records.forget(it)

    def close(self) -> None:
        if self._own_driver and isinstance(self.driver, ThreadedDriver):
            self.driver.close()


class _CountingResolver(Resolver):
    """Resolver that counts ACL refusals in the manager's counters."""

    def __init__(self, manager: CopyManager, *args):
        super().__init__(*args)
        self._manager = manager

    def _refuse(self, index, at, segment, lun):
        self._manager._count("refused")
        return super()._refuse(index, at, segment, lun)
