"""Exact mode: the shared copy manager engine running on simulated LUNs in simulated time.

:class:`ExactMover` is a simulated data mover.  It owns a real
:class:`scsi.copymgr.manager.CopyManager` -- the same engine the iSCSI target
serves -- over LUNs that may carry real bytes (sparse memory, a file, or a
caller's bytearray) or none (:class:`NullBlockLun`, for timing runs).  Its
``execute`` is a :class:`scsi.result.CommandHandler`, so
``scsi.devices.inprocess.InProcessDevice(mover)`` is a pyscsi device for it.

An EXTENDED COPY sent through :meth:`ExactMover.extended_copy` (a simpy
process) is prepared by the engine, and every batch of I/O the engine yields
crosses the simulated SAN as flows: reads over disk -> fabric -> mover,
writes over mover -> fabric -> destination.  A fault that stops a flow fails
that request the way the device would (its own sense, or a transport error),
and the engine turns it into COPY ABORTED exactly as on the real mover.
Job progress counts each byte once, when the engine writes it, so faults
triggered ``after_bytes`` or ``at_percent`` strike at that point of the
engine's copy.  A hung mover stops moving bytes at once and the command ends
only with the initiator's timeout.  A tape drive fed below its streaming speed
over a buffer's worth of data pays the fluid mode's shoe-shine penalty.
Events here grow with the engine's I/O chunks: exact mode is for correctness
scenarios; capacity runs use the fluid mode.
"""
from __future__ import annotations

import logging
from typing import Generator, Mapping, Sequence

import simpy

from scsi import asc as A
from scsi.copymgr.config import CopyLimits
from scsi.copymgr.io import (BlockRead, BlockWrite, InlineDriver, IoRequest, IoResult, StreamRead, StreamWrite,
                             perform)
from scsi.copymgr.manager import CopyManager
from scsi.luns.base import BlockLun, Lun, LunError, not_ready
from scsi.luns.memory import BytearrayLun  # noqa: F401 - simulated LUNs carrying bytes (re-exported)
from scsi.result import Nexus, ScsiResult, Status
from scsi.sense import Sense, SenseKey, SenseError, sense_for
from simulator.faults import FaultHit
from simulator.san import Path, SimSAN

log = logging.getLogger(__name__)


class NullBlockLun(BlockLun):
    """A LUN that carries no bytes: reads return zeros, writes are dropped (timing runs)."""

    def __init__(self, name: str, *, num_blocks: int, block_size: int = 512, naa: bytes | None = None):
        super().__init__(name, serial=f"null-{name}", naa=naa)
        self._bs, self._nb = block_size, num_blocks

    @property
    def block_size(self) -> int:
        return self._bs

    @property
    def num_blocks(self) -> int:
        return self._nb

    def read(self, lba: int, count: int) -> bytes:
        self.check_range(lba, count)
        return bytes(count * self._bs)

    def write(self, lba: int, data: bytes) -> None:
        self.check_range(lba, len(data) // self._bs)


def _bytes(req: IoRequest) -> int:
    if isinstance(req, BlockRead):
        return req.count * req.lun.block_size
    if isinstance(req, BlockWrite):
        return len(req.data)
    if isinstance(req, StreamWrite):
        return sum(len(r) for r in req.records)
    if isinstance(req, StreamRead):
        return req.length * req.reads * (req.block_size if req.fixed else 1)
    return 0


def _transport_error(what: str) -> LunError:
    return LunError(f"{what}: lost the path to the device", key=SenseKey.ABORTED_COMMAND,
                    asc=A.LUN_COMMUNICATION_FAILURE[0], ascq=A.LUN_COMMUNICATION_FAILURE[1])


def _device_error(name: str, sense: bytes) -> LunError:
    try:
        s = Sense.decode(sense)
        return LunError(f"{name} failed: {s}", key=int(s.key), asc=s.asc, ascq=s.ascq, sense=sense)
    except SenseError:
        return LunError(f"{name} failed", key=SenseKey.HARDWARE_ERROR, asc=A.INTERNAL_TARGET_FAILURE[0],
                        ascq=A.INTERNAL_TARGET_FAILURE[1])


def reading_of(req: IoRequest) -> bool:
    return isinstance(req, (BlockRead, StreamRead))


class ExactMover:
    """A simulated data mover: the copy manager engine over ``luns`` (SAN device name -> LUN)."""

    def __init__(self, san: SimSAN, mover: str, luns: Mapping[str, Lun], *, limits: CopyLimits | None = None):
        san.mover(mover)
        for name in luns:
            if name not in san.dev.disks and name not in san.dev.drives:
                raise LookupError(f"exact mover {mover}: LUN {name!r} is no disk or drive of the simulated SAN")
        self.san, self.name = san, mover
        self.luns = dict(luns)
        self.manager = CopyManager(self.luns, limits=limits, driver=InlineDriver(), name=mover)
        self._names = {id(lun): name for name, lun in self.luns.items()}
        self.shoeshine_cycles: dict[str, float] = {}  # tape drive -> start/stop cycles it went through

    # -- CommandHandler: instantaneous commands (RECEIVE COPY RESULTS, untimed copies) ----------
    def execute(self, nexus: Nexus, cdb: bytes, data_out: bytes, data_in_len: int) -> ScsiResult:
        return self.manager.execute(nexus, cdb, data_out, data_in_len)

    # -- timed EXTENDED COPY ----------------------------------------------------------------------
    def extended_copy(self, nexus: Nexus, cdb: bytes, data_out: bytes, *, job: str = ""
                      ) -> Generator[simpy.Event, object, ScsiResult | None]:
        """Run one EXTENDED COPY in simulated time; its ScsiResult (sense as the engine made it),
        or None when the mover hung and never answered.

        A hung mover moves nothing more and says nothing: the initiator's timer, started when the
        command was sent, ends it ``scsi_timeout_s`` later (for a copy already running longer
        than that, ``scsi_timeout_s`` after the hang), and only then does this return None.
        """
        env, timeout = self.san.env, self.san.cal.scsi_timeout_s
        sent = env.now
        mv = self.san.mover(self.name)
        if mv.state == "resetting":
            return ScsiResult(Status.CHECK_CONDITION, sense=sense_for(SenseKey.UNIT_ATTENTION,
                                                                      *A.POWER_ON_RESET).encode())
        if mv.state == "hung":
            yield env.timeout(timeout)
            return None
        prepared = self.manager.prepare(nexus, cdb, data_out)
        if isinstance(prepared, ScsiResult):
            return prepared
        gen = prepared.run()
        cmd = _Command()
        cmd.feed = {name: [0.0, sent] for name in self.luns if name in self.san.dev.drives}
        try:
            batch = next(gen)
            while True:
                results = yield from self._run_batch(batch, job, cmd)
                batch = gen.send(results)
        except StopIteration as stop:
            result: ScsiResult = stop.value
        if cmd.hung_at is None:
            yield from self._feed_check(cmd, job, final=True)
            if mv.state == "hung":  # it hung while the drive repositioned: no status ever comes
                cmd.hung_at = mv.hang_since
        if cmd.hung_at is not None:  # the mover hung during the copy: the initiator hears nothing
            deadline = sent + timeout if cmd.hung_at < sent + timeout else cmd.hung_at + timeout
            yield env.timeout(max(0.0, deadline - env.now))
            log.info("t=%.3f %s: EXTENDED COPY sent at %.3f timed out (mover hung at %.3f)",
                     env.now, self.name, sent, cmd.hung_at)
            return None
        if self.san.mover(self.name).state == "resetting":  # reset during the copy: the copy is lost
            return ScsiResult(Status.CHECK_CONDITION, sense=sense_for(SenseKey.UNIT_ATTENTION,
                                                                      *A.POWER_ON_RESET).encode())
        return result

    def _refusal(self, req: IoRequest, name: str, reading: bool) -> LunError | None:
        san = self.san
        if name in san.dev.disks and not san.dev.disks[name].ready:
            return not_ready(name, "logical unit not ready (simulated fault)")
        if name in san.dev.drives and san.dev.drives[name].failed:
            return _device_error(name, san.dev.drives[name].sense)
        a, b = (name, self.name) if reading else (self.name, name)
        if not san.route_is_up(a, b):
            return _transport_error(f"{a} -> {b}")
        return None

    def _path(self, name: str, nbytes: int, reading: bool) -> Path:
        san = self.san
        mv = san.mover(self.name)
        if reading:  # a disk, or a tape drive when restoring from a tape pool
            src, _ = san._source(name, nbytes, 1)
            return src + [(r, 1.0) for r in san.route(name, self.name)] + [(mv.resource, 1.0)]
        dest, _ = san._destination(name, mv.buffer)
        return [(r, 1.0) for r in san.route(self.name, name)] + dest

    def _run_batch(self, batch: Sequence[IoRequest], job: str, cmd: _Command):
        env, mv = self.san.env, self.san.mover(self.name)
        hang = FaultHit("mover_hang", self.name, "mover", timeout=True)
        if mv.state == "hung":  # hung between two batches: the engine's next I/O never happens
            cmd.hung_at = mv.hang_since if cmd.hung_at is None else cmd.hung_at
            return [IoResult(error=_transport_error(f"{self.name} (mover hung)")) for _ in batch]
        errors: dict[int, LunError] = {}
        flows = {}
        for i, req in enumerate(batch):
            name = self._names.get(id(req.lun))
            nbytes = _bytes(req)
            if name is None or nbytes == 0:
                continue
            reading = reading_of(req)
            err = self._refusal(req, name, reading)
            if err is not None:
                errors[i] = err
                continue
            path = self._path(name, nbytes, reading)
            # job progress counts each byte once, when the engine writes it (what COPY STATUS reports)
            flows[i] = (name, self.san.start_flow(nbytes, path, job=job, counts=not reading,
                                                  label=f"exact:{self.name}", meta={
                                                      "kind": "exact", "source": name if reading else ""}))
        if flows:
            done = _all_finished(env, [f for _, f in flows.values()])  # not all_of: simpy would disarm a
            hung = env.event()  # condition nested in the any_of below once that fires

            def _on_hang() -> None:
                if not hung.triggered:
                    hung.succeed()

            mv.on_hang.append(_on_hang)
            try:
                yield env.any_of([done, hung])
            finally:
                mv.on_hang.remove(_on_hang)
            if not done.triggered:  # the mover hung: it stops moving bytes now
                for _, f in flows.values():
                    self.san.net.abort(f, "timeout", hang)
                yield done
        out: list[IoResult] = []
        for i, req in enumerate(batch):
            if i in errors:
                out.append(IoResult(error=errors[i]))
                continue
            if i in flows:
                name, flow = flows[i]
                end = flow.finished.value
                if not end.ok:
                    hit = end.cause
                    if isinstance(hit, FaultHit) and hit.timeout and cmd.hung_at is None:
                        cmd.hung_at = mv.hang_since if mv.state == "hung" else env.now
                    if isinstance(hit, FaultHit) and hit.device_sense:
                        out.append(IoResult(error=_device_error(hit.target, hit.device_sense)))
                    else:
                        out.append(IoResult(error=_transport_error(f"{name} ({end.reason})")))
                    continue
                if not reading_of(req) and name in cmd.feed:
                    cmd.feed[name][0] += flow.total
            try:
                out.append(IoResult(value=perform(req)))
            except Exception as e:  # the engine maps LUN errors to sense
                out.append(IoResult(error=e))
        yield from self._feed_check(cmd, job)
        return out

    def _feed_check(self, cmd: _Command, job: str, *, final: bool = False):
        """Tape shoe-shine, the fluid mode's penalty applied to the engine's real feed.

        The engine feeds a drive in chunks, several at once and with gaps while it reads, so the
        drive's feed is judged over windows of one buffer (the drive's plus the mover's), as a
        drive with that buffer sees it: a window fed below streaming speed costs
        ``bytes / buffer`` start/stop cycles of ``reposition_s`` each -- the time the fluid
        mode's ``x / (1 + x * reposition_s / buffer)`` adds -- and the copy waits for them.
        """
        env, mv = self.san.env, self.san.mover(self.name)
        for name, window in cmd.feed.items():
            nbytes, since = window
            st = self.san.dev.drives[name].streaming(mv.buffer)
            if nbytes <= 0 or (nbytes < st.buffer and not final):
                continue
            elapsed = env.now - since
            feed = nbytes / elapsed if elapsed > 0 else float("inf")
            if feed < st.min_rate * (1 - 1e-9):
                cycles = nbytes / st.buffer
                self.san.timeline.event(env.now, "shoeshine", name, job=job, feed=feed, min_rate=st.min_rate,
                                        cycles=cycles, mode="exact")
                log.warning("%s: feed %.1f MB/s below streaming speed %.1f MB/s: start/stop (shoe-shine), "
                            "%.2f cycles", name, feed / 1e6, st.min_rate / 1e6, cycles)
                self.shoeshine_cycles[name] = self.shoeshine_cycles.get(name, 0.0) + cycles
                if cycles * st.reposition_s > 0:
                    yield env.timeout(cycles * st.reposition_s)
            window[0], window[1] = 0.0, env.now


def _all_finished(env: simpy.Environment, flows: list) -> simpy.Event:
    """A plain event that succeeds once every flow has finished (however it ended)."""
    ev, left = env.event(), [len(flows)]

    def _one(_e: object) -> None:
        left[0] -= 1
        if left[0] == 0:
            ev.succeed()

    for f in flows:
        if f.finished.processed:
            left[0] -= 1
        else:
            f.finished.callbacks.append(_one)
    if left[0] == 0:
        ev.succeed()
    return ev


class _Command:
    """One EXTENDED COPY's state while it runs: when the mover hung under it, if it did."""

    __slots__ = ("feed", "hung_at")

    def __init__(self) -> None:
        self.hung_at: float | None = None
        self.feed: dict[str, list[float]] = {}  # tape drive -> [bytes written in its window, window start]
